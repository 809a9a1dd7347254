package synctest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// put writes live resources (and deletes those named in gone) without
// enqueueing: data that exists before any connection hears of it.
func put(t *testing.T, st fhir.Store, ids []string, gone ...string) {
	t.Helper()
	ctx := t.Context()
	err := st.Update(ctx, func(tx fhir.Tx) error {
		for _, id := range ids {
			k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: id}
			res, err := fhir.ParseJSON([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`), fhir.StoredLimits)
			if err != nil {
				return err
			}
			cur, err := tx.Read(ctx, k)
			if err != nil && !errors.Is(err, fhir.ErrNotFound) {
				return err
			}
			if cur.Key == (fhir.Key{}) {
				cur = fhir.Version{Key: k}
			}
			v, err := (write.Writer{}).Put(ctx, tx, k, cur, res)
			if err != nil {
				return err
			}
			if slices.Contains(gone, id) {
				if _, err := (write.Writer{}).Delete(ctx, tx, k, v, time.Now()); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testBackfill: a connection added after the data gets every live
// resource once, in pages, resumable; what the normal path queued first
// keeps its row.
func testBackfill(t *testing.T, open Opener) {
	st, s := open(t)
	ctx := t.Context()
	put(t, st, []string{"a", "b", "c", "d"}, "d")
	if err := s.AddConnection(ctx, conn("one")); err != nil {
		t.Fatal(err)
	}
	change(t, st, "Observation/b") // the normal path got to b first
	fanout(t, s, 1)
	if _, _, err := s.Backfill(ctx, "none", "", 0, t0); !errors.Is(err, syncstore.ErrNotFound) {
		t.Errorf("Backfill of no connection = %v, want ErrNotFound", err)
	}
	next, added, err := s.Backfill(ctx, "one", "", 2, t0)
	if err != nil || next != "Observation/b" || added != 1 {
		t.Fatalf("first page: next %q, added %d, %v; want Observation/b, 1 (a; b had its row)", next, added, err)
	}
	// Interrupted here; run again from the start: nothing twice.
	total := added
	for after := ""; ; {
		next, added, err := s.Backfill(ctx, "one", after, 2, t0)
		if err != nil {
			t.Fatal(err)
		}
		total += added
		if next == "" {
			break
		}
		after = next
	}
	if total != 2 {
		t.Errorf("added %d rows in all, want 2 (a and c)", total)
	}
	ds, err := s.Deliveries(ctx, "one", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ds, func(x, y syncstore.Delivery) int { return cmpStr(x.Ref(), y.Ref()) })
	if fmt.Sprint(refs(ds)) != "[Observation/a Observation/b Observation/c]" {
		t.Errorf("deliveries %v, want a, b, c once each (d is deleted)", refs(ds))
	}
	for _, d := range ds {
		if d.Gen != 1 || d.State != syncstore.StatePending {
			t.Errorf("%s: gen %d, state %s; want 1, pending", d.Ref(), d.Gen, d.State)
		}
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// testPrune: fanned-out messages whose deliveries are done go after the
// retention, with the done rows that carry no note; a dead letter, its
// message, a noted row and a message not yet fanned out stay; Discard
// drops dead letters.
func testPrune(t *testing.T, open Opener) {
	st, s := setup(t, open, "Observation/a", "Observation/b", "Observation/c")
	ctx := t.Context()
	change(t, st, "Observation/d") // not fanned out yet
	ds := lease(t, s, "c", "w", 5, t0)
	if len(ds) != 3 {
		t.Fatalf("leased %v", refs(ds))
	}
	results := map[string]syncstore.Result{
		"Observation/a": {State: syncstore.StateDone},
		"Observation/b": {State: syncstore.StateDone, Error: "held back by the privacy gate: note"},
		"Observation/c": {State: syncstore.StateDead, Attempted: true, Error: "422"},
	}
	for _, d := range ds {
		if err := s.Finish(ctx, d, "w", results[d.Ref()], t0); err != nil {
			t.Fatal(err)
		}
	}
	if m, n, err := s.Prune(ctx, t0.Add(-time.Hour)); err != nil || m != 0 || n != 0 {
		t.Errorf("Prune before anything is old = %d, %d, %v; want 0, 0", m, n, err)
	}
	_, memory := s.(*syncstore.Memory)
	ob, _ := st.(syncstore.Outboxer)
	before := outboxKeys(t, ob)
	m, n, err := s.Prune(ctx, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	left, _ := s.Deliveries(ctx, "c", "", 0)
	slices.SortFunc(left, func(x, y syncstore.Delivery) int { return cmpStr(x.Ref(), y.Ref()) })
	if n != 1 || fmt.Sprint(refs(left)) != "[Observation/b Observation/c]" {
		t.Errorf("Prune dropped %d deliveries, left %v; want 1 (a), left b (noted) and c (dead)", n, refs(left))
	}
	after := outboxKeys(t, ob)
	if memory {
		// The memory store's outbox is memstore's own, read by cursor.
		if m != 0 || !slices.Equal(before, after) {
			t.Errorf("memory Prune touched the outbox: %d, %v -> %v", m, before, after)
		}
	} else if m != 2 || fmt.Sprint(after) != "[Observation/c Observation/d]" {
		t.Errorf("Prune dropped %d messages, left %v; want 2 (a, b), left c (dead) and d (not fanned out)", m, after)
	}
	if k, err := s.Discard(ctx, "c", "Observation/zz"); err != nil || k != 0 {
		t.Errorf("Discard of no dead letter = %d, %v", k, err)
	}
	if k, err := s.Discard(ctx, "c", "Observation/c"); err != nil || k != 1 {
		t.Errorf("Discard(Observation/c) = %d, %v; want 1", k, err)
	}
	if dead, _ := s.Deliveries(ctx, "c", syncstore.StateDead, 0); len(dead) != 0 {
		t.Errorf("dead after Discard: %v", refs(dead))
	}
	if !memory {
		if m, _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil || m != 1 {
			t.Errorf("after the discard, Prune dropped %d messages, %v; want 1 (c)", m, err)
		}
	}
}

func outboxKeys(t *testing.T, ob syncstore.Outboxer) []string {
	t.Helper()
	ms, err := ob.Outbox(t.Context(), fhir.DefaultTenant, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Key)
	}
	return out
}

// testSecretAndBody: a connection's client secret and a link's body
// come back as stored.
func testSecretAndBody(t *testing.T, open Opener) {
	_, s := open(t)
	ctx := t.Context()
	c := conn("oracle")
	c.Key, c.KeyFile, c.ClientSecret = nil, "", []byte("s3cret: with+spaces/&")
	if err := s.AddConnection(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.Connection(ctx, "oracle")
	if err != nil || string(got.ClientSecret) != string(c.ClientSecret) || got.Key != nil {
		t.Errorf("Connection = %+v, %v; want the secret back, no key", got, err)
	}
	l := syncstore.Link{Connection: "oracle", Tenant: fhir.DefaultTenant, SourceType: "Flag", SourceID: "f", Part: "FlagCommunication",
		RemoteType: "Communication", RemoteID: "r", Hash: "h", Body: []byte(`{"resourceType":"Communication"}`), Updated: t0}
	if err := s.PutLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Link(ctx, "oracle", fhir.DefaultTenant, "Flag", "f", "FlagCommunication"); err != nil || string(got.Body) != string(l.Body) {
		t.Errorf("Link body = %q, %v", got.Body, err)
	}
	l.Body = nil
	if err := s.PutLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Link(ctx, "oracle", fhir.DefaultTenant, "Flag", "f", "FlagCommunication"); err != nil || got.Body != nil {
		t.Errorf("Link body after a put without one = %q, %v; want nil", got.Body, err)
	}
}
