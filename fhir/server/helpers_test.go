package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// The server's own tests run on the in-memory store: what a real SQL
// backend adds is tested where the SQL stores are (adapters/sqlstore, and
// cmd/kapbridge against `kapbridge serve`).

// testServer is the FHIR API over real loopback HTTP.
type testServer struct {
	*httptest.Server
	t *testing.T
}

// newServer serves the FHIR API configured by cfg (its BaseURL set to
// the server's) until t ends. KAPBRIDGE_TEST_LOG=1 shows its log (the
// causes of 500s).
func newServer(t *testing.T, cfg server.Config) (*testServer, *server.Server) {
	var h *server.Server
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	var logw io.Writer = io.Discard
	if os.Getenv("KAPBRIDGE_TEST_LOG") != "" {
		logw = os.Stderr
	}
	cfg.BaseURL = ts.URL
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	h = server.New(cfg)
	return &testServer{ts, t}, h
}

func newTestServer(t *testing.T, st fhir.Store) *testServer {
	srv, _ := newServer(t, server.Config{Store: st})
	return srv
}

// newLimitedServer is newTestServer with limits.
func newLimitedServer(t *testing.T, st fhir.Store, lim server.Limits) *testServer {
	srv, _ := newServer(t, server.Config{Store: st, Limits: lim})
	return srv
}

// newMemStore is an empty in-memory store, closed when t ends.
func newMemStore(t *testing.T) *memstore.Store {
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	return st
}

// dumpOf renders what st holds (memstore.Dump).
func dumpOf(t *testing.T, st *memstore.Store) string {
	t.Helper()
	var b strings.Builder
	if err := st.Dump(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// countingStore counts committed Put calls, to prove that a refused
// request stored nothing.
type countingStore struct {
	search.Store
	committed atomic.Int64
}

func newCountingStore(t *testing.T) *countingStore { return &countingStore{Store: newMemStore(t)} }

type countingTx struct {
	fhir.Tx
	puts *int64
}

func (tx countingTx) Put(ctx context.Context, v fhir.Version, idx fhir.Index) error {
	err := tx.Tx.Put(ctx, v, idx)
	if err == nil {
		*tx.puts++
	}
	return err
}

// Search is the wrapped transaction's: a search.Store's Tx searches.
func (tx countingTx) Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error) {
	return tx.Tx.(search.Searcher).Search(ctx, tenant, q, cur)
}

func (s *countingStore) Update(ctx context.Context, fn func(fhir.Tx) error) error {
	var puts int64
	err := s.Store.Update(ctx, func(tx fhir.Tx) error {
		puts = 0
		return fn(countingTx{tx, &puts})
	})
	if err == nil {
		s.committed.Add(puts)
	}
	return err
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; headers alternate name, value. Only the test's
// goroutine may call it (it may call t.Fatal).
func (s *testServer) do(method, path string, body []byte, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// assertOutcome checks that r is an OperationOutcome with the status
// wanted, and returns its issues.
func assertOutcome(t *testing.T, r response, status int) []any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %.600s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") && !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want FHIR JSON", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil || m["resourceType"] != "OperationOutcome" {
		t.Fatalf("body is not an OperationOutcome (%v): %.300s", err, r.body)
	}
	issues, _ := m["issue"].([]any)
	if len(issues) == 0 {
		t.Fatalf("OperationOutcome without issues: %s", r.body)
	}
	return issues
}

// diagnostics joins an OperationOutcome's diagnostics and expressions.
func diagnostics(issues []any) string {
	var b strings.Builder
	for _, is := range issues {
		m := is.(map[string]any)
		fmt.Fprintf(&b, "%v %v; ", m["diagnostics"], m["expression"])
	}
	return b.String()
}

// bundleOf is a batch or transaction Bundle of the given entries.
func bundleOf(kind string, entries ...string) []byte {
	return []byte(`{"resourceType":"Bundle","type":"` + kind + `","entry":[` + strings.Join(entries, ",") + `]}`)
}
