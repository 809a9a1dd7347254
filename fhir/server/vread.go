package server

import (
	"errors"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// vread handles GET /{type}/{id}/_history/{vid}.
func (s *Server) vread(c *gin.Context) {
	k := fhir.Key{Tenant: tenantOf(c), Type: c.Param("type"), ID: c.Param("id")}
	vid, err := strconv.ParseInt(c.Param("vid"), 10, 64)
	if err != nil || vid < 1 {
		s.fail(c, fhir.Errorf(fhir.IssueNotFound, "", "%q is not a version id of %s/%s", c.Param("vid"), k.Type, k.ID))
		return
	}
	ctx, aud := c.Request.Context(), audienceOf(c)
	// A withheld resource has no versions for this caller, and a withheld
	// version of a visible one does not exist either.
	head, err := s.store.Read(ctx, k)
	var v fhir.Version
	if err == nil && hidden(aud, head) {
		err = fhir.ErrNotFound
	}
	if err == nil {
		v, err = s.store.VRead(ctx, k, vid)
	}
	if err == nil && aud.Withholds(v) {
		err = fhir.ErrNotFound
	}
	if errors.Is(err, fhir.ErrNotFound) {
		err = fhir.Errorf(fhir.IssueNotFound, "", "%s/%s has no version %d", k.Type, k.ID, vid)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.serveVersion(c, v)
}
