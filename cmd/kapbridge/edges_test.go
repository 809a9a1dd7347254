package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
)

// edgeLimits are the serve flags TestServeInputEdges runs with: every
// limit small, so each row can cross one with a small request, and the
// flags (and one environment variable, KAPBRIDGE_MAX_ISSUES) are shown to
// reach the API.
var edgeLimits = []string{
	"-max-body-bytes", "4096", "-body-budget-bytes", "4096", "-max-in-flight", "2", "-queue-wait", "200ms",
	"-max-bundle-entries", "2", "-max-array-elements", "5", "-max-nodes", "40",
	"-max-search-params", "4", "-max-search-values", "3", "-max-search-total-values", "5",
	"-max-sort-keys", "2", "-max-includes", "2", "-max-search-chains", "1",
	"-max-string-bytes", "64", "-max-total-string-bytes", "500",
}

// edgeCase is one request at the edge of the input the API accepts.
type edgeCase struct {
	name string
	// raw is a whole HTTP request written on a new connection, for the
	// ones no HTTP client would send; else method, path, body, headers.
	raw                string
	method, path, body string
	headers            []string
	// stall opens this many requests whose bodies of the given length
	// stop halfway, held while the row runs.
	stall, stallLength int

	status int
	want   []string // in the body
	write  bool     // a refused write: nothing may be stored
	// nul rows must be answered the same, byte for byte, on both stores.
	nul bool
	// practice rows are answered by the practice API (its own JSON).
	practice bool
}

func edgeCases() []edgeCase {
	patient := `{"resourceType":"Patient","identifier":[{"system":"urn:x","value":"1"}]}`
	tx := func(kind string, entries ...string) string {
		return `{"resourceType":"Bundle","type":"` + kind + `","entry":[` + strings.Join(entries, ",") + `]}`
	}
	get := `{"request":{"method":"GET","url":"Patient"}}`
	return []edgeCase{
		// 1. What net/http or routing answered outside the handlers.
		{name: "2 MB URL", raw: "GET /Patient?name=" + strings.Repeat("a", 2<<20) + " HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 431, want: []string{"max-header-bytes = 65536", "KAPBRIDGE_MAX_HEADER_BYTES"}},
		{name: "control character in a header", raw: "GET /metadata HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n",
			status: 400, want: []string{"control character"}},
		{name: "dot-dot path", raw: "GET /Patient/../metadata HTTP/1.1\r\nHost: x\r\n\r\n", status: 404, want: []string{"/Patient/../metadata"}},
		{name: "dot path", raw: "GET /./metadata HTTP/1.1\r\nHost: x\r\n\r\n", status: 404, want: []string{"/./metadata"}},
		{name: "empty segment", raw: "GET //metadata HTTP/1.1\r\nHost: x\r\n\r\n", status: 404, want: []string{"//metadata"}},
		{name: "dot-dot out of the practice API", raw: "GET /practice/../metadata HTTP/1.1\r\nHost: x\r\n\r\n", status: 404, want: []string{"/practice/../metadata"}},
		{name: "dot-dot inside the practice API", raw: "GET /practice/v1/../v1/schema HTTP/1.1\r\nHost: x\r\n\r\n", status: 404, want: []string{"segment"}},
		{name: "charset latin1", method: "POST", path: "/Patient", body: patient, headers: []string{"Content-Type", "application/fhir+json; charset=latin1"},
			status: 415, want: []string{`charset \"latin1\"`}, write: true},

		// 2. U+0000.
		{name: "NUL in a resource", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}`,
			status: 400, want: []string{"U+0000", "Patient.name[0].family"}, write: true, nul: true},
		{name: "NUL in a search", method: "GET", path: "/Patient?name=a%00b", status: 400, want: []string{"U+0000", `\"name\"`}, nul: true},
		{name: "NUL in If-None-Exist", method: "POST", path: "/Patient", body: patient, headers: []string{"If-None-Exist", "identifier=urn:x|a%00b"},
			status: 400, want: []string{"U+0000"}, write: true, nul: true},
		{name: "NUL in a conditional update", method: "PUT", path: "/Patient?identifier=urn:x|a%00b", body: patient,
			status: 400, want: []string{"U+0000"}, write: true, nul: true},
		{name: "NUL in a Bundle request.url", method: "POST", path: "/", body: tx("transaction", `{"resource":`+patient+`,"request":{"method":"PUT","url":"Patient?identifier=urn:x|%00"}}`),
			status: 400, want: []string{"U+0000", "Bundle.entry[0]"}, write: true, nul: true},
		{name: "NUL in a Bundle ifNoneExist", method: "POST", path: "/", body: tx("transaction", `{"resource":`+patient+`,"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:x|\u0000"}}`),
			status: 400, want: []string{"U+0000", "Bundle.entry[0].request.ifNoneExist"}, write: true, nul: true},
		{name: "NUL in a practice record", method: "POST", path: "/practice/v1/records", headers: []string{"Content-Type", "application/json"},
			body:   `{"kind":"note","id":"nul-note","session":"s1","author":"a1","date":"2026-01-01","text":"a\u0000b"}`,
			status: 207, want: []string{`"status":"rejected"`, `"field":"text"`, "U+0000"}, nul: true, practice: true},

		// 3. Limits, each set small by a flag.
		{name: "max-search-params", method: "GET", path: "/Patient?name=a&family=b&given=c&gender=male&birthdate=2000", status: 400, want: []string{"max-search-params = 4", "-max-search-params"}},
		{name: "max-search-values", method: "GET", path: "/Patient?name=a,b,c,d", status: 400, want: []string{"max-search-values = 3"}},
		{name: "max-search-total-values", method: "GET", path: "/Patient?name=a,b,c&family=d,e,f", status: 400, want: []string{"max-search-total-values = 5"}},
		{name: "max-sort-keys", method: "GET", path: "/Patient?_sort=name,birthdate,gender", status: 400, want: []string{"max-sort-keys = 2"}},
		{name: "max-includes (identical ones merged)", method: "GET", path: "/Patient?_revinclude=Provenance:target&_revinclude=Provenance:target&_include=Patient:organization&_include=Patient:link",
			status: 400, want: []string{"max-includes = 2"}},
		{name: "max-search-chains", method: "GET", path: "/Patient?_has:Observation:patient:code=1&general-practitioner:Practitioner.name=x", status: 400, want: []string{"max-search-chains = 1"}},
		{name: "max-search-params in If-None-Exist", method: "POST", path: "/Patient", body: patient, headers: []string{"If-None-Exist", "name=a&family=b&given=c&gender=male&birthdate=2000"},
			status: 400, want: []string{"max-search-params = 4"}, write: true},
		{name: "max-array-elements", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","name":[{"given":["a","b","c","d","e","f"]}]}`,
			status: 413, want: []string{"max-array-elements = 5", "Patient.name[0].given"}, write: true},
		{name: "max-nodes", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","name":[` + strings.TrimSuffix(strings.Repeat(`{"given":["a","b","c","d","e"]},`, 5), ",") + `],"identifier":[` + strings.TrimSuffix(strings.Repeat(`{"system":"urn:x","value":"1"},`, 5), ",") + `]}`,
			status: 413, want: []string{"max-nodes = 40"}, write: true},
		{name: "max-string-bytes", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("f", 65) + `"}]}`,
			status: 400, want: []string{"max-string-bytes = 64", "KAPBRIDGE_MAX_STRING_BYTES", "Patient.name[0].family"}, write: true},
		{name: "max-total-string-bytes", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","name":[` + strings.TrimSuffix(strings.Repeat(`{"family":"`+strings.Repeat("f", 60)+`"},`, 5), ",") +
			`],"identifier":[` + strings.TrimSuffix(strings.Repeat(`{"value":"`+strings.Repeat("v", 60)+`"},`, 5), ",") + `]}`,
			status: 413, want: []string{"max-total-string-bytes = 500", "-max-total-string-bytes"}, write: true},
		{name: "max-issues (from KAPBRIDGE_MAX_ISSUES)", method: "POST", path: "/Observation", body: `{"resourceType":"Observation","status":"bogus","code":{},"identifier":[{},{},{},{},{}],"foo":1,"bar":2}`,
			status: 400, want: []string{"5 more issues", "max-issues = 5", "KAPBRIDGE_MAX_ISSUES"}, write: true},
		{name: "max-bundle-entries", method: "POST", path: "/", body: tx("batch", get, get, get), status: 413, want: []string{"max-bundle-entries = 2", "Bundle.entry"}, write: true},
		{name: "max-body-bytes", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","text":{"status":"generated","div":"<div>` + strings.Repeat("x", 5000) + `</div>"}}`,
			status: 413, want: []string{"max-body-bytes = 4096"}, write: true},
		{name: "body-budget-bytes", stall: 1, stallLength: 4096, method: "POST", path: "/Patient", body: patient,
			status: 503, want: []string{"body-budget-bytes = 4096"}, write: true},
		{name: "max-in-flight", stall: 2, stallLength: 10, method: "GET", path: "/metadata", status: 503, want: []string{"max-in-flight = 2"}},
	}
}

// TestServeInputEdges drives the real program (run "serve", with the
// limits set small by flags) over loopback, on SQLite and on PostgreSQL
// when KAPBRIDGE_TEST_POSTGRES_DSN is set: every row is answered with its
// status and an OperationOutcome naming the problem or limit (the
// practice API's own JSON for its row), a refused write stores nothing,
// and the U+0000 rows are answered identically by both stores.
func TestServeInputEdges(t *testing.T) {
	stores := map[string]string{"sqlite": filepath.Join(t.TempDir(), "kap.db")}
	if dsn := sqltest.PostgresDSN(t); dsn != "" {
		stores["postgres"] = sqltest.FreshSchema(t, dsn)
	} else {
		t.Log("KAPBRIDGE_TEST_POSTGRES_DSN not set: the PostgreSQL half of this test is skipped (.ci/run sets it)")
	}
	answers := map[string]map[string]string{}
	for _, name := range []string{"sqlite", "postgres"} {
		store, ok := stores[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			base := startServe(t, store, edgeLimits, map[string]string{"KAPBRIDGE_MAX_ISSUES": "5"})
			addr := strings.TrimPrefix(base, "http://")
			for _, tc := range edgeCases() {
				t.Run(tc.name, func(t *testing.T) {
					before := newestVersion(t, base)
					var release []func()
					for i := 0; i < tc.stall; i++ {
						release = append(release, stallBody(t, addr, tc.stallLength))
					}
					// A stalled request may not be admitted yet when the
					// row's request arrives: probe until it is. A write
					// row probes with a resource the server refuses as
					// invalid once admitted, so a probe that came too early
					// stores nothing (CI once saw the row's own Patient
					// land on a first try that beat the stall).
					if tc.stall > 0 {
						probe := tc
						if tc.write {
							probe.body = `{"resourceType":"Patient","notAnElement":true}`
						}
						for try := 0; ; try++ {
							if st, _, _ := edgeRequest(t, addr, probe); st == tc.status || try == 50 {
								break
							}
							time.Sleep(20 * time.Millisecond)
						}
					}
					status, header, body := edgeRequest(t, addr, tc)
					for _, r := range release {
						r()
					}
					if status != tc.status {
						t.Fatalf("status %d, want %d: %.500s", status, tc.status, body)
					}
					if loc := header.Get("Location"); loc != "" {
						t.Errorf("Location %q: a refusal must not redirect", loc)
					}
					if !tc.practice {
						checkOutcome(t, header, body)
					}
					for _, w := range tc.want {
						if !strings.Contains(string(body), w) {
							t.Errorf("%q not in %.700s", w, body)
						}
					}
					if tc.status == 503 && header.Get("Retry-After") == "" {
						t.Error("503 without Retry-After")
					}
					if tc.write {
						waitIdle(t, base)
						if after := newestVersion(t, base); after != before {
							t.Errorf("a version was stored: newest %s, was %s", after, before)
						}
					}
					if tc.practice {
						if st, _, b := edgeRequest(t, addr, edgeCase{method: "GET", path: "/practice/v1/records/note/nul-note"}); st != 404 {
							t.Errorf("the rejected record was stored: %d %s", st, b)
						}
					}
					if tc.nul {
						if answers[tc.name] == nil {
							answers[tc.name] = map[string]string{}
						}
						answers[tc.name][name] = fmt.Sprintf("%d %s", status, strings.ReplaceAll(string(body), base, "BASE"))
					}
				})
			}
		})
	}
	for row, by := range answers {
		if len(by) == 2 && by["sqlite"] != by["postgres"] {
			t.Errorf("%s: the stores answer differently:\nsqlite:   %s\npostgres: %s", row, by["sqlite"], by["postgres"])
		}
	}
}

// startServe runs `kapbridge serve` on store with args and env until the
// test ends, and returns its base URL once it answers.
func startServe(t *testing.T, store string, args []string, env map[string]string) string {
	t.Helper()
	addr := freeAddr(t)
	e := map[string]string{"KAPBRIDGE_STORE": store, "KAPBRIDGE_LOG_LEVEL": "error"}
	for k, v := range env {
		e[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	logw := &lockedWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-auth", "off", "-listen", addr}, args...), func(k string) string { return e[k] }, strings.NewReader(""), io.Discard, logw)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(25 * time.Second):
			t.Error("serve did not stop")
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/metadata"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, logw.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /metadata after 30 s\n%s", logw.String())
		}
	}
}

// edgeRequest sends tc's request on a new connection and reads the answer.
func edgeRequest(t *testing.T, addr string, tc edgeCase) (int, http.Header, []byte) {
	t.Helper()
	req := tc.raw
	if req == "" {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", tc.method, tc.path, addr)
		hdr := map[string]string{}
		if tc.body != "" {
			hdr["Content-Type"] = "application/fhir+json"
			hdr["Content-Length"] = fmt.Sprint(len(tc.body))
		}
		for i := 0; i+1 < len(tc.headers); i += 2 {
			hdr[tc.headers[i]] = tc.headers[i+1]
		}
		for k, v := range hdr {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
		b.WriteString("\r\n" + tc.body)
		req = b.String()
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	// Written concurrently: the server may answer (431) before it has
	// read a long request.
	go func() { _, _ = io.WriteString(conn, req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the body: %v", err)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
	}
	return resp.StatusCode, resp.Header, body
}

// checkOutcome asserts body is a FHIR JSON OperationOutcome with issues.
func checkOutcome(t *testing.T, header http.Header, body []byte) {
	t.Helper()
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q, want application/fhir+json", ct)
	}
	var oo struct {
		ResourceType string
		Issue        []struct{ Severity, Code, Diagnostics string }
	}
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("not an OperationOutcome (%v): %.300s", err, body)
	}
	for _, is := range oo.Issue {
		if is.Severity == "" || is.Code == "" || is.Diagnostics == "" {
			t.Errorf("issue without severity, code or diagnostics: %+v", is)
		}
	}
}

// stallBody starts a POST whose body stops after a few bytes of length:
// the server admits it and waits for the rest until the returned
// function closes the connection.
func stallBody(t *testing.T, addr string, length int) func() {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: %d\r\n\r\n{", length)
	return func() { conn.Close() }
}

// newestVersion names the newest version the store holds (the first
// entry of system history): a refused write must leave it as it was.
func newestVersion(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/_history?_count=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct {
		Entry []struct {
			FullURL  string `json:"fullUrl"`
			Response struct {
				Etag         string `json:"etag"`
				LastModified string `json:"lastModified"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || resp.StatusCode != 200 || len(b.Entry) == 0 {
		t.Fatalf("system history: %d %v", resp.StatusCode, err)
	}
	e := b.Entry[0]
	return e.FullURL + " " + e.Response.Etag + " " + e.Response.LastModified
}

// waitIdle waits until the server admits requests again after a row that
// filled it (a stalled body is released asynchronously).
func waitIdle(t *testing.T, base string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(base + "/metadata"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the server stayed busy")
}
