package server

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// search handles GET /{type}?params.
func (s *Server) search(c *gin.Context) {
	s.runSearch(c, c.Request.URL.Query(), nil, "/"+c.Param("type"))
}

// searchPost handles POST /{type}/_search: parameters in a form body (and
// the URL), same result as GET.
func (s *Server) searchPost(c *gin.Context) {
	params := c.Request.URL.Query()
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			s.fail(c, fhir.Errorf(fhir.IssueNotSupported, "", "POST _search takes an application/x-www-form-urlencoded body, not %q", ct).WithStatus(http.StatusUnsupportedMediaType))
			return
		}
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		s.fail(c, bodyError(err))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.fail(c, fhir.Errorf(fhir.IssueInvalid, "", "the _search form body is not valid application/x-www-form-urlencoded: %v", err))
		return
	}
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	s.runSearch(c, params, nil, "/"+c.Param("type"))
}

// compartment handles GET /Patient/{id}/{type} (compartment search) and
// GET /Patient/{id}/$everything.
func (s *Server) compartment(c *gin.Context) {
	owner, id, typ := c.Param("type"), c.Param("id"), c.Param("compartment")
	if owner != "Patient" {
		s.fail(c, fhir.Errorf(fhir.IssueNotFound, "", "no %s compartment here: compartment search is supported for Patient", owner))
		return
	}
	if typ == "$everything" {
		s.everything(c, id)
		return
	}
	if !fhir.IsResourceType(typ) {
		s.fail(c, fhir.Errorf(fhir.IssueNotFound, "", "unknown resource type %q", typ))
		return
	}
	params := search.CompartmentParams("Patient", typ)
	if len(params) == 0 && typ != "Patient" {
		s.fail(c, fhir.Errorf(fhir.IssueNotFound, "", "%s is not in the Patient compartment", typ))
		return
	}
	comp := &search.Compartment{Type: "Patient", ID: id, Params: params}
	c.Params = append(c.Params, gin.Param{Key: "searchType", Value: typ})
	s.runSearch(c, c.Request.URL.Query(), comp, "/Patient/"+id+"/"+typ)
}

// runSearch parses, runs and answers one search page.
func (s *Server) runSearch(c *gin.Context, params url.Values, comp *search.Compartment, path string) {
	typ := c.Param("type")
	if t := c.Param("searchType"); t != "" {
		typ = t
	}
	q, err := s.lim.Search.ParseQuery(typ, params, s.base, preferHandling(c) == "strict")
	if err != nil {
		s.fail(c, err)
		return
	}
	aud := audienceOf(c)
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
		s.fail(c, err)
		return
	}
	res, err := s.store.Search(c.Request.Context(), tenantOf(c), q, cur)
	if err != nil {
		s.fail(c, err)
		return
	}
	res.Matches = s.visible(c.Request.Context(), aud, res.Matches)
	res.Included = s.visible(c.Request.Context(), aud, res.Included)
	writeJSON(c, http.StatusOK, s.searchsetBundle(path, params, q, res, fp))
}

// everything handles GET /Patient/{id}/$everything: the patient and every
// resource in its compartment, as one searchset. It refuses (too-costly)
// rather than truncate when the compartment is larger than the cap.
func (s *Server) everything(c *gin.Context, id string) {
	for k := range c.Request.URL.Query() {
		if k != "_format" && k != "_pretty" {
			s.fail(c, fhir.Errorf(fhir.IssueNotSupported, "", "$everything parameter %q is not supported", k))
			return
		}
	}
	ctx, tenant, aud := c.Request.Context(), tenantOf(c), audienceOf(c)
	patient, err := s.store.Read(ctx, fhir.Key{Tenant: tenant, Type: "Patient", ID: id})
	if err == nil && hidden(aud, patient) {
		err = fhir.ErrNotFound
	}
	if err == nil && patient.Deleted {
		err = fhir.Errorf(fhir.IssueDeleted, "", "Patient/%s was deleted", id)
	}
	if err != nil {
		s.fail(c, notFound(err, fhir.Key{Type: "Patient", ID: id}))
		return
	}
	const maxEverything = 10000
	all := search.Result{Matches: []fhir.Version{patient}, Total: 1}
	for _, typ := range search.CompartmentTypes("Patient") {
		if typ == "Patient" {
			continue
		}
		if err := ctx.Err(); err != nil {
			s.fail(c, err) // one search per type: stop between them
			return
		}
		q := &search.Query{Type: typ, Count: 1000, Hide: aud.Hidden(), Compartment: &search.Compartment{Type: "Patient", ID: id, Params: search.CompartmentParams("Patient", typ)}}
		var cur *search.Cursor
		for {
			res, err := s.store.Search(ctx, tenant, q, cur)
			if err != nil {
				s.fail(c, err)
				return
			}
			all.Matches = append(all.Matches, s.visible(ctx, aud, res.Matches)...)
			if len(all.Matches) > maxEverything {
				s.fail(c, fhir.Errorf(fhir.IssueTooCostly, "", "Patient/%s has more than %d resources; $everything would be truncated, so it is refused: search the compartment by type (GET /Patient/%s/{type}) instead", id, maxEverything, id))
				return
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
	writeJSON(c, http.StatusOK, s.searchsetBundle(path, url.Values{}, q, all, ""))
}

// preferHandling reads handling=... from the Prefer header.
func preferHandling(c *gin.Context) string { return strings.ToLower(preference(c, "handling")) }

// bodyError maps a body read failure to an OperationOutcome error.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fhir.Errorf(fhir.IssueTooLong, "", "the request body exceeds %s", fhir.LimitText("max-body-bytes", mbe.Limit)).WithStatus(http.StatusRequestEntityTooLarge)
	}
	return fhir.Errorf(fhir.IssueStructure, "", "could not read the request body").Wrap(err)
}
