package server

import (
	"context"
	"net/http"
	"sync"

	"github.com/kapbridge/kapbridge/fhir"
)

// batch processes each entry on its own: a failure is that entry's
// response, and the others still land. Entries go in the transaction
// order (DELETE, POST, PUT, GET) so a batch and a transaction of the same
// independent entries do the same thing; references are left as sent,
// since batch entries must not depend on one another.
//
// Within one method the entries run concurrently (up to batchWorkers at a
// time): they are independent by definition, and concurrent Updates share
// commits (the SQLite store's group commit), so a large batch costs a few
// fsyncs instead of one per entry. When two entries name the same
// resource by id they run one after another, in request order, so the
// outcome does not depend on scheduling.
func (s *Server) batch(ctx context.Context, r *Request, entries []*bundleEntryReq) (*Response, error) {
	tenant, aud := r.tenant(), r.Audience
	workers := batchWorkers
	seen := map[string]bool{}
	for _, e := range entries {
		if e.id != "" && e.err == nil {
			k := e.typ + "/" + e.id
			if seen[k] {
				workers = 1
				break
			}
			seen[k] = true
		}
	}
	run := func(e *bundleEntryReq) {
		err := s.store.Update(ctx, func(tx fhir.Tx) error {
			if err := s.resolveTargets(ctx, tx, tenant, aud, []*bundleEntryReq{e}); err != nil {
				return err
			}
			return s.writeEntry(ctx, tx, e, aud)
		})
		if err != nil {
			e.err = entryError(e, s.entryTimeout(ctx, err), "")
			if e.err.Status >= 500 {
				s.logEntryFailure(ctx, r, e)
			}
		}
	}
	for _, method := range []string{http.MethodDelete, http.MethodPost, http.MethodPut, http.MethodPatch} {
		var wg sync.WaitGroup
		sem := make(chan struct{}, workers)
		for _, e := range entries {
			if e.err != nil || e.method != method {
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				run(e)
			})
		}
		wg.Wait()
	}
	s.runGets(ctx, r, entries)
	return s.respondBundle(r, "batch-response", entries), nil
}

// batchWorkers bounds how many entries of one batch write at once.
const batchWorkers = 16

// logEntryFailure logs the cause of a batch entry's server error, which
// its response does not carry.
func (s *Server) logEntryFailure(ctx context.Context, r *Request, e *bundleEntryReq) {
	s.log.ErrorContext(ctx, "batch entry failed",
		"request_id", r.RequestID, "entry", e.index, "cause", e.err.Err)
}
