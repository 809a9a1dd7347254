package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

const patientJSON = `{"resourceType":"Patient","identifier":[{"system":"urn:kap:test","value":"%s"}],"name":[{"family":"%s"}],"birthDate":"1980-02-03","_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"kept"}]}}`

func patient(ident, family string) []byte { return []byte(fmt.Sprintf(patientJSON, ident, family)) }

func TestInteractions(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) { testInteractions(t, newTestServer(t, be.open(t))) })
	}
}

func testInteractions(t *testing.T, srv *testServer) {
	// create
	r := srv.do("POST", "/Patient", patient("a1", "Ng"))
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
	if want := srv.URL + "/Patient/" + id + "/_history/1"; r.header.Get("Location") != want {
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
	r = srv.do("POST", "/Patient", []byte(`{"resourceType":"Patient","id":"mine","meta":{"versionId":"77","lastUpdated":"2001-01-01T00:00:00Z","tag":[{"code":"t"}]}}`))
	m := decode(t, r.body)
	if m["id"] == "mine" || m["meta"].(map[string]any)["versionId"] != "1" || m["meta"].(map[string]any)["tag"] == nil {
		t.Errorf("create kept client id/version or lost meta.tag: %s", r.body)
	}

	// read
	r = srv.do("GET", "/Patient/"+id, nil)
	if r.status != 200 || r.header.Get("ETag") != `W/"1"` {
		t.Fatalf("read: %d %s", r.status, r.header.Get("ETag"))
	}
	// If-None-Match on the current version
	if r := srv.do("GET", "/Patient/"+id, nil, "If-None-Match", `W/"1"`); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.status)
	}
	// _format and Accept
	if r := srv.do("GET", "/Patient/"+id+"?_format=application/json", nil); !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("_format=application/json gave %q", r.header.Get("Content-Type"))
	}
	if r := srv.do("GET", "/Patient/"+id, nil, "Accept", "application/json"); !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Accept application/json gave %q", r.header.Get("Content-Type"))
	}
	if r := srv.do("GET", "/Patient/"+id+"?_pretty=true", nil); !strings.Contains(string(r.body), "\n  \"resourceType\"") {
		t.Errorf("_pretty=true not indented: %.80s", r.body)
	}

	// update with and without If-Match
	upd := []byte(strings.Replace(string(patient("a1", "Nguyen")), `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`",`, 1))
	r = srv.do("PUT", "/Patient/"+id, upd, "If-Match", `W/"1"`)
	if r.status != 200 || r.header.Get("ETag") != `W/"2"` || !strings.HasSuffix(r.header.Get("Location"), "/_history/2") {
		t.Fatalf("update: %d %s %s", r.status, r.header.Get("ETag"), r.body)
	}
	assertOutcome(t, srv.do("PUT", "/Patient/"+id, upd, "If-Match", `W/"1"`), http.StatusPreconditionFailed)
	assertOutcome(t, srv.do("PUT", "/Patient/"+id, upd, "If-Match", `nonsense`), http.StatusBadRequest)
	// the id in the body must be the id in the URL
	assertOutcome(t, srv.do("PUT", "/Patient/other", upd), http.StatusBadRequest)
	assertOutcome(t, srv.do("PUT", "/Patient/"+id, patient("a1", "x")), http.StatusBadRequest)

	// vread
	r = srv.do("GET", "/Patient/"+id+"/_history/1", nil)
	if r.status != 200 || decode(t, r.body)["name"].([]any)[0].(map[string]any)["family"] != "Ng" {
		t.Errorf("vread 1: %d %s", r.status, r.body)
	}
	assertOutcome(t, srv.do("GET", "/Patient/"+id+"/_history/9", nil), http.StatusNotFound)
	assertOutcome(t, srv.do("GET", "/Patient/"+id+"/_history/x", nil), http.StatusNotFound)

	// Prefer
	if r := srv.do("PUT", "/Patient/"+id, upd, "Prefer", "return=minimal"); r.status != 200 || len(r.body) != 0 || r.header.Get("ETag") != `W/"3"` {
		t.Errorf("return=minimal: %d %q %s", r.status, r.body, r.header.Get("ETag"))
	}
	if r := srv.do("PUT", "/Patient/"+id, upd, "Prefer", "return=OperationOutcome"); decode(t, r.body)["resourceType"] != "OperationOutcome" {
		t.Errorf("return=OperationOutcome: %s", r.body)
	}

	// update-as-create with a client id
	r = srv.do("PUT", "/Patient/client-chosen", []byte(`{"resourceType":"Patient","id":"client-chosen"}`))
	if r.status != 201 || r.header.Get("ETag") != `W/"1"` {
		t.Errorf("update-as-create: %d %s", r.status, r.body)
	}

	// conditional create
	r = srv.do("POST", "/Patient", patient("c1", "A"), "If-None-Exist", "identifier=urn:kap:test|c1")
	if r.status != 201 {
		t.Fatalf("conditional create (new): %d %s", r.status, r.body)
	}
	cid := decode(t, r.body)["id"]
	r = srv.do("POST", "/Patient", patient("c1", "B"), "If-None-Exist", "identifier=urn:kap:test|c1")
	if r.status != 200 || decode(t, r.body)["id"] != cid || decode(t, r.body)["name"].([]any)[0].(map[string]any)["family"] != "A" {
		t.Errorf("conditional create (match) must return the existing resource unchanged: %d %s", r.status, r.body)
	}
	assertOutcome(t, srv.do("POST", "/Patient", patient("c1", "B"), "If-None-Exist", "bogus=x"), http.StatusBadRequest)
	// any search criteria work: family=A matches the one created above
	r = srv.do("POST", "/Patient", patient("c2", "Other"), "If-None-Exist", "family:exact=A&identifier=c1")
	if r.status != 200 || decode(t, r.body)["id"] != cid {
		t.Errorf("conditional create with search criteria: %d %s", r.status, r.body)
	}
	assertOutcome(t, srv.do("POST", "/Patient", patient("c1", "B"), "If-None-Exist", "birthdate=notadate"), http.StatusBadRequest)

	// conditional update: 0 matches creates, 1 updates, 2+ is 412
	r = srv.do("PUT", "/Patient?identifier=urn:kap:test|u1", patient("u1", "First"))
	if r.status != 201 {
		t.Fatalf("conditional update (create): %d %s", r.status, r.body)
	}
	uid := decode(t, r.body)["id"]
	r = srv.do("PUT", "/Patient?identifier=urn:kap:test|u1", patient("u1", "Second"))
	if r.status != 200 || decode(t, r.body)["id"] != uid || r.header.Get("ETag") != `W/"2"` {
		t.Errorf("conditional update (match): %d %s", r.status, r.body)
	}
	srv.do("POST", "/Patient", patient("dup", "X"))
	srv.do("POST", "/Patient", patient("dup", "Y"))
	assertOutcome(t, srv.do("PUT", "/Patient?identifier=urn:kap:test|dup", patient("dup", "Z")), http.StatusPreconditionFailed)
	assertOutcome(t, srv.do("POST", "/Patient", patient("dup", "Z"), "If-None-Exist", "identifier=urn:kap:test|dup"), http.StatusPreconditionFailed)
	assertOutcome(t, srv.do("PUT", "/Patient", patient("dup", "Z")), http.StatusMethodNotAllowed)

	// delete, then 410; history keeps every version
	if r := srv.do("DELETE", "/Patient/"+id, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	assertOutcome(t, srv.do("GET", "/Patient/"+id, nil), http.StatusGone)
	if r := srv.do("DELETE", "/Patient/"+id, nil); r.status != http.StatusNoContent {
		t.Errorf("second delete: %d", r.status)
	}
	assertOutcome(t, srv.do("DELETE", "/Patient/never-was", nil), http.StatusNotFound)
	r = srv.do("GET", "/Patient/"+id+"/_history", nil)
	h := decode(t, r.body)
	if r.status != 200 || h["type"] != "history" {
		t.Fatalf("history: %d %s", r.status, r.body)
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
	r = srv.do("POST", "/Patient", patient("a1", "Again"), "If-None-Exist", "identifier=urn:kap:test|a1")
	if r.status != 201 {
		t.Errorf("conditional create after delete: %d", r.status)
	}
	assertOutcome(t, srv.do("GET", "/Patient/nope/_history", nil), http.StatusNotFound)
}

func TestErrorsAreOperationOutcomes(t *testing.T) {
	srv := newTestServer(t, backends(t)[0].open(t))
	id := decode(t, srv.do("POST", "/Patient", patient("e", "E")).body)["id"].(string)
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		headers            []string
		status             int
	}{
		{"unknown type", "GET", "/Patients/1", nil, nil, 404},
		{"unknown id", "GET", "/Patient/nope", nil, nil, 404},
		{"unknown path", "GET", "/Patient/1/foo/bar/baz", nil, nil, 404},
		{"method not allowed", "PATCH", "/Patient/" + id, []byte(`[]`), nil, 405},
		{"delete on type", "DELETE", "/Patient", nil, nil, 405},
		{"unknown operation", "POST", "/Patient/$everything", []byte(`{}`), nil, 405},
		{"xml accept", "GET", "/Patient/" + id, nil, []string{"Accept", "application/fhir+xml"}, 406},
		{"xml format", "GET", "/Patient/" + id + "?_format=xml", nil, nil, 406},
		{"xml body", "POST", "/Patient", []byte(`<Patient/>`), []string{"Content-Type", "application/fhir+xml"}, 415},
		{"text body", "POST", "/Patient", []byte(`x`), []string{"Content-Type", "text/plain"}, 415},
		{"empty body", "POST", "/Patient", []byte{}, nil, 400},
		{"wrong type in body", "POST", "/Observation", patient("x", "y"), nil, 400},
		{"bad If-Match", "PUT", "/Patient/" + id, nil, []string{"If-Match", "abc"}, 400},
		{"stale If-Match", "DELETE", "/Patient/" + id, nil, []string{"If-Match", `W/"7"`}, 412},
		{"too large", "POST", "/Patient", make([]byte, 17<<20), nil, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertOutcome(t, srv.do(tc.method, tc.path, tc.body, tc.headers...), tc.status)
		})
	}
}

// faultyStore lets a test provoke the failures a healthy store never shows.
type faultyStore struct {
	search.Store
	readErr   error
	readPanic bool
	updateErr error
}

func (s faultyStore) Read(ctx context.Context, k fhir.Key) (fhir.Version, error) {
	if s.readPanic {
		panic("secret-internal-detail")
	}
	if s.readErr != nil {
		return fhir.Version{}, s.readErr
	}
	return s.Store.Read(ctx, k)
}

func (s faultyStore) Update(ctx context.Context, fn func(fhir.Tx) error) error {
	if s.updateErr != nil {
		return s.updateErr
	}
	return s.Store.Update(ctx, fn)
}

func TestFailuresDoNotLeak(t *testing.T) {
	base := backends(t)[0].open(t)
	t.Run("panic is a 500 without a stack", func(t *testing.T) {
		srv := newTestServer(t, faultyStore{Store: base, readPanic: true})
		r := srv.do("GET", "/Patient/x", nil)
		assertOutcome(t, r, 500)
		if strings.Contains(string(r.body), "secret-internal-detail") || strings.Contains(string(r.body), "goroutine") {
			t.Errorf("500 leaks the panic: %s", r.body)
		}
	})
	t.Run("storage error is a 500 without the cause", func(t *testing.T) {
		srv := newTestServer(t, faultyStore{Store: base, readErr: errors.New("dial tcp 10.1.2.3: password=hunter2")})
		r := srv.do("GET", "/Patient/x", nil)
		assertOutcome(t, r, 500)
		if strings.Contains(string(r.body), "hunter2") {
			t.Errorf("500 leaks the cause: %s", r.body)
		}
	})
	t.Run("lost version race is a 409", func(t *testing.T) {
		srv := newTestServer(t, faultyStore{Store: base, updateErr: fmt.Errorf("gave up: %w", fhir.ErrVersionConflict)})
		assertOutcome(t, srv.do("PUT", "/Patient/x", []byte(`{"resourceType":"Patient","id":"x"}`)), http.StatusConflict)
	})
	t.Run("business rule is a 422", func(t *testing.T) {
		srv := newTestServer(t, faultyStore{Store: base, updateErr: fhir.Errorf(fhir.IssueBusinessRule, "Patient", "refused by rule")})
		assertOutcome(t, srv.do("PUT", "/Patient/x", []byte(`{"resourceType":"Patient","id":"x"}`)), http.StatusUnprocessableEntity)
	})
}
