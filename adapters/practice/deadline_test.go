package practice

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// stuckStore is a store that stops answering once stuck is set: Update
// waits until its context ends, as a transaction blocked on a lock would.
type stuckStore struct {
	search.Store
	recordStore
	stuck atomic.Bool
}

func (s *stuckStore) Update(ctx context.Context, fn func(tx fhir.Tx) error) error {
	if !s.stuck.Load() {
		return s.Store.Update(ctx, fn)
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestRequestTimeout: a request still waiting on the store when its time
// limit passes is answered 503 timeout, in the API's error shape, soon
// after the limit.
func TestRequestTimeout(t *testing.T) {
	base := openTestStore(t)
	ss := &stuckStore{Store: base.(search.Store), recordStore: base.(recordStore)}
	const limit = 200 * time.Millisecond
	e := newAPIEnv(t, ss, testApplier(ss), HTTPConfig{RequestTimeout: limit})
	ss.stuck.Store(true)
	start := time.Now()
	d := wantError(t, e.post(t, "application/json", readTestdata(t, "array.json")), http.StatusServiceUnavailable, codeTimeout)
	if took := time.Since(start); took > limit+time.Second {
		t.Errorf("answered after %s, want about %s", took, limit)
	}
	t.Logf("%s", d.Error.Message)
}
