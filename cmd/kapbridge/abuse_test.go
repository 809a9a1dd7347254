package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
)

// abuseBound is how long any row of TestAbuseTable may take to be
// answered: parse-time refusals take milliseconds, and nothing in the
// table may run longer than the request time limit the gateway runs with
// here (abuseTimeout) plus a margin for a loaded 2-core CI machine.
const (
	abuseTimeout = 3 * time.Second
	abuseBound   = abuseTimeout + 4*time.Second
	// abuseRSSGrowth bounds how much the process's peak resident memory
	// may grow over the whole table (before the limits, one row alone took
	// 1.1 GB and four at once 4.7 GB).
	abuseRSSGrowth = 600 << 20
)

// TestAbuseTable replays each abuse of the hardening issue against the
// real program (`kapbridge serve` with its default limits and a 3 s
// request time limit) on SQLite, and on PostgreSQL when
// KAPBRIDGE_TEST_POSTGRES_DSN is set: every row is refused with a 4xx
// OperationOutcome (or, for the repeated _include, answered normally since
// identical includes are merged) within abuseBound, while a normal client
// keeps reading without an error; the process's peak memory grows by less
// than abuseRSSGrowth; and afterwards no PostgreSQL backend of the gateway
// is still working.
func TestAbuseTable(t *testing.T) {
	stores := map[string]string{"sqlite": filepath.Join(t.TempDir(), "kap.db")}
	app := ""
	if dsn := sqltest.PostgresDSN(t); dsn != "" {
		app = fmt.Sprintf("kbabuse_%d", time.Now().UnixNano())
		stores["postgres"] = sqltest.FreshSchema(t, dsn) + "&application_name=" + app
	} else {
		t.Log("KAPBRIDGE_TEST_POSTGRES_DSN not set: the PostgreSQL half is skipped (.ci/run sets it)")
	}
	for _, name := range []string{"sqlite", "postgres"} {
		store, ok := stores[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			base := startServe(t, store, []string{"-request-timeout", abuseTimeout.String()}, nil)
			addr := strings.TrimPrefix(base, "http://")
			g := &gatewayProc{base: base}
			seedPatients(t, g, 50)

			// The normal client: reads, one after another, all the while.
			stop := make(chan struct{})
			var reads, readFailures atomic.Int64
			var slowest atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now()
					resp, err := http.Get(fmt.Sprintf("%s/Patient/abuse-%d", base, i%50))
					if err != nil || resp.StatusCode != http.StatusOK {
						readFailures.Add(1)
					}
					if resp != nil {
						resp.Body.Close()
					}
					reads.Add(1)
					if d := int64(time.Since(start)); d > slowest.Load() {
						slowest.Store(d)
					}
					time.Sleep(20 * time.Millisecond)
				}
			})

			rssBefore := peakRSS(t)
			for _, row := range abuseRows() {
				start := time.Now()
				var status int
				var body []byte
				if row.raw != "" {
					status, _, body = edgeRequest(t, addr, edgeCase{raw: row.raw})
				} else if row.parallel > 1 {
					var mu sync.Mutex
					var inner sync.WaitGroup
					for range row.parallel {
						inner.Go(func() {
							a := g.do(t, row.method, row.path, row.headers, row.body)
							mu.Lock()
							defer mu.Unlock()
							if status == 0 || a.status >= 500 {
								status, body = a.status, a.body
							}
						})
					}
					inner.Wait()
				} else {
					a := g.do(t, row.method, row.path, row.headers, row.body)
					status, body = a.status, a.body
				}
				took := time.Since(start)
				t.Logf("%-40s %d in %v", row.name, status, took.Round(time.Millisecond))
				switch {
				case row.ok && status != http.StatusOK:
					t.Errorf("%s: %d %.300s; want 200", row.name, status, body)
				case !row.ok && (status < 400 || status >= 500):
					t.Errorf("%s: %d %.300s; want a 4xx", row.name, status, body)
				case !row.ok && !bytes.Contains(body, []byte(`"resourceType":"OperationOutcome"`)):
					t.Errorf("%s: %d is not an OperationOutcome: %.300s", row.name, status, body)
				case !row.ok && !bytes.Contains(body, []byte(row.want)):
					t.Errorf("%s: the answer does not name %q: %.300s", row.name, row.want, body)
				}
				if took > abuseBound {
					t.Errorf("%s: answered after %v; the bound is %v", row.name, took, abuseBound)
				}
				if len(body) > 64<<10 {
					t.Errorf("%s: a %d-byte answer", row.name, len(body))
				}
			}
			close(stop)
			wg.Wait()
			growth := peakRSS(t) - rssBefore
			t.Logf("peak RSS grew by %d MB over the table (bound %d MB)", growth>>20, abuseRSSGrowth>>20)
			if growth > abuseRSSGrowth {
				t.Errorf("peak RSS grew by %d MB over the table; the bound is %d MB", growth>>20, abuseRSSGrowth>>20)
			}
			if readFailures.Load() > 0 || reads.Load() == 0 {
				t.Errorf("the normal client: %d of %d reads failed", readFailures.Load(), reads.Load())
			}
			if s := time.Duration(slowest.Load()); s > abuseBound {
				t.Errorf("the normal client waited %v for one read", s)
			}
			t.Logf("normal client: %d reads, slowest %v", reads.Load(), time.Duration(slowest.Load()).Round(time.Millisecond))
			if name == "postgres" {
				checkNoBusyBackends(t, sqltest.PostgresDSN(t), app)
			}
		})
	}
}

type abuseRow struct {
	name               string
	raw                string // a whole request on a new connection
	method, path, body string
	headers            map[string]string
	parallel           int    // sent this many times at once
	ok                 bool   // answered normally (200)
	want               string // in the refusal
}

// abuseRows are the rows of the hardening issue, at the sizes it found.
func abuseRows() []abuseRow {
	join := func(n int, f func(i int) string, sep string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, sep)
	}
	names := func(n int) string { return join(n, func(i int) string { return "name=a" + strconv.Itoa(i) }, "&") }
	array := func(n int, elem string) string { return strings.TrimSuffix(strings.Repeat(elem+",", n), ",") }
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"note":[` + array(1_000_000, `{"text":"abcd"}`) + `]}`
	return []abuseRow{
		{name: "100 AND-ed name=", method: "GET", path: "/Patient?" + names(100), want: "max-search-params"},
		{name: "1,000 AND-ed name=", method: "GET", path: "/Patient?" + names(1000), want: "max-search-params"},
		{name: "1,000 _has", method: "GET", path: "/Patient?" + join(1000, func(i int) string { return "_has:Observation:patient:code=c" + strconv.Itoa(i) }, "&"), want: "max-search"},
		{name: "_include repeated 10 times", method: "GET", path: "/Observation?" + join(10, func(int) string { return "_include=Observation:subject" }, "&"), ok: true},
		{name: "500 OR-ed values", method: "GET", path: "/Patient?name=" + join(500, func(i int) string { return "a" + strconv.Itoa(i) }, ","), want: "max-search-values"},
		{name: "1,000 _sort keys", method: "GET", path: "/Patient?_sort=" + join(1000, func(int) string { return "name" }, ","), want: "max-sort-keys"},
		{name: "batch of 100k GET entries", method: "POST", path: "/", body: `{"resourceType":"Bundle","type":"batch","entry":[` + array(100_000, `{"request":{"method":"GET","url":"Patient"}}`) + `]}`, want: "max-"},
		{name: "13 MB Observation, 1M-element array", method: "POST", path: "/Observation", body: obs, want: "max-array-elements"},
		{name: "the same, four at once", method: "POST", path: "/Observation", body: obs, parallel: 4, want: "max-"},
		{name: "1M empty identifiers", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","identifier":[` + array(1_000_000, `{}`) + `]}`, want: "max-array-elements"},
		{name: "10k empty identifiers", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","identifier":[` + array(9_000, `{}`) + `]}`, want: "more issues"},
		{name: "NUL in a search value", method: "GET", path: "/Patient?name=a%00b", want: "U+0000"},
		{name: "NUL in If-None-Exist", method: "POST", path: "/Patient", body: `{"resourceType":"Patient"}`, headers: map[string]string{"If-None-Exist": "identifier=urn:x|a%00b"}, want: "U+0000"},
		{name: "NUL in a string value", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}`, want: "U+0000"},
		{name: "2 MB URL", raw: "GET /Patient?name=" + strings.Repeat("a", 2<<20) + " HTTP/1.1\r\nHost: x\r\n\r\n", want: "max-header-bytes"},
		{name: "control character in a header", raw: "GET /metadata HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n", want: "control character"},
		{name: "dot-dot in the path", raw: "GET /Patient/../metadata HTTP/1.1\r\nHost: x\r\n\r\n", want: "/Patient/../metadata"},
	}
}

// seedPatients creates Patient/abuse-0 .. abuse-(n-1) in one transaction.
func seedPatients(t *testing.T, g *gatewayProc, n int) {
	t.Helper()
	entries := make([]string, n)
	for i := range entries {
		entries[i] = fmt.Sprintf(`{"resource":{"resourceType":"Patient","id":"abuse-%d","name":[{"family":"Abuse%d"}]},"request":{"method":"PUT","url":"Patient/abuse-%d"}}`, i, i, i)
	}
	a := g.do(t, http.MethodPost, "/", nil, `{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`)
	if a.status != http.StatusOK {
		t.Fatalf("seed: %d %.300s", a.status, a.body)
	}
}

// peakRSS is the process's peak resident set size (VmHWM) in bytes.
func peakRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status to read peak memory from: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// checkNoBusyBackends fails if a PostgreSQL backend of application app
// is still running a statement a moment after the table ended.
func checkNoBusyBackends(t *testing.T, dsn, app string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var busy []string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rows, err := conn.Query(ctx, `SELECT state || ': ' || left(query, 120) FROM pg_stat_activity
			WHERE application_name = $1 AND state NOT IN ('idle') AND pid <> pg_backend_pid()`, app)
		if err != nil {
			t.Fatal(err)
		}
		busy, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(busy) == 0 {
			return
		}
	}
	t.Errorf("PostgreSQL backends still working after the table: %q", busy)
}
