package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// The write paths shared by create, update, conditional update and delete
// and by the entries of batch and transaction Bundles. Each *In function
// runs inside a store transaction (so a conditional check and its write
// cannot be separated by another writer), touches nothing outside it (the
// store may re-run it), and answers the version, the HTTP status the
// interaction has and an error.

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// readResource reads and validates the request body as a resource of type
// typ.
func (s *Server) readResource(r *Request, typ string) (*fhir.Value, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, fhir.Errorf(fhir.IssueRequired, "", "the request body is empty: a %s resource is required", typ)
	}
	res, got, err := s.lim.Resource.ParseResource(body)
	if err != nil {
		return nil, err
	}
	if got != typ {
		return nil, fhir.Errorf(fhir.IssueInvalid, got+".resourceType", "resourceType %q does not match the %s endpoint", got, typ)
	}
	return res, nil
}

// readBody reads the request body; one over MaxBodyBytes is a 413.
func readBody(r *Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyError(err)
	}
	return body, nil
}

// put writes res as the version after cur (cur zero for a new resource),
// recording method, the interaction's HTTP method, for history.
func (s *Server) put(ctx context.Context, tx fhir.Tx, k fhir.Key, cur fhir.Version, res *fhir.Value, method string) (fhir.Version, error) {
	return s.writer(method).Put(ctx, tx, k, cur, res)
}

// writer is how this server writes versions: its base, its clock, the
// interaction's method and the change hook (Config.Changed).
func (s *Server) writer(method string) write.Writer {
	return write.Writer{Base: s.base, Now: s.now, Method: method, Changed: s.changed}
}

// current reads the newest version of k inside tx; found is false when k
// never existed.
func current(ctx context.Context, tx fhir.Tx, k fhir.Key) (v fhir.Version, found bool, err error) {
	v, err = tx.Read(ctx, k)
	if errors.Is(err, fhir.ErrNotFound) {
		return fhir.Version{Key: k}, false, nil
	}
	if err != nil {
		return fhir.Version{}, false, err
	}
	return v, true, nil
}

// condition is a parsed conditional-interaction query. Until full search
// lands (the search issue), the one supported criterion is the indexed
// identifier=system|value.
type condition struct {
	ident fhir.Identifier
}

func parseCondition(raw string, what string) (condition, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return condition{}, fhir.Errorf(fhir.IssueInvalid, "", "%s: malformed query %q", what, raw)
	}
	var cond condition
	for k, vals := range q {
		if k != "identifier" {
			return condition{}, fhir.Errorf(fhir.IssueNotSupported, "", "%s: search parameter %q is not supported here; use identifier=system|value", what, k)
		}
		if len(vals) != 1 || strings.Contains(vals[0], ",") {
			return condition{}, fhir.Errorf(fhir.IssueNotSupported, "", "%s: give exactly one identifier=system|value", what)
		}
		sys, val, ok := strings.Cut(vals[0], "|")
		if !ok || val == "" {
			return condition{}, fhir.Errorf(fhir.IssueInvalid, "", "%s: identifier must be system|value (or |value for no system), got %q", what, vals[0])
		}
		cond.ident = fhir.Identifier{System: sys, Value: val}
	}
	if cond.ident.Value == "" {
		return condition{}, fhir.Errorf(fhir.IssueInvalid, "", "%s: no criteria given; use identifier=system|value", what)
	}
	return cond, nil
}

// parseIfMatch reads an If-Match header: W/"n", "n" or n. 0 means absent.
func parseIfMatch(h string) (int64, error) {
	if h == "" {
		return 0, nil
	}
	t := strings.TrimPrefix(strings.TrimSpace(h), "W/")
	t = strings.Trim(t, `"`)
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 1 {
		return 0, fhir.Errorf(fhir.IssueInvalid, "", `If-Match %q is not a version ETag such as W/"3"`, h)
	}
	return n, nil
}

// checkIfMatch enforces a version precondition against cur.
func checkIfMatch(ifMatch int64, cur fhir.Version, found bool) error {
	if ifMatch == 0 {
		return nil
	}
	if !found {
		return fhir.Errorf(fhir.IssueConflict, "", "If-Match version %d given, but %s/%s does not exist", ifMatch, cur.Type, cur.ID).WithStatus(http.StatusPreconditionFailed)
	}
	if cur.VersionID != ifMatch {
		return fhir.Errorf(fhir.IssueConflict, "", "If-Match version %d does not match the current version %d of %s/%s", ifMatch, cur.VersionID, cur.Type, cur.ID).WithStatus(http.StatusPreconditionFailed)
	}
	return nil
}

// createIn writes res as the first version of k, whose id the caller
// chose; it answers 201.
func (s *Server) createIn(ctx context.Context, tx fhir.Tx, k fhir.Key, res *fhir.Value) (fhir.Version, int, error) {
	if err := s.checkWrite(k, res); err != nil {
		return fhir.Version{}, 0, err
	}
	v, err := s.put(ctx, tx, k, fhir.Version{Key: k}, res, http.MethodPost)
	if err != nil {
		return fhir.Version{}, 0, err
	}
	return v, http.StatusCreated, nil
}

// conditionalCreateMatch resolves If-None-Exist: the one live resource
// the criteria match (found true; the create then writes nothing and
// answers 200 with it), none (found false), or 412 for several.
func (s *Server) conditionalCreateMatch(ctx context.Context, tx fhir.Tx, tenant, typ, criteria string, aud fhir.Audience) (v fhir.Version, found bool, err error) {
	id, err := s.matchOne(ctx, tx, tenant, typ, criteria, aud)
	if err != nil || id == "" {
		return fhir.Version{}, false, err
	}
	v, err = tx.Read(ctx, fhir.Key{Tenant: tenant, Type: typ, ID: id})
	if err != nil {
		return fhir.Version{}, false, err
	}
	return v, true, nil
}

// conditionalUpdateID resolves the target of a conditional update: the
// resource the criteria match, else the body's id (update-as-create), else
// a new id. A body id that contradicts the match is a 400.
func (s *Server) conditionalUpdateID(ctx context.Context, tx fhir.Tx, tenant, typ, criteria, bodyID string, aud fhir.Audience) (string, error) {
	id, err := s.matchOne(ctx, tx, tenant, typ, criteria, aud)
	switch {
	case err != nil:
		return "", err
	case id == "" && bodyID != "":
		return bodyID, nil
	case id == "":
		return s.newID(), nil
	case bodyID != "" && bodyID != id:
		return "", fhir.Errorf(fhir.IssueInvalid, typ+".id", "resource id %q does not match %s/%s, which the condition matched", bodyID, typ, id)
	}
	return id, nil
}

// deleteIn writes a deletion version of k: 204, also when k is already
// deleted (nothing is written then); 404 when k never existed, or when aud
// may not see it (as if it never existed; nothing is written).
func (s *Server) deleteIn(ctx context.Context, tx fhir.Tx, k fhir.Key, ifMatch int64, aud fhir.Audience) (fhir.Version, int, error) {
	if err := s.checkWrite(k, nil); err != nil {
		return fhir.Version{}, 0, err
	}
	cur, found, err := current(ctx, tx, k)
	if err != nil {
		return fhir.Version{}, 0, err
	}
	if !found || hidden(aud, cur) {
		return fhir.Version{}, 0, notFound(fhir.ErrNotFound, k)
	}
	if err := checkIfMatch(ifMatch, cur, found); err != nil {
		return fhir.Version{}, 0, err
	}
	if cur.Deleted {
		return cur, http.StatusNoContent, nil
	}
	v, err := s.writer(http.MethodDelete).Delete(ctx, tx, k, cur, s.now())
	if err != nil {
		return fhir.Version{}, 0, err
	}
	return v, http.StatusNoContent, nil
}

// updateIn writes res as the next version of k inside tx. It answers 201
// when no live version existed before, else 200. A k that aud may not see
// is refused before anything about it (its version) is compared.
func (s *Server) updateIn(ctx context.Context, tx fhir.Tx, k fhir.Key, res *fhir.Value, ifMatch int64, aud fhir.Audience) (fhir.Version, int, error) {
	if err := s.checkWrite(k, res); err != nil {
		return fhir.Version{}, 0, err
	}
	cur, found, err := current(ctx, tx, k)
	if err != nil {
		return fhir.Version{}, 0, err
	}
	if found && hidden(aud, cur) {
		return fhir.Version{}, 0, hiddenTargetError(k.Type)
	}
	if err := checkIfMatch(ifMatch, cur, found); err != nil {
		return fhir.Version{}, 0, err
	}
	v, err := s.put(ctx, tx, k, cur, res, http.MethodPut)
	if err != nil {
		return fhir.Version{}, 0, err
	}
	status := http.StatusOK
	if !found || cur.Deleted {
		status = http.StatusCreated
	}
	return v, status, nil
}
