package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// The request time limit over real HTTP, on both stores.

// slowSearches are searches that are slow on purpose over the data
// seedDeadlineData loads (1,500 Patients, 3,000 Observations): about 5 s
// each on this machine without a time limit (BENCHMARKS.md). Each store
// has its own weak spot, so each gets its own query. The tests want the
// time limit's answer, so a query that became fast fails them rather than
// passing unnoticed: replace it with another slow one.
var slowSearches = map[string]string{
	// _include of the 1,000 matches' subjects.
	"sqlite": "/Observation?_include=Observation:subject&_count=1000",
	// A reverse chain, counted.
	"postgres": "/Patient?_has:Observation:subject:status=final&_summary=count",
}

// deadlineStore is a fresh store; on PostgreSQL its connections carry an
// application_name unique to the test (app), so the test can find its
// backends in pg_stat_activity.
type deadlineStore struct {
	name string
	st   fhir.Store
	app  string
	dsn  string
}

func deadlineStores(t *testing.T, pgParams string) []deadlineStore {
	var out []deadlineStore
	for _, be := range backends(t) {
		if be.name != "postgres" {
			out = append(out, deadlineStore{name: be.name, st: be.open(t)})
			continue
		}
		dsn := freshPostgresSchema(t, os.Getenv("KAPBRIDGE_TEST_POSTGRES_DSN"))
		app := dsn[strings.LastIndex(dsn, "search_path=")+len("search_path="):]
		dsn += "&application_name=" + app + pgParams
		st, err := sqlstore.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		out = append(out, deadlineStore{name: be.name, st: st, app: app, dsn: dsn})
	}
	return out
}

// logLines collects the server's JSON log lines.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *logLines) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			l.mu.Lock()
			l.lines = append(l.lines, m)
			l.mu.Unlock()
		}
	}
	return len(p), nil
}

// waitFor returns the first line satisfying match, polling until bound.
func (l *logLines) waitFor(bound time.Duration, match func(map[string]any) bool) (map[string]any, bool) {
	end := time.Now().Add(bound)
	for {
		l.mu.Lock()
		for _, m := range l.lines {
			if match(m) {
				l.mu.Unlock()
				return m, true
			}
		}
		l.mu.Unlock()
		if time.Now().After(end) {
			return nil, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newDeadlineServer(t *testing.T, st fhir.Store, limit time.Duration, logs io.Writer) *testServer {
	var h http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	if logs == nil {
		logs = io.Discard
	}
	h = server.New(server.Config{Store: st, BaseURL: ts.URL, RequestTimeout: limit,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	return &testServer{ts, t}
}

// seedDeadlineData loads 1,500 Patients with 2 Observations each, through
// batch Bundles.
func seedDeadlineData(t *testing.T, srv *testServer) {
	t.Helper()
	var entries []string
	flush := func() {
		b := `{"resourceType":"Bundle","type":"batch","entry":[` + strings.Join(entries, ",") + `]}`
		if r := srv.do(http.MethodPost, "/", []byte(b)); r.status != http.StatusOK || strings.Contains(string(r.body), `"status":"4`) {
			t.Fatalf("seed: %d %.400s", r.status, r.body)
		}
		entries = entries[:0]
	}
	for p := range 1500 {
		entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Patient","id":"p%d","name":[{"family":"Smith%d","given":["Ann"]}],"gender":"female"},"request":{"method":"PUT","url":"Patient/p%d"}}`, p, p%10, p))
		for o := range 2 {
			entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Observation","id":"o%d-%d","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"c%d"}]},"subject":{"reference":"Patient/p%d"},"effectiveDateTime":"2024-01-0%dT00:00:00Z","valueQuantity":{"value":%d}},"request":{"method":"PUT","url":"Observation/o%d-%d"}}`, p, o, o, p, o+1, p, p, o))
		}
		if len(entries) >= 600 {
			flush()
		}
	}
	flush()
}

// runningBackends returns what the backends named app are running (not
// idle), polling until there is nothing or bound has passed.
func runningBackends(t *testing.T, app string, bound time.Duration) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("KAPBRIDGE_TEST_POSTGRES_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	end := time.Now().Add(bound)
	for {
		rows, err := conn.Query(ctx, `SELECT state || ': ' || left(query, 100) FROM pg_stat_activity
			WHERE application_name = $1 AND state <> 'idle' AND pid <> pg_backend_pid()`, app)
		if err != nil {
			t.Fatal(err)
		}
		running, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(running) == 0 || time.Now().After(end) {
			return running
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantTooCostly checks r is the time limit's answer: 403, a whole
// OperationOutcome (it parses) whose issue is too-costly and says so.
func wantTooCostly(t *testing.T, r response) {
	t.Helper()
	issues := assertOutcome(t, r, http.StatusForbidden)
	is := issues[0].(map[string]any)
	if is["code"] != "too-costly" || !strings.Contains(fmt.Sprint(is["diagnostics"]), "time limit") {
		t.Errorf("issue %v, want too-costly naming the time limit", is)
	}
}

// TestRequestDeadline: a search slower than the request's time limit is
// answered with the too-costly OperationOutcome within the limit plus a
// small margin, while a read on the same server answers at once; its
// query is no longer running afterwards; a batch answers the entries the
// limit cut off; and a client that goes away cancels its request.
func TestRequestDeadline(t *testing.T) {
	const limit = 300 * time.Millisecond
	const margin = 1500 * time.Millisecond // loaded shared machine: generous
	for _, ds := range deadlineStores(t, "") {
		t.Run(ds.name, func(t *testing.T) {
			logs := &logLines{}
			srv := newDeadlineServer(t, ds.st, limit, logs)
			slow := newDeadlineServer(t, ds.st, 0, logs) // default limit, 30 s
			seedDeadlineData(t, slow)
			query := slowSearches[ds.name]

			t.Run("slow search", func(t *testing.T) {
				type answer struct {
					r    response
					took time.Duration
					at   time.Time
				}
				done := make(chan answer, 1)
				start := time.Now()
				go func() {
					r := srv.do(http.MethodGet, query, nil)
					done <- answer{r, time.Since(start), time.Now()}
				}()
				time.Sleep(100 * time.Millisecond) // the search is running
				rs := time.Now()
				read := srv.do(http.MethodGet, "/Patient/p7", nil)
				readTook, readAt := time.Since(rs), time.Now()
				a := <-done
				if read.status != http.StatusOK {
					t.Errorf("read during the slow search: %d %.200s", read.status, read.body)
				}
				if readTook > 500*time.Millisecond || !readAt.Before(a.at) {
					t.Errorf("read took %s during the slow search (answered before it: %v), want at once", readTook, readAt.Before(a.at))
				}
				wantTooCostly(t, a.r)
				if a.took > limit+margin {
					t.Errorf("the slow search was answered after %s, want within %s + %s", a.took, limit, margin)
				}
				t.Logf("slow search answered %d after %s; read during it %s", a.r.status, a.took.Round(time.Millisecond), readTook.Round(time.Millisecond))
				if ds.app != "" {
					if running := runningBackends(t, ds.app, time.Second); len(running) > 0 {
						t.Errorf("1 s after the answer, PostgreSQL still runs: %q", running)
					}
				}
			})

			t.Run("batch", func(t *testing.T) {
				bundle := `{"resourceType":"Bundle","type":"batch","entry":[
					{"resource":{"resourceType":"Patient","id":"batch1"},"request":{"method":"PUT","url":"Patient/batch1"}},
					{"request":{"method":"GET","url":"` + strings.TrimPrefix(query, "/") + `"}},
					{"request":{"method":"GET","url":"Patient/p1"}}]}`
				start := time.Now()
				r := srv.do(http.MethodPost, "/", []byte(bundle))
				took := time.Since(start)
				if r.status != http.StatusOK {
					t.Fatalf("batch: %d %.300s", r.status, r.body)
				}
				var b struct {
					Entry []struct {
						Response struct {
							Status  string          `json:"status"`
							Outcome json.RawMessage `json:"outcome"`
						} `json:"response"`
					} `json:"entry"`
				}
				if err := json.Unmarshal(r.body, &b); err != nil || len(b.Entry) != 3 {
					t.Fatalf("batch-response: %v %.300s", err, r.body)
				}
				// The write was done before the limit and says so; the
				// slow GET and the one after it were cut off.
				want := []string{"201", "403", "403"}
				for i, e := range b.Entry {
					if !strings.HasPrefix(e.Response.Status, want[i]) {
						t.Errorf("entry %d: %s %s, want %s", i, e.Response.Status, e.Response.Outcome, want[i])
					}
					if want[i] == "403" && !strings.Contains(string(e.Response.Outcome), "too-costly") {
						t.Errorf("entry %d outcome %s, want too-costly", i, e.Response.Outcome)
					}
				}
				if took > limit+margin {
					t.Errorf("batch answered after %s, want within %s + %s", took, limit, margin)
				}
				if r := srv.do(http.MethodGet, "/Patient/batch1", nil); r.status != http.StatusOK {
					t.Errorf("the batch's write: %d", r.status)
				}
			})

			t.Run("client disconnect", func(t *testing.T) {
				// The server allows 30 s; the client gives up after 300 ms.
				path := strings.SplitN(query, "?", 2)[0]
				ctx, cancel := context.WithTimeout(context.Background(), limit)
				defer cancel()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, slow.URL+query, nil)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
					t.Fatalf("the slow search answered %d before the client gave up", resp.StatusCode)
				}
				// The handler stopped: its request was cancelled (499) and
				// logged, long before the search would have finished.
				line, ok := logs.waitFor(limit+margin, func(m map[string]any) bool {
					return m["msg"] == "request" && m["path"] == path && m["status"] == float64(499)
				})
				if !ok {
					t.Fatalf("%s after the client went away, the server has not finished the request", time.Since(start))
				}
				t.Logf("server finished the abandoned request (status 499) in %s", time.Duration(line["duration"].(float64)).Round(time.Millisecond))
				if ds.app != "" {
					if running := runningBackends(t, ds.app, time.Second); len(running) > 0 {
						t.Errorf("1 s after the client went away, PostgreSQL still runs: %q", running)
					}
				}
			})
		})
	}
}

// TestStatementTimeoutAnswer: a query that PostgreSQL's own
// statement_timeout stops (shorter here than the request's limit) is the
// same too-costly answer, not a 500.
func TestStatementTimeoutAnswer(t *testing.T) {
	for _, ds := range deadlineStores(t, "&statement_timeout=300") {
		if ds.name != "postgres" {
			continue
		}
		srv := newDeadlineServer(t, ds.st, 0, nil)
		seedDeadlineData(t, srv)
		start := time.Now()
		r := srv.do(http.MethodGet, slowSearches["postgres"], nil)
		wantTooCostly(t, r)
		if took := time.Since(start); took > 300*time.Millisecond+1500*time.Millisecond {
			t.Errorf("answered after %s", took)
		}
	}
}
