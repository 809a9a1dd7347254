package fhirtest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// The gateway's own conformance resources (server.Config.Conformance):
// served by the ordinary interactions, seeded once, read-only, and their
// profiles enforced on every write path. The resources are a made-up
// publisher's, so the server is held to treating whatever it is given
// this way, not only kapbridge's own artifacts.

// ConformanceGateway starts a gateway over st whose own conformance
// resources are docs, stopped when t ends, and returns it with the
// function that stores the resources now (as a gateway does at startup).
type ConformanceGateway func(t *testing.T, st fhir.Store, docs [][]byte) (g *Gateway, seed func(context.Context) error)

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
		"snapshot":{"element":[{"id":"Observation","path":"Observation","definition":"A test observation.","min":0,"max":"*","base":{"path":"Observation","min":0,"max":"*"}},
		{"id":"Observation.subject","path":"Observation.subject","definition":"Who.","min":1,"max":"1","base":{"path":"Observation.subject","min":0,"max":"1"},"type":[{"code":"Reference","targetProfile":["http://hl7.org/fhir/StructureDefinition/Patient"]}]},
		{"id":"Observation.code","path":"Observation.code","definition":"What.","min":1,"max":"1","base":{"path":"Observation.code","min":1,"max":"1"},"type":[{"code":"CodeableConcept"}],
		 "binding":{"strength":"required","valueSet":"` + confBase + `/ValueSet/test-kind"}}]}}`

	confObs = `{"resourceType":"Observation","meta":{"profile":["` + confProfile + `"]},"status":"final",
		"code":{"coding":[{"system":"` + confBase + `/CodeSystem/test-kind","code":"nausea"}]},"subject":{"reference":"Patient/p1"}}`
)

var confDocs = [][]byte{[]byte(confCS), []byte(confVS), []byte(confQ), []byte(confSD)}

// RunConformanceSuite runs the conformance-resource tests on gateways
// over stores from open; subtests run in parallel, each on its own store.
func RunConformanceSuite(t *testing.T, open StoreOpener, newGateway ConformanceGateway) {
	runCases(t, []suiteCase[confEnv]{
		{"Served", confTestServed},
		{"SeedIdempotent", confTestSeedIdempotent},
		{"ReadOnly", confTestReadOnly},
		{"ProfilesEnforced", confTestProfilesEnforced},
	}, func(t *testing.T) confEnv { return confEnv{open(t), newGateway} }, nil)
}

// confEnv is a test's store, and how to start gateways over it.
type confEnv struct {
	st         fhir.Store
	newGateway ConformanceGateway
}

// client is a client of a new gateway over the store holding docs.
func (e confEnv) client(t *testing.T, docs [][]byte) *apiClient {
	g, _ := e.newGateway(t, e.st, docs)
	return newAPIClient(t, g)
}

// searchCount GETs path (a search or a history) and returns how many
// entries its first page has.
func searchCount(t *testing.T, c *apiClient, path string) int {
	t.Helper()
	r := c.do("GET", path, nil)
	if r.status != 200 {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	return len(entriesOf(decode(t, r.body)))
}

// The artifacts are served by the ordinary read and search interactions.
func confTestServed(t *testing.T, e confEnv) {
	c := e.client(t, confDocs)
	if n := searchCount(t, c, "/StructureDefinition?url="+url.QueryEscape(confProfile)); n != 1 {
		t.Errorf("StructureDefinition?url=: %d entries", n)
	}
	if n := searchCount(t, c, "/Questionnaire?url="+url.QueryEscape(confBase+"/Questionnaire/test-q")); n != 1 {
		t.Errorf("Questionnaire?url=: %d entries", n)
	}
	r := c.do("GET", "/CodeSystem/test-kind", nil)
	if r.status != 200 {
		t.Fatalf("read CodeSystem: %d %s", r.status, r.body)
	}
	if got, want := withoutServerMeta(decode(t, r.body)), withoutServerMeta(decode(t, []byte(confCS))); !jsonEqual(got, want) {
		t.Errorf("served CodeSystem differs:\n%v\n%v", got, want)
	}
	r = c.do("GET", "/metadata", nil)
	if !strings.Contains(string(r.body), `"supportedProfile":["`+confProfile+`"]`) {
		t.Errorf("CapabilityStatement lacks the profile: %.300s", r.body)
	}
}

// Seeding adds versions only for what changed, so restarts do not grow
// the history; a changed artifact becomes a new version.
func confTestSeedIdempotent(t *testing.T, e confEnv) {
	for range 2 {
		if _, seed := e.newGateway(t, e.st, confDocs); seed != nil {
			if err := seed(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	changed := [][]byte{[]byte(strings.Replace(confCS, `"display":"Nausea"`, `"display":"Nausea or vomiting"`, 1)), []byte(confVS)}
	c := e.client(t, changed)
	for path, want := range map[string]int{"/CodeSystem/test-kind/_history": 2, "/ValueSet/test-kind/_history": 1, "/Questionnaire/test-q/_history": 1} {
		if n := searchCount(t, c, path); n != want {
			t.Errorf("%s: %d versions, want %d", path, n, want)
		}
	}
}

// No client write changes an artifact or publishes under its base.
func confTestReadOnly(t *testing.T, e confEnv) {
	c := e.client(t, confDocs)
	foreign := `{"resourceType":"CodeSystem","id":"other","url":"` + confBase + `/CodeSystem/other","status":"draft","content":"not-present"}`
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/CodeSystem/test-kind", strings.Replace(confCS, `"Nausea"`, `"Sick"`, 1)},
		{"DELETE", "/CodeSystem/test-kind", ""},
		{"DELETE", "/StructureDefinition/test-session-obs", ""},
		{"POST", "/CodeSystem", foreign},
		{"PUT", "/CodeSystem/other", foreign},
		{"PUT", "/CodeSystem?url=" + url.QueryEscape(confBase+"/CodeSystem/test-kind"), strings.Replace(confCS, `"id":"test-kind",`, "", 1)},
		{"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + confQ + `,"request":{"method":"PUT","url":"Questionnaire/test-q"}}]}`},
		{"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"ValueSet/test-kind"}}]}`},
	} {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		assertOutcome(t, c.do(tc.method, tc.path, body), http.StatusForbidden)
	}
	// A batch answers per entry.
	r := c.do("POST", "/", []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"DELETE","url":"ValueSet/test-kind"}}]}`))
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"403`) {
		t.Errorf("batch delete of an artifact: %d %.400s", r.status, r.body)
	}
	if n := searchCount(t, c, "/CodeSystem/test-kind/_history"); n != 1 {
		t.Errorf("the artifact has %d versions after refused writes", n)
	}
	// Other canonical resources are ordinary.
	ok := `{"resourceType":"CodeSystem","url":"http://elsewhere.example.org/CodeSystem/x","status":"draft","content":"not-present"}`
	if r := c.do("POST", "/CodeSystem", []byte(ok)); r.status != 201 {
		t.Errorf("create of another publisher's CodeSystem: %d %s", r.status, r.body)
	}
}

// A write that claims a registered profile must meet it (422 with the
// element's issue otherwise), in every write path; an unknown profile is
// not a reason to refuse.
func confTestProfilesEnforced(t *testing.T, e confEnv) {
	c := e.client(t, confDocs)
	if r := c.do("POST", "/Observation", []byte(confObs)); r.status != 201 {
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
		r := c.do(tc.method, tc.path, []byte(tc.body))
		found := false
		for _, is := range assertOutcome(t, r, http.StatusUnprocessableEntity) {
			m := is.(map[string]any)
			found = found || m["code"] == tc.code && fmt.Sprint(m["expression"]) == "["+tc.expr+"]"
		}
		if !found {
			t.Errorf("%s: want %s at %s; got %s", tc.name, tc.code, tc.expr, r.body)
		}
	}
	unknown := strings.Replace(confObs, confProfile, "http://example.org/unknown-profile", 1)
	if r := c.do("POST", "/Observation", []byte(strings.Replace(unknown, `,"subject":{"reference":"Patient/p1"}`, "", 1))); r.status != 201 {
		t.Errorf("unknown profile: %d %s", r.status, r.body)
	}
	// $validate reports the same issues, with 200.
	r := c.do("POST", "/Observation/$validate", []byte(noSubject))
	if r.status != 200 || !strings.Contains(string(r.body), `"Observation.subject"`) {
		t.Errorf("$validate: %d %s", r.status, r.body)
	}
}
