package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// Conformance resources of a made-up publisher: the server must treat
// whatever it is given this way, not only kapbridge's own artifacts.
const (
	confBase    = "http://conformance.example.org/fhir"
	confProfile = confBase + "/StructureDefinition/test-session-obs"
	confCS      = `{"resourceType":"CodeSystem","id":"test-kind","url":"` + confBase + `/CodeSystem/test-kind","version":"0.1.0","name":"TestKind","status":"active","content":"complete",
		"concept":[{"code":"dissociation","display":"Dissociation"},{"code":"nausea","display":"Nausea"}]}`
	confVS = `{"resourceType":"ValueSet","id":"test-kind","url":"` + confBase + `/ValueSet/test-kind","version":"0.1.0","name":"TestKind","status":"active",
		"compose":{"include":[{"system":"` + confBase + `/CodeSystem/test-kind"}]}}`
	confQ = `{"resourceType":"Questionnaire","id":"test-q","url":"` + confBase + `/Questionnaire/test-q","version":"0.1.0","name":"TestQ","status":"active",
		"item":[{"linkId":"1","type":"boolean","text":"?"}]}`
	confSD = `{"resourceType":"StructureDefinition","id":"test-session-obs","url":"` + confProfile + `","version":"0.1.0","name":"TestSessionObs","status":"active",
		"kind":"resource","abstract":false,"type":"Observation","baseDefinition":"http://hl7.org/fhir/StructureDefinition/Observation","derivation":"constraint",
		"snapshot":{"element":[{"id":"Observation","path":"Observation","min":0,"max":"*"},
		{"id":"Observation.subject","path":"Observation.subject","min":1,"max":"1","type":[{"code":"Reference","targetProfile":["http://hl7.org/fhir/StructureDefinition/Patient"]}]},
		{"id":"Observation.code","path":"Observation.code","min":1,"max":"1","type":[{"code":"CodeableConcept"}],
		 "binding":{"strength":"required","valueSet":"` + confBase + `/ValueSet/test-kind"}}]}}`

	confObs = `{"resourceType":"Observation","meta":{"profile":["` + confProfile + `"]},"status":"final",
		"code":{"coding":[{"system":"` + confBase + `/CodeSystem/test-kind","code":"nausea"}]},"subject":{"reference":"Patient/p1"}}`
)

var confDocs = [][]byte{[]byte(confCS), []byte(confVS), []byte(confQ), []byte(confSD)}

func newConformanceServer(t *testing.T, st fhir.Store, docs [][]byte) (*testServer, *server.Server) {
	var h *server.Server
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	h = server.New(server.Config{Store: st, BaseURL: ts.URL, Conformance: docs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &testServer{ts, t}, h
}

func searchTotal(t *testing.T, srv *testServer, path string) (int, map[string]any) {
	t.Helper()
	r := srv.do("GET", path, nil)
	if r.status != 200 {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	b := r.json(t)
	entries, _ := b["entry"].([]any)
	return len(entries), b
}

// The artifacts are served by the ordinary read and search interactions.
func TestConformanceServed(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			srv, _ := newConformanceServer(t, b.open(t), confDocs)
			if n, _ := searchTotal(t, srv, "/StructureDefinition?url="+url.QueryEscape(confProfile)); n != 1 {
				t.Errorf("StructureDefinition?url=: %d entries", n)
			}
			if n, _ := searchTotal(t, srv, "/Questionnaire?url="+url.QueryEscape(confBase+"/Questionnaire/test-q")); n != 1 {
				t.Errorf("Questionnaire?url=: %d entries", n)
			}
			r := srv.do("GET", "/CodeSystem/test-kind", nil)
			if r.status != 200 {
				t.Fatalf("read CodeSystem: %d %s", r.status, r.body)
			}
			if got, want := withoutServerMeta(decode(t, r.body)), withoutServerMeta(decode(t, []byte(confCS))); !jsonEqual(got, want) {
				t.Errorf("served CodeSystem differs:\n%v\n%v", got, want)
			}
			r = srv.do("GET", "/metadata", nil)
			if !strings.Contains(string(r.body), `"supportedProfile":["`+confProfile+`"]`) {
				t.Errorf("CapabilityStatement lacks the profile: %.300s", r.body)
			}
		})
	}
}

// Seeding adds versions only for what changed, so restarts do not grow
// the history; a changed artifact becomes a new version.
func TestConformanceSeedIdempotent(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			_, h := newConformanceServer(t, st, confDocs)
			if err := h.SeedConformance(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, h2 := newConformanceServer(t, st, confDocs)
			if err := h2.SeedConformance(context.Background()); err != nil {
				t.Fatal(err)
			}
			changed := [][]byte{[]byte(strings.Replace(confCS, `"display":"Nausea"`, `"display":"Nausea or vomiting"`, 1)), []byte(confVS)}
			srv3, _ := newConformanceServer(t, st, changed)
			for path, want := range map[string]int{"/CodeSystem/test-kind/_history": 2, "/ValueSet/test-kind/_history": 1, "/Questionnaire/test-q/_history": 1} {
				if n, _ := searchTotal(t, srv3, path); n != want {
					t.Errorf("%s: %d versions, want %d", path, n, want)
				}
			}
		})
	}
}

// No client write changes an artifact or publishes under its base.
func TestConformanceReadOnly(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			srv, _ := newConformanceServer(t, b.open(t), confDocs)
			foreign := `{"resourceType":"CodeSystem","id":"other","url":"` + confBase + `/CodeSystem/other","status":"draft","content":"not-present"}`
			tests := []struct{ method, path, body string }{
				{"PUT", "/CodeSystem/test-kind", strings.Replace(confCS, `"Nausea"`, `"Sick"`, 1)},
				{"DELETE", "/CodeSystem/test-kind", ""},
				{"DELETE", "/StructureDefinition/test-session-obs", ""},
				{"POST", "/CodeSystem", foreign},
				{"PUT", "/CodeSystem/other", foreign},
				{"PUT", "/CodeSystem?url=" + url.QueryEscape(confBase+"/CodeSystem/test-kind"), strings.Replace(confCS, `"id":"test-kind",`, "", 1)},
				{"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + confQ + `,"request":{"method":"PUT","url":"Questionnaire/test-q"}}]}`},
				{"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"ValueSet/test-kind"}}]}`},
			}
			for _, tc := range tests {
				var body []byte
				if tc.body != "" {
					body = []byte(tc.body)
				}
				r := srv.do(tc.method, tc.path, body)
				assertOutcome(t, r, http.StatusForbidden)
			}
			// A batch answers per entry.
			r := srv.do("POST", "/", []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"DELETE","url":"ValueSet/test-kind"}}]}`))
			if r.status != 200 || !strings.Contains(string(r.body), `"status":"403`) {
				t.Errorf("batch delete of an artifact: %d %.400s", r.status, r.body)
			}
			if n, _ := searchTotal(t, srv, "/CodeSystem/test-kind/_history"); n != 1 {
				t.Errorf("the artifact has %d versions after refused writes", n)
			}
			// Other canonical resources are ordinary.
			ok := `{"resourceType":"CodeSystem","url":"http://elsewhere.example.org/CodeSystem/x","status":"draft","content":"not-present"}`
			if r := srv.do("POST", "/CodeSystem", []byte(ok)); r.status != 201 {
				t.Errorf("create of another publisher's CodeSystem: %d %s", r.status, r.body)
			}
		})
	}
}

// A write that claims a registered profile must meet it (422 with the
// element's issue otherwise), in every write path; an unknown profile is
// not a reason to refuse.
func TestConformanceProfilesEnforced(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			srv, _ := newConformanceServer(t, b.open(t), confDocs)
			if r := srv.do("POST", "/Observation", []byte(confObs)); r.status != 201 {
				t.Fatalf("valid create: %d %s", r.status, r.body)
			}
			noSubject := strings.Replace(confObs, `,"subject":{"reference":"Patient/p1"}`, "", 1)
			badCode := strings.Replace(confObs, `"code":"nausea"`, `"code":"joy"`, 1)
			group := strings.Replace(confObs, `Patient/p1`, `Group/g1`, 1)
			for _, tc := range []struct {
				name, method, path, body string
				code, expr               string
			}{
				{"create missing", "POST", "/Observation", noSubject, "required", "Observation.subject"},
				{"create code", "POST", "/Observation", badCode, "code-invalid", "Observation.code"},
				{"update target", "PUT", "/Observation/o1", strings.Replace(group, `"resourceType":"Observation",`, `"resourceType":"Observation","id":"o1",`, 1), "invalid", "Observation.subject"},
				{"transaction", "POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:6f1c0b1e-1b1e-4b1e-8b1e-1b1e1b1e1b1e","resource":` + noSubject + `,"request":{"method":"POST","url":"Observation"}}]}`, "required", "Bundle.entry[0].resource.subject"},
			} {
				r := srv.do(tc.method, tc.path, []byte(tc.body))
				issues := assertOutcome(t, r, http.StatusUnprocessableEntity)
				found := false
				for _, is := range issues {
					m := is.(map[string]any)
					if m["code"] == tc.code && fmt.Sprint(m["expression"]) == "["+tc.expr+"]" {
						found = true
					}
				}
				if !found {
					t.Errorf("%s: want %s at %s; got %s", tc.name, tc.code, tc.expr, r.body)
				}
			}
			unknown := strings.Replace(confObs, confProfile, "http://example.org/unknown-profile", 1)
			if r := srv.do("POST", "/Observation", []byte(strings.Replace(unknown, `,"subject":{"reference":"Patient/p1"}`, "", 1))); r.status != 201 {
				t.Errorf("unknown profile: %d %s", r.status, r.body)
			}
			// $validate reports the same issues, with 200.
			r := srv.do("POST", "/Observation/$validate", []byte(noSubject))
			if r.status != 200 || !strings.Contains(string(r.body), `"Observation.subject"`) {
				t.Errorf("$validate: %d %s", r.status, r.body)
			}
		})
	}
}
