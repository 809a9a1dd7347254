package practice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/ig"
	"github.com/kapbridge/kapbridge/mappings/records"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// apiEnv is the practice API beside the FHIR API, one router, as serve
// wires them, over a real HTTP listener.
type apiEnv struct {
	url     string
	store   fhir.Store
	applier *records.Applier
}

// storeOpeners are the backends the HTTP tests run on: SQLite always,
// PostgreSQL when KAPBRIDGE_TEST_POSTGRES_DSN is set.
func storeOpeners(t *testing.T) map[string]func(t *testing.T) fhir.Store {
	m := map[string]func(t *testing.T) fhir.Store{"sqlite": func(t *testing.T) fhir.Store { return openTestStore(t) }}
	dsn := sqltest.PostgresDSN(t)
	if dsn == "" {
		t.Log("KAPBRIDGE_TEST_POSTGRES_DSN not set: the PostgreSQL half of the practice API tests is skipped")
		return m
	}
	m["postgres"] = func(t *testing.T) fhir.Store {
		if _, err := ig.Profiles(); err != nil {
			t.Fatal(err)
		}
		s, err := sqlstore.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return m
}

// forEachStore runs fn on every backend, each with a fresh environment.
// PostgreSQL is shared between runs, so each gets its own tenant.
func forEachStore(t *testing.T, cfg HTTPConfig, fn func(t *testing.T, e *apiEnv)) {
	for name, open := range storeOpeners(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			a := testApplier(s)
			if name == "postgres" {
				a.Tenant = "t" + server.NewUUID()
			}
			fn(t, newAPIEnv(t, s, a, cfg))
		})
	}
}

func newAPIEnv(t *testing.T, s fhir.Store, a *records.Applier, cfg HTTPConfig) *apiEnv {
	t.Helper()
	return newGatewayEnv(t, s, a, cfg, server.Config{})
}

// newGatewayEnv is newAPIEnv with the FHIR API's configuration (its
// store, conformance resources, APIs and, if unset, logger are the
// environment's).
func newGatewayEnv(t *testing.T, s fhir.Store, a *records.Applier, cfg HTTPConfig, scfg server.Config) *apiEnv {
	t.Helper()
	cfg.Applier = a
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	scfg.Store, scfg.Conformance, scfg.APIs = s, ig.Resources(), []server.API{NewAPI(cfg)}
	if scfg.Logger == nil {
		scfg.Logger = cfg.Logger
	}
	gateway := server.New(scfg)
	if err := gateway.SeedConformance(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gateway)
	t.Cleanup(srv.Close)
	return &apiEnv{url: srv.URL, store: s, applier: a}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// send makes one request. It returns an error rather than failing the
// test, so goroutines other than the test's own can call it.
func (e *apiEnv) send(method, path, contentType string, body []byte, header ...string) (answer, error) {
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{resp.StatusCode, resp.Header, b}, nil
}

// do makes one request from the test's goroutine, failing the test if
// there is no answer.
func (e *apiEnv) do(t *testing.T, method, path, contentType string, body []byte, header ...string) answer {
	t.Helper()
	a, err := e.send(method, path, contentType, body, header...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

func (e *apiEnv) post(t *testing.T, contentType string, body []byte, header ...string) answer {
	t.Helper()
	return e.do(t, http.MethodPost, pathRecords, contentType, body, header...)
}

func ingestBody(t *testing.T, a answer) IngestResponse {
	t.Helper()
	var r IngestResponse
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("answer %d is not an ingestion response: %v\n%s", a.status, err, a.body)
	}
	return r
}

type errorDoc struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []any  `json:"details"`
	} `json:"error"`
}

// wantError checks an answer is the API's JSON error with status and code.
func wantError(t *testing.T, a answer, status int, code string) errorDoc {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var d errorDoc
	if err := json.Unmarshal(a.body, &d); err != nil || d.Error.Code != code || d.Error.Message == "" {
		t.Fatalf("want error code %q with a message, got %s (%v)", code, a.body, err)
	}
	return d
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testdataPath("records", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// versions returns how many versions of a resource the store holds.
func versions(t *testing.T, s fhir.Store, tenant, typ, id string) int {
	t.Helper()
	h, err := s.History(context.Background(), fhir.Key{Tenant: tenant, Type: typ, ID: id}, 0)
	if err != nil {
		t.Fatalf("history %s/%s: %v", typ, id, err)
	}
	return len(h)
}

func TestPostOneRecord(t *testing.T) {
	forEachStore(t, HTTPConfig{}, func(t *testing.T, e *apiEnv) {
		a := e.post(t, "application/json", readTestdata(t, "client.json"))
		if a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		r := ingestBody(t, a)
		if len(r.Results) != 1 || r.Summary != (Summary{Records: 1, Created: 1}) {
			t.Fatalf("results %+v, summary %+v", r.Results, r.Summary)
		}
		res := r.Results[0]
		if res.Index != 0 || res.Line != 1 || res.Kind != mappings.KindClient || res.Status != records.StatusCreated {
			t.Errorf("result %+v", res)
		}
		var patient *records.ResourceRef
		for i, ref := range res.Resources {
			if ref.Type == "Patient" {
				patient = &res.Resources[i]
			}
		}
		if patient == nil || patient.Version != 1 || patient.ID != mappings.ResourceID("test-practice", mappings.KindClient, res.ID, "Patient") {
			t.Fatalf("no Patient version 1 among %+v", res.Resources)
		}
		if n := versions(t, e.store, tenantOf(e.applier), "Patient", patient.ID); n != 1 {
			t.Errorf("%d Patient versions, want 1", n)
		}
		// The same record again: unchanged, no new version.
		r = ingestBody(t, e.post(t, "application/json; charset=utf-8", readTestdata(t, "client.json")))
		if r.Summary != (Summary{Records: 1, Unchanged: 1}) {
			t.Errorf("again: summary %+v", r.Summary)
		}
		if n := versions(t, e.store, tenantOf(e.applier), "Patient", patient.ID); n != 1 {
			t.Errorf("again: %d Patient versions, want 1", n)
		}
	})
}

func TestPostArrayAndNDJSON(t *testing.T) {
	forEachStore(t, HTTPConfig{}, func(t *testing.T, e *apiEnv) {
		a := e.post(t, "application/json", readTestdata(t, "array.json"))
		r := ingestBody(t, a)
		if a.status != http.StatusOK || r.Summary.Records != 3 || r.Summary.Rejected != 0 {
			t.Fatalf("array: %d %+v", a.status, r.Summary)
		}
		for i, res := range r.Results {
			if res.Index != i || res.Line < 2 {
				t.Errorf("array result %d at index %d line %d", i, res.Index, res.Line)
			}
		}

		nd := readTestdata(t, "course-iv.ndjson")
		a = e.post(t, "application/x-ndjson", nd)
		r = ingestBody(t, a)
		lines := bytes.Count(bytes.TrimSpace(nd), []byte("\n")) + 1
		if a.status != http.StatusOK || r.Summary.Records != lines || r.Summary.Rejected != 0 || r.Summary.Pending != 0 {
			t.Fatalf("ndjson: %d %+v", a.status, r.Summary)
		}
		for i, res := range r.Results {
			if res.Line != i+1 {
				t.Fatalf("ndjson result %d on line %d, want %d", i, res.Line, i+1)
			}
			if res.Status != records.StatusCreated && res.Status != records.StatusUpdated && res.Status != records.StatusUnchanged {
				t.Errorf("line %d: %s %v", res.Line, res.Status, res.Errors)
			}
		}
	})
}

// TestPostMixed: bad records are answered one by one, with their line and
// the field at fault, and never stop the good ones.
func TestPostMixed(t *testing.T) {
	forEachStore(t, HTTPConfig{}, func(t *testing.T, e *apiEnv) {
		body := strings.Join([]string{
			`{"kind":"practitioner","id":"p-1","name":{"family":"Lind"},"role":"prescriber","credential":"MD"}`,
			`{"kind":"client","id":"c-1","name":{"family":"Okafor"},"birth_date":"1984-03-17","shoe_size":42}`,
			``,
			`{"kind":"client","id":"c-2","name":{"family":"Okafor"},"birth_date":"1984-13-17"}`,
			`not json at all`,
			`{"kind":"spaceship","id":"x"}`,
			`{"kind":"course","id":"k-1","client":"c-9","prescriber":"p-1","therapist":"p-1","indications":["trd"],"route":"iv","planned":{"preparation":1,"dosing":1,"integration":1},"status":"active","start":"2026-01-05"}`,
			`{"kind":"client","id":"c-3","name":{"family":"Moreno"},"birth_date":"1990-01-01"}`,
		}, "\n")
		a := e.post(t, "application/x-ndjson", []byte(body))
		if a.status != http.StatusMultiStatus {
			t.Fatalf("status %d, want 207: %s", a.status, a.body)
		}
		r := ingestBody(t, a)
		want := []struct {
			line   int
			status string
			field  string
		}{
			{1, records.StatusCreated, ""},
			{2, records.StatusRejected, "shoe_size"},
			{4, records.StatusRejected, "birth_date"},
			{5, records.StatusRejected, ""},
			{6, records.StatusRejected, "kind"},
			{7, records.StatusPending, ""},
			{8, records.StatusCreated, ""},
		}
		if len(r.Results) != len(want) {
			t.Fatalf("%d results, want %d: %s", len(r.Results), len(want), a.body)
		}
		for i, w := range want {
			got := r.Results[i]
			if got.Index != i || got.Line != w.line || got.Status != w.status {
				t.Errorf("result %d: index %d line %d status %s, want line %d status %s (%v)", i, got.Index, got.Line, got.Status, w.line, w.status, got.Errors)
			}
			if w.status == records.StatusRejected && len(got.Errors) == 0 {
				t.Errorf("line %d rejected without errors", w.line)
			}
			if w.field != "" && (len(got.Problems) == 0 || got.Problems[0].Field != w.field) {
				t.Errorf("line %d: problems %+v, want field %q", w.line, got.Problems, w.field)
			}
		}
		if p := r.Results[5].Pending; len(p) != 1 || p[0] != "client/c-9" {
			t.Errorf("pending course waits for %v, want [client/c-9]", p)
		}
		if r.Summary.Warnings = 0; r.Summary != (Summary{Records: 7, Created: 2, Pending: 1, Rejected: 4}) {
			t.Errorf("summary %+v", r.Summary)
		}
		// The good ones landed.
		if g := e.do(t, http.MethodGet, pathRecords+"/client/c-3", "", nil); g.status != http.StatusOK {
			t.Errorf("c-3 not stored: %d %s", g.status, g.body)
		}
		wantError(t, e.do(t, http.MethodGet, pathRecords+"/client/c-1", "", nil), http.StatusNotFound, codeNotFound)
	})
}

func TestPostRejectsBadRequests(t *testing.T) {
	forEachStore(t, HTTPConfig{MaxBodyBytes: 2048}, func(t *testing.T, e *apiEnv) {
		client := readTestdata(t, "client.json")
		d := wantError(t, e.post(t, "text/csv", client), http.StatusUnsupportedMediaType, codeUnsupportedMedia)
		if !strings.Contains(d.Error.Message, "application/json") || !strings.Contains(d.Error.Message, "application/x-ndjson") {
			t.Errorf("415 does not name the accepted types: %s", d.Error.Message)
		}
		wantError(t, e.post(t, "", client), http.StatusUnsupportedMediaType, codeUnsupportedMedia)
		wantError(t, e.post(t, "application/json; charset=latin1", client), http.StatusUnsupportedMediaType, codeUnsupportedMedia)

		big := append([]byte("["), bytes.Repeat(append(bytes.TrimSpace(client), ','), 10)...)
		big[len(big)-1] = ']'
		wantError(t, e.post(t, "application/json", big), http.StatusRequestEntityTooLarge, codeTooLarge)

		wantError(t, e.post(t, "application/json", nil), http.StatusBadRequest, codeEmptyBody)
		wantError(t, e.post(t, "application/x-ndjson", []byte(" \n\r\n")), http.StatusBadRequest, codeEmptyBody)
		wantError(t, e.post(t, "application/json", []byte("[]")), http.StatusBadRequest, codeNoRecords)

		// A truncated JSON document writes nothing, not even the records
		// before the break.
		trunc := `[{"kind":"client","id":"t-1","name":{"family":"A"},"birth_date":"1980-01-01"},` + "\n" + `{"kind":"client","id":"t-2"`
		d = wantError(t, e.post(t, "application/json", []byte(trunc)), http.StatusBadRequest, codeInvalidJSON)
		if !strings.Contains(d.Error.Message, "nothing was written") {
			t.Errorf("message %q", d.Error.Message)
		}
		wantError(t, e.do(t, http.MethodGet, pathRecords+"/client/t-1", "", nil), http.StatusNotFound, codeNotFound)
		d = wantError(t, e.post(t, "application/json", []byte("{\"kind\":\"client\",\n \"id\": oops}")), http.StatusBadRequest, codeInvalidJSON)
		if !strings.Contains(d.Error.Message, "line 2") {
			t.Errorf("syntax error without its line: %s", d.Error.Message)
		}
		wantError(t, e.post(t, "application/json", []byte(`{"kind":"client"} {"kind":"client"}`)), http.StatusBadRequest, codeInvalidJSON)
		wantError(t, e.post(t, "application/json", []byte(`"a string"`)), http.StatusBadRequest, codeInvalidJSON)

		wantError(t, e.post(t, "application/json", client, "Idempotency-Key", "has space"), http.StatusBadRequest, codeBadIdempotencyKey)

		// Routing answers in the same JSON shape.
		// (GET lists records: TestPendingListingAndFindings.)
		a := e.do(t, http.MethodDelete, pathRecords, "", nil)
		wantError(t, a, http.StatusMethodNotAllowed, codeMethodNotAllowed)
		if allow := a.header.Get("Allow"); !strings.Contains(allow, "POST") || !strings.Contains(allow, "GET") {
			t.Errorf("Allow %q", allow)
		}
		wantError(t, e.do(t, http.MethodDelete, pathRecords+"/client/x", "", nil), http.StatusMethodNotAllowed, codeMethodNotAllowed)
		wantError(t, e.do(t, http.MethodGet, "/practice/v2/things", "", nil), http.StatusNotFound, codeNotFound)
	})
}

func TestGetRecordAndSchema(t *testing.T) {
	forEachStore(t, HTTPConfig{}, func(t *testing.T, e *apiEnv) {
		if a := e.post(t, "application/x-ndjson", readTestdata(t, "course-iv.ndjson")); a.status != http.StatusOK {
			t.Fatalf("import: %d %s", a.status, a.body)
		}
		a := e.do(t, http.MethodGet, pathRecords+"/session/iv-s01-consultation", "", nil)
		if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %s", a.status, a.body)
		}
		var v RecordView
		if err := json.Unmarshal(a.body, &v); err != nil {
			t.Fatal(err)
		}
		if v.Kind != mappings.KindSession || v.ID != "iv-s01-consultation" || v.State != recordstore.StateMapped || len(v.Pending) != 0 {
			t.Errorf("view %+v", v)
		}
		rec, err := mappings.Decode(v.Record)
		if err != nil {
			t.Fatalf("the record as held does not decode: %v", err)
		}
		if s := rec.(*mappings.Session); s.Course != "iv-course" || s.Type != "consultation" {
			t.Errorf("record %+v", s)
		}
		enc := mappings.ResourceID("test-practice", mappings.KindSession, "iv-s01-consultation", "Encounter")
		found := false
		for _, ref := range v.Resources {
			if ref.Type == "Encounter" && ref.ID == enc {
				found = true
				cur, err := e.store.Read(context.Background(), fhir.Key{Tenant: tenantOf(e.applier), Type: "Encounter", ID: enc})
				if err != nil || cur.VersionID != ref.Version {
					t.Errorf("Encounter ref version %d, store has %d (%v)", ref.Version, cur.VersionID, err)
				}
			}
		}
		if !found {
			t.Errorf("no Encounter among %+v", v.Resources)
		}

		// A pending record shows what it waits for.
		e.post(t, "application/json", []byte(`{"kind":"note","id":"n-wait","session":"s-later","author":"iv-therapist","date":"2026-02-01","text":"x"}`))
		a = e.do(t, http.MethodGet, pathRecords+"/note/n-wait", "", nil)
		if err := json.Unmarshal(a.body, &v); err != nil || v.State != recordstore.StatePending || len(v.Pending) != 1 || v.Pending[0] != "session/s-later" || len(v.Resources) != 0 {
			t.Errorf("pending view %s (%v)", a.body, err)
		}

		wantError(t, e.do(t, http.MethodGet, pathRecords+"/session/nope", "", nil), http.StatusNotFound, codeNotFound)
		d := wantError(t, e.do(t, http.MethodGet, pathRecords+"/spaceship/x", "", nil), http.StatusNotFound, codeNotFound)
		if len(d.Error.Details) != len(mappings.Kinds) {
			t.Errorf("unknown kind: details %v should list the kinds", d.Error.Details)
		}

		a = e.do(t, http.MethodGet, pathSchema, "", nil)
		if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/schema+json" || !bytes.Equal(a.body, mappings.Schema()) {
			t.Errorf("schema: %d %q, %d bytes", a.status, a.header.Get("Content-Type"), len(a.body))
		}
	})
}

func TestIdempotencyKey(t *testing.T) {
	forEachStore(t, HTTPConfig{}, func(t *testing.T, e *apiEnv) {
		client := readTestdata(t, "client.json")
		patient := mappings.ResourceID("test-practice", mappings.KindClient, "iv-client", "Patient")
		var rec map[string]any
		if err := json.Unmarshal(client, &rec); err != nil {
			t.Fatal(err)
		}
		if rec["id"] != "iv-client" {
			t.Fatalf("client.json has id %v; the test assumes iv-client", rec["id"])
		}

		first := e.post(t, "application/json", client, "Idempotency-Key", "req-1")
		if first.status != http.StatusOK || first.header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("first: %d %v %s", first.status, first.header, first.body)
		}
		// The practice then changes the client under another key...
		rec["phone"] = "+1-503-555-0199"
		changed, _ := json.Marshal(rec)
		if a := e.post(t, "application/json", changed, "Idempotency-Key", "req-2"); a.status != http.StatusOK || ingestBody(t, a).Summary.Updated != 1 {
			t.Fatalf("change: %d %s", a.status, a.body)
		}
		// ...and its retry of the first request is answered from the
		// store: the same bytes, and no write (re-running it would make
		// a third Patient version, back to the old phone).
		again := e.post(t, "application/json", client, "Idempotency-Key", "req-1")
		if again.status != first.status || !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %q\nfirst %s\nagain %s", again.status, again.header.Get("Idempotent-Replayed"), first.body, again.body)
		}
		if n := versions(t, e.store, tenantOf(e.applier), "Patient", patient); n != 2 {
			t.Errorf("%d Patient versions, want 2 (create, change)", n)
		}

		// The same key for another body is a mistake the client hears of.
		d := wantError(t, e.post(t, "application/json", changed, "Idempotency-Key", "req-1"), http.StatusUnprocessableEntity, codeIdempotencyReused)
		if !strings.Contains(d.Error.Message, `"req-1"`) {
			t.Errorf("422 does not name the key: %s", d.Error.Message)
		}
		// Keys are per request outcome, not per status: a 207 is replayed too.
		bad := []byte(`{"kind":"client","id":"c-bad","name":{"family":"X"},"birth_date":"nope"}`)
		b1 := e.post(t, "application/json", bad, "Idempotency-Key", "req-3")
		b2 := e.post(t, "application/json", bad, "Idempotency-Key", "req-3")
		if b1.status != http.StatusMultiStatus || b2.status != b1.status || !bytes.Equal(b1.body, b2.body) || b2.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("207 replay: %d/%d", b1.status, b2.status)
		}
	})
}

// TestIdempotencyConcurrent: duplicates racing with one key run once; the
// others wait and get the same answer.
func TestIdempotencyConcurrent(t *testing.T) {
	forEachStore(t, HTTPConfig{}, func(t *testing.T, e *apiEnv) {
		body := readTestdata(t, "course-iv.ndjson")
		const n = 6
		answers := make([]answer, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := e.send(http.MethodPost, pathRecords, "application/x-ndjson", body, "Idempotency-Key", "race")
				if err != nil {
					t.Errorf("request %d: %v", i, err) // not Fatal: this is not the test's goroutine
				}
				answers[i] = a
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		ran := 0
		for i, a := range answers {
			if a.status != http.StatusOK || !bytes.Equal(a.body, answers[0].body) {
				t.Fatalf("answer %d: %d, differs from answer 0", i, a.status)
			}
			if a.header.Get("Idempotent-Replayed") == "" {
				ran++
			}
		}
		if ran != 1 {
			t.Errorf("%d requests ran, want 1", ran)
		}
		if r := ingestBody(t, answers[0]); r.Summary.Unchanged != 0 || r.Summary.Rejected != 0 {
			t.Errorf("the answer is not of the one run that wrote: %+v", r.Summary)
		}
	})
}

// TestIdempotencyBusy: a duplicate that outwaits IdempotencyWait gets 409.
func TestIdempotencyBusy(t *testing.T) {
	l := newKeyLocks()
	unlock, err := l.lock(context.Background(), "k", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.lock(context.Background(), "k", 20*time.Millisecond); err != errKeyBusy {
		t.Fatalf("second lock: %v, want errKeyBusy", err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := l.lock(context.Background(), "k", 5*time.Second)
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	if (&apiError{Code: codeIdempotencyPending}).status() != http.StatusConflict {
		t.Error("a busy key is not a 409")
	}
}

// flakyStore fails the store transactions it is told to, as a full disk
// or a lost database connection would.
type flakyStore struct {
	search.Store
	recordStore
	mu       sync.Mutex
	failNext int // fail this many Update calls from now on
}

func (s *flakyStore) Update(ctx context.Context, fn func(tx fhir.Tx) error) error {
	s.mu.Lock()
	fail := s.failNext > 0
	if fail {
		s.failNext--
	}
	s.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	return s.Store.Update(ctx, fn)
}

// TestStorageFailure: a store failure is a 500 in the JSON error shape,
// with no cause leaked; its answer is not kept for the idempotency key,
// so the retry runs and finishes the work.
func TestStorageFailure(t *testing.T) {
	base := openTestStore(t)
	fs := &flakyStore{Store: base.(search.Store), recordStore: base.(recordStore)}
	e := newAPIEnv(t, fs, testApplier(fs), HTTPConfig{})
	body := readTestdata(t, "array.json")
	fs.failNext = 1
	d := wantError(t, e.post(t, "application/json", body, "Idempotency-Key", "k-500"), http.StatusInternalServerError, codeStorage)
	if strings.Contains(d.Error.Message, "disk full") {
		t.Errorf("the cause reached the client: %s", d.Error.Message)
	}
	a := e.post(t, "application/json", body, "Idempotency-Key", "k-500")
	if a.status != http.StatusOK || a.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry: %d replayed=%q %s", a.status, a.header.Get("Idempotent-Replayed"), a.body)
	}
	// array.json's course names a therapist it does not carry: pending.
	if r := ingestBody(t, a); r.Summary.Created != 2 || r.Summary.Pending != 1 {
		t.Errorf("retry: %+v", r.Summary)
	}
}

// FuzzDecodeBody: whatever the body, splitting it into records never
// panics, and every record it yields has a position.
func FuzzDecodeBody(f *testing.F) {
	for _, name := range []string{"client.json", "array.json", "course-iv.ndjson"} {
		b, err := os.ReadFile(testdataPath("records", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte("\xef\xbb\xbf[{\"kind\":\"client\"}\n,\n{}]"), false)
	f.Add([]byte("{\"kind\":\"client\"}\r\n\r\nnot json\n[1]"), true)
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		mt := mimeJSON
		if ndjson {
			mt = mimeNDJSON
		}
		recs, aerr := decodeBody(mt, body)
		if aerr != nil {
			if len(recs) != 0 || aerr.status() != http.StatusBadRequest {
				t.Fatalf("error %v with %d records", aerr, len(recs))
			}
			return
		}
		for i, d := range recs {
			if d.Line < 1 || (d.Record == nil) == (d.Err == nil) {
				t.Fatalf("record %d: line %d, rec %v, err %v", i, d.Line, d.Record, d.Err)
			}
		}
	})
}

// TestPostReadLikeImport: a request body is read by the import reader, so
// a record that is not valid UTF-8 (which encoding/json would quietly
// change to U+FFFD) is rejected by itself, on its line, as in a file.
func TestPostReadLikeImport(t *testing.T) {
	forEachStore(t, HTTPConfig{}, func(t *testing.T, e *apiEnv) {
		body := `{"kind":"client","id":"c-1","name":{"family":"Okafor"},"birth_date":"1984-03-17"}` + "\n" +
			`{"kind":"client","id":"c-2","name":{"family":"M` + "\xff" + `ller"},"birth_date":"1990-01-01"}` + "\n"
		a := e.post(t, "application/x-ndjson", []byte(body))
		r := ingestBody(t, a)
		if a.status != http.StatusMultiStatus || len(r.Results) != 2 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if got := r.Results[1]; got.Line != 2 || got.Status != records.StatusRejected || len(got.Errors) != 1 || !strings.Contains(got.Errors[0], "invalid UTF-8") {
			t.Errorf("the non-UTF-8 record: %+v", got)
		}
		if r.Results[0].Status != records.StatusCreated {
			t.Errorf("the good record: %+v", r.Results[0])
		}
	})
}
