package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/kapbridge/kapbridge/fhir"
)

// read handles GET /{type}/{id}: the current version, 410 once deleted.
func (s *Server) read(ctx context.Context, r *Request) (*Response, error) {
	k := r.key()
	v, err := s.store.Read(ctx, k)
	if err == nil && hidden(r.Audience, v) {
		err = fhir.ErrNotFound // exactly as if k never existed
	}
	if err != nil {
		return nil, notFound(err, k)
	}
	return serveVersion(r, v)
}

// serveVersion answers with one stored version the caller may see, or
// 410 for a deletion.
func serveVersion(r *Request, v fhir.Version) (*Response, error) {
	resp := &Response{Header: versionHeaders(v)}
	if v.Deleted {
		return resp, fhir.Errorf(fhir.IssueDeleted, "", "%s/%s was deleted (version %d)", v.Type, v.ID, v.VersionID)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag(v.VersionID) {
		resp.Status = http.StatusNotModified
		return resp, nil
	}
	resp.Status, resp.Body = http.StatusOK, v.JSON
	return resp, nil
}

// notFound turns the store's ErrNotFound into a 404 naming what is
// missing; other errors pass through.
func notFound(err error, k fhir.Key) error {
	if errors.Is(err, fhir.ErrNotFound) {
		if !idPattern.MatchString(k.ID) {
			return fhir.Errorf(fhir.IssueNotFound, "", "%q is not a valid FHIR id, so there is no %s with it", k.ID, k.Type)
		}
		return fhir.Errorf(fhir.IssueNotFound, "", "%s/%s not found", k.Type, k.ID)
	}
	return err
}
