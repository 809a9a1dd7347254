package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestPsychotherapyNotesWithheld: a resource labelled PSYTHPN is never
// disclosed by the API, by read, vread, search, include or history.
func TestPsychotherapyNotesWithheld(t *testing.T) {
	srv := newTestServer(t, backends(t)[0].open(t))
	const marker = "SECRET-SESSION-CONTENT-42"
	srv.do(http.MethodPut, "/Patient/p", []byte(`{"resourceType":"Patient","id":"p"}`))
	note := `{"resourceType":"DocumentReference","id":"n1","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]},"status":"current","subject":{"reference":"Patient/p"},"description":"` + marker + `","content":[{"attachment":{"contentType":"text/plain","title":"` + marker + `"}}]}`
	if r := srv.do(http.MethodPut, "/DocumentReference/n1", []byte(note)); r.status != 201 {
		t.Fatalf("store note: %d %s", r.status, r.body)
	}
	other := `{"resourceType":"DocumentReference","id":"d2","status":"current","subject":{"reference":"Patient/p"},"content":[{"attachment":{"contentType":"text/plain","title":"visit summary"}}]}`
	srv.do(http.MethodPut, "/DocumentReference/d2", []byte(other))

	for _, path := range []string{"/DocumentReference/n1", "/DocumentReference/n1/_history/1"} {
		r := srv.do(http.MethodGet, path, nil)
		assertOutcome(t, r, http.StatusForbidden)
		if strings.Contains(string(r.body), marker) {
			t.Errorf("%s leaks the note", path)
		}
	}
	for _, path := range []string{
		"/DocumentReference?subject=Patient/p",
		"/DocumentReference?_id=n1",
		"/Patient?_id=p&_revinclude=DocumentReference:subject",
		"/Patient/p/DocumentReference",
		"/Patient/p/$everything",
		"/DocumentReference/n1/_history",
		"/DocumentReference/_history",
		"/_history",
	} {
		r := srv.do(http.MethodGet, path, nil)
		if r.status != 200 {
			t.Errorf("%s: %d %s", path, r.status, r.body)
			continue
		}
		if strings.Contains(string(r.body), marker) {
			t.Errorf("%s leaks the note: %s", path, r.body)
		}
	}
	r := srv.do(http.MethodGet, "/DocumentReference?subject=Patient/p", nil)
	if !strings.Contains(string(r.body), "d2") || !strings.Contains(string(r.body), "withheld") {
		t.Errorf("search should return the ordinary document and say a note was withheld: %s", r.body)
	}
}
