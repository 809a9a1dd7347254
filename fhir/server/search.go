package server

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// search handles GET /{type}?params.
func (s *Server) search(ctx context.Context, r *Request) (*Response, error) {
	return s.runSearch(ctx, r, r.URL.Query(), nil, r.params.typ, "/"+r.params.typ)
}

// searchPost handles POST /{type}/_search: parameters in a form body (and
// the URL), same result as GET.
func (s *Server) searchPost(ctx context.Context, r *Request) (*Response, error) {
	params := r.URL.Query()
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, fhir.Errorf(fhir.IssueNotSupported, "", "POST _search takes an application/x-www-form-urlencoded body, not %q", ct).WithStatus(http.StatusUnsupportedMediaType)
		}
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "the _search form body is not valid application/x-www-form-urlencoded: %v", err)
	}
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	return s.runSearch(ctx, r, params, nil, r.params.typ, "/"+r.params.typ)
}

// compartment handles GET /Patient/{id}/{type} (compartment search) and
// GET /Patient/{id}/$everything.
func (s *Server) compartment(ctx context.Context, r *Request) (*Response, error) {
	owner, id, typ := r.params.typ, r.params.id, r.params.compartment
	if owner != "Patient" {
		return nil, fhir.Errorf(fhir.IssueNotFound, "", "no %s compartment here: compartment search is supported for Patient", owner)
	}
	if typ == "$everything" {
		return s.everything(ctx, r, id)
	}
	if !fhir.IsResourceType(typ) {
		return nil, fhir.Errorf(fhir.IssueNotFound, "", "unknown resource type %q", typ)
	}
	params := search.CompartmentParams("Patient", typ)
	if len(params) == 0 && typ != "Patient" {
		return nil, fhir.Errorf(fhir.IssueNotFound, "", "%s is not in the Patient compartment", typ)
	}
	comp := &search.Compartment{Type: "Patient", ID: id, Params: params}
	return s.runSearch(ctx, r, r.URL.Query(), comp, typ, "/Patient/"+id+"/"+typ)
}

// runSearch parses, runs and answers one search page of typ.
func (s *Server) runSearch(ctx context.Context, r *Request, params url.Values, comp *search.Compartment, typ, path string) (*Response, error) {
	q, err := s.lim.Search.ParseQuery(typ, params, s.base, preferHandling(r.Header) == "strict")
	if err != nil {
		return nil, err
	}
	aud := r.Audience
	q.Hide = aud.Hidden()
	if comp != nil && comp.Type == typ {
		// GET /Patient/{id}/Patient: the owner itself.
		q.Clauses = append(q.Clauses, search.Clause{Param: search.Lookup(typ, "_id"), Values: []search.Value{{Code: comp.ID}}})
	} else {
		q.Compartment = comp
	}
	fp := queryFingerprint(path, params)
	cur, err := decodeCursor(params.Get("_cursor"), fp)
	if err != nil {
		return nil, err
	}
	res, err := s.store.Search(ctx, r.tenant(), q, cur)
	if err != nil {
		return nil, err
	}
	res.Matches = s.visible(ctx, aud, res.Matches)
	res.Included = s.visible(ctx, aud, res.Included)
	return &Response{Status: http.StatusOK, Body: s.searchsetBundle(path, params, q, res, fp)}, nil
}

// preferHandling reads handling=... from the Prefer header.
func preferHandling(h http.Header) string { return strings.ToLower(preference(h, "handling")) }

// bodyError maps a body read failure to an OperationOutcome error.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fhir.Errorf(fhir.IssueTooLong, "", "the request body exceeds %s", fhir.LimitText("max-body-bytes", mbe.Limit)).WithStatus(http.StatusRequestEntityTooLarge)
	}
	return fhir.Errorf(fhir.IssueStructure, "", "could not read the request body").Wrap(err)
}
