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

// everything handles GET /Patient/{id}/$everything: the patient and every
// resource in its compartment, as one searchset. It refuses (too-costly)
// rather than truncate when the compartment is larger than the cap.
func (s *Server) everything(ctx context.Context, r *Request, id string) (*Response, error) {
	for k := range r.URL.Query() {
		if k != "_format" && k != "_pretty" {
			return nil, fhir.Errorf(fhir.IssueNotSupported, "", "$everything parameter %q is not supported", k)
		}
	}
	tenant, aud := r.tenant(), r.Audience
	patient, err := s.store.Read(ctx, fhir.Key{Tenant: tenant, Type: "Patient", ID: id})
	if err == nil && hidden(aud, patient) {
		err = fhir.ErrNotFound
	}
	if err == nil && patient.Deleted {
		err = fhir.Errorf(fhir.IssueDeleted, "", "Patient/%s was deleted", id)
	}
	if err != nil {
		return nil, notFound(err, fhir.Key{Type: "Patient", ID: id})
	}
	const maxEverything = 10000
	all := search.Result{Matches: []fhir.Version{patient}, Total: 1}
	for _, typ := range search.CompartmentTypes("Patient") {
		if typ == "Patient" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err // one search per type: stop between them
		}
		q := &search.Query{Type: typ, Count: 1000, Hide: aud.Hidden(), Compartment: &search.Compartment{Type: "Patient", ID: id, Params: search.CompartmentParams("Patient", typ)}}
		var cur *search.Cursor
		for {
			res, err := s.store.Search(ctx, tenant, q, cur)
			if err != nil {
				return nil, err
			}
			all.Matches = append(all.Matches, s.visible(ctx, aud, res.Matches)...)
			if len(all.Matches) > maxEverything {
				return nil, fhir.Errorf(fhir.IssueTooCostly, "", "Patient/%s has more than %d resources; $everything would be truncated, so it is refused: search the compartment by type (GET /Patient/%s/{type}) instead", id, maxEverything, id)
			}
			if res.Next == nil {
				break
			}
			cur = res.Next
		}
	}
	all.Total = len(all.Matches)
	q := &search.Query{Type: "Patient"}
	path := "/Patient/" + id + "/$everything"
	return &Response{Status: http.StatusOK, Body: s.searchsetBundle(path, url.Values{}, q, all, "")}, nil
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
