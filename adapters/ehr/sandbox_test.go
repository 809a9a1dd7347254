package ehr

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// sandboxServer is kapbridge's FHIR API on the in-memory store, behind the
// capability filter of a statement, over real HTTP.
type sandboxServer struct {
	t     *testing.T
	url   string
	inner http.Handler // the API without the filter, to seed data
}

func startSandbox(t *testing.T, statement []byte) *sandboxServer {
	t.Helper()
	caps := mustReadCapabilities(t, statement)
	var h http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	api := server.New(server.Config{Store: memstore.New(), BaseURL: ts.URL, Logger: slog.New(slog.DiscardHandler)})
	h = CapabilityFilter(caps)(api)
	return &sandboxServer{t: t, url: ts.URL, inner: api}
}

type sandboxAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a sandboxAnswer) outcome(t *testing.T) string {
	t.Helper()
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code        string   `json:"code"`
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(a.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("not an OperationOutcome: %s", a.body)
	}
	return oo.Issue[0].Code + ": " + oo.Issue[0].Diagnostics + " @" + strings.Join(oo.Issue[0].Expression, ",")
}

func (s *sandboxServer) do(method, path, body string, header ...string) sandboxAnswer {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return sandboxAnswer{res.StatusCode, res.Header, b}
}

// seed writes a resource through the API behind the filter.
func (s *sandboxServer) seed(method, path, body string) {
	s.t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	s.inner.ServeHTTP(rec, req)
	if rec.Code >= 300 {
		s.t.Fatalf("seed %s %s: %d %s", method, path, rec.Code, rec.Body)
	}
}

const (
	observationJSON = `{"resourceType":"Observation","status":"final","code":{"text":"heart rate"},"valueQuantity":{"value":72,"unit":"/min"}}`
	carePlanJSON    = `{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/p1"}}`
)

func qrJSON(id string) string {
	idPart := ""
	if id != "" {
		idPart = `"id":"` + id + `",`
	}
	return `{"resourceType":"QuestionnaireResponse",` + idPart + `"status":"completed","questionnaire":"http://kapbridge.org/fhir/Questionnaire/phq-9"}`
}

func bundleJSON(typ string, entries ...string) string {
	return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
}

func postEntry(typ, resource string) string {
	return `{"resource":` + resource + `,"request":{"method":"POST","url":"` + typ + `"}}`
}

// wantRefused checks a 405 whose OperationOutcome names what and the EHR.
func wantRefused(t *testing.T, a sandboxAnswer, ehr string, what ...string) {
	t.Helper()
	if a.status != http.StatusMethodNotAllowed {
		t.Fatalf("status %d, want 405: %s", a.status, a.body)
	}
	oo := a.outcome(t)
	if !strings.HasPrefix(oo, "not-supported: ") || !strings.Contains(oo, ehr) {
		t.Errorf("outcome %q does not name %q", oo, ehr)
	}
	for _, w := range what {
		if !strings.Contains(oo, w) {
			t.Errorf("outcome %q does not name %q", oo, w)
		}
	}
}

func wantHTTPStatus(t *testing.T, a sandboxAnswer, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
}

func createdID(t *testing.T, a sandboxAnswer) string {
	t.Helper()
	wantHTTPStatus(t, a, http.StatusCreated)
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(a.body, &r); err != nil || r.ID == "" {
		t.Fatalf("no id in %s", a.body)
	}
	return r.ID
}

func TestSandboxEpic(t *testing.T) {
	statement := ehrFixture(t, epicFile)
	s := startSandbox(t, statement)
	const epic = "Epic May 2026"

	// The statement served is Epic's, byte for byte.
	meta := s.do("GET", "/metadata", "")
	wantHTTPStatus(t, meta, http.StatusOK)
	if !bytes.Equal(meta.body, statement) || !strings.HasPrefix(meta.header.Get("Content-Type"), "application/fhir+json") {
		t.Error("GET /metadata does not serve the Epic statement")
	}

	refused := s.do("POST", "/CarePlan", carePlanJSON)
	wantRefused(t, refused, epic, "create on CarePlan", "POST /CarePlan")
	if refused.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow %q", refused.header.Get("Allow"))
	}
	id := createdID(t, s.do("POST", "/Observation", observationJSON))

	wantHTTPStatus(t, s.do("GET", "/Observation/"+id, ""), http.StatusOK)
	wantHTTPStatus(t, s.do("GET", "/Observation?code=8867-4", ""), http.StatusOK)
	wantHTTPStatus(t, s.do("POST", "/Observation/_search", "code=8867-4", "Content-Type", "application/x-www-form-urlencoded"), http.StatusOK)
	wantHTTPStatus(t, s.do("GET", "/Patient/p1/Observation", ""), http.StatusOK) // compartment: Observation search
	wantRefused(t, s.do("GET", "/Observation/"+id+"/_history/1", ""), epic, "vread on Observation")
	wantRefused(t, s.do("GET", "/Observation/"+id+"/_history", ""), epic, "history-instance on Observation")
	wantRefused(t, s.do("GET", "/Observation/_history", ""), epic, "history-type on Observation")
	wantRefused(t, s.do("GET", "/_history", ""), epic, "history-system")
	wantRefused(t, s.do("DELETE", "/Observation/"+id, ""), epic, "delete on Observation")
	// Update of an existing Observation: declared.
	upd := strings.Replace(observationJSON, `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+id+`",`, 1)
	wantHTTPStatus(t, s.do("PUT", "/Observation/"+id, upd), http.StatusOK)
	// Update as create: updateCreate is false.
	wantRefused(t, s.do("PUT", "/Observation/new-one", strings.Replace(upd, id, "new-one", 1)), epic, "updateCreate", "Observation/new-one")
	// Conditional forms: not declared.
	wantRefused(t, s.do("PUT", "/Observation?identifier=urn:x|1", observationJSON), epic, "conditional update on Observation")
	wantRefused(t, s.do("POST", "/Observation", observationJSON, "If-None-Exist", "identifier=urn:x|1"), epic, "conditional create on Observation")
	wantRefused(t, s.do("DELETE", "/Observation?identifier=urn:x|1", ""), epic, "delete on Observation")
	// Types and operations.
	wantRefused(t, s.do("POST", "/Flag", `{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`), epic, "create on Flag")
	wantHTTPStatus(t, s.do("GET", "/Flag", ""), http.StatusOK)
	wantRefused(t, s.do("GET", "/Provenance?target=Observation/"+id, ""), epic, "search-type on Provenance")
	wantRefused(t, s.do("GET", "/Subscription", ""), epic, "does not list Subscription")
	wantRefused(t, s.do("POST", "/Observation/$validate", observationJSON), epic, "operation $validate on Observation")
	wantRefused(t, s.do("GET", "/Patient/p1/$everything", ""), epic, "operation $everything on Patient")
	// Bundles: neither transaction nor batch.
	wantRefused(t, s.do("POST", "/", bundleJSON("batch", postEntry("Observation", observationJSON))), epic, "does not declare batch")
	wantRefused(t, s.do("POST", "/", bundleJSON("transaction", postEntry("Observation", observationJSON))), epic, "does not declare transaction")
	// Not interactions: the API answers.
	wantHTTPStatus(t, s.do("GET", "/NoSuchType", ""), http.StatusNotFound)
	if a := s.do("POST", "/", `{"resourceType":"Patient"}`); a.status != http.StatusBadRequest {
		t.Errorf("a non-Bundle POST / should reach the API: %d %s", a.status, a.body)
	}
}

func TestSandboxOracle(t *testing.T) {
	s := startSandbox(t, ehrFixture(t, oracleFile))
	const oracle = "Oracle Health"

	wantRefused(t, s.do("POST", "/QuestionnaireResponse", qrJSON("")), oracle, "create on QuestionnaireResponse")
	// The EHR updates a QuestionnaireResponse it holds.
	s.seed("PUT", "/QuestionnaireResponse/qr1", qrJSON("qr1"))
	wantHTTPStatus(t, s.do("PUT", "/QuestionnaireResponse/qr1", qrJSON("qr1")), http.StatusOK)
	// It cannot be made to hold a new one by update (updateCreate false).
	wantRefused(t, s.do("PUT", "/QuestionnaireResponse/qr2", qrJSON("qr2")), oracle, "updateCreate", "QuestionnaireResponse/qr2")

	wantRefused(t, s.do("POST", "/MedicationAdministration", `{"resourceType":"MedicationAdministration","status":"completed","medicationCodeableConcept":{"text":"ketamine"},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-01-15T10:00:00Z"}`),
		oracle, "create on MedicationAdministration")
	createdID(t, s.do("POST", "/Provenance", `{"resourceType":"Provenance","target":[{"reference":"Patient/p1"}],"recorded":"2026-01-15T10:00:00Z","agent":[{"who":{"display":"kapbridge"}}]}`))

	// Batch only: a transaction is refused, a batch of declared entries
	// goes through, a batch with one undeclared entry is refused, naming it.
	wantRefused(t, s.do("POST", "/", bundleJSON("transaction", postEntry("Observation", observationJSON))), oracle, "does not declare transaction", "@Bundle.type")
	ok := s.do("POST", "/", bundleJSON("batch", postEntry("Observation", observationJSON), postEntry("Observation", observationJSON)))
	wantHTTPStatus(t, ok, http.StatusOK)
	if !strings.Contains(string(ok.body), `"batch-response"`) {
		t.Errorf("batch answered %s", ok.body)
	}
	wantRefused(t, s.do("POST", "/", bundleJSON("batch", postEntry("Observation", observationJSON), postEntry("CarePlan", carePlanJSON))),
		oracle, "create on CarePlan", "entry 1 of the batch", "@Bundle.entry[1].request")
	wantRefused(t, s.do("POST", "/", bundleJSON("batch",
		`{"resource":`+qrJSON("qr3")+`,"request":{"method":"PUT","url":"QuestionnaireResponse/qr3"}}`)),
		oracle, "updateCreate", "entry 0 of the batch")
	wantRefused(t, s.do("POST", "/", bundleJSON("batch",
		`{"request":{"method":"GET","url":"Observation?identifier=urn:x|1"}}`, `{"request":{"method":"GET","url":"Observation/_history"}}`)),
		oracle, "history-type on Observation", "entry 1")
}

// TestSandboxFull: with kapbridge's own statement nothing is refused.
func TestSandboxFull(t *testing.T) {
	s := startSandbox(t, kapbridgeStatement(t))
	id := createdID(t, s.do("POST", "/CarePlan", carePlanJSON))
	wantHTTPStatus(t, s.do("GET", "/CarePlan/"+id+"/_history/1", ""), http.StatusOK)
	wantHTTPStatus(t, s.do("PUT", "/CarePlan?identifier=urn:x|1", strings.Replace(carePlanJSON, `"status"`, `"identifier":[{"system":"urn:x","value":"1"}],"status"`, 1)), http.StatusCreated)
	wantHTTPStatus(t, s.do("PUT", "/QuestionnaireResponse/qr9", qrJSON("qr9")), http.StatusCreated)
	wantHTTPStatus(t, s.do("POST", "/", bundleJSON("transaction", postEntry("Flag", `{"resourceType":"Flag","status":"active","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`))), http.StatusOK)
	wantHTTPStatus(t, s.do("GET", "/_history", ""), http.StatusOK)
	wantHTTPStatus(t, s.do("DELETE", "/CarePlan/"+id, ""), http.StatusNoContent)
}

// TestClassify maps requests to interactions.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		method, path, query, ifNoneExist string
		want                             string // name(), or "-" for no interaction
	}{
		{"GET", "/", "", "", "search-system"},
		{"GET", "/_search", "", "", "search-system"},
		{"GET", "/_history", "", "", "history-system"},
		{"POST", "/$export", "", "", "system operation $export"},
		{"GET", "/Patient", "name=x", "", "search-type on Patient"},
		{"HEAD", "/Patient", "", "", "search-type on Patient"},
		{"POST", "/Patient/_search", "", "", "search-type on Patient"},
		{"GET", "/Patient/_history", "", "", "history-type on Patient"},
		{"POST", "/Patient", "", "", "create on Patient"},
		{"POST", "/Patient", "", "identifier=a|b", "conditional create on Patient"},
		{"PUT", "/Patient", "identifier=a|b", "", "conditional update on Patient"},
		{"PATCH", "/Patient", "identifier=a|b", "", "conditional patch on Patient"},
		{"DELETE", "/Patient", "identifier=a|b", "", "conditional delete on Patient"},
		{"DELETE", "/Patient", "", "", "-"},
		{"GET", "/Patient/1", "", "", "read on Patient"},
		{"PUT", "/Patient/1", "", "", "update on Patient"},
		{"PATCH", "/Patient/1", "", "", "patch on Patient"},
		{"DELETE", "/Patient/1", "", "", "delete on Patient"},
		{"POST", "/Patient/1", "", "", "-"},
		{"GET", "/Patient/$match", "", "", "operation $match on Patient"},
		{"GET", "/Patient/1/$everything", "", "", "operation $everything on Patient"},
		{"GET", "/Patient/1/_history", "", "", "history-instance on Patient"},
		{"GET", "/Patient/1/_history/2", "", "", "vread on Patient"},
		{"GET", "/Patient/1/Observation", "", "", "search-type on Observation"},
		{"GET", "/Patient/1/nothing", "", "", "-"},
		{"GET", "/metadatax", "", "", "-"},
		{"GET", "/schema/practice-record.schema.json", "", "", "-"},
		{"OPTIONS", "/Patient", "", "", "-"},
	} {
		q, _ := url.ParseQuery(tc.query)
		got := "-"
		if r, ok := classifyRequest(tc.method, tc.path, q, tc.ifNoneExist); ok {
			got = r.name()
		}
		if got != tc.want {
			t.Errorf("%s %s?%s: %q, want %q", tc.method, tc.path, tc.query, got, tc.want)
		}
	}
}

// TestSandboxProbeAsCaller: the existence check of an update asks the API
// as the caller (same Authorization), so an API behind auth answers it.
func TestSandboxProbeAsCaller(t *testing.T) {
	var probes []string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet {
			probes = append(probes, r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h := CapabilityFilter(mustReadCapabilities(t, ehrFixture(t, oracleFile)))(next)
	req := httptest.NewRequest(http.MethodPut, "/QuestionnaireResponse/q%201", strings.NewReader(qrJSON("q 1")))
	req.Header.Set("Authorization", "Bearer t")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed || len(probes) != 1 || probes[0] != "/QuestionnaireResponse/q 1" {
		t.Errorf("status %d, probes %q", rec.Code, probes)
	}
}
