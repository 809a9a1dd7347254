package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// create handles POST /{type}, and conditional create with If-None-Exist.
func (s *Server) create(c *gin.Context) {
	typ := c.Param("type")
	res, err := s.readResource(c, typ)
	if err != nil {
		s.fail(c, err)
		return
	}
	criteria := c.GetHeader("If-None-Exist")
	tenant, aud := tenantOf(c), audienceOf(c)
	var out fhir.Version
	var status int
	err = s.store.Update(c.Request.Context(), func(tx fhir.Tx) (err error) {
		ctx := c.Request.Context()
		if criteria != "" {
			v, found, err := s.conditionalCreateMatch(ctx, tx, tenant, typ, criteria, aud)
			if err != nil {
				return err
			}
			if found {
				out, status = v, http.StatusOK
				return nil
			}
		}
		// The server assigns the id of a created resource; any id in the
		// body is replaced (http.html#create).
		out, status, err = s.createIn(ctx, tx, fhir.Key{Tenant: tenant, Type: typ, ID: s.newID()}, res)
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondWrite(c, status, out)
}
