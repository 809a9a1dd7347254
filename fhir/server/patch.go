package server

import (
	"context"
	"mime"
	"net/http"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/patch"
)

// The media types a PATCH body may have.
const (
	mimeJSONPatch = "application/json-patch+json"
)

// patchInstance handles PATCH /{type}/{id}: a JSON Patch
// (application/json-patch+json) or a FHIRPath Patch (a Parameters
// resource in FHIR JSON) applied to the current version, If-Match making
// it version-aware (412 on mismatch). The result is validated as any
// written resource is (base rules, profiles, the conformance guard) and
// becomes the next version, recorded as a PATCH in history.
func (s *Server) patchInstance(ctx context.Context, r *Request) (*Response, error) {
	k := r.key()
	if !idPattern.MatchString(k.ID) {
		return nil, notFound(fhir.ErrNotFound, k)
	}
	p, ifMatch, err := s.readPatch(r)
	if err != nil {
		return nil, err
	}
	var out fhir.Version
	err = s.store.Update(ctx, func(tx fhir.Tx) (err error) {
		out, err = s.patchIn(ctx, tx, k, p, ifMatch, r.Audience)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.writeResponse(r, http.StatusOK, out), nil
}

// conditionalPatch handles PATCH /{type}?criteria: the patch applies to
// the one resource the criteria match; none is a 404, several a 412.
func (s *Server) conditionalPatch(ctx context.Context, r *Request) (*Response, error) {
	typ := r.params.typ
	if r.URL.RawQuery == "" {
		return nil, fhir.Errorf(fhir.IssueNotSupported, "", "PATCH needs an id (PATCH /%s/{id}) or a condition (PATCH /%s?identifier=system|value)", typ, typ).WithStatus(http.StatusMethodNotAllowed)
	}
	criteria := conditionalQuery(r)
	p, ifMatch, err := s.readPatch(r)
	if err != nil {
		return nil, err
	}
	tenant, aud := r.tenant(), r.Audience
	var out fhir.Version
	err = s.store.Update(ctx, func(tx fhir.Tx) (err error) {
		id, err := s.matchOne(ctx, tx, tenant, typ, criteria, aud)
		if err != nil {
			return err
		}
		if id == "" {
			return fhir.Errorf(fhir.IssueNotFound, "", "no %s matches %q: a conditional patch needs one match", typ, criteria)
		}
		out, err = s.patchIn(ctx, tx, fhir.Key{Tenant: tenant, Type: typ, ID: id}, p, ifMatch, aud)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.writeResponse(r, http.StatusOK, out), nil
}

// readPatch reads If-Match and the patch body, in the format its
// Content-Type names.
func (s *Server) readPatch(r *Request) (patch.Patch, int64, error) {
	ifMatch, err := parseIfMatch(r.Header.Get("If-Match"))
	if err != nil {
		return nil, 0, err
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, 0, fhir.Errorf(fhir.IssueNotSupported, "", "PATCH needs a Content-Type: %s (JSON Patch) or application/fhir+json (FHIRPath Patch, a Parameters resource)", mimeJSONPatch).WithStatus(http.StatusUnsupportedMediaType)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, 0, fhir.Errorf(fhir.IssueNotSupported, "", "unsupported charset %q in Content-Type %q: send the body as UTF-8", cs, ct).WithStatus(http.StatusUnsupportedMediaType)
	}
	body, err := readBody(r)
	if err != nil {
		return nil, 0, err
	}
	if len(body) == 0 {
		return nil, 0, fhir.Errorf(fhir.IssueRequired, "", "the PATCH body is empty: send a JSON Patch or a FHIRPath Patch")
	}
	switch {
	case mt == mimeJSONPatch:
		p, err := patch.ParseJSONPatch(body, s.lim.Resource)
		return p, ifMatch, err
	case isJSONMediaType(ct):
		params, typ, err := s.lim.Resource.ParseResource(body)
		if err != nil {
			return nil, 0, err
		}
		if typ != "Parameters" {
			return nil, 0, fhir.Errorf(fhir.IssueInvalid, typ+".resourceType", "a FHIRPath Patch is a Parameters resource, not a %s (a JSON Patch is sent as %s)", typ, mimeJSONPatch)
		}
		p, err := patch.ParseFHIRPathPatch(params)
		return p, ifMatch, err
	}
	return nil, 0, fhir.Errorf(fhir.IssueNotSupported, "", "unsupported Content-Type %q for PATCH: send %s (JSON Patch) or application/fhir+json (FHIRPath Patch)", ct, mimeJSONPatch).WithStatus(http.StatusUnsupportedMediaType)
}

// patchIn applies p to the current version of k inside tx and writes the
// result as the next version. A k the caller may not see is refused as
// an update of it is (hiddenTargetError); a deleted one is gone (410).
func (s *Server) patchIn(ctx context.Context, tx fhir.Tx, k fhir.Key, p patch.Patch, ifMatch int64, aud fhir.Audience) (fhir.Version, error) {
	cur, found, err := current(ctx, tx, k)
	if err != nil {
		return fhir.Version{}, err
	}
	switch {
	case !found:
		return fhir.Version{}, notFound(fhir.ErrNotFound, k)
	case hidden(aud, cur):
		return fhir.Version{}, hiddenTargetError(k.Type)
	}
	if err := checkIfMatch(ifMatch, cur, found); err != nil {
		return fhir.Version{}, err
	}
	if cur.Deleted {
		return fhir.Version{}, fhir.Errorf(fhir.IssueDeleted, "", "%s/%s was deleted; a patch needs a live resource", k.Type, k.ID)
	}
	doc, err := fhir.ParseJSON(cur.JSON, fhir.StoredLimits)
	if err != nil {
		return fhir.Version{}, err
	}
	if err := p.Apply(doc); err != nil {
		return fhir.Version{}, err
	}
	// The result is a write like any other: it must parse and validate
	// under the request limits, keep its type and id, and pass the
	// profiles and the conformance guard.
	res, typ, err := s.lim.Resource.ParseResource(doc.Encode())
	if err != nil {
		return fhir.Version{}, patchResultError(err)
	}
	if typ != k.Type {
		return fhir.Version{}, fhir.Errorf(fhir.IssueProcessing, "", "the patch changes resourceType from %s to %s", k.Type, typ)
	}
	if id := res.GetString("id"); id != k.ID {
		return fhir.Version{}, fhir.Errorf(fhir.IssueProcessing, k.Type+".id", "the patch changes the id from %q to %q", k.ID, id)
	}
	if err := s.checkWrite(k, res); err != nil {
		return fhir.Version{}, err
	}
	return s.put(ctx, tx, k, cur, res, http.MethodPatch)
}

// patchResultError says that the resource the patch made is invalid, not
// the request body.
func patchResultError(err error) error {
	fe := fhir.AsError(err)
	issues := append([]fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueProcessing,
		Diagnostics: "the resource the patch makes is not valid; nothing was written"}}, fe.Issues...)
	out := *fe
	out.Issues = issues
	if out.Status == 0 {
		out.Status = http.StatusUnprocessableEntity
	}
	return &out
}
