// Package synctest is the contract suite every syncstore.Store passes
// (memory, SQLite, PostgreSQL): one set of tests, run by each backend's
// own test with an opener.
package synctest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
)

// Opener returns a fresh, empty store pair: the FHIR store whose outbox
// feeds the sync store, and the sync store.
type Opener func(t *testing.T) (fhir.Store, syncstore.Store)

// Run runs the contract suite.
func Run(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Connections", testConnections},
		{"FanoutCoalesces", testFanout},
		{"LeasesAreExclusiveAndExpire", testLease},
		{"FinishKeepsNewerChanges", testGen},
		{"FinishAllKeepsNewerChanges", testGenAll},
		{"BackoffDeadLetterReplay", testDead},
		{"ReleaseAndWake", testRelease},
		{"LeasesCountWhatMayHaveLanded", testLeaseCount},
		{"FinishAllInOneGo", testFinishAll},
		{"ConcurrentLeasesDisjoint", testConcurrent},
		{"Links", testLinks},
		{"LinksOfManySources", testLinksOf},
		{"PatientLinks", testPatients},
		{"RemoveConnectionDropsItsRows", testRemove},
		{"Backfill", testBackfill},
		{"PruneAndDiscard", testPrune},
		{"ClientSecretAndLinkBody", testSecretAndBody},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func conn(name string) syncstore.Connection {
	return syncstore.Connection{Name: name, Tenant: fhir.DefaultTenant, BaseURL: "https://ehr.example/" + name, TokenURL: "https://ehr.example/token",
		ClientID: "client-" + name, KeyFile: "/keys/" + name + ".pem", Key: []byte("-----BEGIN PRIVATE KEY-----\nx\n"), Scopes: "system/Observation.cruds",
		Practice: "urn:practice", MRNSystem: "urn:mrn", Recipient: "Practitioner/p1", Created: t0}
}

// change commits one change of ref through the FHIR store's outbox.
func change(t *testing.T, st fhir.Store, refs ...string) {
	t.Helper()
	err := st.Update(t.Context(), func(tx fhir.Tx) error {
		for _, ref := range refs {
			typ, id, _ := syncstore.SplitRef(ref)
			if err := syncstore.Enqueue(t.Context(), tx, fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: id}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fanout(t *testing.T, s syncstore.Store, want int) {
	t.Helper()
	n, err := s.Fanout(t.Context(), fhir.DefaultTenant, 0, t0)
	if err != nil || n != want {
		t.Fatalf("Fanout = %d, %v; want %d", n, err, want)
	}
}

func lease(t *testing.T, s syncstore.Store, c, owner string, limit int, at time.Time) []syncstore.Delivery {
	t.Helper()
	ds, err := s.Lease(t.Context(), c, owner, limit, at, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func refs(ds []syncstore.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Ref()
	}
	return out
}

func testConnections(t *testing.T, open Opener) {
	_, s := open(t)
	ctx := t.Context()
	if err := s.AddConnection(ctx, conn("epic")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddConnection(ctx, conn("epic")); !errors.Is(err, syncstore.ErrExists) {
		t.Errorf("second AddConnection(epic) = %v, want ErrExists", err)
	}
	if err := s.AddConnection(ctx, conn("cerner")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Connection(ctx, "epic")
	if err != nil {
		t.Fatal(err)
	}
	want := conn("epic")
	if fmt.Sprint(got) != fmt.Sprint(want) || !got.Created.Equal(t0) {
		t.Errorf("Connection(epic) = %+v\nwant %+v", got, want)
	}
	all, err := s.Connections(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "cerner" || all[1].Name != "epic" {
		t.Errorf("Connections = %+v, %v; want cerner, epic", all, err)
	}
	if _, err := s.Connection(ctx, "none"); !errors.Is(err, syncstore.ErrNotFound) {
		t.Errorf("Connection(none) = %v, want ErrNotFound", err)
	}
	if err := s.RemoveConnection(ctx, "cerner"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveConnection(ctx, "cerner"); !errors.Is(err, syncstore.ErrNotFound) {
		t.Errorf("second RemoveConnection = %v, want ErrNotFound", err)
	}
}

func testFanout(t *testing.T, open Opener) {
	st, s := open(t)
	ctx := t.Context()
	change(t, st, "Observation/a", "Observation/b")
	fanout(t, s, 0) // no connection yet: the changes wait for one
	change(t, st, "Observation/a")
	for _, c := range []string{"one", "two"} {
		if err := s.AddConnection(ctx, conn(c)); err != nil {
			t.Fatal(err)
		}
	}
	fanout(t, s, 3)
	fanout(t, s, 0)
	for _, c := range []string{"one", "two"} {
		ds, err := s.Deliveries(ctx, c, syncstore.StatePending, 0)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(refs(ds)) != "[Observation/a Observation/b]" {
			t.Errorf("%s deliveries = %v, want a and b once each", c, refs(ds))
		}
		if ds[0].Gen != 2 || ds[1].Gen != 1 {
			t.Errorf("%s gens = %d, %d; want 2 (two changes), 1", c, ds[0].Gen, ds[1].Gen)
		}
	}
	if d, err := s.Delivery(ctx, "two", fhir.DefaultTenant, "Observation", "a"); err != nil || d.Gen != 2 {
		t.Errorf("Delivery(two, Observation/a) = %+v, %v", d, err)
	}
	if _, err := s.Delivery(ctx, "two", fhir.DefaultTenant, "Observation", "zz"); !errors.Is(err, syncstore.ErrNotFound) {
		t.Errorf("Delivery of nothing = %v, want ErrNotFound", err)
	}
	counts, err := s.Counts(ctx, "one")
	if err != nil || counts[syncstore.StatePending] != 2 {
		t.Errorf("Counts(one) = %v, %v", counts, err)
	}
}

func setup(t *testing.T, open Opener, refs ...string) (fhir.Store, syncstore.Store) {
	st, s := open(t)
	if err := s.AddConnection(t.Context(), conn("c")); err != nil {
		t.Fatal(err)
	}
	change(t, st, refs...)
	fanout(t, s, len(refs))
	return st, s
}

func testLease(t *testing.T, open Opener) {
	_, s := setup(t, open, "Observation/a", "Observation/b")
	ctx := t.Context()
	a := lease(t, s, "c", "w1", 1, t0)
	b := lease(t, s, "c", "w2", 5, t0)
	if len(a) != 1 || len(b) != 1 || a[0].ID == b[0].ID {
		t.Fatalf("leases = %v and %v; want one row each, different", refs(a), refs(b))
	}
	if a[0].LeaseOwner != "w1" || !a[0].LeaseUntil.Equal(t0.Add(time.Minute)) {
		t.Errorf("lease = %q until %v", a[0].LeaseOwner, a[0].LeaseUntil)
	}
	if got := lease(t, s, "c", "w3", 5, t0.Add(30*time.Second)); len(got) != 0 {
		t.Errorf("leased rows were leased again: %v", refs(got))
	}
	// w1 crashed: its lease expires and another worker takes the row.
	got := lease(t, s, "c", "w3", 5, t0.Add(61*time.Second))
	if len(got) != 2 {
		t.Fatalf("after expiry w3 got %v, want both rows", refs(got))
	}
	if err := s.Finish(ctx, a[0], "w1", syncstore.Result{State: syncstore.StateDone}, t0); !errors.Is(err, syncstore.ErrLeaseLost) {
		t.Errorf("Finish by the expired owner = %v, want ErrLeaseLost", err)
	}
	for _, d := range got {
		if err := s.Finish(ctx, d, "w3", syncstore.Result{State: syncstore.StateDone, Error: "note"}, t0); err != nil {
			t.Fatal(err)
		}
	}
	done, _ := s.Deliveries(ctx, "c", syncstore.StateDone, 0)
	if len(done) != 2 || done[0].LastError != "note" || done[0].LeaseOwner != "" {
		t.Errorf("done = %+v", done)
	}
	if got := lease(t, s, "c", "w4", 5, t0.Add(time.Hour)); len(got) != 0 {
		t.Errorf("done rows leased: %v", refs(got))
	}
}

func testGen(t *testing.T, open Opener) {
	st, s := setup(t, open, "Observation/a")
	ctx := t.Context()
	d := lease(t, s, "c", "w", 1, t0)
	change(t, st, "Observation/a") // changed while being delivered
	fanout(t, s, 1)
	if err := s.Finish(ctx, d[0], "w", syncstore.Result{State: syncstore.StateDone}, t0); err != nil {
		t.Fatal(err)
	}
	again := lease(t, s, "c", "w", 1, t0)
	if len(again) != 1 || again[0].Gen != d[0].Gen+1 {
		t.Fatalf("after a change during delivery the row must stay pending: leased %+v", again)
	}
	if err := s.Finish(ctx, again[0], "w", syncstore.Result{State: syncstore.StateDone}, t0); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Counts(ctx, "c"); c[syncstore.StateDone] != 1 || c[syncstore.StatePending] != 0 {
		t.Errorf("counts = %v", c)
	}
}

// testGenAll is testGen through FinishAll, whose rows of alike results
// are finished together: the one changed while delivered stays pending
// (attempts reset), the others are done.
func testGenAll(t *testing.T, open Opener) {
	st, s := setup(t, open, "Observation/a", "Observation/b", "Observation/c")
	ctx := t.Context()
	ds := lease(t, s, "c", "w", 3, t0)
	if len(ds) != 3 {
		t.Fatalf("leased %v", refs(ds))
	}
	change(t, st, "Observation/b") // changed while being delivered
	fanout(t, s, 1)
	fs := make([]syncstore.Finishing, len(ds))
	for i, d := range ds {
		fs[i] = syncstore.Finishing{Delivery: d, Result: syncstore.Result{State: syncstore.StateDone, Error: "sent"}}
	}
	errs, err := s.FinishAll(ctx, "w", fs, t0)
	if err != nil || len(errs) != 3 || errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatalf("FinishAll = %v, %v", errs, err)
	}
	for _, d := range mustAll(t, s) {
		want := syncstore.StateDone
		if d.ResourceID == "b" {
			want = syncstore.StatePending
		}
		if d.State != want || d.LeaseOwner != "" || d.Attempts != 0 {
			t.Errorf("%s after FinishAll: %+v, want %s", d.Ref(), d, want)
		}
	}
}

func testDead(t *testing.T, open Opener) {
	_, s := setup(t, open, "Observation/a")
	ctx := t.Context()
	d := lease(t, s, "c", "w", 1, t0)[0]
	next := t0.Add(10 * time.Second)
	if err := s.Finish(ctx, d, "w", syncstore.Result{State: syncstore.StatePending, Attempted: true, NextAt: next, Error: "503"}, t0); err != nil {
		t.Fatal(err)
	}
	if got := lease(t, s, "c", "w", 1, t0.Add(9*time.Second)); len(got) != 0 {
		t.Errorf("leased before its backoff ended")
	}
	d = lease(t, s, "c", "w", 1, next)[0]
	if d.Attempts != 1 || d.LastError != "503" {
		t.Errorf("after one failure: attempts %d, error %q", d.Attempts, d.LastError)
	}
	oo := []byte(`{"resourceType":"OperationOutcome"}`)
	if err := s.Finish(ctx, d, "w", syncstore.Result{State: syncstore.StateDead, Attempted: true, Error: "422 refused", Outcome: oo}, next); err != nil {
		t.Fatal(err)
	}
	dead, err := s.Deliveries(ctx, "c", syncstore.StateDead, 0)
	if err != nil || len(dead) != 1 || dead[0].Attempts != 2 || dead[0].LastError != "422 refused" || string(dead[0].Outcome) != string(oo) {
		t.Fatalf("dead = %+v, %v", dead, err)
	}
	if got := lease(t, s, "c", "w", 1, t0.Add(time.Hour)); len(got) != 0 {
		t.Errorf("a dead row was leased")
	}
	if n, err := s.Replay(ctx, "c", next); err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	got := lease(t, s, "c", "w", 1, next)
	if len(got) != 1 || got[0].Attempts != 0 {
		t.Errorf("after replay: %+v", got)
	}
}

func testRelease(t *testing.T, open Opener) {
	_, s := setup(t, open, "Observation/a", "Observation/b")
	ctx := t.Context()
	if got := lease(t, s, "c", "w", 5, t0); len(got) != 2 {
		t.Fatalf("leased %v", refs(got))
	}
	if err := s.Release(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	got := lease(t, s, "c", "v", 5, t0)
	if len(got) != 2 {
		t.Fatalf("after Release, leased %v; want both", refs(got))
	}
	later := t0.Add(time.Hour)
	if err := s.Finish(ctx, got[0], "v", syncstore.Result{State: syncstore.StatePending, NextAt: later, Error: "waiting for the patient link"}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Wake(ctx, "c", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	if got := lease(t, s, "c", "u", 5, t0.Add(time.Second)); len(got) != 2 || got[0].Attempts+got[1].Attempts != 0 {
		t.Errorf("after Wake, leased %+v; want both, no attempt counted for the wait", got)
	}
}

func testConcurrent(t *testing.T, open Opener) {
	const n = 60
	var rs []string
	for i := range n {
		rs = append(rs, fmt.Sprintf("Observation/o%d", i))
	}
	_, s := setup(t, open, rs...)
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", w)
			for {
				ds, err := s.Lease(context.Background(), "c", owner, 7, t0, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					if prev, ok := seen[d.ID]; ok {
						errs <- fmt.Errorf("row %d leased by %s and %s", d.ID, prev, owner)
					}
					seen[d.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != n {
		t.Errorf("leased %d rows, want %d", len(seen), n)
	}
}

func testLinks(t *testing.T, open Opener) {
	_, s := open(t)
	ctx := t.Context()
	l := syncstore.Link{Connection: "c", Tenant: fhir.DefaultTenant, SourceType: "Flag", SourceID: "f1", Part: "FlagCommunication",
		RemoteType: "Communication", RemoteID: "r1", RemoteVersion: "1", Hash: "h1", Updated: t0}
	if _, err := s.Link(ctx, "c", l.Tenant, "Flag", "f1", "FlagCommunication"); !errors.Is(err, syncstore.ErrNotFound) {
		t.Errorf("Link before Put = %v, want ErrNotFound", err)
	}
	if err := s.PutLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	l.RemoteVersion, l.Hash = "2", "h2"
	if err := s.PutLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	got, err := s.Link(ctx, "c", l.Tenant, "Flag", "f1", "FlagCommunication")
	if err != nil || got.RemoteVersion != "2" || got.Hash != "h2" || got.RemoteID != "r1" || !got.Updated.Equal(t0) {
		t.Errorf("Link = %+v, %v", got, err)
	}
	if r, err := s.LinkByRemote(ctx, "c", "Communication", "r1"); err != nil || r.SourceID != "f1" {
		t.Errorf("LinkByRemote = %+v, %v", r, err)
	}
	if _, err := s.LinkByRemote(ctx, "other", "Communication", "r1"); !errors.Is(err, syncstore.ErrNotFound) {
		t.Errorf("LinkByRemote of another connection = %v", err)
	}
	l2 := l
	l2.Part, l2.RemoteType, l2.RemoteID = "", "Flag", "r2"
	if err := s.PutLink(ctx, l2); err != nil {
		t.Fatal(err)
	}
	all, err := s.Links(ctx, "c")
	if err != nil || len(all) != 2 {
		t.Errorf("Links = %+v, %v", all, err)
	}
}

// testLinksOf: a LinkBatcher returns every part of exactly the sources
// asked for, on that connection, across IN-list chunks (300 sources).
func testLinksOf(t *testing.T, open Opener) {
	_, s := open(t)
	lb, ok := s.(syncstore.LinkBatcher)
	if !ok {
		t.Skip("the store reads links one at a time (no LinkBatcher)")
	}
	ctx := t.Context()
	put := func(conn, tenant, typ, id, part string) {
		t.Helper()
		if err := s.PutLink(ctx, syncstore.Link{Connection: conn, Tenant: tenant, SourceType: typ, SourceID: id, Part: part,
			RemoteType: typ, RemoteID: "r-" + conn + "-" + tenant + "-" + id + "-" + part, Hash: "h", Updated: t0}); err != nil {
			t.Fatal(err)
		}
	}
	var asked []syncstore.Source
	want := map[string]bool{}
	for i := range 300 {
		id := fmt.Sprintf("o%d", i)
		asked = append(asked, syncstore.Source{Tenant: fhir.DefaultTenant, Type: "Observation", ID: id})
		if i%3 == 0 {
			continue // asked for, never written: no link
		}
		put("c", fhir.DefaultTenant, "Observation", id, "")
		want["Observation/"+id+"/"] = true
		if i%5 == 0 {
			put("c", fhir.DefaultTenant, "Observation", id, "DoseObservation")
			want["Observation/"+id+"/DoseObservation"] = true
		}
	}
	asked = append(asked, syncstore.Source{Tenant: fhir.DefaultTenant, Type: "Flag", ID: "f1"}, syncstore.Source{Tenant: "other", Type: "Flag", ID: "f1"})
	put("c", fhir.DefaultTenant, "Flag", "f1", "FlagCommunication")
	want["Flag/f1/FlagCommunication"] = true
	// Not asked for: another connection, another tenant's id, another type.
	put("d", fhir.DefaultTenant, "Observation", "o1", "")
	put("c", "elsewhere", "Observation", "o1", "")
	put("c", fhir.DefaultTenant, "Goal", "o1", "")
	put("c", fhir.DefaultTenant, "Observation", "o9999", "")
	got, err := lb.LinksOf(ctx, "c", asked)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range got {
		k := l.SourceType + "/" + l.SourceID + "/" + l.Part
		if l.Connection != "c" || l.Tenant != fhir.DefaultTenant || !want[k] || seen[k] {
			t.Errorf("LinksOf returned %+v (asked for: %v, seen before: %v)", l, want[k], seen[k])
		}
		if l.RemoteID != "r-c-"+fhir.DefaultTenant+"-"+l.SourceID+"-"+l.Part {
			t.Errorf("LinksOf %s: remote id %q", k, l.RemoteID)
		}
		seen[k] = true
	}
	if len(seen) != len(want) {
		t.Errorf("LinksOf returned %d links, want %d", len(seen), len(want))
	}
	if got, err := lb.LinksOf(ctx, "c", nil); err != nil || len(got) != 0 {
		t.Errorf("LinksOf of nothing = %v, %v", got, err)
	}
}

func testPatients(t *testing.T, open Opener) {
	_, s := open(t)
	ctx := t.Context()
	w := syncstore.PatientLink{Connection: "c", Tenant: fhir.DefaultTenant, PatientID: "p1", State: syncstore.PatientWaiting,
		Reason: "2 patients carry MRN KC-1", Updated: t0}
	if err := s.PutPatientLink(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPatientLink(ctx, syncstore.PatientLink{Connection: "c", Tenant: fhir.DefaultTenant, PatientID: "p2",
		State: syncstore.PatientLinked, RemoteID: "e2", Updated: t0}); err != nil {
		t.Fatal(err)
	}
	waiting, err := s.PatientLinks(ctx, "c", syncstore.PatientWaiting)
	if err != nil || len(waiting) != 1 || waiting[0].Reason != w.Reason {
		t.Errorf("waiting = %+v, %v", waiting, err)
	}
	w.State, w.RemoteID, w.Reason = syncstore.PatientLinked, "e1", ""
	if err := s.PutPatientLink(ctx, w); err != nil {
		t.Fatal(err)
	}
	got, err := s.PatientLink(ctx, "c", fhir.DefaultTenant, "p1")
	if err != nil || got.State != syncstore.PatientLinked || got.RemoteID != "e1" {
		t.Errorf("PatientLink = %+v, %v", got, err)
	}
	if _, err := s.PatientLink(ctx, "c", fhir.DefaultTenant, "p9"); !errors.Is(err, syncstore.ErrNotFound) {
		t.Errorf("PatientLink(p9) = %v", err)
	}
	if all, _ := s.PatientLinks(ctx, "c", ""); len(all) != 2 {
		t.Errorf("PatientLinks = %+v", all)
	}
}

func testRemove(t *testing.T, open Opener) {
	_, s := setup(t, open, "Observation/a")
	ctx := t.Context()
	if err := s.PutLink(ctx, syncstore.Link{Connection: "c", Tenant: fhir.DefaultTenant, SourceType: "Observation", SourceID: "a", RemoteType: "Observation", RemoteID: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPatientLink(ctx, syncstore.PatientLink{Connection: "c", Tenant: fhir.DefaultTenant, PatientID: "p", State: syncstore.PatientLinked, RemoteID: "e"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveConnection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddConnection(ctx, conn("c")); err != nil {
		t.Fatal(err)
	}
	ds, _ := s.Deliveries(ctx, "c", "", 0)
	ls, _ := s.Links(ctx, "c")
	ps, _ := s.PatientLinks(ctx, "c", "")
	if len(ds)+len(ls)+len(ps) != 0 {
		t.Errorf("a removed connection left %d deliveries, %d links, %d patient links", len(ds), len(ls), len(ps))
	}
}

// testLeaseCount: Leases says whether an earlier holder may have written
// the row's resource without recording it. A first lease is 1; every
// lease after it counts (an expiry, a Release, a failed attempt, a wait:
// none settles whether an earlier write landed) until a Finish done, also
// when a newer change keeps the row pending.
func testLeaseCount(t *testing.T, open Opener) {
	st, s := setup(t, open, "Observation/a")
	ctx := t.Context()
	leaseOne := func(owner string, at time.Time, want int) syncstore.Delivery {
		t.Helper()
		got := lease(t, s, "c", owner, 1, at)
		if len(got) != 1 {
			t.Fatalf("%s at %v leased %v, want the row", owner, at, refs(got))
		}
		if got[0].Leases != want {
			t.Fatalf("%s: Leases = %d, want %d", owner, got[0].Leases, want)
		}
		return got[0]
	}
	finish := func(d syncstore.Delivery, owner string, r syncstore.Result, at time.Time) {
		t.Helper()
		if err := s.Finish(ctx, d, owner, r, at); err != nil {
			t.Fatal(err)
		}
	}
	leaseOne("w1", t0, 1)
	// w1 dies mid-write: its lease expires and w2 must search first.
	d := leaseOne("w2", t0.Add(61*time.Second), 2)
	// A wait settles nothing.
	finish(d, "w2", syncstore.Result{State: syncstore.StatePending, NextAt: t0.Add(62 * time.Second), Error: "waiting"}, t0.Add(61*time.Second))
	d = leaseOne("w3", t0.Add(62*time.Second), 3)
	// Nor does a failed attempt, also when a newer change resets attempts.
	change(t, st, "Observation/a")
	fanout(t, s, 1)
	finish(d, "w3", syncstore.Result{State: syncstore.StatePending, Attempted: true, NextAt: t0.Add(64 * time.Second), Error: "timeout"}, t0.Add(62*time.Second))
	d = leaseOne("w4", t0.Add(62*time.Second), 4)
	if d.Attempts != 0 {
		t.Errorf("after a newer change: attempts %d, want 0", d.Attempts)
	}
	// A graceful stop releases the lease but not the doubt.
	if err := s.Release(ctx, "w4"); err != nil {
		t.Fatal(err)
	}
	d = leaseOne("w5", t0.Add(62*time.Second), 5)
	// Done (the write recorded its link) ends the doubt, also when a
	// change came in meanwhile and the row stays pending.
	change(t, st, "Observation/a")
	fanout(t, s, 1)
	finish(d, "w5", syncstore.Result{State: syncstore.StateDone}, t0.Add(63*time.Second))
	leaseOne("w6", t0.Add(63*time.Second), 1)
}

// testFinishAll: FinishAll records each row's link and result as Finish
// and PutLink would; a row whose lease was lost gets ErrLeaseLost, its
// link is recorded all the same, and the other rows are finished.
func testFinishAll(t *testing.T, open Opener) {
	_, s := setup(t, open, "Observation/a", "Observation/b", "Observation/c")
	ctx := t.Context()
	ds := lease(t, s, "c", "w", 2, t0)
	theirs := lease(t, s, "c", "v", 1, t0) // a row w does not hold
	if len(ds) != 2 || len(theirs) != 1 {
		t.Fatalf("leased %v and %v", refs(ds), refs(theirs))
	}
	other := theirs[0]
	link := func(d syncstore.Delivery) *syncstore.Link {
		return &syncstore.Link{Connection: "c", Tenant: fhir.DefaultTenant, SourceType: d.Type, SourceID: d.ResourceID,
			RemoteType: d.Type, RemoteID: "remote-" + d.ResourceID, RemoteVersion: "1", Hash: "h", Updated: t0}
	}
	at := t0.Add(time.Second)
	errs, err := s.FinishAll(ctx, "w", []syncstore.Finishing{
		{Delivery: ds[0], Result: syncstore.Result{State: syncstore.StateDone, Error: "sent"}, Link: link(ds[0])},
		{Delivery: ds[1], Result: syncstore.Result{State: syncstore.StatePending, Attempted: true, NextAt: at.Add(time.Minute), Error: "refused in the batch"}},
		{Delivery: other, Result: syncstore.Result{State: syncstore.StateDone}, Link: link(other)},
	}, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 3 || errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], syncstore.ErrLeaseLost) {
		t.Fatalf("FinishAll errors = %v, want nil, nil, ErrLeaseLost", errs)
	}
	got := map[string]syncstore.Delivery{}
	for _, d := range mustAll(t, s) {
		got[d.Ref()] = d
	}
	if d := got[ds[0].Ref()]; d.State != syncstore.StateDone || d.LastError != "sent" || d.LeaseOwner != "" {
		t.Errorf("done row = %+v", d)
	}
	if d := got[ds[1].Ref()]; d.State != syncstore.StatePending || d.Attempts != 1 || !d.NextAt.Equal(at.Add(time.Minute)) || d.LeaseOwner != "" {
		t.Errorf("failed row = %+v", d)
	}
	if d := got[other.Ref()]; d.State != syncstore.StatePending || d.LeaseOwner != "v" {
		t.Errorf("the row w did not hold = %+v", d)
	}
	for _, d := range []syncstore.Delivery{ds[0], other} {
		l, err := s.Link(ctx, "c", fhir.DefaultTenant, d.Type, d.ResourceID, "")
		if err != nil || l.RemoteID != "remote-"+d.ResourceID {
			t.Errorf("link of %s = %+v, %v", d.Ref(), l, err)
		}
	}
	if _, err := s.Link(ctx, "c", fhir.DefaultTenant, ds[1].Type, ds[1].ResourceID, ""); !errors.Is(err, syncstore.ErrNotFound) {
		t.Errorf("a row without a link got one: %v", err)
	}
}

func mustAll(t *testing.T, s syncstore.Store) []syncstore.Delivery {
	t.Helper()
	ds, err := s.Deliveries(t.Context(), "c", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}
