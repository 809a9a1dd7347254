package fhirtest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// The instance and type interactions, their errors, and what concurrent
// writers must not break.

const apiPatientJSON = `{"resourceType":"Patient","identifier":[{"system":"urn:kap:test","value":"%s"}],"name":[{"family":"%s"}],"birthDate":"1980-02-03","_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"kept"}]}}`

// apiPatient is a Patient with an identifier (system urn:kap:test) and a
// family name.
func apiPatient(ident, family string) []byte {
	return []byte(fmt.Sprintf(apiPatientJSON, ident, family))
}

func apiTestInteractions(t *testing.T, c *apiClient) {
	// create
	r := c.do("POST", "/Patient", apiPatient("a1", "Ng"))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := decode(t, r.body)
	id := created["id"].(string)
	if r.header.Get("ETag") != `W/"1"` {
		t.Errorf("ETag %q", r.header.Get("ETag"))
	}
	if r.header.Get("Last-Modified") == "" {
		t.Error("no Last-Modified")
	}
	if want := c.URL + "/Patient/" + id + "/_history/1"; r.header.Get("Location") != want {
		t.Errorf("Location %q, want %q", r.header.Get("Location"), want)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q", ct)
	}
	meta := created["meta"].(map[string]any)
	if meta["versionId"] != "1" || meta["lastUpdated"] == nil {
		t.Errorf("meta %v", meta)
	}
	// primitive extensions survive (the samply models would drop them)
	if _, ok := created["_birthDate"]; !ok {
		t.Error("_birthDate was dropped")
	}

	// a client-sent id and meta.versionId on create are the server's to set
	r = c.do("POST", "/Patient", []byte(`{"resourceType":"Patient","id":"mine","meta":{"versionId":"77","lastUpdated":"2001-01-01T00:00:00Z","tag":[{"code":"t"}]}}`))
	m := decode(t, r.body)
	if m["id"] == "mine" || m["meta"].(map[string]any)["versionId"] != "1" || m["meta"].(map[string]any)["tag"] == nil {
		t.Errorf("create kept client id/version or lost meta.tag: %s", r.body)
	}

	// read
	r = c.do("GET", "/Patient/"+id, nil)
	if r.status != 200 || r.header.Get("ETag") != `W/"1"` {
		t.Fatalf("read: %d %s", r.status, r.header.Get("ETag"))
	}
	// If-None-Match on the current version
	if r := c.do("GET", "/Patient/"+id, nil, "If-None-Match", `W/"1"`); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.status)
	}
	// _format and Accept
	if r := c.do("GET", "/Patient/"+id+"?_format=application/json", nil); !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("_format=application/json gave %q", r.header.Get("Content-Type"))
	}
	if r := c.do("GET", "/Patient/"+id, nil, "Accept", "application/json"); !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Accept application/json gave %q", r.header.Get("Content-Type"))
	}
	if r := c.do("GET", "/Patient/"+id+"?_pretty=true", nil); !strings.Contains(string(r.body), "\n  \"resourceType\"") {
		t.Errorf("_pretty=true not indented: %.80s", r.body)
	}

	// update with and without If-Match
	upd := []byte(strings.Replace(string(apiPatient("a1", "Nguyen")), `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`",`, 1))
	r = c.do("PUT", "/Patient/"+id, upd, "If-Match", `W/"1"`)
	if r.status != 200 || r.header.Get("ETag") != `W/"2"` || !strings.HasSuffix(r.header.Get("Location"), "/_history/2") {
		t.Fatalf("update: %d %s %s", r.status, r.header.Get("ETag"), r.body)
	}
	assertOutcome(t, c.do("PUT", "/Patient/"+id, upd, "If-Match", `W/"1"`), http.StatusPreconditionFailed)
	assertOutcome(t, c.do("PUT", "/Patient/"+id, upd, "If-Match", `nonsense`), http.StatusBadRequest)
	// the id in the body must be the id in the URL
	assertOutcome(t, c.do("PUT", "/Patient/other", upd), http.StatusBadRequest)
	assertOutcome(t, c.do("PUT", "/Patient/"+id, apiPatient("a1", "x")), http.StatusBadRequest)

	// vread
	r = c.do("GET", "/Patient/"+id+"/_history/1", nil)
	if r.status != 200 || decode(t, r.body)["name"].([]any)[0].(map[string]any)["family"] != "Ng" {
		t.Errorf("vread 1: %d %s", r.status, r.body)
	}
	assertOutcome(t, c.do("GET", "/Patient/"+id+"/_history/9", nil), http.StatusNotFound)
	assertOutcome(t, c.do("GET", "/Patient/"+id+"/_history/x", nil), http.StatusNotFound)

	// Prefer
	if r := c.do("PUT", "/Patient/"+id, upd, "Prefer", "return=minimal"); r.status != 200 || len(r.body) != 0 || r.header.Get("ETag") != `W/"3"` {
		t.Errorf("return=minimal: %d %q %s", r.status, r.body, r.header.Get("ETag"))
	}
	if r := c.do("PUT", "/Patient/"+id, upd, "Prefer", "return=OperationOutcome"); decode(t, r.body)["resourceType"] != "OperationOutcome" {
		t.Errorf("return=OperationOutcome: %s", r.body)
	}

	// update-as-create with a client id
	r = c.do("PUT", "/Patient/client-chosen", []byte(`{"resourceType":"Patient","id":"client-chosen"}`))
	if r.status != 201 || r.header.Get("ETag") != `W/"1"` {
		t.Errorf("update-as-create: %d %s", r.status, r.body)
	}

	// conditional create
	r = c.do("POST", "/Patient", apiPatient("c1", "A"), "If-None-Exist", "identifier=urn:kap:test|c1")
	if r.status != 201 {
		t.Fatalf("conditional create (new): %d %s", r.status, r.body)
	}
	cid := decode(t, r.body)["id"]
	r = c.do("POST", "/Patient", apiPatient("c1", "B"), "If-None-Exist", "identifier=urn:kap:test|c1")
	if r.status != 200 || decode(t, r.body)["id"] != cid || decode(t, r.body)["name"].([]any)[0].(map[string]any)["family"] != "A" {
		t.Errorf("conditional create (match) must return the existing resource unchanged: %d %s", r.status, r.body)
	}
	assertOutcome(t, c.do("POST", "/Patient", apiPatient("c1", "B"), "If-None-Exist", "bogus=x"), http.StatusBadRequest)
	// any search criteria work: family=A matches the one created above
	r = c.do("POST", "/Patient", apiPatient("c2", "Other"), "If-None-Exist", "family:exact=A&identifier=c1")
	if r.status != 200 || decode(t, r.body)["id"] != cid {
		t.Errorf("conditional create with search criteria: %d %s", r.status, r.body)
	}
	assertOutcome(t, c.do("POST", "/Patient", apiPatient("c1", "B"), "If-None-Exist", "birthdate=notadate"), http.StatusBadRequest)

	// conditional update: 0 matches creates, 1 updates, 2+ is 412
	r = c.do("PUT", "/Patient?identifier=urn:kap:test|u1", apiPatient("u1", "First"))
	if r.status != 201 {
		t.Fatalf("conditional update (create): %d %s", r.status, r.body)
	}
	uid := decode(t, r.body)["id"]
	r = c.do("PUT", "/Patient?identifier=urn:kap:test|u1", apiPatient("u1", "Second"))
	if r.status != 200 || decode(t, r.body)["id"] != uid || r.header.Get("ETag") != `W/"2"` {
		t.Errorf("conditional update (match): %d %s", r.status, r.body)
	}
	c.do("POST", "/Patient", apiPatient("dup", "X"))
	c.do("POST", "/Patient", apiPatient("dup", "Y"))
	assertOutcome(t, c.do("PUT", "/Patient?identifier=urn:kap:test|dup", apiPatient("dup", "Z")), http.StatusPreconditionFailed)
	assertOutcome(t, c.do("POST", "/Patient", apiPatient("dup", "Z"), "If-None-Exist", "identifier=urn:kap:test|dup"), http.StatusPreconditionFailed)
	assertOutcome(t, c.do("PUT", "/Patient", apiPatient("dup", "Z")), http.StatusMethodNotAllowed)

	// delete, then 410; history keeps every version
	if r := c.do("DELETE", "/Patient/"+id, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	assertOutcome(t, c.do("GET", "/Patient/"+id, nil), http.StatusGone)
	if r := c.do("DELETE", "/Patient/"+id, nil); r.status != http.StatusNoContent {
		t.Errorf("second delete: %d", r.status)
	}
	assertOutcome(t, c.do("DELETE", "/Patient/never-was", nil), http.StatusNotFound)
	r = c.do("GET", "/Patient/"+id+"/_history", nil)
	h := decode(t, r.body)
	if r.status != 200 || h["type"] != "history" {
		t.Fatalf("history: %d %s", r.status, r.body)
	}
	if _, _, err := fhir.ParseResource(r.body); err != nil {
		t.Errorf("the history Bundle fails validation: %v\n%s", err, r.body)
	}
	entries := h["entry"].([]any)
	if len(entries) != 5 {
		t.Fatalf("history has %d entries, want 5", len(entries))
	}
	first := entries[0].(map[string]any)
	if first["request"].(map[string]any)["method"] != "DELETE" || first["resource"] != nil {
		t.Errorf("newest history entry should be the deletion: %v", first)
	}
	last := entries[4].(map[string]any)["resource"].(map[string]any)
	if last["meta"].(map[string]any)["versionId"] != "1" {
		t.Errorf("oldest history entry is not version 1: %v", last)
	}
	// a deleted identifier no longer matches a condition
	r = c.do("POST", "/Patient", apiPatient("a1", "Again"), "If-None-Exist", "identifier=urn:kap:test|a1")
	if r.status != 201 {
		t.Errorf("conditional create after delete: %d", r.status)
	}
	assertOutcome(t, c.do("GET", "/Patient/nope/_history", nil), http.StatusNotFound)
}

// apiTestErrors: every refusal is an OperationOutcome with its status.
func apiTestErrors(t *testing.T, c *apiClient) {
	id := idOf(c.do("POST", "/Patient", apiPatient("e", "E")).body)
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		headers            []string
		status             int
	}{
		{"unknown type", "GET", "/Patients/1", nil, nil, 404},
		{"unknown id", "GET", "/Patient/nope", nil, nil, 404},
		{"unknown path", "GET", "/Patient/1/foo/bar/baz", nil, nil, 404},
		{"method not allowed", "POST", "/Patient/" + id + "/_history", []byte(`{}`), nil, 405},
		{"empty JSON Patch", "PATCH", "/Patient/" + id, []byte(`[]`), []string{"Content-Type", "application/json-patch+json"}, 400},
		{"delete on type", "DELETE", "/Patient", nil, nil, 405},
		{"unknown operation", "POST", "/Patient/$everything", []byte(`{}`), nil, 405},
		{"xml accept", "GET", "/Patient/" + id, nil, []string{"Accept", "application/fhir+xml"}, 406},
		{"xml format", "GET", "/Patient/" + id + "?_format=xml", nil, nil, 406},
		{"xml body", "POST", "/Patient", []byte(`<Patient/>`), []string{"Content-Type", "application/fhir+xml"}, 415},
		{"text body", "POST", "/Patient", []byte(`x`), []string{"Content-Type", "text/plain"}, 415},
		{"empty body", "POST", "/Patient", []byte{}, nil, 400},
		{"wrong type in body", "POST", "/Observation", apiPatient("x", "y"), nil, 400},
		{"bad If-Match", "PUT", "/Patient/" + id, nil, []string{"If-Match", "abc"}, 400},
		{"stale If-Match", "DELETE", "/Patient/" + id, nil, []string{"If-Match", `W/"7"`}, 412},
		{"too large", "POST", "/Patient", make([]byte, 17<<20), nil, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.in(t)
			assertOutcome(t, c.do(tc.method, tc.path, tc.body, tc.headers...), tc.status)
		})
	}
}

// race sends n requests at once (request i made by req(i)), from as many
// goroutines, and returns their answers; a request that could not be sent
// is an error of t and a zero answer.
func race(t *testing.T, c *apiClient, n int, req func(i int) (method, path string, body []byte, headers []string)) []apiResponse {
	out := make([]apiResponse, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			method, path, body, headers := req(i)
			<-start
			r, err := c.try(method, path, body, headers...)
			if err != nil {
				t.Errorf("request %d: %v", i, err) // not Fatal: not the test's goroutine
			}
			out[i] = r
		})
	}
	close(start)
	wg.Wait()
	return out
}

// apiTestConditionalCreateRace: 50 concurrent conditional creates of one
// identifier make exactly one resource (HAPI #3141, MS #1382 and Medplum
// #4878 make duplicates here).
func apiTestConditionalCreateRace(t *testing.T, c *apiClient) {
	const n = 50
	answers := race(t, c, n, func(i int) (string, string, []byte, []string) {
		return http.MethodPost, "/Patient", apiPatient("race-1", fmt.Sprint("N", i)), []string{"If-None-Exist", "identifier=urn:kap:test|race-1"}
	})
	created := 0
	first := idOf(answers[0].body)
	for i, r := range answers {
		switch r.status {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Errorf("request %d: status %d", i, r.status)
		}
		if id := idOf(r.body); id != first {
			t.Errorf("request %d got %s, request 0 got %s: two resources for one identifier", i, id, first)
		}
	}
	if created != 1 {
		t.Errorf("%d creates, want exactly 1", created)
	}
	// and the store agrees: one match, so a conditional update finds one
	if r := c.do(http.MethodPut, "/Patient?identifier=urn:kap:test|race-1", apiPatient("race-1", "Final")); r.status != http.StatusOK {
		t.Errorf("conditional update after the race: %d %s", r.status, r.body)
	}
}

// apiTestConcurrentUpdates: 20 concurrent updates without If-Match all
// land, each as its own version (HAPI #5288 loses writes).
func apiTestConcurrentUpdates(t *testing.T, c *apiClient) {
	body := func(family string) []byte {
		return []byte(`{"resourceType":"Patient","id":"hot","name":[{"family":"` + family + `"}]}`)
	}
	if r := c.do(http.MethodPut, "/Patient/hot", body("start")); r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	const n = 20
	answers := race(t, c, n, func(i int) (string, string, []byte, []string) {
		return http.MethodPut, "/Patient/hot", body(fmt.Sprint("w", i)), nil
	})
	for i, r := range answers {
		if r.status != http.StatusOK {
			t.Errorf("update %d: %d %s", i, r.status, r.body)
		}
	}
	r := c.do(http.MethodGet, "/Patient/hot/_history", nil)
	entries := decode(t, r.body)["entry"].([]any)
	if len(entries) != n+1 {
		t.Fatalf("%d versions, want %d", len(entries), n+1)
	}
	seen := map[string]int{}
	for i, e := range entries {
		res := e.(map[string]any)["resource"].(map[string]any)
		if v := res["meta"].(map[string]any)["versionId"]; v != fmt.Sprint(n+1-i) {
			t.Errorf("entry %d has version %v, want %d", i, v, n+1-i)
		}
		seen[res["name"].([]any)[0].(map[string]any)["family"].(string)]++
	}
	for i := 0; i < n; i++ {
		if seen[fmt.Sprint("w", i)] != 1 {
			t.Errorf("write w%d appears %d times in history, want 1", i, seen[fmt.Sprint("w", i)])
		}
	}
}

// apiTestIfMatchRace: two updates racing with the same If-Match: exactly
// one wins, the other gets 412.
func apiTestIfMatchRace(t *testing.T, c *apiClient) {
	for round := 0; round < 10; round++ {
		id := fmt.Sprint("m", round)
		c.do(http.MethodPut, "/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`"}`))
		answers := race(t, c, 2, func(i int) (string, string, []byte, []string) {
			return http.MethodPut, "/Patient/" + id, []byte(fmt.Sprintf(`{"resourceType":"Patient","id":"%s","gender":"%s"}`, id, []string{"male", "female"}[i])), []string{"If-Match", `W/"1"`}
		})
		ok, failed := 0, 0
		for _, r := range answers {
			switch r.status {
			case http.StatusOK:
				ok++
			case http.StatusPreconditionFailed:
				failed++
			}
		}
		if ok != 1 || failed != 1 {
			t.Errorf("round %d: statuses %d and %d, want one 200 and one 412", round, answers[0].status, answers[1].status)
		}
	}
}

// apiTestConditionalRaceShapes: for criteria other than a lone
// identifier=system|value, 50 concurrent conditional creates (or
// conditional updates) still make exactly one resource. PostgreSQL made
// 1-7 here before conditional writes took Tx.LockCriteria. The mixed
// shape races identifier-only writers (which lock the identifier) against
// identifier-plus-more writers.
func apiTestConditionalRaceShapes(t *testing.T, c *apiClient) {
	type shape struct {
		name string
		// request i of the race
		method, path func(i int) string
		header       func(i int) []string
		search       string // finds what the race made
	}
	post := func(int) string { return http.MethodPost }
	put := func(int) string { return http.MethodPut }
	path := func(p string) func(int) string { return func(int) string { return p } }
	ifNone := func(c string) func(int) []string { return func(int) []string { return []string{"If-None-Exist", c} } }
	none := func(int) []string { return nil }
	shapes := []shape{
		{"create identifier and active", post, path("/Patient"), ifNone("identifier=urn:kap:test|s1&active=true"), "identifier=urn:kap:test|s1"},
		{"create family", post, path("/Patient"), ifNone("family=Shape2"), "family=Shape2"},
		{"create name and birthdate", post, path("/Patient"), ifNone("name=Shape3&birthdate=1980-01-01"), "name=Shape3"},
		{"update family", put, path("/Patient?family=Shape4"), none, "family=Shape4"},
		{"update identifier and active", put, path("/Patient?identifier=urn:kap:test|s5&active=true"), none, "identifier=urn:kap:test|s5"},
		{"create mixed identifier shapes", post, path("/Patient"), func(i int) []string {
			if i%2 == 0 {
				return []string{"If-None-Exist", "identifier=urn:kap:test|s6"}
			}
			return []string{"If-None-Exist", "identifier=urn:kap:test|s6&family=Shape6"}
		}, "identifier=urn:kap:test|s6"},
	}
	for k, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			c := c.in(t)
			n := k + 1
			body := []byte(fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"urn:kap:test","value":"s%d"}],"active":true,"name":[{"family":"Shape%d","given":["Shape%d"]}],"birthDate":"1980-01-01"}`, n, n, n))
			answers := race(t, c, 50, func(i int) (string, string, []byte, []string) {
				return sh.method(i), sh.path(i), body, sh.header(i)
			})
			created := 0
			for i, r := range answers {
				if r.status >= 300 {
					t.Errorf("request %d: %d %s", i, r.status, r.body)
				}
				if r.status == http.StatusCreated {
					created++
				}
			}
			r := c.do(http.MethodGet, "/Patient?_summary=count&"+sh.search, nil)
			if total := fmt.Sprint(decode(t, r.body)["total"]); total != "1" || created != 1 {
				t.Errorf("%s resources match %s after the race (%d answered 201); want exactly 1", total, sh.search, created)
			}
		})
	}
}

// apiTestCapabilityStatement: /metadata is a valid R4 CapabilityStatement
// that claims exactly the interactions the routes serve.
func apiTestCapabilityStatement(t *testing.T, c *apiClient) {
	r := c.do(http.MethodGet, "/metadata", nil)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if _, typ, err := fhir.ParseResource(r.body); err != nil || typ != "CapabilityStatement" {
		t.Fatalf("the CapabilityStatement fails our own validator: %v", err)
	}
	cs := decode(t, r.body)
	if cs["fhirVersion"] != "4.0.1" || cs["kind"] != "instance" || cs["status"] != "active" {
		t.Errorf("header fields: %v %v %v", cs["fhirVersion"], cs["kind"], cs["status"])
	}
	rest := cs["rest"].([]any)[0].(map[string]any)
	resources := rest["resource"].([]any)
	if len(resources) != len(fhir.ResourceTypes()) {
		t.Errorf("%d resource entries, want one per R4 type (%d)", len(resources), len(fhir.ResourceTypes()))
	}
	want := map[string]bool{"read": true, "vread": true, "update": true, "patch": true, "delete": true, "history-instance": true, "create": true,
		"search-type": true, "history-type": true}
	for _, res := range resources {
		rm := res.(map[string]any)
		got := map[string]bool{}
		for _, in := range rm["interaction"].([]any) {
			got[in.(map[string]any)["code"].(string)] = true
		}
		if len(got) != len(want) {
			t.Fatalf("%v: interactions %v, want exactly %v", rm["type"], got, want)
		}
		for k := range want {
			if !got[k] {
				t.Fatalf("%v lacks %s", rm["type"], k)
			}
		}
		typ := rm["type"].(string)
		if rm["conditionalDelete"] != "multiple" || rm["conditionalCreate"] != true || rm["conditionalUpdate"] != true {
			t.Errorf("%s: conditionalDelete %v, conditionalCreate %v, conditionalUpdate %v; want multiple, true, true", typ, rm["conditionalDelete"], rm["conditionalCreate"], rm["conditionalUpdate"])
		}
		params, _ := rm["searchParam"].([]any)
		if len(params) != len(search.ParamsFor(typ)) {
			t.Errorf("%s: %d searchParams listed, the registry has %d", typ, len(params), len(search.ParamsFor(typ)))
		}
		for _, p := range params {
			pm := p.(map[string]any)
			sp := search.Lookup(typ, pm["name"].(string))
			if sp == nil || pm["definition"] != sp.URL || pm["type"] != string(sp.Type) {
				t.Errorf("%s: searchParam %v does not match the registry", typ, pm)
			}
		}
	}
	sys := map[string]bool{}
	for _, in := range rest["interaction"].([]any) {
		sys[in.(map[string]any)["code"].(string)] = true
	}
	if !sys["transaction"] || !sys["batch"] || !sys["history-system"] || len(sys) != 3 {
		t.Errorf("system interactions %v, want transaction, batch, history-system", sys)
	}
	// Each claimed interaction answers something other than 404/405 for
	// a real type, which is what "claims nothing it does not do" means.
	pid := idOf(c.do("POST", "/Patient", apiPatient("cs", "C")).body)
	for _, q := range []struct{ method, path string }{
		{"GET", "/Patient/" + pid}, {"GET", "/Patient/" + pid + "/_history/1"}, {"GET", "/Patient/" + pid + "/_history"},
		{"GET", "/Patient?_id=" + pid}, {"GET", "/Patient/_history"}, {"GET", "/_history"}, {"GET", "/Patient/" + pid + "/$everything"},
	} {
		if r := c.do(q.method, q.path, nil); r.status != 200 {
			t.Errorf("%s %s: %d", q.method, q.path, r.status)
		}
	}
	if r := c.do("POST", "/Patient/$validate", apiPatient("v", "V")); r.status != 200 {
		t.Errorf("$validate: %d", r.status)
	}
	// patch, conditional create/update/delete ("multiple") and the
	// $everything parameters the statement documents.
	for _, q := range []struct {
		method, path string
		body         []byte
		headers      []string
		status       int
	}{
		{"PATCH", "/Patient/" + pid, []byte(`[{"op":"add","path":"/active","value":true}]`), []string{"Content-Type", "application/json-patch+json"}, 200},
		{"PATCH", "/Patient/" + pid, []byte(`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.active"},{"name":"value","valueBoolean":false}]}]}`), nil, 200},
		{"GET", "/Patient/" + pid + "/$everything?_type=Patient&_since=2000-01-01&_count=1", nil, nil, 200},
		{"POST", "/Patient", apiPatient("cs2", "Cstwo"), []string{"If-None-Exist", "family=Cstwo"}, 201},
		{"PUT", "/Patient?family=Csthree", apiPatient("cs3", "Csthree"), nil, 201},
		{"DELETE", "/Patient?family=Cstwo,Csthree", nil, nil, 200},
		{"POST", "/Patient/" + pid + "/$validate?mode=delete", nil, nil, 200},
		{"POST", "/Patient/" + pid + "/$validate?mode=update&profile=http://hl7.org/fhir/StructureDefinition/Patient", []byte(`{"resourceType":"Patient","id":"` + pid + `"}`), nil, 200},
	} {
		if r := c.do(q.method, q.path, q.body, q.headers...); r.status != q.status {
			t.Errorf("%s %s: %d, want %d: %.300s", q.method, q.path, r.status, q.status, r.body)
		}
	}
	if r := c.do("GET", "/Patient?family=Cstwo,Csthree&_summary=count", nil); !strings.Contains(string(r.body), `"total":0`) {
		t.Errorf("the conditional delete left matches: %s", r.body)
	}
}

// apiTestValidateOperation: $validate answers 200 with the issues, valid
// or not, and accepts a Parameters wrapper.
func apiTestValidateOperation(t *testing.T, c *apiClient) {
	r := c.do("POST", "/Observation/$validate", []byte(`{"resourceType":"Observation","status":"bogus","code":{"text":"x"},"colour":1}`))
	issues := assertOutcome(t, r, 200)
	if !mentions(issues, "Observation.status") || !mentions(issues, "Observation.colour") {
		t.Errorf("want issues for status and colour: %s", r.body)
	}
	r = c.do("POST", "/Patient/$validate", []byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient","active":true}}]}`))
	issues = assertOutcome(t, r, 200)
	for _, is := range issues {
		// Valid: no error; warnings (dom-6, no narrative) may be listed.
		if sev := is.(map[string]any)["severity"]; sev == "error" || sev == "fatal" {
			t.Errorf("valid Patient in Parameters: %s", r.body)
		}
	}
	assertOutcome(t, c.do("POST", "/Patient/$validate", []byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient"}},{"name":"profile","valueUri":"http://x"}]}`)), 400)
}

// historyAll walks every page of a history and returns "Type/id/vid" of
// each entry, newest first; each Bundle must pass the validator.
func historyAll(t *testing.T, c *apiClient, path string) []string {
	t.Helper()
	var out []string
	for next := path; next != ""; {
		r := c.do(http.MethodGet, c.local(next), nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		if _, _, err := fhir.ParseResource(r.body); err != nil {
			t.Fatalf("history Bundle fails validation: %v", err)
		}
		b := decode(t, r.body)
		if b["type"] != "history" {
			t.Fatalf("Bundle.type %v", b["type"])
		}
		next = nextLink(b)
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			em := e.(map[string]any)
			url := strings.TrimPrefix(em["fullUrl"].(string), c.URL+"/")
			etag := em["response"].(map[string]any)["etag"].(string)
			out = append(out, url+"/"+strings.Trim(strings.TrimPrefix(etag, "W/"), `"`))
		}
	}
	return out
}

// apiTestHistory: type and system history, paged, with _since and _at.
// System history also holds what the gateway stored by itself before
// the test (its conformance resources): the test's writes are the newest
// entries, and _since leaves the rest out.
func apiTestHistory(t *testing.T, c *apiClient) {
	before := len(historyAll(t, c, "/_history?_count=100"))
	for i := 0; i < 5; i++ {
		c.do("PUT", fmt.Sprintf("/Patient/h%d", i), []byte(fmt.Sprintf(`{"resourceType":"Patient","id":"h%d"}`, i)))
	}
	time.Sleep(5 * time.Millisecond)
	mid := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	c.do("PUT", "/Patient/h0", []byte(`{"resourceType":"Patient","id":"h0","active":true}`))
	c.do("DELETE", "/Patient/h1", nil)
	c.do("PUT", "/Observation/o1", []byte(`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"}}`))

	typ := historyAll(t, c, "/Patient/_history?_count=2")
	want := []string{"Patient/h1/2", "Patient/h0/2", "Patient/h4/1", "Patient/h3/1", "Patient/h2/1", "Patient/h1/1", "Patient/h0/1"}
	if strings.Join(typ, " ") != strings.Join(want, " ") {
		t.Errorf("type history\n got  %v\n want %v", typ, want)
	}
	sys := historyAll(t, c, "/_history?_count=3")
	if len(sys) != before+8 || sys[0] != "Observation/o1/1" || strings.Join(sys[1:8], " ") != strings.Join(want, " ") {
		t.Errorf("system history (%d entries before the test): %v", before, sys)
	}
	since := historyAll(t, c, "/_history?_since="+mid.Format(time.RFC3339Nano))
	if strings.Join(since, " ") != "Observation/o1/1 Patient/h1/2 Patient/h0/2" {
		t.Errorf("_since: %v", since)
	}
	at := historyAll(t, c, "/Patient/_history?_at="+mid.Format(time.RFC3339Nano))
	if len(at) != 5 || strings.Contains(strings.Join(at, " "), "/2") {
		t.Errorf("_at before the updates: %v", at)
	}
	inst := historyAll(t, c, "/Patient/h0/_history?_count=1")
	if strings.Join(inst, " ") != "Patient/h0/2 Patient/h0/1" {
		t.Errorf("instance history paged: %v", inst)
	}
	assertOutcome(t, c.do("GET", "/_history?_since=yesterday", nil), 400)
	assertOutcome(t, c.do("GET", "/_history?name=x", nil), 400)
}
