package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// TestPracticeTenants runs `kapbridge serve` with two practices, the
// default one (a) and beta (b), each with a client holding practice-api:
//
//   - the practice API: each practice writes and reads its own records,
//     even under the same record id; a record of the other practice is
//     404; the FHIR resources the records map to are in the writer's
//     tenant only (404 and empty searches for the other);
//   - the conformance resources the gateway ships, stored in the default
//     practice, are read and searched by beta's clients too (Questionnaire,
//     StructureDefinition, CodeSystem, ValueSet; directly and in a Bundle),
//     read-only, within the client's own scopes, and without reaching
//     the default practice's clinical data through _revinclude, _has or
//     _include.
func TestPracticeTenants(t *testing.T) {
	for name, newStore := range serveStores(t) {
		t.Run(name, func(t *testing.T) { runPracticeTenants(t, newStore(t)) })
	}
}

func runPracticeTenants(t *testing.T, store string) {
	ca := addClient(t, store, "a", smart.ES384, "default", "system/*.cruds "+practiceScope)
	cb := addClient(t, store, "b", smart.ES384, "beta", "system/*.cruds "+practiceScope)
	cbPatients := addClient(t, store, "b-patients", smart.ES384, "beta", "system/Patient.rs")
	base, _ := startServeCtl(t, store, freeAddr(t))
	aTok, bTok := ca.token(t, base, "system/*.cruds "+practiceScope), cb.token(t, base, "system/*.cruds "+practiceScope)
	bpTok := cbPatients.token(t, base, "system/Patient.rs")
	g := &gatewayProc{base: base}
	send := func(tok, method, path, body string) answer {
		h := map[string]string{"Authorization": "Bearer " + tok}
		if strings.HasPrefix(path, "/practice/") && method == "POST" {
			h["Content-Type"] = "application/json"
		}
		return g.do(t, method, path, h, body)
	}
	client := func(id, family string) string {
		return `{"kind":"client","id":"` + id + `","name":{"family":"` + family + `","given":["Sam"]},"birth_date":"1980-01-02","sex":"female"}`
	}
	patientOf := func(a answer) string {
		t.Helper()
		m := regexp.MustCompile(`"type":"Patient","id":"([A-Za-z0-9.\-]+)"`).FindStringSubmatch(string(a.body))
		if m == nil {
			t.Fatalf("no Patient in the ingest answer: %s", a.body)
		}
		return m[1]
	}

	// The same record id in both practices: two records, two patients.
	ra := send(aTok, "POST", "/practice/v1/records", client("c1", "Alphaname"))
	rb := send(bTok, "POST", "/practice/v1/records", client("c1", "Betaname"))
	if ra.status != 200 || rb.status != 200 {
		t.Fatalf("ingest: a %d %s; b %d %s", ra.status, ra.body, rb.status, rb.body)
	}
	pa, pb := patientOf(ra), patientOf(rb)
	rb2 := send(bTok, "POST", "/practice/v1/records", client("c2", "Betaonly"))
	if rb2.status != 200 {
		t.Fatalf("ingest b c2: %d %s", rb2.status, rb2.body)
	}
	pb2 := patientOf(rb2)
	for _, tc := range []struct {
		name, tok, path string
		want            int
		has, hasNot     string
	}{
		{"a reads its record", aTok, "/practice/v1/records/client/c1", 200, "Alphaname", "Betaname"},
		{"b reads its record, same id", bTok, "/practice/v1/records/client/c1", 200, "Betaname", "Alphaname"},
		{"a reads b's record", aTok, "/practice/v1/records/client/c2", 404, "", "Betaonly"},
		{"a's pending listing", aTok, "/practice/v1/records?state=pending", 200, "", "Beta"},
		{"b reads its patient", bTok, "/Patient/" + pb2, 200, "Betaonly", "Alphaname"},
		{"a reads b's patient", aTok, "/Patient/" + pb2, 404, "", "Betaonly"},
		{"b reads a's patient", bTok, "/Patient/" + pa, 404, "", "Alphaname"},
		{"a searches b's patients", aTok, "/Patient?family=Betaonly", 200, "", `"entry"`},
		{"b searches a's patients", bTok, "/Patient?family=Alphaname", 200, "", `"entry"`},
		{"b searches its own", bTok, "/Patient?family=Betaonly", 200, `"entry"`, "Alphaname"},
	} {
		a := send(tc.tok, "GET", tc.path, "")
		if a.status != tc.want || tc.has != "" && !strings.Contains(string(a.body), tc.has) || tc.hasNot != "" && strings.Contains(string(a.body), tc.hasNot) {
			t.Errorf("%s: GET %s = %d %.300s; want %d with %q, without %q", tc.name, tc.path, a.status, a.body, tc.want, tc.has, tc.hasNot)
		}
	}
	if pa == pb {
		// Same id in two tenants is allowed; then each must still read its own.
		if a := send(bTok, "GET", "/Patient/"+pb, ""); a.status != 200 || !strings.Contains(string(a.body), "Betaname") {
			t.Errorf("b's patient %s: %d %.300s", pb, a.status, a.body)
		}
	}

	// A clinical resource of the default practice that names a shared
	// Questionnaire: beta must not reach it through the Questionnaire.
	qr := `{"resourceType":"QuestionnaireResponse","id":"qr-a","status":"completed","questionnaire":"Questionnaire/phq-9","subject":{"reference":"Patient/` + pa + `"},"item":[{"linkId":"secret","text":"Alphasecret"}]}`
	if a := send(aTok, "PUT", "/QuestionnaireResponse/qr-a", qr); a.status != 201 {
		t.Fatalf("seed QuestionnaireResponse: %d %s", a.status, a.body)
	}
	entries := func(body []byte) int {
		var b struct {
			Entry []json.RawMessage `json:"entry"`
		}
		_ = json.Unmarshal(body, &b)
		return len(b.Entry)
	}
	for _, p := range []string{"/Questionnaire/phq-9", "/Questionnaire/phq-9/_history/1", "/StructureDefinition/kap-careplan", "/CodeSystem/kap-check", "/ValueSet/kap-careplan-category"} {
		if a := send(bTok, "GET", p, ""); a.status != 200 {
			t.Errorf("beta reads the shared %s: %d %.300s", p, a.status, a.body)
		}
	}
	for _, p := range []string{"/Questionnaire", "/Questionnaire?_id=gad-7", "/StructureDefinition?_count=3", "/CodeSystem?url=http://kapbridge.org/fhir/CodeSystem/kap-check"} {
		if a := send(bTok, "GET", p, ""); a.status != 200 || entries(a.body) == 0 {
			t.Errorf("beta searches the shared %s: %d, %d entries %.300s", p, a.status, entries(a.body), a.body)
		}
	}
	bundle := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Questionnaire/phq-9"}},{"request":{"method":"GET","url":"Patient/` + pb2 + `"}}]}`
	if a := send(bTok, "POST", "/", bundle); a.status != 200 || strings.Count(string(a.body), `"200 OK"`) != 2 {
		t.Errorf("beta's batch reading a shared Questionnaire and its own patient: %d %.600s", a.status, a.body)
	}
	for _, tc := range []struct {
		name, tok, method, path, body string
		want                          int
	}{
		{"beta writes a shared type", bTok, "PUT", "/Questionnaire/mine", `{"resourceType":"Questionnaire","id":"mine","status":"draft"}`, 403},
		{"beta creates a shared type", bTok, "POST", "/ValueSet", `{"resourceType":"ValueSet","status":"draft"}`, 403},
		{"beta deletes a shared resource", bTok, "DELETE", "/Questionnaire/phq-9", "", 403},
		{"beta writes a shared type in a transaction", bTok, "POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"CodeSystem","status":"draft","content":"not-present"},"request":{"method":"POST","url":"CodeSystem"}}]}`, 403},
		{"_revinclude from the shared Questionnaire into the default practice", bTok, "GET", "/Questionnaire?_id=phq-9&_revinclude=QuestionnaireResponse:questionnaire", "", 403},
		{"_has from the shared Questionnaire into the default practice", bTok, "GET", "/Questionnaire?_has:QuestionnaireResponse:questionnaire:status=completed", "", 403},
		{"beta's client without Questionnaire scope", bpTok, "GET", "/Questionnaire/phq-9", "", 403},
		{"beta's QuestionnaireResponse search stays in beta", bTok, "GET", "/QuestionnaireResponse?questionnaire=Questionnaire/phq-9", "", 200},
		{"beta's QuestionnaireResponse read of a's", bTok, "GET", "/QuestionnaireResponse/qr-a", "", 404},
	} {
		a := send(tc.tok, tc.method, tc.path, tc.body)
		if a.status != tc.want || strings.Contains(string(a.body), "Alphasecret") || tc.want >= 400 && !strings.Contains(string(a.body), "OperationOutcome") {
			t.Errorf("%s: %s %s = %d %.400s; want %d, nothing of the default practice's data", tc.name, tc.method, tc.path, a.status, a.body, tc.want)
		}
	}
	// The default practice's own clients are unaffected.
	if a := send(aTok, "GET", "/QuestionnaireResponse/qr-a", ""); a.status != 200 || !strings.Contains(string(a.body), "Alphasecret") {
		t.Errorf("the default practice reading its own response: %d %.300s", a.status, a.body)
	}
	if a := send(aTok, "GET", "/Questionnaire?_id=phq-9&_revinclude=QuestionnaireResponse:questionnaire", ""); a.status != 200 {
		t.Errorf("the default practice's _revinclude of its own responses: %d %.300s", a.status, a.body)
	}
}
