package fhirtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// StoreOpener opens the Store under test for test t. The first call for a
// given t must return a Store over fresh, empty storage private to t; each
// later call for the same t must return a new Store over that same storage,
// as a process restart would (the suite closes the earlier Store first).
// The opener registers its own cleanup with t; Close may then be called
// twice, so backends make it idempotent. PerTestStorage builds one.
type StoreOpener = func(t *testing.T) fhir.Store

// PerTestStorage builds a StoreOpener from a function that makes fresh
// storage for a test (a file path, a schema name ...) and one that opens a
// Store on it; it remembers the storage of each t so a second call reopens.
func PerTestStorage(newStorage func(t *testing.T) string, openAt func(t *testing.T, storage string) fhir.Store) StoreOpener {
	var mu sync.Mutex
	storage := map[*testing.T]string{}
	return func(t *testing.T) fhir.Store {
		t.Helper()
		mu.Lock()
		loc, ok := storage[t]
		mu.Unlock()
		if !ok {
			loc = newStorage(t)
			mu.Lock()
			storage[t] = loc
			mu.Unlock()
			t.Cleanup(func() {
				mu.Lock()
				delete(storage, t)
				mu.Unlock()
			})
		}
		return openAt(t, loc)
	}
}

// Features says what a backend cannot do that the SQL stores do, so that
// a suite skips exactly those cases, saying why (as Watermill's shared
// pub/sub suite does). The zero value claims everything.
type Features struct {
	// Volatile: the store keeps nothing once closed (an in-memory store),
	// so there is no storage to reopen and DurableAcrossReopen is skipped.
	// The opener is then called once per test.
	Volatile bool
}

// RunStoreSuite checks that a fhir.Store backend keeps the contract of the
// Store and Tx interfaces. Subtests run in parallel, each on its own storage.
func RunStoreSuite(t *testing.T, open StoreOpener) {
	RunStoreSuiteWith(t, open, Features{})
}

// RunStoreSuiteWith is RunStoreSuite for a backend that lacks some
// Features: the cases that need them are skipped with the reason.
func RunStoreSuiteWith(t *testing.T, open StoreOpener, f Features) {
	skip := map[string]string{}
	if f.Volatile {
		skip["DurableAcrossReopen"] = "Features.Volatile: the store keeps nothing once closed, so there is nothing to reopen"
	}
	runCases(t, []suiteCase[StoreOpener]{
		{"CreateReadVReadHistory", storeTestCreateRead},
		{"UnknownIsNotFound", storeTestUnknown},
		{"Deletion", storeTestDeletion},
		{"VersionGapIsConflict", storeTestVersionGap},
		{"FnErrorRollsBackEverything", storeTestFnError},
		{"PanicInFnIsAnError", storeTestPanic},
		{"CancelledContext", storeTestCancelled},
		{"TxUnusableAfterFn", storeTestTxAfterFn},
		{"OutboxCommitsWithResource", storeTestOutbox},
		{"TenantIsolation", storeTestTenants},
		{"Identifiers", storeTestIdentifiers},
		{"ConcurrentUpdatesLoseNoVersion", storeTestConcurrentUpdates},
		{"ConcurrentConditionalCreate", storeTestConditionalCreate},
		{"DurableAcrossReopen", storeTestReopen},
		{"LargeBody", storeTestLargeBody},
		{"BinarySafeBody", storeTestBinaryBody},
	}, func(*testing.T) StoreOpener { return open }, skip)
}

// stT0 has nanoseconds and a non-UTC zone: stores keep microseconds, in UTC.
var stT0 = time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))

func stKey(tenant, id string) fhir.Key { return fhir.Key{Tenant: tenant, Type: "Patient", ID: id} }

func stBody(id string, vid int64, extra string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"meta":{"versionId":"%d"},"z":1,"a":[2,1]%s}`, id, vid, extra)
}

func stVersion(k fhir.Key, vid int64, json []byte) fhir.Version {
	return fhir.Version{Key: k, VersionID: vid, LastUpdated: stT0.Add(time.Duration(vid) * time.Second), JSON: json}
}

func stPut(t *testing.T, s fhir.Store, v fhir.Version, idx fhir.Index) {
	t.Helper()
	if err := s.Update(t.Context(), func(tx fhir.Tx) error { return tx.Put(t.Context(), v, idx) }); err != nil {
		t.Fatalf("put %v v%d: %v", v.Key, v.VersionID, err)
	}
}

// checkVersion compares what a store returned with what was put.
func stCheckVersion(t *testing.T, what string, got, want fhir.Version) {
	t.Helper()
	wantTime := want.LastUpdated.Truncate(time.Microsecond).UTC()
	if got.Key != want.Key || got.VersionID != want.VersionID || got.Deleted != want.Deleted {
		t.Errorf("%s: got %v v%d deleted=%v, want %v v%d deleted=%v", what,
			got.Key, got.VersionID, got.Deleted, want.Key, want.VersionID, want.Deleted)
	}
	if !got.LastUpdated.Equal(wantTime) || got.LastUpdated.Location() != time.UTC {
		t.Errorf("%s: LastUpdated %v, want %v in UTC", what, got.LastUpdated, wantTime)
	}
	if got.Method != want.Method {
		t.Errorf("%s: Method %q, want %q as put", what, got.Method, want.Method)
	}
	if !bytes.Equal(got.JSON, want.JSON) {
		t.Errorf("%s: JSON differs (%d bytes, want %d):\n got %.200q\nwant %.200q", what, len(got.JSON), len(want.JSON), got.JSON, want.JSON)
	}
}

func stWantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("%s: err %v, want ErrNotFound", what, err)
	}
}

func stLookup(t *testing.T, s fhir.Store, tenant, typ string, ident fhir.Identifier) []string {
	t.Helper()
	var ids []string
	err := s.Update(t.Context(), func(tx fhir.Tx) error {
		var err error
		ids, err = tx.LookupIdentifier(t.Context(), tenant, typ, ident)
		return err
	})
	if err != nil {
		t.Fatalf("lookup %v: %v", ident, err)
	}
	slices.Sort(ids)
	return ids
}

func storeTestCreateRead(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	k := stKey(fhir.DefaultTenant, "p1")
	v1 := stVersion(k, 1, stBody("p1", 1, ""))
	v2 := stVersion(k, 2, stBody("p1", 2, `,"name":[{"family":"Müller"}]`))
	// The method that wrote each version is kept for history.
	v1.Method, v2.Method = "PUT", "PATCH"
	stPut(t, s, v1, fhir.Index{})
	stPut(t, s, v2, fhir.Index{})

	got, err := s.Read(ctx, k)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	stCheckVersion(t, "Read", got, v2)
	for _, want := range []fhir.Version{v1, v2} {
		got, err := s.VRead(ctx, k, want.VersionID)
		if err != nil {
			t.Fatalf("VRead %d: %v", want.VersionID, err)
		}
		stCheckVersion(t, fmt.Sprintf("VRead %d", want.VersionID), got, want)
	}
	_, err = s.VRead(ctx, k, 3)
	stWantNotFound(t, "VRead of a version not yet written", err)

	hist, err := s.History(ctx, k, 0)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(hist) != 2 {
		t.Fatalf("History: %d versions, want 2", len(hist))
	}
	stCheckVersion(t, "History[0] (newest)", hist[0], v2)
	stCheckVersion(t, "History[1]", hist[1], v1)
	hist, err = s.History(ctx, k, 1)
	if err != nil || len(hist) != 1 || hist[0].VersionID != 2 {
		t.Fatalf("History limit 1: %d versions, err %v; want only version 2", len(hist), err)
	}

	// Inside a transaction Read sees the newest version too.
	err = s.Update(ctx, func(tx fhir.Tx) error {
		got, err := tx.Read(ctx, k)
		if err != nil {
			return err
		}
		stCheckVersion(t, "Tx.Read", got, v2)
		_, err = tx.Read(ctx, stKey(fhir.DefaultTenant, "nobody"))
		stWantNotFound(t, "Tx.Read of unknown", err)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func storeTestUnknown(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	k := stKey(fhir.DefaultTenant, "missing")
	_, err := s.Read(ctx, k)
	stWantNotFound(t, "Read", err)
	_, err = s.VRead(ctx, k, 1)
	stWantNotFound(t, "VRead", err)
	_, err = s.History(ctx, k, 0)
	stWantNotFound(t, "History", err)
}

func storeTestDeletion(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	k := stKey(fhir.DefaultTenant, "gone")
	ident := fhir.Identifier{System: "urn:sys", Value: "gone-1"}
	v1 := stVersion(k, 1, stBody("gone", 1, ""))
	stPut(t, s, v1, fhir.Index{Identifiers: []fhir.Identifier{ident}})
	del := fhir.Version{Key: k, VersionID: 2, LastUpdated: stT0.Add(time.Minute), Deleted: true}
	stPut(t, s, del, fhir.Index{Identifiers: []fhir.Identifier{ident}}) // ignored: a deletion clears the index

	got, err := s.Read(ctx, k)
	if err != nil {
		t.Fatalf("Read of deleted: %v (want the deletion version)", err)
	}
	stCheckVersion(t, "Read of deleted", got, del)
	if len(got.JSON) != 0 {
		t.Errorf("deletion has %d bytes of JSON, want none", len(got.JSON))
	}
	hist, err := s.History(ctx, k, 0)
	if err != nil || len(hist) != 2 || !hist[0].Deleted || hist[1].Deleted {
		t.Fatalf("History after delete: %+v, %v; want [deletion, v1]", hist, err)
	}
	if ids := stLookup(t, s, k.Tenant, k.Type, ident); len(ids) != 0 {
		t.Errorf("identifier of deleted resource still found: %v", ids)
	}
	// A deleted resource can come back as the next version.
	v3 := stVersion(k, 3, stBody("gone", 3, ""))
	stPut(t, s, v3, fhir.Index{Identifiers: []fhir.Identifier{ident}})
	got, err = s.Read(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	stCheckVersion(t, "Read after re-create", got, v3)
	if ids := stLookup(t, s, k.Tenant, k.Type, ident); !slices.Equal(ids, []string{"gone"}) {
		t.Errorf("identifier after re-create: %v", ids)
	}
}

func storeTestVersionGap(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	k := stKey(fhir.DefaultTenant, "gap")
	var calls atomic.Int32
	err := s.Update(ctx, func(tx fhir.Tx) error {
		calls.Add(1)
		return tx.Put(ctx, stVersion(k, 5, stBody("gap", 5, "")), fhir.Index{})
	})
	// No retry can fix a gap, so Update gives up and says why.
	if !errors.Is(err, fhir.ErrVersionConflict) {
		t.Fatalf("Put version 5 of a new resource: %v, want ErrVersionConflict", err)
	}
	if n := calls.Load(); n < 2 {
		t.Errorf("fn ran %d times; Update should retry on ErrVersionConflict", n)
	}
	_, err = s.Read(ctx, k)
	stWantNotFound(t, "Read after failed Put", err)

	stPut(t, s, stVersion(k, 1, stBody("gap", 1, "")), fhir.Index{})
	for _, vid := range []int64{0, 1, 3} {
		err := s.Update(ctx, func(tx fhir.Tx) error {
			return tx.Put(ctx, stVersion(k, vid, stBody("gap", vid, "")), fhir.Index{})
		})
		if !errors.Is(err, fhir.ErrVersionConflict) {
			t.Errorf("Put version %d over version 1: %v, want ErrVersionConflict", vid, err)
		}
	}
	if h, err := s.History(ctx, k, 0); err != nil || len(h) != 1 {
		t.Errorf("History after conflicts: %d versions, %v; want 1", len(h), err)
	}
}

var errStoreBoom = errors.New("boom from fn")

func storeTestFnError(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	k := stKey(fhir.DefaultTenant, "never")
	ident := fhir.Identifier{System: "urn:sys", Value: "never"}
	err := s.Update(ctx, func(tx fhir.Tx) error {
		if err := tx.Put(ctx, stVersion(k, 1, stBody("never", 1, "")), fhir.Index{Identifiers: []fhir.Identifier{ident}}); err != nil {
			return err
		}
		if err := tx.Enqueue(ctx, fhir.OutboxMessage{Tenant: k.Tenant, Topic: "t", Key: "never", Payload: []byte("x")}); err != nil {
			return err
		}
		return errStoreBoom
	})
	if err != errStoreBoom {
		t.Fatalf("Update returned %v, want fn's error unchanged", err)
	}
	_, err = s.Read(ctx, k)
	stWantNotFound(t, "Read after rolled-back create", err)
	_, err = s.History(ctx, k, 0)
	stWantNotFound(t, "History after rolled-back create", err)
	if ids := stLookup(t, s, k.Tenant, k.Type, ident); len(ids) != 0 {
		t.Errorf("identifier rows survived rollback: %v", ids)
	}
	if ms, err := s.Outbox(ctx, k.Tenant, 0, 0); err != nil || len(ms) != 0 {
		t.Errorf("outbox after rollback: %v, %v; want empty", ms, err)
	}
	// The store is fine afterwards.
	stPut(t, s, stVersion(k, 1, stBody("never", 1, "")), fhir.Index{})
}

func storeTestPanic(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	k := stKey(fhir.DefaultTenant, "panicky")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			kk := stKey(fhir.DefaultTenant, fmt.Sprintf("bystander-%d", i))
			errs[i] = s.Update(ctx, func(tx fhir.Tx) error { return tx.Put(ctx, stVersion(kk, 1, stBody(kk.ID, 1, "")), fhir.Index{}) })
		})
	}
	err := s.Update(ctx, func(tx fhir.Tx) error {
		if err := tx.Put(ctx, stVersion(k, 1, stBody("panicky", 1, "")), fhir.Index{}); err != nil {
			return err
		}
		panic("fn blew up")
	})
	wg.Wait()
	if err == nil || !strings.Contains(err.Error(), "fn blew up") {
		t.Fatalf("Update with panicking fn: %v, want an error naming the panic", err)
	}
	_, rerr := s.Read(ctx, k)
	stWantNotFound(t, "Read after panic", rerr)
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Update %d failed because of another fn's panic: %v", i, err)
		}
	}
	stPut(t, s, stVersion(k, 1, stBody("panicky", 1, "")), fhir.Index{})
}

func storeTestCancelled(t *testing.T, open StoreOpener) {
	s := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	err := s.Update(ctx, func(tx fhir.Tx) error {
		ran = true
		return tx.Put(ctx, stVersion(stKey(fhir.DefaultTenant, "c"), 1, stBody("c", 1, "")), fhir.Index{})
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update with cancelled ctx: %v, want context.Canceled", err)
	}
	if ran {
		t.Errorf("fn ran although ctx was cancelled before Update")
	}
	_, err = s.Read(t.Context(), stKey(fhir.DefaultTenant, "c"))
	stWantNotFound(t, "Read after cancelled Update", err)
}

func storeTestTxAfterFn(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	var leaked fhir.Tx
	if err := s.Update(ctx, func(tx fhir.Tx) error { leaked = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	k := stKey(fhir.DefaultTenant, "leak")
	if err := leaked.Put(ctx, stVersion(k, 1, stBody("leak", 1, "")), fhir.Index{}); err == nil {
		t.Errorf("Put on a Tx whose fn had returned succeeded")
	}
	stPut(t, s, stVersion(stKey(fhir.DefaultTenant, "other"), 1, stBody("other", 1, "")), fhir.Index{})
	_, err := s.Read(ctx, k)
	stWantNotFound(t, "Read of leaked Put", err)
}

func storeTestOutbox(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	k := stKey(fhir.DefaultTenant, "ob")
	msg := func(n int) fhir.OutboxMessage {
		return fhir.OutboxMessage{Tenant: k.Tenant, Topic: "ehr.push", Key: fmt.Sprintf("Patient/ob/%d", n),
			Payload: fmt.Appendf(nil, `{"n":%d}`, n), Created: stT0.Add(time.Duration(n) * time.Millisecond)}
	}
	write := func(vid int64, m fhir.OutboxMessage, fail error) error {
		return s.Update(ctx, func(tx fhir.Tx) error {
			if err := tx.Put(ctx, stVersion(k, vid, stBody("ob", vid, "")), fhir.Index{}); err != nil {
				return err
			}
			if err := tx.Enqueue(ctx, m); err != nil {
				return err
			}
			return fail
		})
	}
	if err := write(1, msg(1), nil); err != nil {
		t.Fatal(err)
	}
	if err := write(2, msg(2), errStoreBoom); err != errStoreBoom {
		t.Fatalf("failing Update: %v, want errStoreBoom", err)
	}
	ms, err := s.Outbox(ctx, k.Tenant, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("outbox: %d messages, want 1 (the rolled-back one must vanish)", len(ms))
	}
	want := msg(1)
	got := ms[0]
	if got.Seq <= 0 || got.Tenant != want.Tenant || got.Topic != want.Topic || got.Key != want.Key || !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("outbox message %+v, want %+v with a positive Seq", got, want)
	}
	if !got.Created.Equal(want.Created.Truncate(time.Microsecond)) || got.Created.Location() != time.UTC {
		t.Errorf("Created %v, want %v in UTC", got.Created, want.Created)
	}
	if v, err := s.Read(ctx, k); err != nil || v.VersionID != 1 {
		t.Errorf("resource after rolled-back update: v%d %v, want v1", v.VersionID, err)
	}

	for n := int64(2); n <= 5; n++ {
		if err := write(n, msg(int(n)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(ctx, func(tx fhir.Tx) error {
		return tx.Enqueue(ctx, fhir.OutboxMessage{Tenant: "other", Topic: "x", Key: "k", Payload: []byte("p")})
	}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Outbox(ctx, k.Tenant, 0, 0)
	if err != nil || len(all) != 5 {
		t.Fatalf("outbox: %d messages, %v; want 5 (of this tenant only)", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq || all[i].Key != msg(i+1).Key {
			t.Fatalf("outbox not in commit order: %+v", all)
		}
	}
	page, err := s.Outbox(ctx, k.Tenant, all[1].Seq, 2)
	if err != nil || len(page) != 2 || page[0].Seq != all[2].Seq || page[1].Seq != all[3].Seq {
		t.Errorf("Outbox(after=%d, limit=2) = %+v, %v; want messages 3 and 4", all[1].Seq, page, err)
	}
	if other, err := s.Outbox(ctx, "other", 0, 10); err != nil || len(other) != 1 || other[0].Tenant != "other" {
		t.Errorf("outbox of tenant other: %+v, %v", other, err)
	}
}

func storeTestTenants(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	a, b := stKey("practice-a", "same"), stKey("practice-b", "same")
	ident := fhir.Identifier{System: "urn:sys", Value: "shared"}
	idx := fhir.Index{Identifiers: []fhir.Identifier{ident}}
	stPut(t, s, stVersion(a, 1, stBody("same", 1, `,"t":"a"`)), idx)
	stPut(t, s, stVersion(b, 1, stBody("same", 1, `,"t":"b"`)), fhir.Index{})
	stPut(t, s, stVersion(a, 2, stBody("same", 2, `,"t":"a"`)), idx)

	vb, err := s.Read(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	stCheckVersion(t, "tenant b", vb, stVersion(b, 1, stBody("same", 1, `,"t":"b"`)))
	if h, err := s.History(ctx, b, 0); err != nil || len(h) != 1 {
		t.Errorf("tenant b history: %d versions, %v; want 1", len(h), err)
	}
	if h, err := s.History(ctx, a, 0); err != nil || len(h) != 2 {
		t.Errorf("tenant a history: %d versions, %v; want 2", len(h), err)
	}
	_, err = s.Read(ctx, stKey("practice-c", "same"))
	stWantNotFound(t, "Read in a third tenant", err)
	if ids := stLookup(t, s, b.Tenant, b.Type, ident); len(ids) != 0 {
		t.Errorf("tenant b sees tenant a's identifier: %v", ids)
	}
	if ids := stLookup(t, s, a.Tenant, a.Type, ident); !slices.Equal(ids, []string{"same"}) {
		t.Errorf("tenant a identifier lookup: %v", ids)
	}
}

func storeTestIdentifiers(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	x := fhir.Identifier{System: "urn:oid:1.2.3", Value: "X"}
	y := fhir.Identifier{System: "urn:oid:1.2.3", Value: "Y"}
	xOther := fhir.Identifier{System: "urn:oid:9.9", Value: "X"}
	p1, p2 := stKey(fhir.DefaultTenant, "p1"), stKey(fhir.DefaultTenant, "p2")
	stPut(t, s, stVersion(p1, 1, stBody("p1", 1, "")), fhir.Index{Identifiers: []fhir.Identifier{x, x}}) // duplicates are harmless
	stPut(t, s, stVersion(p2, 1, stBody("p2", 1, "")), fhir.Index{Identifiers: []fhir.Identifier{x, y}})

	if ids := stLookup(t, s, p1.Tenant, "Patient", x); !slices.Equal(ids, []string{"p1", "p2"}) {
		t.Errorf("lookup X: %v, want [p1 p2]", ids)
	}
	if ids := stLookup(t, s, p1.Tenant, "Patient", xOther); len(ids) != 0 {
		t.Errorf("lookup X in another system: %v, want none", ids)
	}
	if ids := stLookup(t, s, p1.Tenant, "Practitioner", x); len(ids) != 0 {
		t.Errorf("lookup X on another type: %v, want none", ids)
	}
	// The identifier changed: the index follows the current version only.
	stPut(t, s, stVersion(p1, 2, stBody("p1", 2, "")), fhir.Index{Identifiers: []fhir.Identifier{y}})
	if ids := stLookup(t, s, p1.Tenant, "Patient", x); !slices.Equal(ids, []string{"p2"}) {
		t.Errorf("lookup X after p1 dropped it: %v, want [p2]", ids)
	}
	if ids := stLookup(t, s, p1.Tenant, "Patient", y); !slices.Equal(ids, []string{"p1", "p2"}) {
		t.Errorf("lookup Y: %v, want [p1 p2]", ids)
	}
	stPut(t, s, fhir.Version{Key: p2, VersionID: 2, LastUpdated: stT0, Deleted: true}, fhir.Index{})
	if ids := stLookup(t, s, p1.Tenant, "Patient", y); !slices.Equal(ids, []string{"p1"}) {
		t.Errorf("lookup Y after p2 deleted: %v, want [p1]", ids)
	}
	// A transaction sees its own writes.
	err := s.Update(ctx, func(tx fhir.Tx) error {
		z := fhir.Identifier{System: "urn:z", Value: "Z"}
		if err := tx.Put(ctx, stVersion(stKey(fhir.DefaultTenant, "p3"), 1, stBody("p3", 1, "")), fhir.Index{Identifiers: []fhir.Identifier{z}}); err != nil {
			return err
		}
		ids, err := tx.LookupIdentifier(ctx, fhir.DefaultTenant, "Patient", z)
		if err != nil {
			return err
		}
		if !slices.Equal(ids, []string{"p3"}) {
			t.Errorf("lookup inside the writing transaction: %v, want [p3]", ids)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func storeTestConcurrentUpdates(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	k := stKey(fhir.DefaultTenant, "hot")
	stPut(t, s, stVersion(k, 1, stBody("hot", 1, "")), fhir.Index{})
	const writers = 20
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx fhir.Tx) error {
				cur, err := tx.Read(ctx, k)
				if err != nil {
					return err
				}
				next := cur.VersionID + 1
				return tx.Put(ctx, stVersion(k, next, stBody("hot", next, fmt.Sprintf(`,"writer":%d`, i))), fhir.Index{})
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	hist, err := s.History(ctx, k, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != writers+1 {
		t.Fatalf("%d versions, want %d", len(hist), writers+1)
	}
	seen := map[string]bool{}
	for i, v := range hist {
		if want := int64(writers + 1 - i); v.VersionID != want {
			t.Errorf("History[%d] is version %d, want %d", i, v.VersionID, want)
		}
		if i < writers {
			_, w, _ := strings.Cut(string(v.JSON), `"writer":`)
			if seen[w] {
				t.Errorf("writer %s stored twice", w)
			}
			seen[w] = true
		}
	}
	if len(seen) != writers {
		t.Errorf("%d writers' versions kept, want %d", len(seen), writers)
	}
}

func storeTestConditionalCreate(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	ident := fhir.Identifier{System: "urn:mrn", Value: "42"}
	const callers = 50
	var wg sync.WaitGroup
	errs := make([]error, callers)
	created := make([]bool, callers)
	for i := range callers {
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx fhir.Tx) error {
				created[i] = false // fn may run more than once
				ids, err := tx.LookupIdentifier(ctx, fhir.DefaultTenant, "Patient", ident)
				if err != nil || len(ids) > 0 {
					return err
				}
				k := stKey(fhir.DefaultTenant, fmt.Sprintf("cc-%d", i))
				created[i] = true
				return tx.Put(ctx, stVersion(k, 1, stBody(k.ID, 1, "")), fhir.Index{Identifiers: []fhir.Identifier{ident}})
			})
		})
	}
	wg.Wait()
	n := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d callers created a resource, want exactly 1", n)
	}
	if ids := stLookup(t, s, fhir.DefaultTenant, "Patient", ident); len(ids) != 1 {
		t.Errorf("resources carrying the identifier: %v, want exactly one", ids)
	}
}

func storeTestReopen(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	k := stKey(fhir.DefaultTenant, "durable")
	ident := fhir.Identifier{System: "urn:sys", Value: "durable"}
	v1 := stVersion(k, 1, stBody("durable", 1, ""))
	err := s.Update(ctx, func(tx fhir.Tx) error {
		if err := tx.Put(ctx, v1, fhir.Index{Identifiers: []fhir.Identifier{ident}}); err != nil {
			return err
		}
		return tx.Enqueue(ctx, fhir.OutboxMessage{Tenant: k.Tenant, Topic: "t", Key: "durable", Payload: []byte("p")})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t)
	got, err := s.Read(ctx, k)
	if err != nil {
		t.Fatalf("Read after reopen: %v", err)
	}
	stCheckVersion(t, "Read after reopen", got, v1)
	if ms, err := s.Outbox(ctx, k.Tenant, 0, 0); err != nil || len(ms) != 1 {
		t.Errorf("outbox after reopen: %v, %v; want 1 message", ms, err)
	}
	if ids := stLookup(t, s, k.Tenant, k.Type, ident); !slices.Equal(ids, []string{"durable"}) {
		t.Errorf("identifier after reopen: %v", ids)
	}
	stPut(t, s, stVersion(k, 2, stBody("durable", 2, "")), fhir.Index{})
}

func storeTestLargeBody(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Binary","id":"big","data":"`)
	for i := 0; b.Len() < 5<<20; i++ {
		fmt.Fprintf(&b, "%08x", uint32(i)*2654435761) // incompressible-ish, not a repeat
	}
	b.WriteString(`"}`)
	k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Binary", ID: "big"}
	v := stVersion(k, 1, b.Bytes())
	stPut(t, s, v, fhir.Index{})
	got, err := s.Read(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	stCheckVersion(t, "5 MB body", got, v)
}

func storeTestBinaryBody(t *testing.T, open StoreOpener) {
	s, ctx := open(t), t.Context()
	// Every JSON escape, raw multi-byte UTF-8 (including U+2028 and a
	// 4-byte rune), whitespace and key order a JSON column would normalize.
	json := []byte("{ \"resourceType\" : \"Patient\",\"id\":\"bin\", \"text\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000 \\u00e9 \\ud83d\\ude00\"," +
		"\n\t\"name\":\"Zoë Ωμέγα 漢字 \u2028 \U0001F600\", \"b\":1, \"a\":2, \"b\":3 }")
	k := stKey(fhir.DefaultTenant, "bin")
	v := stVersion(k, 1, json)
	stPut(t, s, v, fhir.Index{Identifiers: []fhir.Identifier{{System: "urn:ü", Value: "\u2028\U0001F600'\"%_"}}})
	got, err := s.Read(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	stCheckVersion(t, "escaped JSON", got, v)

	// Not JSON at all: the store keeps bytes, whatever they are.
	raw := make([]byte, 0, 512)
	for i := range 256 {
		raw = append(raw, byte(i), byte(255-i))
	}
	v2 := stVersion(k, 2, raw)
	stPut(t, s, v2, fhir.Index{})
	got, err = s.VRead(ctx, k, 2)
	if err != nil {
		t.Fatal(err)
	}
	stCheckVersion(t, "raw bytes", got, v2)
	if ids := stLookup(t, s, k.Tenant, k.Type, fhir.Identifier{System: "urn:ü", Value: "\u2028\U0001F600'\"%_"}); len(ids) != 0 {
		t.Errorf("identifier of version 1 still indexed after version 2: %v", ids)
	}
}
