package server

import (
	"context"
	"net/http"

	"github.com/kapbridge/kapbridge/fhir"
)

// delete handles DELETE /{type}/{id}: a deletion version; reads then
// answer 410, history keeps every version. Deleting what is already
// deleted changes nothing (204); deleting what never existed is a 404.
func (s *Server) delete(ctx context.Context, r *Request) (*Response, error) {
	k := r.key()
	ifMatch, err := parseIfMatch(r.Header.Get("If-Match"))
	if err != nil {
		return nil, err
	}
	var out fhir.Version
	err = s.store.Update(ctx, func(tx fhir.Tx) (err error) {
		out, _, err = s.deleteIn(ctx, tx, k, ifMatch, r.Audience)
		return err
	})
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("ETag", etag(out.VersionID))
	return &Response{Status: http.StatusNoContent, Header: h}, nil
}
