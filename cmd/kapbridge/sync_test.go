package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/smart"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
)

const testMRN = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"

// syncSandbox is an Epic sandbox on loopback whose patients are seeded:
// the IM course's client once, the lozenge course's twice (ambiguous).
// wrap, where given, sees each request before the sandbox does.
func syncSandbox(t *testing.T, jwksFile string, wrap ...func(http.Handler) http.Handler) (string, fhir.Store) {
	t.Helper()
	data, err := os.ReadFile(jwksFile)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := smart.ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	scopes, _ := smart.ParseScopes("system/*.cruds")
	st := memstore.New()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hh http.Handler = h
		for _, wr := range wrap {
			hh = wr(hh)
		}
		hh.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h, err = ehr.NewSandbox(ehr.SandboxConfig{Profile: "epic", BaseURL: srv.URL, Store: st, Logger: slog.New(slog.DiscardHandler),
		Clients: smart.Clients{"kapbridge": {ID: "kapbridge", JWKS: jwks, Scopes: scopes}}})
	if err != nil {
		t.Fatal(err)
	}
	for id, mrn := range map[string]string{"ehr-im": "KC-20917", "ehr-loz-a": "KC-30055", "ehr-loz-b": "KC-30055"} {
		p, _ := fhir.ParseJSON([]byte(`{"resourceType":"Patient","identifier":[{"system":"`+testMRN+`","value":"`+mrn+`"}]}`), fhir.StoredLimits)
		k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: id}
		if err := st.Update(t.Context(), func(tx fhir.Tx) error {
			_, err := (write.Writer{}).Put(t.Context(), tx, k, fhir.Version{Key: k}, p)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return srv.URL, st
}

func countType(t *testing.T, st fhir.Store, typ string) int {
	t.Helper()
	n := 0
	for _, v := range dumpVersions(t, st) {
		if v.Type == typ && !v.Deleted {
			n++
		}
	}
	return n
}

// dumpVersions is every version the (sandbox's) store holds.
func dumpVersions(t *testing.T, st fhir.Store) []fhir.Version {
	t.Helper()
	hp := st.(search.HistoryPager)
	var out []fhir.Version
	var cur *search.Cursor
	for {
		r, err := hp.HistoryPage(t.Context(), fhir.DefaultTenant, search.HistoryQuery{Count: 1000, Cursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.Versions...)
		if cur = r.Next; cur == nil {
			return out
		}
	}
}

// TestSyncCommands drives the EHR commands in-process against a sandbox
// over loopback, with a key made by `keys generate`: import two courses,
// `ehr add`, `ehr list|show|plan`, `sync run --once` (one client linked
// by MRN, one waiting because two EHR patients carry its MRN, listed by
// `sync status` with the reason), `ehr link`, then everything delivered;
// `serve --sync` serves the connection's JWKS and sends a FHIR API write
// to the EHR by itself.
func TestSyncCommands(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kb.db")
	env := map[string]string{"KAPBRIDGE_STORE": db, "KAPBRIDGE_PRACTICE": "acme-kap"}
	getenv := func(k string) string { return env[k] }
	try := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), args, getenv, strings.NewReader(""), &out, &out)
		return out.String(), err
	}
	cmd := func(args ...string) string {
		t.Helper()
		out, err := try(args...)
		if err != nil {
			t.Fatalf("kapbridge %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	key := filepath.Join(dir, "epic.pem")
	cmd("keys", "generate", "--alg", "ES384", "--out", key)
	base, ehrStore := syncSandbox(t, filepath.Join(dir, "epic.jwks.json"))
	cmd("import", filepath.Join("..", "..", "testdata", "import", "course-im.json"), filepath.Join("..", "..", "testdata", "import", "course-lozenge.json"))
	out := cmd("ehr", "add", "epic", "--base", base, "--client-id", "kapbridge", "--key", key, "--scopes", "system/*.cruds", "--mrn-system", testMRN,
		"--recipient", "im-prescriber")
	if !strings.Contains(out, "/ehr/epic/jwks.json") {
		t.Errorf("ehr add: %s", out)
	}
	if out := cmd("ehr", "list"); !strings.Contains(out, "epic") || !strings.Contains(out, base) {
		t.Errorf("ehr list: %s", out)
	}
	if out := cmd("ehr", "show", "epic"); !strings.Contains(out, testMRN) || !strings.Contains(out, "Practitioner/") {
		t.Errorf("ehr show: %s", out)
	}
	if out := cmd("ehr", "plan", "epic"); !strings.Contains(out, "CarePlan") || !strings.Contains(out, "DocumentReference") {
		t.Errorf("ehr plan: %s", out)
	}
	out = cmd("sync", "run", "--once")
	if !strings.Contains(out, "0 dead") || !strings.Contains(out, "patients waiting for a link (1)") || !strings.Contains(out, "2 patients on the EHR carry MRN "+testMRN+"|KC-30055") {
		t.Fatalf("sync run --once:\n%s", out)
	}
	if !strings.Contains(out, "held back by the privacy gate (") {
		t.Errorf("sync status lists no process notes held back:\n%s", out)
	}
	if st := cmd("sync", "status"); !strings.Contains(st, "kapbridge ehr link epic") {
		t.Errorf("sync status does not say how to link:\n%s", st)
	}
	imObs := countType(t, ehrStore, "Observation")
	if imObs == 0 {
		t.Fatal("nothing of the linked client reached the EHR")
	}
	cmd("ehr", "link", "epic", "loz-client", "ehr-loz-b")
	out = cmd("sync", "run", "--once")
	if !strings.Contains(out, "0 pending") || strings.Contains(out, "patients waiting") || !strings.Contains(out, "0 dead") {
		t.Fatalf("after ehr link, sync run --once:\n%s", out)
	}
	if n := countType(t, ehrStore, "Observation"); n <= imObs {
		t.Errorf("the linked client's Observations did not go: %d then %d", imObs, n)
	}
	for _, v := range dumpVersions(t, ehrStore) {
		if v.Type == "Observation" && strings.Contains(string(v.JSON), "Patient/ehr-loz-a") {
			t.Fatalf("an Observation went to the patient that was not confirmed: %s", v.JSON)
		}
	}

	// Inbound: the prescriber records a heart rate on the EHR, and edits
	// an Observation the gateway wrote there (the practice owns it).
	inboundRoundTrip(t, cmd, try, ehrStore, base, key, db)

	// serve --sync: the JWKS at its stable URL, and a write through the
	// FHIR API reaches the EHR without another command.
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", addr, "--sync", "--sync-inbound", "200ms"}, getenv, strings.NewReader(""), io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	gw := "http://" + addr
	var resp *http.Response
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if resp, err = http.Get(gw + "/ehr/epic/jwks.json"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not start")
		}
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pub, _ := os.ReadFile(filepath.Join(dir, "epic.jwks.json"))
	var a, b any
	json.Unmarshal(body, &a)
	json.Unmarshal(pub, &b)
	if resp.StatusCode != 200 || !reflect.DeepEqual(a, b) {
		t.Errorf("GET /ehr/epic/jwks.json = %d %s; want %s", resp.StatusCode, body, pub)
	}
	if resp, err := http.Get(gw + "/ehr/nope/jwks.json"); err != nil || resp.StatusCode != 404 {
		t.Errorf("JWKS of no connection: %v %v", resp, err)
	}
	imPatient := mappings.ResourceID("acme-kap", mappings.KindClient, "im-client", "Patient")
	obs := `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
	"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}],"text":"heart rate"},"subject":{"reference":"Patient/` + imPatient + `"},
	"effectiveDateTime":"2026-03-01T10:00:00Z","valueQuantity":{"value":71,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},
	"identifier":[{"system":"http://kapbridge.org/fhir/NamingSystem/practice/acme-kap/observation","value":"api-hr-1"}]}`
	// The API needs a token (issue 14); the JWK Set above did not.
	writer := addClient(t, db, "sync-writer", "ES384", fhir.DefaultTenant, "system/Observation.cruds")
	req, _ := http.NewRequest(http.MethodPost, gw+"/Observation", strings.NewReader(obs))
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+writer.token(t, gw, "system/Observation.cruds"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST Observation: %v %v %s", resp.Status, err, b)
	}
	resp.Body.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		found := false
		for _, v := range dumpVersions(t, ehrStore) {
			if v.Type == "Observation" && strings.Contains(string(v.JSON), "api-hr-1") && strings.Contains(string(v.JSON), "Patient/ehr-im") {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serve --sync did not send the FHIR API's write to the EHR")
		}
	}

	// serve --sync polls inbound too: a heart rate the EHR records comes
	// into the gateway, read back through the FHIR API.
	ehrHR := `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
	"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/ehr-im"},
	"effectiveDateTime":"2026-04-26T12:10:00-05:00","valueQuantity":{"value":61,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	ehrSender(t, base, key)(http.MethodPost, "Observation", []byte(ehrHR))
	tok := writer.token(t, gw, "system/Observation.cruds")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, gw+"/Observation?subject=Patient/"+imPatient+"&code=http://loinc.org|8867-4&_count=1000", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && strings.Contains(string(b), `"value":61`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve --sync did not bring the EHR's heart rate in: %d %.400s", resp.StatusCode, b)
		}
	}
}

// inboundRoundTrip writes, on the sandbox EHR, a vitals Observation of the
// linked IM client's EHR patient and an edit of a practice-owned
// Observation the gateway delivered; `sync run --once` must take the
// first in as a practice record and record the second as a conflict that
// `sync status` lists with both sides.
func inboundRoundTrip(t *testing.T, cmd func(...string) string, try func(...string) (string, error), ehrStore fhir.Store, base, key, db string) {
	t.Helper()
	ownSys := mappings.NSPracticeRecordIDs + "/acme-kap/observation"
	var own map[string]any
	var ownKey fhir.Key
	var latest time.Time
	for _, v := range dumpVersions(t, ehrStore) {
		if v.Type != "Observation" || v.Deleted || !strings.Contains(string(v.JSON), "Patient/ehr-im") || !strings.Contains(string(v.JSON), ownSys) ||
			!strings.Contains(string(v.JSON), `"valueQuantity"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(v.JSON, &m); err != nil {
			t.Fatal(err)
		}
		// The latest: Epic is polled by clinical date, from the newest
		// taken back by an overlap, so the edit must fall in that window.
		vq, _ := m["valueQuantity"].(map[string]any)
		if _, ok := vq["value"].(float64); !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339, fmt.Sprint(m["effectiveDateTime"]))
		if err == nil && at.After(latest) {
			own, ownKey, latest = m, v.Key, at
		}
	}
	if own == nil {
		t.Fatal("no practice Observation with a value of the IM client on the EHR")
	}
	when, _ := own["effectiveDateTime"].(string)
	// Written over HTTP as the EHR's own client would (the sandbox keeps
	// its search index on its write path).
	send := ehrSender(t, base, key)
	hr := `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
	"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/ehr-im"},
	"effectiveDateTime":"` + when + `","valueQuantity":{"value":93,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	hrID := send(http.MethodPost, "Observation", []byte(hr))
	// A glucose reading: no practice record carries it, so it comes back
	// and is not used; sync status lists it with the reason.
	glucoseID := send(http.MethodPost, "Observation", []byte(strings.NewReplacer(`"8867-4","display":"Heart rate"`, `"2339-0","display":"Glucose"`,
		`"value":93,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"`, `"value":98,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"`).Replace(hr)))
	// The EHR's edit: another value, and its own meta (no gateway tag).
	delete(own, "meta")
	vq := own["valueQuantity"].(map[string]any)
	practiceValue := vq["value"].(float64)
	vq["value"] = practiceValue + 17
	data, _ := json.Marshal(own)
	send(http.MethodPut, "Observation/"+ownKey.ID, data)

	out := cmd("sync", "run", "--once")
	if !strings.Contains(out, "Observation/"+hrID+"/_history/1: applied") {
		t.Errorf("the EHR's heart rate was not taken in:\n%s", out)
	}
	if !strings.Contains(out, "Observation/"+ownKey.ID+"/_history/") || !strings.Contains(out, ": conflict") {
		t.Errorf("the EHR's edit of a practice Observation is no conflict:\n%s", out)
	}
	// In the gateway: a heart rate of 93 for the IM client's Patient.
	gw, err := sqlstore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	imPatient := mappings.ResourceID("acme-kap", mappings.KindClient, "im-client", "Patient")
	found := false
	for _, v := range dumpVersions(t, gw) {
		if v.Type == "Observation" && !v.Deleted && strings.Contains(string(v.JSON), `"value":93`) && strings.Contains(string(v.JSON), "Patient/"+imPatient) {
			found = true
		}
	}
	gw.Close()
	if !found {
		t.Error("the EHR's heart rate is not an Observation of the client in the gateway")
	}
	st := cmd("sync", "status")
	if !strings.Contains(st, "inbound conflicts (1)") || !strings.Contains(st, "Observation/"+ownKey.ID) || !strings.Contains(st, "owned by the practice") {
		t.Errorf("sync status does not list the conflict:\n%s", st)
	}
	if !strings.Contains(st, "inbound resources not used (") || !strings.Contains(st, "epic Observation/"+glucoseID+"/_history/1: kept: ") {
		t.Errorf("sync status does not list the glucose reading that was not used, with its reason:\n%s", st)
	}

	// An EHR that refuses everything (polled first: connections go by
	// name) fails the run, and the other is still polled. (A refused
	// connection would do the same after the client's retries, 15 s.)
	broken := httptest.NewServer(http.NotFoundHandler())
	defer broken.Close()
	cmd("ehr", "add", "down", "--base", broken.URL, "--client-id", "kapbridge", "--key", key, "--scopes", "system/*.cruds", "--mrn-system", testMRN)
	hr2ID := send(http.MethodPost, "Observation", []byte(strings.Replace(hr, `"value":93`, `"value":88`, 1)))
	out, err = try("sync", "run", "--once")
	if err == nil || !strings.Contains(err.Error(), "down") {
		t.Errorf("sync run --once with an EHR down: err %v", err)
	}
	if !strings.Contains(out, "Observation/"+hr2ID+"/_history/1: applied") || !strings.Contains(out, "down ("+broken.URL+"): ") {
		t.Errorf("an EHR down stopped the other's inbound poll:\n%s", out)
	}
	cmd("ehr", "remove", "down")

	// What came in from the EHR is not sent back to it: after another
	// run, the EHR still holds one heart rate of 93 (its own), not a
	// second copy written by the gateway.
	cmd("sync", "run", "--once")
	copies := 0
	for _, v := range dumpVersions(t, ehrStore) {
		if v.Type == "Observation" && !v.Deleted && strings.Contains(string(v.JSON), `"value":93`) {
			copies++
		}
	}
	if copies != 1 {
		t.Errorf("the EHR holds %d heart rates of 93 after the gateway took its own in, want 1 (no echo written back)", copies)
	}

	// The conflict went the practice's way, and the runs since wrote the
	// practice's value back over the EHR's edit; taking that version in
	// again is an echo, no second conflict.
	cur, err := ehrStore.Read(t.Context(), ownKey)
	if err != nil {
		t.Fatal(err)
	}
	var now map[string]any
	json.Unmarshal(cur.JSON, &now)
	if v, _ := now["valueQuantity"].(map[string]any)["value"].(float64); v != practiceValue {
		t.Errorf("after the conflict the EHR's Observation/%s holds %v, want the practice's %v written back", ownKey.ID, v, practiceValue)
	}
	if st := cmd("sync", "status"); !strings.Contains(st, "inbound conflicts (1)") || !strings.Contains(st, "writes the practice's version over it") {
		t.Errorf("after the practice's version was written back, sync status:\n%s", st)
	}
}

// ehrSender sends requests to the sandbox EHR as its own client, and
// returns the id of the resource in the answer.
func ehrSender(t *testing.T, base, key string) func(method, url string, body []byte) string {
	c, err := ehr.ConnectionClient(syncstore.Connection{Name: "epic-test", BaseURL: base, ClientID: "kapbridge", KeyFile: key, Scopes: "system/*.cruds"},
		ehr.OutboundConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return func(method, url string, body []byte) string {
		t.Helper()
		resp, err := c.Do(t.Context(), &ehr.Request{Method: method, URL: url, Body: body})
		if err != nil || resp.Status >= 300 {
			t.Fatalf("%s %s on the EHR: %v %+v", method, url, err, resp)
		}
		var r struct{ ID string }
		json.Unmarshal(resp.Body, &r)
		return r.ID
	}
}

// TestInboundPollerReused: the long-running inbound poll keeps one
// client and CapabilityStatement per connection: three polls read the
// statement and fetch a token once; a failed poll, and a day's age,
// build them again.
func TestInboundPollerReused(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kb.db")
	env := map[string]string{"KAPBRIDGE_STORE": db, "KAPBRIDGE_PRACTICE": "acme-kap"}
	cmd := func(args ...string) {
		t.Helper()
		var out bytes.Buffer
		if err := run(t.Context(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &out); err != nil {
			t.Fatalf("kapbridge %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	failSearch := false
	count := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[r.Method+" "+r.URL.Path]++
			fail := failSearch && r.Method == http.MethodGet && r.URL.Path == "/Observation"
			mu.Unlock()
			if fail {
				w.Header().Set("Content-Type", "application/fhir+json")
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"no"}]}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	key := filepath.Join(dir, "epic.pem")
	cmd("keys", "generate", "--alg", "ES384", "--out", key)
	base, _ := syncSandbox(t, filepath.Join(dir, "epic.jwks.json"), count)
	cmd("import", filepath.Join("..", "..", "testdata", "import", "course-im.json"))
	cmd("ehr", "add", "epic", "--base", base, "--client-id", "kapbridge", "--key", key, "--scopes", "system/*.cruds", "--mrn-system", testMRN)
	cmd("sync", "run", "--once") // links the IM client by MRN

	st, err := sqlstore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ss := st.(syncstore.Store)
	conn, err := ss.Connection(t.Context(), "epic")
	if err != nil {
		t.Fatal(err)
	}
	ap := inboundApplier(st, "acme-kap", mappings.Limits{}, "")
	clock := time.Now()
	pl := reusedPoller{now: func() time.Time { return clock }}
	snapshot := func() (meta, token, searches int) {
		mu.Lock()
		defer mu.Unlock()
		return seen["GET /metadata"], seen["POST "+ehr.SandboxTokenPath], seen["GET /Observation"]
	}
	m0, t0, s0 := snapshot()
	for i := range 3 {
		if _, err := pl.poll(t.Context(), conn, ss, st, ap, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
	}
	m1, t1, s1 := snapshot()
	if m1-m0 != 1 || t1-t0 != 1 || s1-s0 < 3 {
		t.Fatalf("three polls: %d statement reads, %d tokens, %d Observation searches (want 1, 1, >= 3)", m1-m0, t1-t0, s1-s0)
	}
	mu.Lock()
	failSearch = true
	mu.Unlock()
	if _, err := pl.poll(t.Context(), conn, ss, st, ap, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a poll whose searches fail reported no error")
	}
	mu.Lock()
	failSearch = false
	mu.Unlock()
	if _, err := pl.poll(t.Context(), conn, ss, st, ap, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	m2, t2, _ := snapshot()
	if m2-m1 != 1 || t2-t1 != 1 {
		t.Errorf("after a failed poll: %d statement reads, %d tokens (want 1, 1: built again)", m2-m1, t2-t1)
	}
	clock = clock.Add(capsMaxAge)
	if _, err := pl.poll(t.Context(), conn, ss, st, ap, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if m3, _, _ := snapshot(); m3-m2 != 1 {
		t.Errorf("a day later: %d statement reads (want 1: read again)", m3-m2)
	}
}
