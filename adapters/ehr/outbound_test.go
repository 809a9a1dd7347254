package ehr

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/smart"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// The EHR's MRN system in the tests, and the practice of the samples.
const (
	testMRNSystem = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
	testPractice  = "acme-kap"
)

var sampleMRNs = map[string]string{"im": "KC-20917", "iv": "KC-10442", "lozenge": "KC-30055", "spravato": "KC-40231"}

// sandboxEHR is a sandbox on loopback playing profile, with the patients
// of the samples registered under testMRNSystem.
type sandboxEHR struct {
	URL   string
	Store fhir.Store
	key   *smart.SigningKey
	// down: every request but the token endpoint's is answered 503 with
	// an OperationOutcome (an EHR that is down).
	down atomic.Bool
	// preconditionFailed counts the 412 answers.
	preconditionFailed atomic.Int64
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

func startSyncSandbox(t *testing.T, profile string) *sandboxEHR {
	t.Helper()
	key, err := smart.GenerateKey(smart.ES384)
	if err != nil {
		t.Fatal(err)
	}
	scopes, _ := smart.ParseScopes("system/*.cruds")
	var h http.Handler
	ehr := &sandboxEHR{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ehr.down.Load() && r.URL.Path != SandboxTokenPath {
			writeOutcome(w, http.StatusServiceUnavailable, "transient", "down for maintenance")
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusPreconditionFailed {
			ehr.preconditionFailed.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	st := memstore.New()
	h, err = NewSandbox(SandboxConfig{Profile: profile, BaseURL: srv.URL, Store: st, Logger: slog.New(slog.DiscardHandler),
		Clients: smart.Clients{"kapbridge": {ID: "kapbridge", JWKS: key.PublicJWKS(), Scopes: scopes}}})
	if err != nil {
		t.Fatal(err)
	}
	for route, mrn := range sampleMRNs {
		seedPatient(t, st, "ehr-"+route, mrn)
	}
	ehr.URL, ehr.Store, ehr.key = srv.URL, st, key
	return ehr
}

func seedPatient(t *testing.T, st fhir.Store, id, mrn string) {
	t.Helper()
	p, err := fhir.ParseJSON([]byte(`{"resourceType":"Patient","identifier":[{"system":"`+testMRNSystem+`","value":"`+mrn+`"}],"name":[{"family":"Seeded"}]}`), fhir.StoredLimits)
	if err != nil {
		t.Fatal(err)
	}
	k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: id}
	if err := st.Update(t.Context(), func(tx fhir.Tx) error {
		_, err := (write.Writer{}).Put(t.Context(), tx, k, fhir.Version{Key: k}, p)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func (s *sandboxEHR) connection(name, recipient string) syncstore.Connection {
	pemData, _ := s.key.MarshalPEM()
	return syncstore.Connection{Name: name, Tenant: fhir.DefaultTenant, BaseURL: s.URL, ClientID: "kapbridge", KeyFile: "(test)", Key: pemData,
		Scopes: "system/*.cruds", MRNSystem: testMRNSystem, Recipient: recipient, Created: time.Now()}
}

// gateway is the gateway's store pair.
type gateway struct {
	Store search.Store
	Sync  syncstore.Store
}

type gatewayOpener struct {
	name string
	open func(t *testing.T) gateway
}

func gatewayStores(t *testing.T) []gatewayOpener {
	out := []gatewayOpener{{"SQLite", func(t *testing.T) gateway {
		st, err := sqlstore.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "gw.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return gateway{st, st.(syncstore.Store)}
	}}}
	if dsn := sqltest.PostgresDSN(t); dsn != "" {
		out = append(out, gatewayOpener{"PostgreSQL", func(t *testing.T) gateway {
			st, err := sqlstore.Open(t.Context(), sqltest.FreshSchema(t, dsn))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return gateway{st, st.(syncstore.Store)}
		}})
	}
	return out
}

// importCourse applies a sample course (testdata/records) through the
// change hook, as import and the APIs do.
func importCourse(t *testing.T, st fhir.Store, route string) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "records", "course-"+route+".ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ap := &records.Applier{Store: st, Mapper: &mappings.Mapper{Practice: testPractice}, Writer: write.Writer{Changed: syncstore.Enqueue}}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rec, err := mappings.Decode(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		r, err := ap.Apply(t.Context(), rec)
		if err != nil || r.Status == records.StatusRejected {
			t.Fatalf("import %s: %+v, %v", route, r, err)
		}
	}
}

// drain runs the worker until nothing is pending, or fails after a while.
func drain(t *testing.T, ob *Outbound) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := ob.Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
		c, err := ob.Sync.Counts(t.Context(), ob.Conn.Name)
		if err != nil {
			t.Fatal(err)
		}
		if c[syncstore.StatePending] == 0 {
			return
		}
		if time.Now().After(deadline) {
			ds, _ := ob.Sync.Deliveries(t.Context(), ob.Conn.Name, syncstore.StatePending, 5)
			t.Fatalf("still pending after 2 min: %v, e.g. %+v", c, ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drainSettled runs the worker until every row left pending only waits
// (for a target that is dead-lettered): no attempt is due.
func drainSettled(t *testing.T, ob *Outbound) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := ob.Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
		settled := true
		for _, d := range mustDeliveries(t, ob.Sync, ob.Conn.Name, syncstore.StatePending) {
			if !strings.HasPrefix(d.LastError, "waiting for") {
				settled = false
			}
		}
		if settled {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("rows still due after 2 min")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newOutbound(t *testing.T, gw gateway, conn syncstore.Connection) *Outbound {
	t.Helper()
	if err := gw.Sync.AddConnection(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	ob, err := NewOutbound(t.Context(), conn, gw.Sync, gw.Store, OutboundConfig{Logger: slog.New(slog.DiscardHandler),
		Policy: RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ob.TargetWait = 5 * time.Millisecond
	return ob
}

func readRemote(t *testing.T, st fhir.Store, typ, id string) *fhir.Value {
	t.Helper()
	v, err := st.Read(t.Context(), fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id})
	if err != nil || v.Deleted {
		return nil
	}
	r, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOutboundCourses: the four sample courses sync to the sandbox as
// Epic, as Oracle Health and as a full server, on SQLite and PostgreSQL:
// every row ends done (nothing refused, nothing dead, nothing waiting),
// every artifact the plan sends has a remote resource of the planned
// type, the patients are linked by MRN, every safety signal is there as a
// Flag or an urgent alert Communication beside its Observation, the
// process notes are held back (no Consent names this recipient), and a
// second run sends nothing (content hashes).
func TestOutboundCourses(t *testing.T) {
	for _, gwo := range gatewayStores(t) {
		for _, profile := range []string{"epic", "oracle", "full"} {
			t.Run(gwo.name+"/"+profile, func(t *testing.T) {
				gw := gwo.open(t)
				ehr := startSyncSandbox(t, profile)
				ob := newOutbound(t, gw, ehr.connection("ehr", ""))
				for route := range sampleMRNs {
					importCourse(t, gw.Store, route)
				}
				drain(t, ob)
				checkSynced(t, ob, gw, ehr)
				// Nothing changed: a new change of every row sends nothing.
				before := remoteCount(t, ehr.Store)
				for _, d := range mustDeliveries(t, gw.Sync, "ehr", "") {
					touch(t, gw.Store, d)
				}
				drain(t, ob)
				if after := remoteCount(t, ehr.Store); after != before {
					var changed []string
					for _, v := range allVersions(t, ehr.Store) {
						if v.VersionID > 1 {
							old, _ := ehr.Store.VRead(t.Context(), v.Key, v.VersionID-1)
							changed = append(changed, fmt.Sprintf("%s/%s v%d:\n%s\nwas\n%s", v.Type, v.ID, v.VersionID, v.JSON, old.JSON))
						}
					}
					t.Errorf("re-delivering unchanged content wrote %d new versions on the EHR: %v", after-before, changed)
				}
			})
		}
	}
}

func mustDeliveries(t *testing.T, s syncstore.Store, conn, state string) []syncstore.Delivery {
	t.Helper()
	ds, err := s.Deliveries(t.Context(), conn, state, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// touch enqueues a change of d's resource without changing it.
func touch(t *testing.T, st fhir.Store, d syncstore.Delivery) {
	t.Helper()
	err := st.Update(t.Context(), func(tx fhir.Tx) error {
		return syncstore.Enqueue(t.Context(), tx, fhir.Version{Key: fhir.Key{Tenant: d.Tenant, Type: d.Type, ID: d.ResourceID}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// remoteCount counts every version the EHR holds (its outbox-free
// history: versions of every resource the sandbox store has).
func remoteCount(t *testing.T, st fhir.Store) int {
	t.Helper()
	hp := st.(search.HistoryPager)
	n := 0
	var cur *search.Cursor
	for {
		r, err := hp.HistoryPage(t.Context(), fhir.DefaultTenant, search.HistoryQuery{Count: 1000, Cursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		n += len(r.Versions)
		if cur = r.Next; cur == nil {
			return n
		}
	}
}

func checkSynced(t *testing.T, ob *Outbound, gw gateway, ehr *sandboxEHR) {
	t.Helper()
	ctx := t.Context()
	counts, _ := gw.Sync.Counts(ctx, "ehr")
	if counts[syncstore.StateDead] > 0 || counts[syncstore.StatePending] > 0 {
		for _, d := range mustDeliveries(t, gw.Sync, "ehr", syncstore.StateDead)[:min(3, counts[syncstore.StateDead])] {
			t.Errorf("dead: %s: %s", d.Ref(), d.LastError)
		}
		t.Fatalf("counts = %v; want every row done", counts)
	}
	for _, pl := range mustPatientLinks(t, gw.Sync) {
		if pl.State != syncstore.PatientLinked || !strings.HasPrefix(pl.RemoteID, "ehr-") {
			t.Errorf("patient link %+v; want linked to a seeded ehr-* patient", pl)
		}
	}
	sent, flags, notes := 0, 0, 0
	for _, d := range mustDeliveries(t, gw.Sync, "ehr", syncstore.StateDone) {
		res := readRemote(t, gw.Store, d.Type, d.ResourceID)
		art, ok := ArtifactOf(res)
		if !ok {
			continue
		}
		e := ob.Plan.Entry(art)
		if art != ArtifactProcessNote && fhir.SensitivityOf(res)&fhir.PsychotherapyNote != 0 {
			// A note's Provenance: the note's business, held back with it.
			if !strings.Contains(d.LastError, "held back by the privacy gate") {
				t.Errorf("%s, labelled PSYTHPN: %q; want held back", d.Ref(), d.LastError)
			}
			continue
		}
		if art == ArtifactProcessNote {
			notes++
			if !strings.Contains(d.LastError, "held back by the privacy gate") {
				t.Errorf("process note %s: %q; want held back", d.Ref(), d.LastError)
			}
			continue
		}
		if e.Outcome != OutcomeSent {
			if !strings.Contains(d.LastError, "not sent") && art != ArtifactClient {
				t.Errorf("%s (%s, %v): note %q", d.Ref(), art, e.Outcome, d.LastError)
			}
			continue
		}
		for _, part := range e.Route.Parts {
			if len(part.Via) > 0 {
				continue
			}
			l, err := gw.Sync.Link(ctx, "ehr", d.Tenant, d.Type, d.ResourceID, string(part.Build))
			if err != nil {
				if d.Type == "Provenance" && strings.Contains(d.LastError, "names nothing this EHR holds") {
					continue
				}
				t.Errorf("%s (%s): no link for part %s: %v (note %q)", d.Ref(), art, part.Type, err, d.LastError)
				continue
			}
			r := readRemote(t, ehr.Store, l.RemoteType, l.RemoteID)
			if l.RemoteType != part.Type || r == nil {
				t.Errorf("%s: link %+v does not name a %s on the EHR", d.Ref(), l, part.Type)
				continue
			}
			sent++
			if r.Get("meta").GetString("source") == "" {
				t.Errorf("%s: written without meta.source", d.Ref())
			}
			if fhir.SensitivityOf(r)&fhir.PsychotherapyNote != 0 {
				t.Errorf("%s: a psychotherapy note reached the EHR without a Consent", d.Ref())
			}
		}
		if art == ArtifactSafetySignal {
			flags++
			checkSignal(t, gw, ehr, d, res, e)
		}
	}
	if sent < 100 || flags == 0 || notes != 4*6 {
		t.Errorf("sent %d parts, %d safety signals, %d process notes held back; want hundreds, some, 24", sent, flags, notes)
	}
}

// checkSignal: the prescriber sees the signal as a Flag, or as an urgent
// alert Communication with the Observation that raised it beside it.
func checkSignal(t *testing.T, gw gateway, ehr *sandboxEHR, d syncstore.Delivery, flag *fhir.Value, e PlanEntry) {
	t.Helper()
	first := e.Route.Parts[0]
	l, err := gw.Sync.Link(t.Context(), "ehr", d.Tenant, "Flag", d.ResourceID, string(first.Build))
	if err != nil {
		t.Errorf("safety signal %s not on the EHR: %v", d.Ref(), err)
		return
	}
	r := readRemote(t, ehr.Store, l.RemoteType, l.RemoteID)
	if l.RemoteType == "Flag" {
		return
	}
	if l.RemoteType != "Communication" || r.GetString("priority") != "urgent" ||
		!hasCoding(r.Get("category"), "http://terminology.hl7.org/CodeSystem/communication-category", "alert") ||
		r.Get("subject").GetString("reference") == "" || !strings.HasPrefix(r.Get("subject").GetString("reference"), "Patient/ehr-") {
		t.Errorf("safety signal %s as %s: %s", d.Ref(), l.RemoteType, r.Encode())
	}
	if !strings.Contains(string(r.Encode()), "Value:") {
		t.Errorf("safety alert %s does not carry the value that raised it: %s", d.Ref(), r.Encode())
	}
}

func mustPatientLinks(t *testing.T, s syncstore.Store) []syncstore.PatientLink {
	t.Helper()
	ps, err := s.PatientLinks(t.Context(), "ehr", "")
	if err != nil || len(ps) != 4 {
		t.Fatalf("patient links = %+v, %v; want the 4 clients", ps, err)
	}
	return ps
}

// TestOutboundPrivacy: a course whose client signed a Consent permitting
// process notes to the prescriber: the notes go to the EHR of the
// connection whose recipient is that prescriber, and only there; a
// second EHR, whose connection names another recipient, gets everything
// else but no note.
func TestOutboundPrivacy(t *testing.T) {
	gw := gatewayStores(t)[0].open(t)
	named := startSyncSandbox(t, "epic")
	other := startSyncSandbox(t, "epic")
	prescriber := "Practitioner/" + mappings.ResourceID(testPractice, mappings.KindPractitioner, "iv-prescriber", "Practitioner")
	therapist := "Practitioner/" + mappings.ResourceID(testPractice, mappings.KindPractitioner, "iv-therapist", "Practitioner")
	obNamed := newOutbound(t, gw, named.connection("named", prescriber))
	obOther := newOutbound(t, gw, other.connection("other", therapist))
	importCourse(t, gw.Store, "iv")
	drain(t, obNamed)
	drain(t, obOther)
	countNotes := func(st fhir.Store) int {
		n := 0
		for _, v := range allVersions(t, st) {
			if v.Type == "DocumentReference" && fhir.SensitivityOfJSON(v.JSON)&fhir.PsychotherapyNote != 0 {
				n++
			}
		}
		return n
	}
	if n := countNotes(named.Store); n != 6 {
		t.Errorf("the named prescriber's EHR holds %d process notes, want the course's 6", n)
	}
	if n := countNotes(other.Store); n != 0 {
		t.Errorf("an EHR no Consent names holds %d process notes, want none", n)
	}
	held := 0
	for _, d := range mustDeliveries(t, gw.Sync, "other", syncstore.StateDone) {
		if d.Type == "DocumentReference" && strings.Contains(d.LastError, "held back by the privacy gate") && strings.Contains(d.LastError, therapist) {
			held++
		}
	}
	if held != 6 {
		t.Errorf("%d notes recorded as held back for the other EHR, want 6", held)
	}
	if remoteCount(t, other.Store) < 50 {
		t.Errorf("the other EHR got almost nothing: the gate must hold back notes, not the record")
	}
}

func allVersions(t *testing.T, st fhir.Store) []fhir.Version {
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

// TestOutboundDownDeadLetterReplay: while one EHR answers 503, the other
// connection's rows all go; the down EHR's rows back off, are
// dead-lettered after MaxAttempts with the EHR's OperationOutcome, and
// once it is back, Replay delivers them all.
func TestOutboundDownDeadLetterReplay(t *testing.T) {
	gw := gatewayStores(t)[0].open(t)
	up := startSyncSandbox(t, "full")
	down := startSyncSandbox(t, "full")
	obUp := newOutbound(t, gw, up.connection("up", ""))
	obDown := newOutbound(t, gw, down.connection("down", ""))
	obDown.MaxAttempts = 2
	obDown.Backoff = func(int) time.Duration { return time.Millisecond }
	down.down.Store(true)
	importCourse(t, gw.Store, "lozenge")
	drain(t, obUp)
	drainSettled(t, obDown)
	cu, _ := gw.Sync.Counts(t.Context(), "up")
	cd, _ := gw.Sync.Counts(t.Context(), "down")
	if cu[syncstore.StateDone] == 0 || cu[syncstore.StateDead]+cu[syncstore.StatePending] != 0 {
		t.Fatalf("the EHR that is up: %v; want all done", cu)
	}
	dead := mustDeliveries(t, gw.Sync, "down", syncstore.StateDead)
	if len(dead) == 0 || cd[syncstore.StateDone] != 0 && len(dead) < cu[syncstore.StateDone]/2 {
		t.Fatalf("the EHR that is down: %v", cd)
	}
	for _, d := range dead[:1] {
		if d.Attempts != 2 || !strings.Contains(d.LastError, "503") || !strings.Contains(d.LastError, "down for maintenance") || !strings.Contains(string(d.Outcome), "OperationOutcome") {
			t.Errorf("dead letter %+v; want 2 attempts, the 503 and its OperationOutcome", d)
		}
	}
	down.down.Store(false)
	n, err := Replay(t.Context(), gw.Sync, "down", time.Now())
	if err != nil || n != len(dead) {
		t.Fatalf("Replay = %d, %v; want %d", n, err, len(dead))
	}
	drain(t, obDown)
	cd, _ = gw.Sync.Counts(t.Context(), "down")
	if cd[syncstore.StateDead]+cd[syncstore.StatePending] != 0 || cd[syncstore.StateDone] != cu[syncstore.StateDone] {
		t.Errorf("after replay: %v; want all %d done", cd, cu[syncstore.StateDone])
	}
	if a, b := remoteCount(t, up.Store), remoteCount(t, down.Store); a != b {
		t.Errorf("the two EHRs hold %d and %d versions; want the same: %v vs %v", a, b, typeCounts(t, up.Store), typeCounts(t, down.Store))
	}
}

func typeCounts(t *testing.T, st fhir.Store) map[string]int {
	out := map[string]int{}
	for _, v := range allVersions(t, st) {
		out[v.Type]++
	}
	return out
}

// TestOutboundIfMatch412: on an EHR without conditional update or
// client-chosen ids but with versioned updates, the worker finds what it
// wrote by identifier, updates with If-Match, and when the EHR's copy
// changed meanwhile (412) re-reads it and writes again.
func TestOutboundIfMatch412(t *testing.T) {
	gw := gatewayStores(t)[0].open(t)
	sb := startSyncSandbox(t, "full")
	ob := newOutbound(t, gw, sb.connection("ehr", ""))
	for _, r := range ob.Caps.Resources {
		r.ConditionalUpdate, r.UpdateCreate = false, false
		r.Versioning = VersioningVersionUpdate
	}
	ob.Plan = PlanWrites(ob.Caps)
	m := ob.Plan.Entry(ArtifactVitals).Route.Parts[0].Method
	if !m.Create || m.Find != FindIdentifier || m.Update != UpdatePut || !m.IfMatch {
		t.Fatalf("plan for vitals: %+v; want identifier search, POST, PUT with If-Match", m)
	}
	importCourse(t, gw.Store, "im")
	drain(t, ob)
	var obs syncstore.Delivery
	for _, d := range mustDeliveries(t, gw.Sync, "ehr", syncstore.StateDone) {
		if d.Type == "Observation" {
			if r := readRemote(t, gw.Store, d.Type, d.ResourceID); r != nil {
				if a, _ := ArtifactOf(r); a == ArtifactVitals {
					obs = d
					break
				}
			}
		}
	}
	l, err := gw.Sync.Link(t.Context(), "ehr", obs.Tenant, obs.Type, obs.ResourceID, "")
	if err != nil || l.RemoteVersion != "1" {
		t.Fatalf("link = %+v, %v", l, err)
	}
	// Someone edits the EHR's copy...
	rk := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: l.RemoteID}
	edit := func(st fhir.Store, k fhir.Key, w write.Writer, note string) {
		err := st.Update(t.Context(), func(tx fhir.Tx) error {
			cur, err := tx.Read(t.Context(), k)
			if err != nil {
				return err
			}
			r, _ := fhir.ParseJSON(cur.JSON, fhir.StoredLimits)
			r.Set("note", jsonArray(jsonObject(jsonMember("text", jsonString(note)))))
			_, err = w.Put(t.Context(), tx, k, cur, r)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	edit(sb.Store, rk, write.Writer{}, "edited on the EHR")
	// ... while the practice amends the reading.
	edit(gw.Store, fhir.Key{Tenant: obs.Tenant, Type: obs.Type, ID: obs.ResourceID}, write.Writer{Changed: syncstore.Enqueue}, "amended at the practice")
	drain(t, ob)
	if n := sb.preconditionFailed.Load(); n != 1 {
		t.Errorf("the EHR answered 412 %d times, want once (the stale If-Match)", n)
	}
	r := readRemote(t, sb.Store, "Observation", l.RemoteID)
	if !strings.Contains(string(r.Encode()), "amended at the practice") || r.Get("meta").GetString("versionId") != "3" {
		t.Errorf("the EHR's copy after the 412: %s", r.Encode())
	}
	if l2, _ := gw.Sync.Link(t.Context(), "ehr", obs.Tenant, obs.Type, obs.ResourceID, ""); l2.RemoteVersion != "3" || l2.Hash == l.Hash {
		t.Errorf("link after the update: %+v", l2)
	}
}

// TestOutboundConsentLater: notes held back for want of a Consent go once
// the client's Consent naming the connection's recipient arrives.
func TestOutboundConsentLater(t *testing.T) {
	gw := gatewayStores(t)[0].open(t)
	sb := startSyncSandbox(t, "epic")
	prescriber := "Practitioner/" + mappings.ResourceID(testPractice, mappings.KindPractitioner, "im-prescriber", "Practitioner")
	ob := newOutbound(t, gw, sb.connection("ehr", prescriber))
	importCourse(t, gw.Store, "im")
	drain(t, ob)
	notes := func() int {
		n := 0
		for _, v := range allVersions(t, sb.Store) {
			if v.Type == "DocumentReference" && fhir.SensitivityOfJSON(v.JSON)&fhir.PsychotherapyNote != 0 {
				n++
			}
		}
		return n
	}
	if n := notes(); n != 0 {
		t.Fatalf("%d notes went without a Consent", n)
	}
	rec, err := mappings.Decode([]byte(`{"kind":"consent","id":"im-consent","client":"im-client","recipient":"im-prescriber","scope":"process_notes","decision":"permit","start":"2026-01-01"}`))
	if err != nil {
		t.Fatal(err)
	}
	ap := &records.Applier{Store: gw.Store, Mapper: &mappings.Mapper{Practice: testPractice}, Writer: write.Writer{Changed: syncstore.Enqueue}}
	if r, err := ap.Apply(t.Context(), rec); err != nil || r.Status == records.StatusRejected {
		t.Fatalf("apply the consent: %+v, %v", r, err)
	}
	drain(t, ob)
	if n := notes(); n != 6 {
		t.Errorf("after the Consent, %d of the 6 notes are on the named prescriber's EHR", n)
	}
}

// TestOutboundReplanOn405: a worker whose plan is stale (it thinks the EHR
// takes CarePlans, Flags and conditional updates) meets 405s; it reads the
// statement again and every row still lands, in the representations the
// EHR now declares.
func TestOutboundReplanOn405(t *testing.T) {
	gw := gatewayStores(t)[0].open(t)
	epic := startSyncSandbox(t, "epic")
	ob := newOutbound(t, gw, epic.connection("ehr", ""))
	stale := newOutbound(t, gatewayStores(t)[0].open(t), startSyncSandbox(t, "full").connection("full", ""))
	ob.Caps, ob.Plan, ob.planned = stale.Caps, stale.Plan, time.Now()
	importCourse(t, gw.Store, "im")
	drain(t, ob)
	if c, _ := gw.Sync.Counts(t.Context(), "ehr"); c[syncstore.StateDead] != 0 {
		for _, d := range mustDeliveries(t, gw.Sync, "ehr", syncstore.StateDead)[:1] {
			t.Errorf("dead: %s: %s", d.Ref(), d.LastError)
		}
		t.Fatalf("counts %v", c)
	}
	if got := ob.Plan.Entry(ArtifactCourse).Route.Parts[0].Type; got != "DocumentReference" {
		t.Errorf("after the 405s the course goes as %s; want the re-read plan's DocumentReference", got)
	}
	if epic.Store == nil || countRemote(t, epic.Store, "CarePlan") != 0 {
		t.Errorf("a CarePlan reached Epic")
	}
}

func countRemote(t *testing.T, st fhir.Store, typ string) int {
	n := 0
	for _, v := range allVersions(t, st) {
		if v.Type == typ {
			n++
		}
	}
	return n
}

// TestOutboundRunReleasesLeases: a worker stopped mid-sync leaves no row
// leased (another worker takes them at once, not after the lease
// expires), and a second worker finishes the job.
func TestOutboundRunReleasesLeases(t *testing.T) {
	gw := gatewayStores(t)[0].open(t)
	sb := startSyncSandbox(t, "full")
	ob := newOutbound(t, gw, sb.connection("ehr", ""))
	ob.LeaseTTL = time.Hour
	importCourse(t, gw.Store, "spravato")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ob.Run(ctx, 10*time.Millisecond) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if c, _ := gw.Sync.Counts(t.Context(), "ehr"); c[syncstore.StateDone] >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker did not start delivering")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c, _ := gw.Sync.Counts(t.Context(), "ehr")
	for _, d := range mustDeliveries(t, gw.Sync, "ehr", "") {
		if d.LeaseOwner != "" {
			t.Fatalf("after the stop %s is still leased by %s", d.Ref(), d.LeaseOwner)
		}
	}
	if c[syncstore.StatePending] == 0 {
		t.Log("the worker finished before it was stopped; the release was not exercised on pending rows")
	}
	next := newOutbound(t, gw, sb.connection("ehr-2", ""))
	next.Conn = ob.Conn // the same connection, another worker
	next.Owner = ""
	drain(t, next)
	if c, _ := gw.Sync.Counts(t.Context(), "ehr"); c[syncstore.StatePending]+c[syncstore.StateDead] != 0 {
		t.Errorf("after a second worker: %v", c)
	}
}
