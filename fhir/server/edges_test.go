package server_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// newLimitedServer is newTestServer with limits.
func newLimitedServer(t *testing.T, st fhir.Store, lim server.Limits) *testServer {
	var h http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	h = server.New(server.Config{Store: st, BaseURL: ts.URL, Logger: slog.New(slog.DiscardHandler), Limits: lim})
	return &testServer{ts, t}
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

// TestNULAnswersAlikeOnBothStores sends U+0000 everywhere a client can put
// it: in a resource (value, member name), a search (GET, POST _search), a
// conditional create, a conditional update, a Bundle entry (request.url,
// ifNoneExist, a conditional reference) and the path. Each is a 4xx
// OperationOutcome naming U+0000, nothing is stored, and the answers are
// the same on SQLite and PostgreSQL (before: 201 on SQLite, 500 on
// PostgreSQL for the resource; 500 on PostgreSQL for the criteria).
func TestNULAnswersAlikeOnBothStores(t *testing.T) {
	patient := `{"resourceType":"Patient","identifier":[{"system":"urn:x","value":"1"}]}`
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		want                     string // in the diagnostics or expressions
	}{
		{"resource value", "POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}`, nil, 400, "Patient.name[0].family"},
		{"resource member name", "POST", "/Patient", `{"resourceType":"Patient","name":[{"fam\u0000ily":"x"}]}`, nil, 400, "U+0000"},
		{"update", "PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"text":"\u0000"}]}`, nil, 400, "Patient.name[0].text"},
		{"search value", "GET", "/Patient?name=a%00b", "", nil, 400, "U+0000"},
		{"search name", "GET", "/Patient?na%00me=x", "", nil, 400, "U+0000"},
		{"search identifier", "GET", "/Patient?identifier=urn:x|1%00", "", nil, 400, "U+0000"},
		{"POST _search form", "POST", "/Patient/_search", "name=a%00b", []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, "U+0000"},
		{"If-None-Exist identifier", "POST", "/Patient", patient, []string{"If-None-Exist", "identifier=urn:x|a%00b"}, 400, "U+0000"},
		{"If-None-Exist search", "POST", "/Patient", patient, []string{"If-None-Exist", "name=a%00b"}, 400, "U+0000"},
		{"conditional update identifier", "PUT", "/Patient?identifier=urn:x|a%00b", patient, nil, 400, "U+0000"},
		{"conditional update search", "PUT", "/Patient?family=a%00b", patient, nil, 400, "U+0000"},
		{"path id", "GET", "/Patient/a%00b", "", nil, 400, "U+0000"},
		{"path type", "GET", "/Pat%00ient", "", nil, 400, "U+0000"},
		{"compartment", "GET", "/Patient/a%00b/Observation", "", nil, 400, "U+0000"},
		{"transaction: request.url escaped", "POST", "/", string(bundleOf("transaction",
			`{"resource":`+patient+`,"request":{"method":"PUT","url":"Patient?identifier=urn:x|a%00b"}}`)), nil, 400, "U+0000"},
		{"transaction: request.url raw", "POST", "/", string(bundleOf("transaction",
			`{"resource":`+patient+`,"request":{"method":"PUT","url":"Patient?identifier=urn:x|a\u0000b"}}`)), nil, 400, "Bundle.entry[0].request.url"},
		{"transaction: ifNoneExist escaped", "POST", "/", string(bundleOf("transaction",
			`{"resource":`+patient+`,"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:x|%00"}}`)), nil, 400, "U+0000"},
		{"transaction: ifNoneExist raw", "POST", "/", string(bundleOf("transaction",
			`{"resource":`+patient+`,"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:x|\u0000"}}`)), nil, 400, "Bundle.entry[0].request.ifNoneExist"},
		{"transaction: conditional reference", "POST", "/", string(bundleOf("transaction",
			`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:x|%00"}},"request":{"method":"POST","url":"Observation"}}`)), nil, 400, "U+0000"},
		{"transaction: resource", "POST", "/", string(bundleOf("transaction",
			`{"resource":{"resourceType":"Patient","name":[{"family":"\u0000"}]},"request":{"method":"POST","url":"Patient"}}`)), nil, 400, "Bundle.entry[0].resource.name[0].family"},
	}
	answers := map[string][]string{}
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			st, dump := be.openDumped(t)
			srv := newTestServer(t, st)
			before := dump(t)
			for _, tc := range cases {
				var body []byte
				if tc.body != "" {
					body = []byte(tc.body)
				}
				r := srv.do(tc.method, tc.path, body, tc.headers...)
				issues := assertOutcome(t, r, tc.status)
				if d := diagnostics(issues); !strings.Contains(d, tc.want) {
					t.Errorf("%s: %q not in %s", tc.name, tc.want, d)
				}
				answers[tc.name] = append(answers[tc.name], fmt.Sprintf("%d %s", r.status, strings.ReplaceAll(string(r.body), srv.URL, "BASE")))
			}
			// A batch answers each entry on its own: the NUL entries fail,
			// with the same outcomes, inside a 200.
			r := srv.do("POST", "/", bundleOf("batch",
				`{"request":{"method":"GET","url":"Patient?name=a%00b"}}`,
				`{"resource":`+patient+`,"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:x|%00"}}`,
				`{"resource":{"resourceType":"Patient","name":[{"family":"\u0000"}]},"request":{"method":"POST","url":"Patient"}}`))
			if r.status != 200 || strings.Count(string(r.body), `"status":"400 Bad Request"`) != 3 || strings.Count(string(r.body), "U+0000") < 3 {
				t.Errorf("batch: %d %s", r.status, r.body)
			}
			if after := dump(t); after != before {
				t.Errorf("the store changed: a refused write was stored")
			}
			// $validate answers 200 with the issue, as the operation says.
			r = srv.do("POST", "/Patient/$validate", []byte(`{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}`))
			if r.status != 200 || !strings.Contains(string(r.body), "U+0000") {
				t.Errorf("$validate: %d %s", r.status, r.body)
			}
		})
	}
	for name, as := range answers {
		if len(as) == 2 && as[0] != as[1] {
			t.Errorf("%s: the stores answer differently:\nsqlite:   %s\npostgres: %s", name, as[0], as[1])
		}
	}
}

// TestSearchLimitsOverHTTP: the largest search the default limits allow
// runs on both stores (its SQL within SQLite's expression depth, quickly
// on PostgreSQL), paging included; one past each limit is a 400 naming
// it. Before the limits, 500 OR-ed values, 1,000 criteria or 1,000 sort
// keys were a 500 on SQLite, and 1,000 sort keys on PostgreSQL.
func TestSearchLimitsOverHTTP(t *testing.T) {
	d := search.DefaultLimits
	list := func(n int, format string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(format, i)
		}
		return strings.Join(parts, ",")
	}
	var worst []string
	// max-search-params criteria: max-search-chains of them chained or
	// _has, the values spread to max-search-total-values with one
	// criterion at max-search-values.
	worst = append(worst, "name="+list(d.MaxValues, "n%d"))
	left := d.MaxTotalValues - d.MaxValues
	for i := 0; i < d.MaxChains; i++ {
		worst = append(worst, "_has:Observation:patient:code="+list(10, "http://loinc.org|%d-1"))
		left -= 10
	}
	// The rest string criteria, the kind the PostgreSQL planner is
	// slowest with, each holding a value every patient matches.
	for i := len(worst); i < d.MaxParams; i++ {
		n := left / (d.MaxParams - i)
		if i%2 == 0 {
			worst = append(worst, "family=n,"+list(n-1, "f%d"))
		} else {
			worst = append(worst, "given=g,"+list(n-1, "g%d"))
		}
		left -= n
	}
	sortKeys := "birthdate,-family,given,gender,-address-city,identifier,-general-practitioner,_id"
	worst = append(worst, "_sort="+sortKeys, "_count=1")
	var incs []string
	for _, s := range []string{"Provenance:target", "Observation:subject", "Observation:patient", "Encounter:subject", "Encounter:patient",
		"Condition:subject", "Condition:patient", "AllergyIntolerance:patient", "Immunization:patient", "CarePlan:subject", "CarePlan:patient",
		"Procedure:patient", "MedicationRequest:patient", "DiagnosticReport:patient", "Goal:patient", "Flag:patient"} {
		incs = append(incs, "_revinclude="+url.QueryEscape(s))
	}
	worst = append(worst, incs...)
	worstQuery := strings.Join(worst, "&")

	over := map[string]string{
		"max-search-values":       "name=" + list(500, "a%d"),
		"max-search-params":       strings.Repeat("name=a&", 1000) + "name=a",
		"max-sort-keys":           "_sort=" + strings.Repeat("birthdate,", 999) + "birthdate",
		"max-search-total-values": strings.Repeat("name="+list(100, "a%d")+"&", 3) + "family=x",
		"max-includes":            strings.Join(incs, "&") + "&_include=Patient:organization",
		"max-search-chains":       strings.Repeat("_has:Observation:patient:code=1&", 5) + "name=x",
	}
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			srv := newTestServer(t, be.open(t))
			for i := 0; i < 3; i++ {
				p := fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":"n%d","given":["g"]}],"birthDate":"19%02d-06-01","gender":"female"}`, i, 50+i)
				if r := srv.do("POST", "/Patient", []byte(p)); r.status != 201 {
					t.Fatalf("create: %d %s", r.status, r.body)
				}
			}
			// The worst case matches nothing (the _has criteria find no
			// Observation); without them, the same shape matches, and its
			// pages are walked.
			start := time.Now()
			r := srv.do("GET", "/Patient?"+worstQuery, nil)
			if r.status != 200 {
				t.Fatalf("the largest allowed search: %d %.600s", r.status, r.body)
			}
			t.Logf("largest allowed search (%d bytes of query): %v", len(worstQuery), time.Since(start))
			var noHas []string
			for _, p := range worst {
				if !strings.HasPrefix(p, "_has:") {
					noHas = append(noHas, p)
				}
			}
			next := "/Patient?" + strings.Join(noHas, "&")
			pages := 0
			for next != "" && pages < 10 {
				r := srv.do("GET", strings.TrimPrefix(next, srv.URL), nil)
				if r.status != 200 {
					t.Fatalf("page %d: %d %.600s", pages, r.status, r.body)
				}
				pages++
				next = ""
				b := decode(t, r.body)
				links, _ := b["link"].([]any)
				for _, l := range links {
					if m := l.(map[string]any); m["relation"] == "next" {
						next = m["url"].(string)
					}
				}
			}
			if pages != 3 {
				t.Errorf("walked %d pages of one match each, want 3", pages)
			}
			// Composite values nest deepest in SQL: max-search-values of
			// them, beside a chained criterion of as many, sorted by
			// max-sort-keys and paged.
			for i := 1; i <= 3; i++ {
				o := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-01-0%d",`+
					`"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":150,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`, i)
				if r := srv.do("POST", "/Observation", []byte(o)); r.status != 201 {
					t.Fatalf("create: %d %s", r.status, r.body)
				}
			}
			if r := srv.do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"a0"}]}`)); r.status != 201 {
				t.Fatalf("create p1: %d %s", r.status, r.body)
			}
			comp := list(d.MaxValues, "http://loinc.org|8480-6$ge%d|http://unitsofmeasure.org|mm[Hg]")
			next = "/Observation?component-code-value-quantity=" + url.QueryEscape(comp) + "&subject:Patient.name=" + list(d.MaxValues, "a%d") +
				"&_sort=date,-code,status,subject,-value-quantity,category,performer,_id&_count=1"
			for pages = 0; next != "" && pages < 10; pages++ {
				r := srv.do("GET", strings.TrimPrefix(next, srv.URL), nil)
				if r.status != 200 {
					t.Fatalf("composite page %d: %d %.600s", pages, r.status, r.body)
				}
				next = ""
				links, _ := decode(t, r.body)["link"].([]any)
				for _, l := range links {
					if m := l.(map[string]any); m["relation"] == "next" {
						next = m["url"].(string)
					}
				}
			}
			if pages != 3 {
				t.Errorf("walked %d composite pages, want 3", pages)
			}
			for limit, q := range over {
				r := srv.do("GET", "/Patient?"+q, nil)
				issues := assertOutcome(t, r, 400)
				if d := diagnostics(issues); !strings.Contains(d, limit+" = ") || !strings.Contains(d, "-"+limit) {
					t.Errorf("%s: the 400 does not name the limit: %s", limit, d)
				}
			}
		})
	}
}

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
	st := &countingStore{Store: backends(t)[0].open(t)}
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
	st := &countingStore{Store: backends(t)[0].open(t)}
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
