package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestPsychotherapyNotesWithheld: to the public audience a resource
// labelled PSYTHPN does not exist: reads answer exactly as for an unknown
// id (no ETag, no Last-Modified), searches and histories leave it out
// without a word, and writes aimed at it change nothing. The side-by-side
// comparison with a gateway that never held the note is
// cmd/kapbridge TestPrivacyTable; this is the per-store unit view.
func TestPsychotherapyNotesWithheld(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			srv := newTestServer(t, b.open(t))
			const marker = "SECRET-SESSION-CONTENT-42"
			srv.do(http.MethodPut, "/Patient/p", []byte(`{"resourceType":"Patient","id":"p"}`))
			note := `{"resourceType":"DocumentReference","id":"n1","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]},"identifier":[{"system":"urn:notes","value":"n1"}],"status":"current","subject":{"reference":"Patient/p"},"description":"` + marker + `","content":[{"attachment":{"contentType":"text/plain","title":"` + marker + `"}}]}`
			if r := srv.do(http.MethodPut, "/DocumentReference/n1", []byte(note)); r.status != 201 {
				t.Fatalf("store note: %d %s", r.status, r.body)
			}
			other := `{"resourceType":"DocumentReference","id":"d2","status":"current","subject":{"reference":"Patient/p"},"content":[{"attachment":{"contentType":"text/plain","title":"visit summary"}}]}`
			srv.do(http.MethodPut, "/DocumentReference/d2", []byte(other))

			for _, path := range []string{"/DocumentReference/n1", "/DocumentReference/n1/_history/1", "/DocumentReference/n1/_history"} {
				r := srv.do(http.MethodGet, path, nil)
				unknown := srv.do(http.MethodGet, strings.Replace(path, "n1", "n9", 1), nil)
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
				r := srv.do(http.MethodGet, path, nil)
				if r.status != 200 {
					t.Errorf("%s: %d %s", path, r.status, r.body)
					continue
				}
				for _, leak := range []string{marker, `"id":"n1"`, "DocumentReference/n1", "withheld", "PSYTHPN"} {
					if strings.Contains(string(r.body), leak) {
						t.Errorf("%s shows %q: %s", path, leak, r.body)
					}
				}
			}
			if r := srv.do(http.MethodGet, "/Patient?_has:DocumentReference:subject:description=SECRET", nil); strings.Contains(string(r.body), `"Patient/p"`) || strings.Contains(string(r.body), `"id":"p"`) {
				t.Errorf("_has over a note finds its patient: %s", r.body)
			}
			if r := srv.do(http.MethodGet, "/DocumentReference?subject=Patient/p", nil); !strings.Contains(string(r.body), `"id":"d2"`) {
				t.Errorf("the ordinary document is missing: %s", r.body)
			}

			// Writes aimed at the note: the update and the conditional
			// create by its identifier are refused alike, whatever the
			// version precondition; the delete answers as for an unknown id.
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
				r := srv.do(w.method, w.path, body, w.headers...)
				assertOutcome(t, r, w.status)
				if strings.Contains(string(r.body), "version") || strings.Contains(string(r.body), "PSYTHPN") {
					t.Errorf("%s %s %v says too much: %s", w.method, w.path, w.headers, r.body)
				}
			}
			// Nothing was written: the note's history still has one version
			// (read with the store's eyes: vread 2 is as unknown as ever,
			// and the one ordinary document is still the only match).
			if r := srv.do(http.MethodGet, "/DocumentReference?_total=accurate", nil); !strings.Contains(string(r.body), `"total":1`) {
				t.Errorf("after the refused writes: %s", r.body)
			}
		})
	}
}
