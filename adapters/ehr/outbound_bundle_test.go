package ehr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/faultproxy"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/smart"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// Creates in batch Bundles (outbound_bundle.go), against the sandbox as
// Oracle Health and as a full server (both declare batch) behind a fault proxy,
// counted on the EHR's own store: every Observation lands exactly once
// whatever happens to a Bundle or to one of its entries.

// bundleEHR is a sandbox behind a fault proxy. dropEntry >= 0
// makes the next batch lose that entry before the server sees it, and
// answer it with a 500 entry: an entry that failed and did not land.
type bundleEHR struct {
	proxy     *faultproxy.Proxy
	store     fhir.Store
	conn      syncstore.Connection
	dropEntry atomic.Int64
}

func startBundleEHR(t *testing.T, profile string) *bundleEHR {
	t.Helper()
	key, err := smart.GenerateKey(smart.ES384)
	if err != nil {
		t.Fatal(err)
	}
	e := &bundleEHR{store: memstore.New()}
	e.dropEntry.Store(-1)
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/" {
			if i := e.dropEntry.Swap(-1); i >= 0 {
				dropBatchEntry(t, h, w, r, int(i))
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.proxy, err = faultproxy.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.proxy.Close)
	scopes, _ := smart.ParseScopes("system/*.cruds")
	h, err = NewSandbox(SandboxConfig{Profile: profile, BaseURL: e.proxy.URL, Store: e.store, Logger: discard,
		Clients: smart.Clients{"kapbridge": {ID: "kapbridge", JWKS: key.PublicJWKS(), Scopes: scopes}}})
	if err != nil {
		t.Fatal(err)
	}
	seedPatient(t, e.store, "ehr-bundle", "KC-BUNDLE")
	pemData, _ := key.MarshalPEM()
	e.conn = syncstore.Connection{Name: "bundle", Tenant: fhir.DefaultTenant, BaseURL: e.proxy.URL, ClientID: "kapbridge", KeyFile: "(test)",
		Key: pemData, Scopes: "system/*.cruds", MRNSystem: testMRNSystem, Created: time.Now()}
	return e
}

// dropBatchEntry serves a batch without its entry i, then puts a 500
// answer with an OperationOutcome in that entry's place.
func dropBatchEntry(t *testing.T, h http.Handler, w http.ResponseWriter, r *http.Request, i int) {
	body, _ := io.ReadAll(r.Body)
	var b map[string]json.RawMessage
	var entries []json.RawMessage
	if json.Unmarshal(body, &b) != nil || json.Unmarshal(b["entry"], &entries) != nil || i >= len(entries) {
		t.Errorf("dropBatchEntry: not a batch with entry %d", i)
		h.ServeHTTP(w, r)
		return
	}
	b["entry"], _ = json.Marshal(append(entries[:i:i], entries[i+1:]...))
	body, _ = json.Marshal(b)
	r2 := r.Clone(r.Context())
	r2.Body, r2.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r2)
	var resp map[string]json.RawMessage
	var answers []json.RawMessage
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil || json.Unmarshal(resp["entry"], &answers) != nil {
		t.Errorf("dropBatchEntry: the sandbox answered %d: %s", rec.Code, clip(rec.Body.String(), 300))
		return
	}
	failed := json.RawMessage(`{"response":{"status":"500 Internal Server Error","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"entry lost by the test"}]}}}`)
	answers = append(answers[:i:i], append([]json.RawMessage{failed}, answers[i:]...)...)
	resp["entry"], _ = json.Marshal(answers)
	out, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

func isBundlePost(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Path == "/" }

// bundleGateway is a SQLite gateway holding the patient linked to
// KC-BUNDLE and n Observations, each with its outbox row, and a worker
// for e with Bundles of batch entries.
func bundleGateway(t *testing.T, e *bundleEHR, n, batch int) (*Outbound, syncstore.Store) {
	t.Helper()
	ctx := t.Context()
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := write.Writer{Changed: syncstore.Enqueue}
	put := func(tx fhir.Tx, typ, id string, body []byte) error {
		res, err := fhir.ParseJSON(body, fhir.StoredLimits)
		if err != nil {
			return err
		}
		k := fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id}
		_, err = w.Put(ctx, tx, k, fhir.Version{Key: k}, res)
		return err
	}
	run := benchRun()
	if err := st.Update(ctx, func(tx fhir.Tx) error {
		if err := put(tx, "Patient", "p1", []byte(`{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"`+testMRNSystem+`","value":"KC-BUNDLE"}]}`)); err != nil {
			return err
		}
		for i := range n {
			if err := put(tx, "Observation", fmt.Sprintf("o%d", i), benchObservation(run, "p1", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sync := st.(syncstore.Store)
	if err := sync.AddConnection(ctx, e.conn); err != nil {
		t.Fatal(err)
	}
	// No fault here is a delay: a long attempt timeout keeps a slow
	// machine (-race, load) from adding timeouts, and so retries, of its
	// own to the requests the test counts.
	policy := faultPolicy()
	policy.AttemptTimeout = 20 * time.Second
	ob, err := NewOutbound(ctx, e.conn, sync, st, OutboundConfig{Logger: discard, Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	ob.Batch, ob.TargetWait = batch, 5*time.Millisecond
	return ob, sync
}

// TestOutboundBundles: fresh creates go in batch Bundles (one per leased
// round, no search first); an entry that failed is retried alone, resolved
// first; a Bundle whose answer is lost (reset after the server acted), or
// that never reached the server (503), is resolved row by row before
// anything is sent again. Resolving is a search then a create where
// none was found (the Oracle Health profile: batch, no conditional
// update), or a conditional update (the full profile). Each
// case ends with every Observation on the EHR exactly once and the link
// table agreeing.
func TestOutboundBundles(t *testing.T) {
	// 24 Observations leased 8 at a time beside the Patient's row: the
	// rounds carry 7, 8, 8 and 1 creates; a fault hits the first Bundle
	// (7 entries), whose failed rows come back, alone, in the last round.
	const n, batch, first = 24, 8, 7
	const bundles = 4
	count := func(e *bundleEHR, method, path, query string) int {
		return len(e.proxy.Seen(func(s faultproxy.Seen) bool {
			return s.Method == method && s.Path == path && strings.Contains(s.Query, query)
		}))
	}
	cases := []struct {
		name  string
		fault func(e *bundleEHR)
		// failed: rows whose entry did not certainly land (each resolved
		// alone); lost: of those, how many had not landed.
		failed, lost int
	}{
		{"clean", func(*bundleEHR) {}, 0, 0},
		{"an entry fails and did not land", func(e *bundleEHR) { e.dropEntry.Store(3) }, 1, 1},
		{"an entry's answer says failed but it landed", func(e *bundleEHR) {
			e.proxy.Inject(faultproxy.Fault{Match: isBundlePost, After: true, Rewrite: func(status int, h http.Header, body []byte) (int, []byte) {
				return status, bytes.Replace(body, []byte(`"201 Created"`), []byte(`"503 Service Unavailable"`), 1)
			}})
		}, 1, 0},
		{"the Bundle's answer is lost after the server acted", func(e *bundleEHR) {
			e.proxy.Inject(faultproxy.Fault{Match: isBundlePost, After: true, Reset: true})
		}, first, 0},
		{"the Bundle is refused before the server", func(e *bundleEHR) {
			e.proxy.Inject(faultproxy.Fault{Match: isBundlePost, Status: http.StatusServiceUnavailable,
				Body: `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"busy"}]}`})
		}, first, first},
	}
	for _, profile := range []string{"oracle", "full"} {
		for _, tc := range cases {
			t.Run(profile+"/"+tc.name, func(t *testing.T) {
				e := startBundleEHR(t, profile)
				ob, sync := bundleGateway(t, e, n, batch)
				tc.fault(e)
				drain(t, ob)
				e.proxy.Clear()
				checkExactlyOnce(t, sync, e.conn.Name, e.store, 0)
				links, err := sync.Links(t.Context(), e.conn.Name)
				if err != nil {
					t.Fatal(err)
				}
				obsLinks := 0
				for _, l := range links {
					if l.SourceType == "Observation" {
						obsLinks++
					}
				}
				if obsLinks != n {
					t.Errorf("%d Observation links, want %d", obsLinks, n)
				}
				if got := count(e, http.MethodPost, "/", ""); got != bundles {
					t.Errorf("%d Bundles sent, want %d", got, bundles)
				}
				searches, singles, conditional := count(e, http.MethodGet, "/Observation", ""), count(e, http.MethodPost, "/Observation", ""),
					count(e, http.MethodPut, "/Observation", "identifier=")
				want := [3]int{tc.failed, tc.lost, 0} // Oracle: search (by patient: it has no identifier search), then create what was not found
				if profile == "full" {
					want = [3]int{0, 0, tc.failed} // one conditional update each
				}
				if got := [3]int{searches, singles, conditional}; got != want {
					t.Errorf("searches, single POSTs, conditional updates = %v, want %v", got, want)
				}
				attempted := 0
				for _, d := range mustDeliveries(t, sync, e.conn.Name, "") {
					if d.State != syncstore.StateDone {
						t.Errorf("%s ended %s: %s", d.Ref(), d.State, d.LastError)
					}
					if d.Attempts > 0 {
						attempted++
					}
				}
				if attempted != tc.failed {
					t.Errorf("%d rows with a failed attempt, want %d", attempted, tc.failed)
				}
			})
		}
	}
}

// TestOutboundBundleRecordedWhileNextRound: Drain records a round's
// Bundle while the next round is prepared, and a row of that next round
// referring to a resource of the Bundle still being recorded waits for
// the recording, not for TargetWait (set to a minute here, longer than
// the drain may take): rounds of 4 (the first with the Patient), where the
// first Observation of each round is derivedFrom the last of the round
// before. Every reference ends pointing at the EHR's id of its target.
func TestOutboundBundleRecordedWhileNextRound(t *testing.T) {
	const n, batch = 15, 4
	e := startBundleEHR(t, "full")
	ctx := t.Context()
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sync := st.(syncstore.Store)
	if err := sync.AddConnection(ctx, e.conn); err != nil {
		t.Fatal(err)
	}
	w := write.Writer{Changed: syncstore.Enqueue}
	run := benchRun()
	if err := st.Update(ctx, func(tx fhir.Tx) error {
		put := func(typ, id string, body []byte) error {
			res, err := fhir.ParseJSON(body, fhir.StoredLimits)
			if err != nil {
				return err
			}
			k := fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id}
			_, err = w.Put(ctx, tx, k, fhir.Version{Key: k}, res)
			return err
		}
		if err := put("Patient", "p1", []byte(`{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"`+testMRNSystem+`","value":"KC-BUNDLE"}]}`)); err != nil {
			return err
		}
		for i := range n {
			body := benchObservation(run, "p1", i)
			if i%batch == batch-1 { // the first of its round: Patient, o0, o1, o2 | o3 ...
				body = bytes.Replace(body, []byte(`"status":"final"`), fmt.Appendf(nil, `"status":"final","derivedFrom":[{"reference":"Observation/o%d"}]`, i-1), 1)
			}
			if err := put("Observation", fmt.Sprintf("o%d", i), body); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ob, err := NewOutbound(ctx, e.conn, sync, st, OutboundConfig{Logger: discard, Policy: faultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	ob.Batch, ob.TargetWait = batch, time.Minute
	drain(t, ob)
	checkExactlyOnce(t, sync, e.conn.Name, e.store, 0)
	remote := map[string]string{}
	links, err := sync.Links(ctx, e.conn.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		remote[l.SourceType+"/"+l.SourceID] = l.RemoteType + "/" + l.RemoteID
	}
	for i := batch - 1; i < n; i += batch {
		got, ok := remote[fmt.Sprintf("Observation/o%d", i)]
		if !ok {
			t.Fatalf("o%d not linked", i)
		}
		typ, id, _ := syncstore.SplitRef(got)
		v, err := e.store.Read(ctx, fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id})
		if err != nil {
			t.Fatal(err)
		}
		res, _ := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
		want := remote[fmt.Sprintf("Observation/o%d", i-1)]
		if ref := elementsOf(res.Get("derivedFrom")); len(ref) != 1 || want == "" || ref[0].GetString("reference") != want {
			t.Errorf("o%d on the EHR is derivedFrom %v, want %s", i, res.Get("derivedFrom"), want)
		}
	}
}
