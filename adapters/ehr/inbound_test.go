package ehr

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/faultproxy"
	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/smart"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Inbound against real servers: the sandbox (kapbridge playing an EHR,
// over HTTP with SMART tokens) and the Medplum peer; the gateway's side
// is a real SQLite store holding the sample IV course, imported through
// the practice import's applier. (The test imports adapters/sqlstore,
// which the ehr package itself never does: cmd wires the two.)

const inboundPractice = "inbound-test"

// inboundGateway is the practice side: the store, the applier, the inbound state.
type inboundGateway struct {
	store   fhir.Store
	applier *records.Applier
	state   inboundstore.Store
}

func newInboundGateway(t *testing.T) *inboundGateway {
	t.Helper()
	st, err := sqlstore.Open(t.Context(), filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := &inboundGateway{store: st, applier: &records.Applier{Store: st, Mapper: &mappings.Mapper{Practice: inboundPractice}, Writer: write.Writer{}},
		state: st.(inboundstore.Store)}
	raw, err := os.ReadFile("../../testdata/import/course-iv.json")
	if err != nil {
		t.Fatal(err)
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		rec, err := mappings.Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		res, err := g.applier.Apply(t.Context(), rec)
		if err != nil || res.Status == records.StatusRejected {
			t.Fatalf("import %s: %v %+v", rec.RecordHeader().ID, err, res.Errors)
		}
	}
	return g
}

func (g *inboundGateway) record(t *testing.T, kind mappings.Kind, id string) mappings.Record {
	t.Helper()
	row, ok, err := g.store.(recordstore.Store).GetRecord(t.Context(), fhir.DefaultTenant, string(kind), id)
	if err != nil || !ok {
		t.Fatalf("record %s/%s: %v %v", kind, id, ok, err)
	}
	rec, err := mappings.Decode(row.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// ehrWriter writes on the EHR as its own users would.
type ehrWriter struct {
	t testing.TB
	c *Client
}

func (w ehrWriter) create(typ string, body string) string {
	w.t.Helper()
	resp, err := w.c.Do(w.t.Context(), &Request{Method: "POST", URL: typ, Body: []byte(body)})
	if err != nil {
		w.t.Fatalf("create %s on the EHR: %v", typ, err)
	}
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(resp.Body, &v); v.ID == "" {
		loc := resp.Header.Get("Location")
		parts := strings.Split(strings.TrimPrefix(loc, w.c.Base().String()+"/"), "/")
		if len(parts) >= 2 {
			v.ID = parts[1]
		}
	}
	if v.ID == "" {
		w.t.Fatalf("no id for the created %s: %s", typ, resp.Body)
	}
	return v.ID
}

func (w ehrWriter) update(typ, id, body string) {
	w.t.Helper()
	body = strings.Replace(body, `"resourceType":"`+typ+`"`, `"resourceType":"`+typ+`","id":"`+id+`"`, 1)
	if _, err := w.c.Do(w.t.Context(), &Request{Method: "PUT", URL: typ + "/" + id, Body: []byte(body)}); err != nil {
		w.t.Fatalf("update %s/%s on the EHR: %v", typ, id, err)
	}
}

func vitalObs(patient, when, code, display string, value float64, unit string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":%q,"display":%q}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,`+
		`"valueQuantity":{"value":%g,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}}`, code, display, patient, when, value, unit, unit)
}

func bpObs(patient, when string, sys, dia float64) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,"component":[`+
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":%g,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},`+
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":%g,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`, patient, when, sys, dia)
}

func doseGiven(patient, when string, mg float64) string {
	return fmt.Sprintf(`{"resourceType":"MedicationAdministration","status":"completed","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"6130","display":"ketamine"}]},`+
		`"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,"dosage":{"route":{"coding":[{"system":"http://snomed.info/sct","code":"47625008"}]},`+
		`"dose":{"value":%g,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}}`, patient, when, mg)
}

// inboundSandbox runs a sandbox of profile and returns a client of it with
// every scope, and its capabilities.
func inboundSandbox(t testing.TB, profile string) (*Client, *Capabilities) {
	t.Helper()
	c, caps, _ := inboundSandboxStore(t, profile)
	return c, caps
}

// inboundSandboxStore is inboundSandbox with the sandbox's store, to seed
// what the EHR holds already.
func inboundSandboxStore(t testing.TB, profile string) (*Client, *Capabilities, fhir.Store) {
	t.Helper()
	st := memstore.New()
	keys(t)
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	everything, _ := smart.ParseScopes("system/*.cruds")
	var err error
	h, err = NewSandbox(SandboxConfig{Profile: profile, BaseURL: srv.URL, Logger: discard, Store: st,
		Clients: smart.Clients{testClientID: {ID: testClientID, JWKS: ecKey.PublicJWKS(), Scopes: everything}}})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := NewTokenSource(TokenConfig{FHIRBase: srv.URL, ClientID: testClientID, Key: ecKey, Scope: "system/*.cruds", Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(Config{BaseURL: srv.URL, Tokens: ts, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	return c, readCaps(t, c), st
}

func readCaps(t testing.TB, c *Client) *Capabilities {
	t.Helper()
	resp, err := c.Do(t.Context(), &Request{Method: "GET", URL: "metadata"})
	if err != nil {
		t.Fatal(err)
	}
	caps, err := ReadCapabilities(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return caps
}

func (g *inboundGateway) poller(c *Client, caps *Capabilities, name string) *Poller {
	return &Poller{Connection: name, Client: c, Caps: caps, State: g.state, Logger: discard,
		Sink: &RecordSink{Connection: name, Applier: g.applier, Conflicts: g.state, EHRName: name, EHRBase: c.Base().String()}}
}

func itemsBy(rep *InboundReport) map[string]InboundItem {
	m := map[string]InboundItem{}
	for _, it := range rep.Items {
		m[strings.Split(it.Remote, "/_history/")[0]] = it
	}
	return m
}

// TestInboundSandbox: what a prescriber records on the EHR comes back
// into the practice records, once, with ownership deciding conflicts.
func TestInboundSandbox(t *testing.T) {
	g := newInboundGateway(t)
	c, caps := inboundSandbox(t, "full")
	ehr := ehrWriter{t, c}
	pt := ehr.create("Patient", `{"resourceType":"Patient","name":[{"family":"Okafor"}]}`)
	patient := LinkedPatient{Client: "iv-client", Remote: pt}

	// The first dosing session is 2026-01-15, its dose 34 mg IV.
	hr := ehr.create("Observation", vitalObs(pt, "2026-01-15T10:40:00-05:00", "8867-4", "Heart rate", 88, "/min"))
	bp := ehr.create("Observation", bpObs(pt, "2026-01-15T10:40:00-05:00", 150, 95))
	ma := ehr.create("MedicationAdministration", doseGiven(pt, "2026-01-15T10:05:00-05:00", 40))
	glucose := ehr.create("Observation", vitalObs(pt, "2026-01-15T10:40:00-05:00", "2339-0", "Glucose", 98, "mg/dL"))
	noSession := ehr.create("Observation", vitalObs(pt, "2026-03-01T09:00:00-05:00", "8867-4", "Heart rate", 70, "/min"))
	courseID := mappings.NSPracticeRecordIDs + "/" + inboundPractice + "/course"
	cp := ehr.create("CarePlan", `{"resourceType":"CarePlan","status":"on-hold","intent":"plan","identifier":[{"system":"`+courseID+`","value":"iv-course"}],"subject":{"reference":"Patient/`+pt+`"}}`)
	echo := ehr.create("Observation", strings.Replace(vitalObs(pt, "2026-01-15T10:50:00-05:00", "8867-4", "Heart rate", 77, "/min"),
		`"resourceType":"Observation"`, `"resourceType":"Observation","meta":{"tag":[{"system":"`+EchoTagSystem+`","code":"`+EchoTagCode+`"}]}`, 1))
	other := ehr.create("Patient", `{"resourceType":"Patient","name":[{"family":"Someone Else"}]}`)
	ehr.create("Observation", vitalObs(other, "2026-01-15T10:40:00-05:00", "8867-4", "Heart rate", 120, "/min"))

	p := g.poller(c, caps, "sandbox")
	rep, err := p.PollPatient(t.Context(), patient)
	if err != nil {
		t.Fatalf("%v\n%+v", err, rep.Types)
	}
	items := itemsBy(rep)
	want := map[string]string{
		"Observation/" + hr: InboundApplied, "Observation/" + bp: InboundApplied, "MedicationAdministration/" + ma: InboundApplied,
		"Observation/" + glucose: InboundKept, "Observation/" + noSession: InboundKept, "CarePlan/" + cp: InboundConflict,
	}
	for ref, outcome := range want {
		if items[ref].Outcome != outcome {
			t.Errorf("%s: %q (%s), want %s", ref, items[ref].Outcome, items[ref].Detail, outcome)
		}
	}
	if len(rep.Items) != len(want) {
		t.Errorf("%d items, want %d (the other patient's and the echo are not items): %+v", len(rep.Items), len(want), rep.Items)
	}
	if _, ok := items["Observation/"+echo]; ok {
		t.Errorf("the echo was taken in")
	}
	echoes := 0
	for _, tp := range rep.Types {
		echoes += tp.Echoes
		if tp.Window != "_lastUpdated" && tp.Skipped == "" {
			t.Errorf("%s windowed by %q on a server that searches _lastUpdated", tp.Type, tp.Window)
		}
	}
	if echoes != 1 {
		t.Errorf("%d echoes, want 1", echoes)
	}
	if d := items["Observation/"+noSession].Detail; !strings.Contains(d, "no session of the client on 2026-03-01") {
		t.Errorf("why the March reading was kept: %q", d)
	}

	// The practice records: the EHR's vitals in one observation record of
	// the dosing session; the dose is the EHR's; the course is the practice's.
	obs := g.record(t, mappings.KindObservation, items["Observation/"+hr].Records[0][len("observation/"):]).(*mappings.Observation)
	if obs.Session != "iv-s04-dosing1" || obs.Vitals == nil || obs.Vitals.HeartRate == nil || *obs.Vitals.HeartRate != 88 ||
		obs.Vitals.Systolic == nil || *obs.Vitals.Systolic != 150 || *obs.Vitals.Diastolic != 95 {
		t.Errorf("the EHR's vitals: %+v %+v", obs, obs.Vitals)
	}
	if s := g.record(t, mappings.KindSession, "iv-s04-dosing1").(*mappings.Session); s.Dose == nil || s.Dose.Mg != 40 {
		t.Errorf("the EHR's dose: %+v", s.Dose)
	}
	if c := g.record(t, mappings.KindCourse, "iv-course").(*mappings.Course); c.Status != "active" {
		t.Errorf("the course status changed to %q: the practice owns it", c.Status)
	}
	conflicts, err := g.state.InboundConflicts(t.Context(), "sandbox")
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, c := range conflicts {
		fields = append(fields, c.Field+":"+c.Owner+":"+c.Practice+"->"+c.EHR)
	}
	slices.Sort(fields)
	if want := []string{"course.status:practice:active->on_hold", "session.dose:ehr:ketamine 34 mg iv->ketamine 40 mg iv"}; !slices.Equal(fields, want) {
		t.Errorf("conflicts %q, want %q", fields, want)
	}
	// A Provenance names the EHR and the remote version beside what was applied.
	prov := items["Observation/"+hr].Resources
	if len(prov) == 0 || !strings.HasPrefix(prov[len(prov)-1], "Provenance/") {
		t.Fatalf("no Provenance: %v", prov)
	}
	pv, err := g.store.Read(t.Context(), fhir.Key{Tenant: fhir.DefaultTenant, Type: "Provenance", ID: strings.Split(prov[len(prov)-1], "/")[1]})
	if err != nil || !strings.Contains(string(pv.JSON), c.Base().String()+"/Observation/"+hr) || !strings.Contains(string(pv.JSON), "EHR sandbox") {
		t.Errorf("Provenance: %v %s", err, pv.JSON)
	}

	// Again: nothing new, nothing applied twice.
	rep2, err := p.PollPatient(t.Context(), patient)
	if err != nil || len(rep2.Items) != 0 {
		t.Fatalf("second poll: %v, items %+v", err, rep2.Items)
	}
	dups := 0
	for _, tp := range rep2.Types {
		dups += tp.Duplicates
		if tp.From.IsZero() && tp.Skipped == "" {
			t.Errorf("%s: the second poll has no window", tp.Type)
		}
	}
	if dups != len(want)+1 {
		t.Errorf("%d duplicates on the second poll (the window overlaps), want %d (the items and the echo)", dups, len(want)+1)
	}

	// The prescriber corrects the heart rate: the new version comes in.
	ehr.update("Observation", hr, vitalObs(pt, "2026-01-15T10:40:00-05:00", "8867-4", "Heart rate", 92, "/min"))
	rep3, err := p.PollPatient(t.Context(), patient)
	if err != nil || rep3.Count(InboundApplied) != 1 || len(rep3.Items) != 1 {
		t.Fatalf("after the correction: %v %+v", err, rep3.Items)
	}
	obs = g.record(t, mappings.KindObservation, obs.ID).(*mappings.Observation)
	if *obs.Vitals.HeartRate != 92 || *obs.Vitals.Systolic != 150 {
		t.Errorf("corrected vitals: %+v", obs.Vitals)
	}
}

// TestInboundWindows: the window parameter follows each real statement:
// _lastUpdated where searchable, else the type's date, else none.
func TestInboundWindows(t *testing.T) {
	for _, profile := range []string{"epic", "oracle"} {
		raw, err := Profile(profile)
		if err != nil {
			t.Fatal(err)
		}
		caps, err := ReadCapabilities(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range InboundTypes {
			got := "(none)"
			switch {
			case !caps.Allows(typ, InteractionSearchType):
				got = "(no search)"
			case caps.Searchable(typ, "_lastUpdated"):
				got = "_lastUpdated"
			case caps.Searchable(typ, dateParams[typ]):
				got = dateParams[typ]
			}
			t.Logf("%s %s: %s", profile, typ, got)
		}
	}
}

// TestInboundPeer: Observations and a MedicationAdministration written on
// the Medplum peer come back in.
func TestInboundPeer(t *testing.T) {
	base := peerURL(t)
	g := newInboundGateway(t)
	c, err := NewClient(Config{BaseURL: base, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	stmt, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	caps, err := ReadCapabilities(stmt)
	if err != nil {
		t.Fatal(err)
	}
	ehr := ehrWriter{t, c}
	pt := ehr.create("Patient", `{"resourceType":"Patient","name":[{"family":"Okafor"}]}`)
	hr := ehr.create("Observation", vitalObs(pt, "2026-01-19T10:45:00-05:00", "8867-4", "Heart rate", 84, "/min"))
	rr := ehr.create("Observation", vitalObs(pt, "2026-01-19T10:45:00-05:00", "9279-1", "Respiratory rate", 16, "/min"))
	ma := ehr.create("MedicationAdministration", doseGiven(pt, "2026-01-19T10:02:00-05:00", 36))

	p := g.poller(c, caps, "medplum")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rep, err := p.PollPatient(ctx, LinkedPatient{Client: "iv-client", Remote: pt})
	if err != nil {
		t.Fatalf("%v\n%+v", err, rep.Types)
	}
	items := itemsBy(rep)
	for _, ref := range []string{"Observation/" + hr, "Observation/" + rr, "MedicationAdministration/" + ma} {
		if items[ref].Outcome != InboundApplied {
			t.Errorf("%s: %q %s", ref, items[ref].Outcome, items[ref].Detail)
		}
	}
	if s := g.record(t, mappings.KindSession, "iv-s06-dosing2").(*mappings.Session); s.Dose == nil || s.Dose.Mg != 36 {
		t.Errorf("the peer's dose: %+v", s.Dose)
	}
	if len(items["Observation/"+hr].Records) == 0 {
		t.Fatalf("no record for the heart rate")
	}
	obs := g.record(t, mappings.KindObservation, strings.TrimPrefix(items["Observation/"+hr].Records[0], "observation/")).(*mappings.Observation)
	if obs.Vitals == nil || obs.Vitals.HeartRate == nil || *obs.Vitals.HeartRate != 84 || obs.Vitals.RespiratoryRate == nil || *obs.Vitals.RespiratoryRate != 16 {
		t.Errorf("the peer's vitals: %+v", obs.Vitals)
	}
	rep2, err := p.PollPatient(ctx, LinkedPatient{Client: "iv-client", Remote: pt})
	if err != nil || len(rep2.Items) != 0 {
		t.Fatalf("second poll: %v %+v", err, rep2.Items)
	}
}

// TestInboundEpic: on the Epic profile (no _lastUpdated search) the poll
// windows by the clinical date; an EHR's edit of an Observation the
// gateway wrote (it carries the practice identifier) is a conflict the
// practice wins, recorded once however often it is polled.
func TestInboundEpic(t *testing.T) {
	g := newInboundGateway(t)
	c, caps := inboundSandbox(t, "epic")
	ehr := ehrWriter{t, c}
	pt := "epic-patient-1" // Epic takes no Patient creates; references are not checked
	hr := ehr.create("Observation", vitalObs(pt, "2026-01-22T10:40:00-05:00", "8867-4", "Heart rate", 90, "/min"))
	ownSys := mappings.NSPracticeRecordIDs + "/" + inboundPractice + "/observation"
	edited := ehr.create("Observation", strings.Replace(vitalObs(pt, "2026-01-22T10:30:00-05:00", "8867-4", "Heart rate", 200, "/min"),
		`"status":"final"`, `"status":"final","identifier":[{"system":"`+ownSys+`","value":"iv-s08-o1/hr"}]`, 1))
	before := g.record(t, mappings.KindObservation, "iv-s08-o1")

	p := g.poller(c, caps, "epic")
	patient := LinkedPatient{Client: "iv-client", Remote: pt}
	rep, err := p.PollPatient(t.Context(), patient)
	if err != nil {
		t.Fatalf("%v %+v", err, rep.Types)
	}
	for _, tp := range rep.Types {
		if tp.Type == "Observation" && tp.Window != "date" {
			t.Errorf("Observation windowed by %q on Epic, want date", tp.Window)
		}
	}
	items := itemsBy(rep)
	if it := items["Observation/"+hr]; it.Outcome != InboundApplied {
		t.Errorf("the EHR's heart rate: %+v", it)
	}
	if it := items["Observation/"+edited]; it.Outcome != InboundConflict || !slices.Equal(it.Records, []string{"observation/iv-s08-o1"}) {
		t.Errorf("the edited own Observation: %+v", it)
	}
	after := g.record(t, mappings.KindObservation, "iv-s08-o1")
	if a, b := mustJSON(t, before), mustJSON(t, after); a != b {
		t.Errorf("the practice's observation changed:\n%s\n%s", a, b)
	}
	ehr.update("Observation", edited, strings.Replace(vitalObs(pt, "2026-01-22T10:30:00-05:00", "8867-4", "Heart rate", 201, "/min"),
		`"status":"final"`, `"status":"final","identifier":[{"system":"`+ownSys+`","value":"iv-s08-o1/hr"}]`, 1))
	rep, err = p.PollPatient(t.Context(), patient)
	if err != nil {
		t.Fatal(err)
	}
	conflicts, _ := g.state.InboundConflicts(t.Context(), "epic")
	if len(conflicts) != 2 || conflicts[0].Owner != inboundstore.OwnerPractice || conflicts[0].Local != "observation/iv-s08-o1" {
		t.Errorf("conflicts: %+v (one per remote version)", conflicts)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInboundFaults: the EHR fails in the middle of a paged window: the
// poll reports it and leaves the cursor; the next poll takes every
// resource, each once.
func TestInboundFaults(t *testing.T) {
	g := newInboundGateway(t)
	env := newFaultEnv(t, "full", faultPolicy())
	caps := readCaps(t, env.client)
	ehr := ehrWriter{t, env.client}
	pt := "faulty-patient"
	var ids []string
	for i := range 5 {
		ids = append(ids, ehr.create("Observation", vitalObs(pt, fmt.Sprintf("2026-01-26T10:%02d:00-05:00", 30+i), "8867-4", "Heart rate", float64(80+i), "/min")))
	}
	p := g.poller(env.client, caps, "faulty")
	p.PageSize, p.Types = 2, []string{"Observation"}
	// Every request for a later page fails (the sandbox's next link
	// carries a _cursor).
	env.proxy.Inject(faultproxy.Fault{Match: func(r *http.Request) bool {
		return r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/Observation") && r.URL.Query().Get("_cursor") != ""
	}, Times: faultproxy.Always, Status: 503, Body: faultproxy.Outcome("transient", "overloaded")})
	patient := LinkedPatient{Client: "iv-client", Remote: pt}
	rep, err := p.PollPatient(t.Context(), patient)
	if err == nil {
		t.Fatalf("no error with page 2 failing; proxy saw %+v", env.proxy.Seen(fhirRequests))
	}
	if len(rep.Items) != 0 {
		t.Errorf("items taken from a failed window: %+v", rep.Items)
	}
	if _, ok, _ := g.state.InboundCursor(t.Context(), "faulty", fhir.DefaultTenant, "iv-client", "Observation"); ok {
		t.Errorf("the cursor moved after a failed window")
	}
	env.proxy.Clear()
	rep, err = p.PollPatient(t.Context(), patient)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(InboundApplied) != 5 || rep.Types[0].Pages != 3 {
		t.Fatalf("after recovery: %d applied over %d pages: %+v", rep.Count(InboundApplied), rep.Types[0].Pages, rep.Items)
	}
	rep, err = p.PollPatient(t.Context(), patient)
	if err != nil || len(rep.Items) != 0 || rep.Types[0].Duplicates != 5 {
		t.Fatalf("third poll: %v %+v %+v", err, rep.Items, rep.Types)
	}
}

// TestPeerRoundTrip: against the Medplum peer, a full course syncs out
// (every row done, every link naming a resource the peer holds, the
// peer's Observations of the patient exactly those the links name), and
// what a prescriber then writes there comes back in, while the
// gateway's own writes, polled back in the same window, are echoes.
func TestPeerRoundTrip(t *testing.T) {
	base, st, c := peerGateway(t)
	ctx := t.Context()
	sync := st.(syncstore.Store)
	caps := readCaps(t, c)
	// The peer keeps what earlier tests wrote: an MRN of this run only.
	mrn := "KC-" + smart.NewID()[:12]
	ehr := ehrWriter{t, c}
	pt := ehr.create("Patient", `{"resourceType":"Patient","identifier":[{"system":"`+testMRNSystem+`","value":"`+mrn+`"}],"name":[{"family":"Okafor"}]}`)
	conn := syncstore.Connection{Name: "medplum", Tenant: fhir.DefaultTenant, BaseURL: base, ClientID: "open", KeyFile: "(none: an open server)",
		Scopes: "system/*.cruds", MRNSystem: testMRNSystem, Created: time.Now()}
	if err := sync.AddConnection(ctx, conn); err != nil {
		t.Fatal(err)
	}
	ob := &Outbound{Conn: conn, Sync: sync, Store: st, Client: c, Caps: caps, Plan: PlanWrites(caps), Logger: discard, TargetWait: 5 * time.Millisecond}

	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "records", "course-iv.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	ap := &records.Applier{Store: st, Mapper: &mappings.Mapper{Practice: testPractice}, Writer: write.Writer{Changed: syncstore.Enqueue}}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		rec, err := mappings.Decode([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		if cl, ok := rec.(*mappings.Client); ok {
			cl.MRN = mrn
		}
		if r, err := ap.Apply(ctx, rec); err != nil || r.Status == records.StatusRejected {
			t.Fatalf("import: %v %+v", err, r.Errors)
		}
	}
	drain(t, ob)
	counts, _ := sync.Counts(ctx, "medplum")
	if counts[syncstore.StateDead] != 0 || counts[syncstore.StatePending] != 0 {
		dead, _ := sync.Deliveries(ctx, "medplum", syncstore.StateDead, 3)
		t.Fatalf("counts %v; dead e.g. %+v", counts, dead)
	}
	links, err := sync.Links(ctx, "medplum")
	if err != nil || len(links) == 0 {
		t.Fatalf("links: %d %v", len(links), err)
	}
	linkedObs := map[string]bool{}
	types := map[string]int{}
	for _, l := range links {
		types[l.RemoteType]++
		if _, err := c.Do(ctx, &Request{Method: "GET", URL: l.RemoteType + "/" + l.RemoteID}); err != nil {
			t.Errorf("link %s/%s -> %s/%s: %v", l.SourceType, l.SourceID, l.RemoteType, l.RemoteID, err)
		}
		if l.RemoteType == "Observation" {
			linkedObs[l.RemoteID] = true
		}
	}
	t.Logf("on the peer: %v", types)
	if types["CarePlan"] == 0 || types["Observation"] == 0 || types["Encounter"] == 0 {
		t.Errorf("the course is not there natively: %v", types)
	}
	resp, err := c.Do(ctx, &Request{Method: "GET", URL: "Observation?patient=Patient/" + pt + "&_count=1000"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBundle(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Entry) != len(linkedObs) {
		t.Errorf("the peer holds %d Observations of the patient, the links name %d", len(b.Entry), len(linkedObs))
	}

	// In: the prescriber's vitals and dose on the peer; the gateway's own
	// Observations in the same window are echoes.
	hr := ehr.create("Observation", vitalObs(pt, "2026-01-22T10:45:00-05:00", "8867-4", "Heart rate", 81, "/min"))
	ma := ehr.create("MedicationAdministration", doseGiven(pt, "2026-01-22T10:02:00-05:00", 38))
	links2 := SyncLinks{Store: sync}
	// The peer pages without next links: one page holds the window.
	p := &Poller{Connection: "medplum", Client: c, Caps: caps, State: st.(inboundstore.Store), Links: links2, Source: DefaultSource, Logger: discard, PageSize: 1000,
		Sink: &RecordSink{Connection: "medplum", Applier: ap, Conflicts: st.(inboundstore.Store), Links: links2, EHRName: "medplum", EHRBase: base}}
	reps, err := p.PollLinked(ctx, sync, st)
	if err != nil || len(reps) != 1 {
		t.Fatalf("%v, %d reports", err, len(reps))
	}
	items := itemsBy(reps[0])
	for _, ref := range []string{"Observation/" + hr, "MedicationAdministration/" + ma} {
		if items[ref].Outcome != InboundApplied {
			t.Errorf("%s: %+v", ref, items[ref])
		}
	}
	echoes := 0
	for _, tp := range reps[0].Types {
		echoes += tp.Echoes
	}
	if len(reps[0].Items) != 2 || echoes < len(linkedObs) {
		t.Errorf("%d items (want the 2 new), %d echoes (want at least the %d own Observations): %+v", len(reps[0].Items), echoes, len(linkedObs), reps[0].Items)
	}
}

// peerLog: the client's warnings go to the test log (with -v, its debug
// lines when KAPBRIDGE_TEST_DEBUG is set).
func peerLog(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("KAPBRIDGE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// peerGateway is the Medplum peer's URL, a fresh SQLite store (closed
// when the test ends) and a client of the peer.
func peerGateway(t *testing.T) (string, search.Store, *Client) {
	t.Helper()
	base := peerURL(t)
	st, err := sqlstore.Open(t.Context(), filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := NewClient(Config{BaseURL: base, Logger: peerLog(t), Policy: RetryPolicy{MaxRetries: 2, MinWait: 10 * time.Millisecond, MaxWait: 100 * time.Millisecond, AttemptTimeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return base, st, c
}

// takeAll is a sink that takes every resource it is given and remembers
// each, to count what a poll delivered.
type takeAll struct{ got []string }

func (s *takeAll) Take(_ context.Context, _ LinkedPatient, batch []InboundResource) ([]InboundItem, error) {
	var items []InboundItem
	for _, r := range batch {
		s.got = append(s.got, r.Type+"/"+r.ID)
		items = append(items, InboundItem{Remote: r.Ref(), Outcome: InboundApplied})
	}
	return items, nil
}

// TestPeerPagesWithoutNextLinks: Medplum's router pages a search without
// next links. A window larger than a page is then read again in
// _lastUpdated order, a page at a time from the newest time seen: every
// resource of the window is taken once (the first, unsorted page and the
// boundary times read twice are skipped), and the next poll finds them
// all again as duplicates.
func TestPeerPagesWithoutNextLinks(t *testing.T) {
	_, st, c := peerGateway(t)
	ctx := t.Context()
	caps := readCaps(t, c)
	ehr := ehrWriter{t, c}
	pt := ehr.create("Patient", `{"resourceType":"Patient","name":[{"family":"Paged"}]}`)
	// One at a time over HTTP, so no more than a page (4) can share a
	// millisecond of meta.lastUpdated.
	want := map[string]bool{}
	for i := range 11 {
		want["Observation/"+ehr.create("Observation", vitalObs(pt, fmt.Sprintf("2026-02-02T10:%02d:00-05:00", i), "8867-4", "Heart rate", float64(70+i), "/min"))] = true
	}
	sink := &takeAll{}
	p := &Poller{Connection: "medplum", Client: c, Caps: caps, State: st.(inboundstore.Store), Links: SyncLinks{Store: st.(syncstore.Store)},
		Source: DefaultSource, Logger: discard, PageSize: 4, Types: []string{"Observation"}, Sink: sink}
	patient := LinkedPatient{Client: "paged-client", Remote: pt}
	rep, err := p.PollPatient(ctx, patient)
	if err != nil {
		t.Fatalf("%v (%+v)", err, rep.Types)
	}
	if len(sink.got) != len(want) {
		t.Errorf("took %d, want %d: %v", len(sink.got), len(want), sink.got)
	}
	for _, ref := range sink.got {
		if !want[ref] {
			t.Errorf("took %s, not one of the window's", ref)
		}
		delete(want, ref)
	}
	if len(want) != 0 {
		t.Errorf("not taken: %v", want)
	}
	// 1 unsorted page, then at least 3 sorted pages of 4.
	if tp := rep.Types[0]; tp.Pages < 4 || tp.Fetched != 11 {
		t.Errorf("pages %d, fetched %d: the window was not read page by page", tp.Pages, tp.Fetched)
	}
	sink.got = nil
	rep, err = p.PollPatient(ctx, patient)
	if err != nil || len(sink.got) != 0 || rep.Types[0].Duplicates != 11 {
		t.Errorf("second poll: %v, took %v, %+v", err, sink.got, rep.Types)
	}
}

// TestKeysetNext: the refusals of a keyset read, which no server here
// provokes: a page not sorted when asked, and a full page sharing one
// time (the next page would be the same one).
func TestKeysetNext(t *testing.T) {
	p := &Poller{}
	q := url.Values{"patient": {"Patient/p"}, "_count": {"2"}, "_lastUpdated": {"ge2026-01-01T00:00:00Z"}}
	total := func(n int) *models.Bundle { return &models.Bundle{Total: &n} }
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	from := t0
	if _, err := p.keysetNext("Observation", q, total(5), 2, false, &from, t0.Add(time.Second)); err == nil || !strings.Contains(err.Error(), "did not sort") {
		t.Errorf("unsorted page: %v", err)
	}
	if _, err := p.keysetNext("Observation", q, total(5), 2, true, &from, t0); err == nil || !strings.Contains(err.Error(), "share the time") {
		t.Errorf("a page of one time: %v", err)
	}
	if next, err := p.keysetNext("Observation", q, total(2), 2, true, &from, t0); err != nil || next != "" {
		t.Errorf("last page: %q %v", next, err)
	}
	next, err := p.keysetNext("Observation", q, total(5), 2, true, &from, t0.Add(time.Second))
	if err != nil || !from.Equal(t0.Add(time.Second)) {
		t.Fatalf("%q %v %v", next, err, from)
	}
	u, _ := url.Parse(next)
	if u.Path != "Observation" || u.Query().Get("_sort") != "_lastUpdated" || u.Query().Get("_lastUpdated") != "ge2026-01-02T03:04:06.006Z" || u.Query().Get("patient") != "Patient/p" {
		t.Errorf("next: %s", next)
	}
}

// TestInboundPrescriptionEdit: the prescriber stops the course's
// prescription (the MedicationRequest the gateway wrote, carrying the
// practice identifier) in the EHR: the poll records a conflict the EHR
// owns, naming the new status, and leaves the course as it was (a later
// change of the practice's version is held, not sent over the order:
// TestOutboundPrescriberOwned).
func TestInboundPrescriptionEdit(t *testing.T) {
	g := newInboundGateway(t)
	c, caps := inboundSandbox(t, "oracle")
	ehr := ehrWriter{t, c}
	pt := "oracle-patient-rx"
	q, err := search.ParseQuery("MedicationRequest", url.Values{}, "", false)
	if err != nil {
		t.Fatal(err)
	}
	r, err := g.store.(search.Store).Search(t.Context(), fhir.DefaultTenant, q, nil)
	if err != nil || len(r.Matches) != 1 {
		t.Fatalf("the course's prescription in the gateway: %d (%v)", len(r.Matches), err)
	}
	mr, _ := fhir.ParseJSON(r.Matches[0].JSON, fhir.StoredLimits)
	mr.Delete("id")
	mr.Delete("meta")
	mr.Set("subject", jsonObject(jsonMember("reference", jsonString("Patient/"+pt))))
	mr.Set("status", jsonString("stopped"))
	for _, k := range []string{"reasonReference", "requester"} {
		mr.Delete(k) // references the EHR would hold as its own
	}
	remote := ehr.create("MedicationRequest", string(mr.Encode()))
	before := g.record(t, mappings.KindCourse, "iv-course")

	p := g.poller(c, caps, "oracle")
	p.Types = []string{"MedicationRequest"}
	rep, err := p.PollPatient(t.Context(), LinkedPatient{Client: "iv-client", Remote: pt})
	if err != nil {
		t.Fatalf("%v %+v", err, rep.Types)
	}
	it := itemsBy(rep)["MedicationRequest/"+remote]
	if it.Outcome != InboundConflict || !strings.Contains(it.Detail, "prescriber owns the prescription") {
		t.Errorf("the stopped prescription: %+v", it)
	}
	cs, _ := g.state.InboundConflicts(t.Context(), "oracle")
	if len(cs) != 1 || cs[0].Owner != inboundstore.OwnerEHR || cs[0].Field != "prescription" || !strings.Contains(cs[0].EHR, "status stopped") {
		t.Errorf("conflicts: %+v", cs)
	}
	if a, b := mustJSON(t, before), mustJSON(t, g.record(t, mappings.KindCourse, "iv-course")); a != b {
		t.Errorf("the course changed:\n%s\n%s", a, b)
	}
}
