package server_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir/server"
)

// What the server itself bounds, in the process (the same limits against
// `kapbridge serve` are cmd/kapbridge TestAbuseTable and TestServeInputEdges).

// stall opens a connection to srv and sends a request whose body stops
// halfway: the server admits it and then waits for the rest, holding its
// place among max-in-flight and its Content-Length of the body budget
// until the returned function closes the connection.
func stall(t *testing.T, srv *testServer, contentLength int) func() {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: %d\r\n\r\n{\"resourceType\":", contentLength)
	return func() { conn.Close() }
}

// busyAnswer retries req until it is answered 503 (the stalled request
// may not be admitted yet when the first try arrives) and returns it.
func busyAnswer(t *testing.T, srv *testServer, method, path string, body []byte) response {
	t.Helper()
	var r response
	for i := 0; i < 20; i++ {
		if r = srv.do(method, path, body); r.status == http.StatusServiceUnavailable {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s %s: never 503 while the server was full; last %d %s", method, path, r.status, r.body)
	return r
}

// TestAdmission: with every place among max-in-flight taken, or the body
// budget taken by a body being read, a request waits queue-wait and is
// answered 503 with Retry-After and an OperationOutcome naming the limit;
// once the place is free, requests are served again. A body declared
// larger than max-body-bytes is refused before it is read.
func TestAdmission(t *testing.T) {
	st := newCountingStore(t)
	patient := []byte(`{"resourceType":"Patient","gender":"other"}`)

	t.Run("in flight", func(t *testing.T) {
		srv := newLimitedServer(t, st, server.Limits{MaxInFlight: 1, QueueWait: 100 * time.Millisecond})
		release := stall(t, srv, 1000)
		r := busyAnswer(t, srv, "GET", "/metadata", nil)
		issues := assertOutcome(t, r, http.StatusServiceUnavailable)
		if d := diagnostics(issues); !strings.Contains(d, "max-in-flight = 1") || r.header.Get("Retry-After") == "" {
			t.Errorf("503 without the limit or Retry-After (%q): %s", r.header.Get("Retry-After"), d)
		}
		release()
		waitFor(t, func() bool { return srv.do("GET", "/metadata", nil).status == 200 })
	})

	t.Run("body budget", func(t *testing.T) {
		srv := newLimitedServer(t, st, server.Limits{MaxBodyBytes: 1 << 10, BodyBudgetBytes: 1 << 10, QueueWait: 100 * time.Millisecond})
		release := stall(t, srv, 1<<10)
		r := busyAnswer(t, srv, "POST", "/Patient", patient)
		issues := assertOutcome(t, r, http.StatusServiceUnavailable)
		if d := diagnostics(issues); !strings.Contains(d, "body-budget-bytes = 1024") || r.header.Get("Retry-After") == "" {
			t.Errorf("503 without the limit or Retry-After: %s", d)
		}
		// Requests without a body still get in.
		if r := srv.do("GET", "/metadata", nil); r.status != 200 {
			t.Errorf("GET while the body budget is taken: %d", r.status)
		}
		release()
		waitFor(t, func() bool { return srv.do("POST", "/Patient", patient).status == 201 })
	})

	t.Run("declared too large", func(t *testing.T) {
		srv := newLimitedServer(t, st, server.Limits{MaxBodyBytes: 1 << 10})
		before := st.committed.Load()
		r := srv.do("POST", "/Patient", []byte(`{"resourceType":"Patient","text":{"status":"generated","div":"<div>`+strings.Repeat("x", 2<<10)+`</div>"}}`))
		issues := assertOutcome(t, r, http.StatusRequestEntityTooLarge)
		if d := diagnostics(issues); !strings.Contains(d, "max-body-bytes = 1024") {
			t.Errorf("413 does not name the limit: %s", d)
		}
		if st.committed.Load() != before {
			t.Errorf("stored")
		}
	})
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the server did not recover")
}

// TestRequestEdges: the charset of a body, paths the router would have to
// guess at, Bundles over max-bundle-entries and OperationOutcomes over
// max-issues, each a 4xx OperationOutcome naming the problem, with nothing
// stored.
func TestRequestEdges(t *testing.T) {
	st := newCountingStore(t)
	srv := newLimitedServer(t, st, server.Limits{MaxBundleEntries: 3, MaxIssues: 10})
	patient := `{"resourceType":"Patient","gender":"other"}`
	get := `{"request":{"method":"GET","url":"Patient"}}`
	post := `{"resource":` + patient + `,"request":{"method":"POST","url":"Patient"}}`
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		want                     string
	}{
		{"charset latin1", "POST", "/Patient", patient, []string{"Content-Type", "application/fhir+json; charset=ISO-8859-1"}, 415, "ISO-8859-1"},
		{"charset utf8 spelled without the dash", "POST", "/Patient", patient, []string{"Content-Type", "application/json; charset=utf8"}, 415, `charset \"utf8\"`},
		{"charset of a search form", "POST", "/Patient/_search", "name=x", []string{"Content-Type", "application/x-www-form-urlencoded; charset=windows-1252"}, 415, "windows-1252"},
		{"dot-dot segment", "GET", "/Patient/../metadata", "", nil, 404, `\"..\" segment`},
		{"dot segment", "GET", "/Patient/./p1", "", nil, 404, `\".\" or`},
		{"empty segment", "GET", "//metadata", "", nil, 404, "empty"},
		{"trailing slash", "PUT", "/Patient/p1/", `{"resourceType":"Patient","id":"p1"}`, nil, 404, "empty"},
		{"batch over max-bundle-entries", "POST", "/", string(bundleOf("batch", get, get, get, get)), nil, 413, "max-bundle-entries = 3"},
		{"transaction over max-bundle-entries", "POST", "/", string(bundleOf("transaction", post, post, post, post)), nil, 413, "max-bundle-entries = 3"},
		{"issues over max-issues", "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"identifier":[` + strings.TrimSuffix(strings.Repeat("{},", 50), ",") + `]}`, nil, 400, "41 more issues"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/fhir+json")
			for i := 0; i+1 < len(tc.headers); i += 2 {
				req.Header.Set(tc.headers[i], tc.headers[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := response{resp.StatusCode, resp.Header, body}
			issues := assertOutcome(t, r, tc.status)
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("%q not in %s", tc.want, body)
			}
			if tc.name == "issues over max-issues" && len(issues) != 10 {
				t.Errorf("%d issues listed, want 10", len(issues))
			}
		})
	}
	if n := st.committed.Load(); n != 0 {
		t.Errorf("%d versions stored by refused requests", n)
	}
	// The default bundle limit: 2,001 GET entries are refused before any
	// runs (100,000 once took 155 s and 2.5 GB).
	def := newTestServer(t, st)
	r := def.do("POST", "/", bundleOf("batch", strings.TrimSuffix(strings.Repeat(get+",", 2001), ",")))
	if issues := assertOutcome(t, r, 413); !strings.Contains(diagnostics(issues), "max-bundle-entries = 2000") {
		t.Errorf("default bundle limit: %s", diagnostics(issues))
	}
}
