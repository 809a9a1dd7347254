package server

import (
	"context"
	"errors"
	"strconv"

	"github.com/kapbridge/kapbridge/fhir"
)

// vread handles GET /{type}/{id}/_history/{vid}.
func (s *Server) vread(ctx context.Context, r *Request) (*Response, error) {
	k := r.key()
	vid, err := strconv.ParseInt(r.params.vid, 10, 64)
	if err != nil || vid < 1 {
		return nil, fhir.Errorf(fhir.IssueNotFound, "", "%q is not a version id of %s/%s", r.params.vid, k.Type, k.ID)
	}
	aud := r.Audience
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
		return nil, err
	}
	return serveVersion(r, v)
}
