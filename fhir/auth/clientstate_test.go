package auth

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCoalescerFresh: every answer comes from a read that started after
// the caller asked (so a change committed before a request is seen by
// it), while concurrent callers share reads.
func TestCoalescerFresh(t *testing.T) {
	var started atomic.Int64
	c := &coalescer{query: func(context.Context) (int64, error) { return started.Add(1), nil }}
	const goroutines, calls = 16, 300
	var wg sync.WaitGroup
	var stale atomic.Int64
	for range goroutines {
		wg.Go(func() {
			for range calls {
				before := started.Load()
				n, err := c.get(context.Background())
				if err != nil || n <= before {
					stale.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := stale.Load(); n != 0 {
		t.Errorf("%d answers came from a read that started before the call", n)
	}
	t.Logf("%d calls, %d reads", goroutines*calls, started.Load())
}

// TestCoalescerShares: callers arriving while a read runs wait for one
// next read, which serves them all.
func TestCoalescerShares(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	var reads atomic.Int64
	c := &coalescer{query: func(context.Context) (int64, error) {
		n := reads.Add(1)
		entered <- struct{}{}
		if n == 1 {
			<-release
		}
		return n, nil
	}}
	go c.get(context.Background()) // the first read, held
	<-entered
	const waiters = 10
	got := make(chan int64, waiters)
	for range waiters {
		go func() {
			n, _ := c.get(context.Background())
			got <- n
		}()
	}
	// Wait until all have joined the next read: none can lead while the
	// first read is held.
	for {
		c.mu.Lock()
		joined := c.joined
		c.mu.Unlock()
		if joined == waiters {
			break
		}
		runtime.Gosched()
	}
	close(release)
	for range waiters {
		if n := <-got; n != 2 {
			t.Errorf("a caller got read %d, want 2 (the one after the held read)", n)
		}
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("%d reads for 11 callers, want 2", n)
	}
}

// TestClientStates: a client's row is read again when the generation has
// moved, and not otherwise.
func TestClientStates(t *testing.T) {
	st := &genStore{rows: map[string]ClientRow{"a": {ID: "a", Tenant: "t"}}}
	cs := newClientStates(st)
	now := time.Unix(1000, 0)
	cs.gens.now = func() time.Time { return now }
	ctx := context.Background()
	for range 3 {
		if r, err := cs.get(ctx, "a"); err != nil || r.Disabled {
			t.Fatalf("get a: %+v %v", r, err)
		}
	}
	if st.reads != 1 {
		t.Errorf("3 gets at one generation read the row %d times, want 1", st.reads)
	}
	st.put(ClientRow{ID: "a", Tenant: "t", Disabled: true})
	now = now.Add(clientStale / 2)
	if r, err := cs.get(ctx, "a"); err != nil || r.Disabled {
		t.Errorf("within clientStale of the last generation read, the row read then answers: %+v %v", r, err)
	}
	now = now.Add(clientStale)
	if r, err := cs.get(ctx, "a"); err != nil || !r.Disabled {
		t.Errorf("after the client was disabled: %+v %v", r, err)
	}
	if _, err := cs.get(ctx, "nobody"); !errors.Is(err, ErrNoClient) {
		t.Errorf("unknown client: %v", err)
	}
}

type genStore struct {
	Store
	mu    sync.Mutex
	gen   int64
	rows  map[string]ClientRow
	reads int
}

func (s *genStore) put(r ClientRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows[r.ID] = r
	s.gen++
}

func (s *genStore) AuthGeneration(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen, nil
}

func (s *genStore) AuthClient(_ context.Context, id string) (ClientRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	r, ok := s.rows[id]
	if !ok {
		return ClientRow{}, ErrNoClient
	}
	return r, nil
}

// TestCoalescerStale: with a staleness bound, a finished read that started
// at most that long before a call answers it; an older one does not.
func TestCoalescerStale(t *testing.T) {
	var reads atomic.Int64
	now := time.Unix(1000, 0)
	c := &coalescer{query: func(context.Context) (int64, error) { return reads.Add(1), nil }, stale: 100 * time.Millisecond, now: func() time.Time { return now }}
	for i, tc := range []struct {
		advance time.Duration
		want    int64
	}{
		{0, 1},                      // the first call reads
		{50 * time.Millisecond, 1},  // 50 ms after that read started: reused
		{50 * time.Millisecond, 1},  // 100 ms: still within the bound
		{time.Millisecond, 2},       // 101 ms: read again
		{99 * time.Millisecond, 2},  // 99 ms after the second read
		{200 * time.Millisecond, 3}, // long after: read again
	} {
		now = now.Add(tc.advance)
		n, err := c.get(context.Background())
		if err != nil || n != tc.want {
			t.Errorf("call %d (+%v): got read %d (%v), want %d", i, tc.advance, n, err, tc.want)
		}
	}
}
