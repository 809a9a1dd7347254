package server

import (
	"context"
	"net/http"

	"github.com/kapbridge/kapbridge/fhir"
)

// create handles POST /{type}, and conditional create with If-None-Exist.
func (s *Server) create(ctx context.Context, r *Request) (*Response, error) {
	typ := r.params.typ
	res, err := s.readResource(r, typ)
	if err != nil {
		return nil, err
	}
	criteria := r.Header.Get("If-None-Exist")
	tenant, aud := r.tenant(), r.Audience
	var out fhir.Version
	var status int
	err = s.store.Update(ctx, func(tx fhir.Tx) (err error) {
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
		return nil, err
	}
	return s.writeResponse(r, status, out), nil
}
