package fhirtest

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What a gateway must take whole, what it must refuse (and store nothing
// of), and what it must never disclose.

// apiTestExamplesRoundTrip posts every official R4 example and reads it
// back: equal as decoded JSON apart from id, meta.versionId and
// meta.lastUpdated. The three invalid examples are refused with the
// offending element named, and those c.features.RefusedExamples names with a 4xx.
func apiTestExamplesRoundTrip(t *testing.T, c *apiClient) {
	files, err := filepath.Glob(filepath.Join(ExamplesDir(t), "*.json"))
	if err != nil || len(files) < 300 {
		t.Fatalf("want the official examples in testdata/fhir-r4-examples, found %d (%v)", len(files), err)
	}
	refused := 0
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(file)
		typ := strings.SplitN(name, "-", 2)[0]
		r := c.do(http.MethodPost, "/"+typ, body)
		if want, bad := invalidExamples[name]; bad {
			issues := assertOutcome(t, r, http.StatusBadRequest)
			if !mentions(issues, want) {
				t.Errorf("%s: refused, but no issue expression names %q: %s", name, want, r.body)
			}
			refused++
			continue
		}
		if why, ok := c.features.RefusedExamples[name]; ok {
			if r.status < 400 || r.status >= 500 {
				t.Errorf("%s: %d; the gateway is said to refuse it (%s)", name, r.status, why)
			}
			continue
		}
		if r.status != http.StatusCreated {
			t.Errorf("%s: POST status %d: %.800s", name, r.status, r.body)
			continue
		}
		if loc := r.header.Get("Location"); !strings.Contains(loc, "/_history/1") {
			t.Errorf("%s: Location %q lacks /_history/1", name, loc)
		}
		got := c.do(http.MethodGet, "/"+typ+"/"+idOf(r.body), nil)
		if got.status != http.StatusOK {
			t.Errorf("%s: GET status %d", name, got.status)
			continue
		}
		if !jsonEqual(withoutServerMeta(decode(t, got.body)), withoutServerMeta(decode(t, body))) {
			t.Errorf("%s: read back differs from what was sent\nsent: %.400s\ngot:  %.400s", name, body, got.body)
		}
	}
	if refused != len(invalidExamples) {
		t.Errorf("refused %d invalid examples, want %d", refused, len(invalidExamples))
	}
}

// apiTestInvalidResources posts every case of the shared invalid-resource
// table, by create and by update: each gets its 400/422 and an
// OperationOutcome whose expression names the path, and nothing is
// stored.
func apiTestInvalidResources(t *testing.T, c *apiClient) {
	cases := InvalidResources()
	if len(cases) < 40 {
		t.Fatalf("the invalid-resource table has %d cases, want at least 40", len(cases))
	}
	before := c.dump(t)
	for _, tc := range cases {
		r := c.do(http.MethodPost, "/"+tc.Type, tc.Body)
		issues := assertOutcome(t, r, tc.Status)
		if tc.Expression != "" && !mentions(issues, tc.Expression) {
			t.Errorf("%s: no issue expression contains %q: %.600s", tc.Name, tc.Expression, r.body)
		}
		// The same body as an update (update-as-create) is refused too.
		r = c.do(http.MethodPut, "/"+tc.Type+"/invalid-case", tc.Body)
		if r.status < 400 || r.status >= 500 {
			t.Errorf("%s: PUT status %d, want a 4xx", tc.Name, r.status)
		}
	}
	if after := c.dump(t); after != before {
		t.Errorf("the store changed: a refused resource was stored")
	}
	if r := c.do(http.MethodGet, "/Patient/invalid-case", nil); r.status != http.StatusNotFound {
		t.Errorf("GET after refused PUT: status %d, want 404", r.status)
	}
}

// bundleOf is a batch or transaction Bundle of the given entries (JSON).
func bundleOf(kind string, entries ...string) []byte {
	return []byte(`{"resourceType":"Bundle","type":"` + kind + `","entry":[` + strings.Join(entries, ",") + `]}`)
}

// NULAnswers sends U+0000 everywhere a client can put it: in a resource
// (value, member name), a search (GET, POST _search), a conditional
// create, a conditional update, a Bundle entry (request.url, ifNoneExist,
// a conditional reference), the path, and a batch holding such entries.
// Each must be a 4xx OperationOutcome naming U+0000 (or the element), and
// $validate must report it. It returns each answer ("status body", the
// gateway's URL replaced by BASE) by case name, so that gateways on
// different stores can be compared: PostgreSQL text cannot hold U+0000,
// and both stores must answer alike (before, SQLite stored it, PostgreSQL
// answered 500).
func NULAnswers(t *testing.T, g *Gateway) map[string]string {
	c := newAPIClient(t, g)
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
	answers := map[string]string{}
	before := c.dump(t)
	for _, tc := range cases {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		r := c.do(tc.method, tc.path, body, tc.headers...)
		issues := assertOutcome(t, r, tc.status)
		if d := diagnostics(issues); !strings.Contains(d, tc.want) {
			t.Errorf("%s: %q not in %s", tc.name, tc.want, d)
		}
		answers[tc.name] = fmt.Sprintf("%d %s", r.status, strings.ReplaceAll(string(r.body), c.URL, "BASE"))
	}
	// A batch answers each entry on its own: the NUL entries fail, with
	// the same outcomes, inside a 200.
	r := c.do("POST", "/", bundleOf("batch",
		`{"request":{"method":"GET","url":"Patient?name=a%00b"}}`,
		`{"resource":`+patient+`,"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:x|%00"}}`,
		`{"resource":{"resourceType":"Patient","name":[{"family":"\u0000"}]},"request":{"method":"POST","url":"Patient"}}`))
	if r.status != 200 || strings.Count(string(r.body), `"status":"400 Bad Request"`) != 3 || strings.Count(string(r.body), "U+0000") < 3 {
		t.Errorf("batch: %d %s", r.status, r.body)
	}
	if after := c.dump(t); after != before {
		t.Errorf("the store changed: a refused write was stored")
	}
	// $validate answers 200 with the issue, as the operation says.
	r = c.do("POST", "/Patient/$validate", []byte(`{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}`))
	if r.status != 200 || !strings.Contains(string(r.body), "U+0000") {
		t.Errorf("$validate: %d %s", r.status, r.body)
	}
	return answers
}

func apiTestNUL(t *testing.T, c *apiClient) { NULAnswers(t, c.Gateway) }

// apiTestNotesWithheld: to the public audience a resource labelled
// PSYTHPN does not exist: reads answer exactly as for an unknown id (no
// ETag, no Last-Modified), searches and histories leave it out without a
// word, and writes aimed at it change nothing. The side-by-side
// comparison with a gateway that never held the note is cmd/kapbridge
// TestPrivacyTable.
func apiTestNotesWithheld(t *testing.T, c *apiClient) {
	const marker = "SECRET-SESSION-CONTENT-42"
	c.do(http.MethodPut, "/Patient/p", []byte(`{"resourceType":"Patient","id":"p"}`))
	note := `{"resourceType":"DocumentReference","id":"n1","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]},"identifier":[{"system":"urn:notes","value":"n1"}],"status":"current","subject":{"reference":"Patient/p"},"description":"` + marker + `","content":[{"attachment":{"contentType":"text/plain","title":"` + marker + `"}}]}`
	if r := c.do(http.MethodPut, "/DocumentReference/n1", []byte(note)); r.status != 201 {
		t.Fatalf("store note: %d %s", r.status, r.body)
	}
	other := `{"resourceType":"DocumentReference","id":"d2","status":"current","subject":{"reference":"Patient/p"},"content":[{"attachment":{"contentType":"text/plain","title":"visit summary"}}]}`
	c.do(http.MethodPut, "/DocumentReference/d2", []byte(other))

	for _, path := range []string{"/DocumentReference/n1", "/DocumentReference/n1/_history/1", "/DocumentReference/n1/_history"} {
		r := c.do(http.MethodGet, path, nil)
		unknown := c.do(http.MethodGet, strings.Replace(path, "n1", "n9", 1), nil)
		assertOutcome(t, r, http.StatusNotFound)
		if got, want := strings.ReplaceAll(string(r.body), "n1", "n9"), string(unknown.body); got != want {
			t.Errorf("%s answers %s; an unknown id answers %s", path, got, want)
		}
		if r.header.Get("ETag") != "" || r.header.Get("Last-Modified") != "" {
			t.Errorf("%s: version headers on a withheld resource: %v", path, r.header)
		}
	}
	for _, path := range []string{
		"/DocumentReference?subject=Patient/p",
		"/DocumentReference?_id=n1",
		"/DocumentReference?description=SECRET",
		"/Patient?_has:DocumentReference:subject:description=SECRET",
		"/Patient?_id=p&_revinclude=DocumentReference:subject",
		"/Patient/p/DocumentReference",
		"/Patient/p/$everything",
		"/DocumentReference/_history",
		"/_history",
	} {
		r := c.do(http.MethodGet, path, nil)
		if r.status != 200 {
			t.Errorf("%s: %d %s", path, r.status, r.body)
			continue
		}
		// The label, not the word: a gateway's own conformance resources
		// may name PSYTHPN in their text.
		for _, leak := range []string{marker, `"id":"n1"`, "DocumentReference/n1", "withheld", `"code":"PSYTHPN"`} {
			if strings.Contains(string(r.body), leak) {
				t.Errorf("%s shows %q: %s", path, leak, r.body)
			}
		}
	}
	if r := c.do(http.MethodGet, "/Patient?_has:DocumentReference:subject:description=SECRET", nil); strings.Contains(string(r.body), `"Patient/p"`) || strings.Contains(string(r.body), `"id":"p"`) {
		t.Errorf("_has over a note finds its patient: %s", r.body)
	}
	if r := c.do(http.MethodGet, "/DocumentReference?subject=Patient/p", nil); !strings.Contains(string(r.body), `"id":"d2"`) {
		t.Errorf("the ordinary document is missing: %s", r.body)
	}

	// Writes aimed at the note: the update and the conditional create by
	// its identifier are refused alike, whatever the version
	// precondition; the delete answers as for an unknown id.
	for _, w := range []struct {
		method, path string
		headers      []string
		status       int
	}{
		{http.MethodPut, "/DocumentReference/n1", nil, http.StatusConflict},
		{http.MethodPut, "/DocumentReference/n1", []string{"If-Match", `W/"9"`}, http.StatusConflict},
		{http.MethodPost, "/DocumentReference", []string{"If-None-Exist", "identifier=urn:notes|n1"}, http.StatusConflict},
		{http.MethodPut, "/DocumentReference?identifier=urn:notes|n1", nil, http.StatusConflict},
		{http.MethodDelete, "/DocumentReference/n1", nil, http.StatusNotFound},
	} {
		body := []byte(strings.Replace(other, `"d2"`, `"n1"`, 1))
		if w.method == http.MethodDelete {
			body = nil
		}
		r := c.do(w.method, w.path, body, w.headers...)
		assertOutcome(t, r, w.status)
		if strings.Contains(string(r.body), "version") || strings.Contains(string(r.body), "PSYTHPN") {
			t.Errorf("%s %s %v says too much: %s", w.method, w.path, w.headers, r.body)
		}
	}
	// Nothing was written: the one ordinary document is still the only
	// match.
	if r := c.do(http.MethodGet, "/DocumentReference?_total=accurate", nil); !strings.Contains(string(r.body), `"total":1`) {
		t.Errorf("after the refused writes: %s", r.body)
	}
}
