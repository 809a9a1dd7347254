// Package inboundtest is the contract suite of inboundstore.Store: every
// implementation (Memory, SQLite, PostgreSQL) runs Run.
package inboundtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore"
)

// Run runs the suite; open returns an empty store (each call a fresh
// one).
func Run(t *testing.T, open func(t *testing.T) inboundstore.Store) {
	t.Run("Cursor", func(t *testing.T) { testCursor(t, open(t)) })
	t.Run("Taken", func(t *testing.T) { testTaken(t, open(t)) })
	t.Run("Conflicts", func(t *testing.T) { testConflicts(t, open(t)) })
	t.Run("Checks", func(t *testing.T) { testChecks(t, open(t)) })
}

func testCursor(t *testing.T, s inboundstore.Store) {
	ctx := t.Context()
	if _, ok, err := s.InboundCursor(ctx, "epic", "t1", "c1", "Observation"); err != nil || ok {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	since := time.Date(2026, 1, 15, 10, 30, 0, 123456789, time.FixedZone("x", -5*3600))
	c := inboundstore.Cursor{Connection: "epic", Tenant: "t1", Patient: "c1", Type: "Observation", Since: since, Polled: since.Add(time.Minute)}
	if err := s.PutInboundCursor(ctx, c); err != nil {
		t.Fatal(err)
	}
	// Another type, tenant and connection do not touch it.
	for _, o := range []inboundstore.Cursor{
		{Connection: "epic", Tenant: "t1", Patient: "c1", Type: "Flag", Since: since.Add(time.Hour)},
		{Connection: "epic", Tenant: "t2", Patient: "c1", Type: "Observation", Since: since.Add(2 * time.Hour)},
		{Connection: "oracle", Tenant: "t1", Patient: "c1", Type: "Observation", Since: since.Add(3 * time.Hour)},
	} {
		if err := s.PutInboundCursor(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.InboundCursor(ctx, "epic", "t1", "c1", "Observation")
	want := c
	want.Since, want.Polled = inboundstore.Micros(since), inboundstore.Micros(c.Polled)
	if err != nil || !ok || got != want {
		t.Fatalf("got %+v %v %v, want %+v", got, ok, err, want)
	}
	c.Since = since.Add(24 * time.Hour)
	if err := s.PutInboundCursor(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, _, _ = s.InboundCursor(ctx, "epic", "t1", "c1", "Observation")
	if !got.Since.Equal(inboundstore.Micros(c.Since)) {
		t.Fatalf("replaced cursor: %v, want %v", got.Since, c.Since)
	}
}

func testTaken(t *testing.T, s inboundstore.Store) {
	ctx := t.Context()
	if _, ok, err := s.InboundTaken(ctx, "epic", "Observation", "o1"); err != nil || ok {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	at := time.Date(2026, 2, 1, 8, 0, 0, 999, time.UTC)
	tk := inboundstore.Taken{Connection: "epic", Type: "Observation", RemoteID: "o1", VersionID: "1", Hash: "abc", Outcome: "applied", At: at}
	if err := s.PutInboundTaken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if err := s.PutInboundTaken(ctx, inboundstore.Taken{Connection: "epic", Type: "Flag", RemoteID: "o1", VersionID: "7", Outcome: "kept"}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.InboundTaken(ctx, "epic", "Observation", "o1")
	want := tk
	want.At = inboundstore.Micros(at)
	if err != nil || !ok || got != want {
		t.Fatalf("got %+v %v %v, want %+v", got, ok, err, want)
	}
	tk.VersionID, tk.Hash, tk.Outcome = "2", "def", "conflict"
	if err := s.PutInboundTaken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	got, _, _ = s.InboundTaken(ctx, "epic", "Observation", "o1")
	if got.VersionID != "2" || got.Hash != "def" || got.Outcome != "conflict" {
		t.Fatalf("replaced: %+v", got)
	}
	// What could not be used is listed with its reason; once a later
	// version is used, it is not.
	for _, u := range []inboundstore.Taken{
		{Connection: "epic", Type: "Observation", RemoteID: "o9", VersionID: "1", Outcome: inboundstore.OutcomeRejected, Reason: "value out of range"},
		{Connection: "oracle", Type: "Observation", RemoteID: "o3", VersionID: "4", Outcome: inboundstore.OutcomeKept, Reason: "no session that day"},
		{Connection: "epic", Type: "MedicationAdministration", RemoteID: "m1", VersionID: "1", Outcome: inboundstore.OutcomeKept, Reason: "two sessions that day"},
	} {
		if err := s.PutInboundTaken(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	unused, err := s.InboundUnused(ctx, "epic")
	if err != nil {
		t.Fatal(err)
	}
	var got2 []string
	for _, u := range unused {
		got2 = append(got2, u.Type+"/"+u.RemoteID+"/"+u.VersionID+" "+u.Outcome+": "+u.Reason)
	}
	// Flag/o1 (kept, no reason given) is listed too: kept is kept.
	want2 := "[Flag/o1/7 kept:  MedicationAdministration/m1/1 kept: two sessions that day Observation/o9/1 rejected: value out of range]"
	if fmt.Sprint(got2) != want2 {
		t.Errorf("InboundUnused(epic) = %v\nwant %s", got2, want2)
	}
	if err := s.PutInboundTaken(ctx, inboundstore.Taken{Connection: "epic", Type: "Observation", RemoteID: "o9", VersionID: "2", Outcome: "applied"}); err != nil {
		t.Fatal(err)
	}
	if all, err := s.InboundUnused(ctx, ""); err != nil || len(all) != 3 {
		t.Errorf("InboundUnused(all) after o9 was used = %+v, %v; want Flag/o1, m1 and oracle's o3", all, err)
	}
}

func testConflicts(t *testing.T, s inboundstore.Store) {
	ctx := t.Context()
	if l, err := s.InboundConflicts(ctx, ""); err != nil || len(l) != 0 {
		t.Fatalf("empty store: %v %v", l, err)
	}
	c := inboundstore.Conflict{Connection: "epic", Tenant: "t1", Remote: "CarePlan/cp1/_history/2", Local: "course/c1", Field: "course.status",
		Owner: inboundstore.OwnerPractice, Practice: "active", EHR: "on-hold", Resolution: "kept the practice's status"}
	first, err := s.AddInboundConflict(ctx, c)
	if err != nil || first.ID == 0 || first.At.IsZero() {
		t.Fatalf("%+v %v", first, err)
	}
	again, err := s.AddInboundConflict(ctx, c)
	if err != nil || again.ID != first.ID {
		t.Fatalf("the same conflict again: %+v %v, want id %d", again, err, first.ID)
	}
	other := c
	other.Connection, other.Remote = "oracle", "MedicationAdministration/m1/_history/1"
	other.Field, other.Owner = "session.dose", inboundstore.OwnerEHR
	second, err := s.AddInboundConflict(ctx, other)
	if err != nil || second.ID == first.ID {
		t.Fatalf("%+v %v", second, err)
	}
	all, err := s.InboundConflicts(ctx, "")
	if err != nil || len(all) != 2 || all[0].ID != first.ID || all[1].ID != second.ID {
		t.Fatalf("all: %+v %v", all, err)
	}
	got := all[0]
	got.ID, got.At = 0, time.Time{}
	if got != c {
		t.Fatalf("stored %+v, want %+v", got, c)
	}
	epic, err := s.InboundConflicts(ctx, "epic")
	if err != nil || len(epic) != 1 || epic[0].Field != "course.status" {
		t.Fatalf("epic: %+v %v", epic, err)
	}
}

func testChecks(t *testing.T, s inboundstore.Store) {
	ctx := t.Context()
	if err := s.PutInboundCursor(ctx, inboundstore.Cursor{Connection: "epic", Tenant: "t1", Type: "Observation"}); err == nil {
		t.Error("a cursor without a patient was stored")
	}
	if err := s.PutInboundTaken(ctx, inboundstore.Taken{Connection: "epic", Type: "Observation"}); err == nil {
		t.Error("a taken version without a remote id was stored")
	}
	if _, err := s.AddInboundConflict(ctx, inboundstore.Conflict{Connection: "epic", Tenant: "t1", Remote: "Flag/1", Field: "x", Owner: "nobody"}); err == nil {
		t.Error("a conflict with an unknown owner was stored")
	}
}
