package ehr

import (
	"bufio"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
}

func startSyncSandbox(t *testing.T, profile string) *sandboxEHR {
	t.Helper()
	key, err := smart.GenerateKey(smart.ES384)
	if err != nil {
		t.Fatal(err)
	}
	scopes, _ := smart.ParseScopes("system/*.cruds")
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
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
	return &sandboxEHR{URL: srv.URL, Store: st, key: key}
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
	deadline := time.Now().Add(2 * time.Minute)
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

func newOutbound(t *testing.T, gw gateway, conn syncstore.Connection) *Outbound {
	t.Helper()
	if err := gw.Sync.AddConnection(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	ob, err := NewOutbound(t.Context(), conn, gw.Sync, gw.Store, nil, slog.New(slog.DiscardHandler))
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
					t.Errorf("re-delivering unchanged content wrote %d new versions on the EHR", after-before)
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
