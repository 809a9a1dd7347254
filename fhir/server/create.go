package server

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// create handles POST /{type}, and conditional create with If-None-Exist.
func (s *Server) create(c *gin.Context) {
	typ := c.Param("type")
	res, err := readResource(c, typ)
	if err != nil {
		s.fail(c, err)
		return
	}
	var cond *condition
	if h := c.GetHeader("If-None-Exist"); h != "" {
		cd, err := parseCondition(h, "If-None-Exist")
		if err != nil {
			s.fail(c, err)
			return
		}
		cond = &cd
	}
	tenant := tenantOf(c)
	var out fhir.Version
	status := http.StatusCreated
	err = s.store.Update(c.Request.Context(), func(tx fhir.Tx) error {
		ctx := c.Request.Context()
		if cond != nil {
			v, matched, err := s.matchExisting(ctx, tx, tenant, typ, cond.ident)
			if err != nil {
				return err
			}
			if matched {
				out, status = v, http.StatusOK
				return nil
			}
		}
		// The server assigns the id of a created resource; any id in the
		// body is replaced (http.html#create).
		k := fhir.Key{Tenant: tenant, Type: typ, ID: s.newID()}
		v, err := s.put(ctx, tx, k, fhir.Version{Key: k}, res)
		out, status = v, http.StatusCreated
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondWrite(c, status, out)
}

// matchExisting resolves a conditional create: one match is returned, two
// or more are a 412.
func (s *Server) matchExisting(ctx context.Context, tx fhir.Tx, tenant, typ string, ident fhir.Identifier) (fhir.Version, bool, error) {
	ids, err := tx.LookupIdentifier(ctx, tenant, typ, ident)
	if err != nil {
		return fhir.Version{}, false, err
	}
	switch len(ids) {
	case 0:
		return fhir.Version{}, false, nil
	case 1:
		v, err := tx.Read(ctx, fhir.Key{Tenant: tenant, Type: typ, ID: ids[0]})
		return v, err == nil, err
	default:
		return fhir.Version{}, false, fhir.Errorf(fhir.IssueMultipleMatches, "", "%d %s resources match identifier %s|%s; the condition must match at most one", len(ids), typ, ident.System, ident.Value)
	}
}
