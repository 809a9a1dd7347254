package server

import (
	"context"
	"net/http"

	"github.com/kapbridge/kapbridge/fhir"
)

// update handles PUT /{type}/{id}: a new version, or update-as-create with
// the client's id. If-Match makes it version-aware (412 on mismatch).
func (s *Server) update(ctx context.Context, r *Request) (*Response, error) {
	typ, id := r.params.typ, r.params.id
	if !idPattern.MatchString(id) {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "%q is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", id)
	}
	ifMatch, err := parseIfMatch(r.Header.Get("If-Match"))
	if err != nil {
		return nil, err
	}
	res, err := s.readResource(r, typ)
	if err != nil {
		return nil, err
	}
	switch bodyID := res.GetString("id"); {
	case bodyID == "":
		return nil, fhir.Errorf(fhir.IssueRequired, typ+".id", "an update must carry the id %q in the resource", id)
	case bodyID != id:
		return nil, fhir.Errorf(fhir.IssueInvalid, typ+".id", "resource id %q does not match the id %q in the URL", bodyID, id)
	}
	k := r.key()
	var out fhir.Version
	var status int
	err = s.store.Update(ctx, func(tx fhir.Tx) (err error) {
		out, status, err = s.updateIn(ctx, tx, k, res, ifMatch, r.Audience)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.writeResponse(r, status, out), nil
}

// conditionalUpdate handles PUT /{type}?identifier=system|value: no match
// creates, one match updates it, several are a 412.
func (s *Server) conditionalUpdate(ctx context.Context, r *Request) (*Response, error) {
	typ := r.params.typ
	if r.URL.RawQuery == "" {
		return nil, fhir.Errorf(fhir.IssueNotSupported, "", "PUT needs an id (PUT /%s/{id}) or a condition (PUT /%s?identifier=system|value)", typ, typ).WithStatus(http.StatusMethodNotAllowed)
	}
	criteria := conditionalQuery(r)
	ifMatch, err := parseIfMatch(r.Header.Get("If-Match"))
	if err != nil {
		return nil, err
	}
	res, err := s.readResource(r, typ)
	if err != nil {
		return nil, err
	}
	tenant, aud := r.tenant(), r.Audience
	bodyID := res.GetString("id")
	var out fhir.Version
	var status int
	err = s.store.Update(ctx, func(tx fhir.Tx) (err error) {
		id, err := s.conditionalUpdateID(ctx, tx, tenant, typ, criteria, bodyID, aud)
		if err != nil {
			return err
		}
		out, status, err = s.updateIn(ctx, tx, fhir.Key{Tenant: tenant, Type: typ, ID: id}, res, ifMatch, aud)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.writeResponse(r, status, out), nil
}

// conditionalQuery is the request query without the parameters that shape
// the response (_format, _pretty), which are not search criteria.
func conditionalQuery(r *Request) string {
	q := r.URL.Query()
	q.Del("_format")
	q.Del("_pretty")
	return q.Encode()
}
