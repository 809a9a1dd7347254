package ehr

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
)

// replayBeforeFinish is a sync store on which a person replays the dead
// letters (Replay: requeue, then wake) just before the worker records the
// first row that waits for a dead-lettered target: the replay falls
// between the worker's look at the target and its Finish.
type replayBeforeFinish struct {
	syncstore.Store
	once     sync.Once
	replayed int
	waiter   string
}

func (s *replayBeforeFinish) Finish(ctx context.Context, d syncstore.Delivery, owner string, r syncstore.Result, now time.Time) error {
	if r.State == syncstore.StatePending && strings.Contains(r.Error, ", dead-lettered,") {
		var err error
		s.once.Do(func() {
			s.waiter = d.Ref()
			s.replayed, err = Replay(ctx, s.Store, "ehr", time.Now())
		})
		if err != nil {
			return err
		}
	}
	return s.Store.Finish(ctx, d, owner, r, now)
}

// heldFlag sets up, as Oracle Health, a Flag whose alert Communication
// landed unrecorded (a worker killed after the create) and the Provenance
// that names the Flag, both leased by that worker and due again: the
// next round holds the Flag for review and its Provenance waits for it.
func heldFlag(t *testing.T) (gw gateway, ob *Outbound, flag, prov syncstore.Delivery) {
	t.Helper()
	ctx := t.Context()
	gw = gatewayStores(t)[0].open(t)
	sb := startSyncSandbox(t, "oracle")
	ob = newOutbound(t, gw, sb.connection("ehr", ""))
	importCourse(t, gw.Store, "im")
	drain(t, ob)
	// A Flag whose alert Communication landed unrecorded (a worker killed
	// after the create), and the Provenance that names the Flag, both to
	// go again.
	for _, d := range mustDeliveries(t, gw.Sync, "ehr", syncstore.StateDone) {
		if d.Type != "Provenance" || prov.ID != 0 {
			continue
		}
		for _, tg := range elementsOf(readRemote(t, gw.Store, d.Type, d.ResourceID).Get("target")) {
			typ, id, _ := syncstore.SplitRef(tg.GetString("reference"))
			if typ != "Flag" {
				continue
			}
			if fd, err := gw.Sync.Delivery(ctx, "ehr", d.Tenant, typ, id); err == nil {
				if _, err := gw.Sync.Link(ctx, "ehr", d.Tenant, typ, id, string(BuildFlagCommunication)); err == nil {
					flag, prov = fd, d
					break
				}
			}
		}
	}
	if prov.ID == 0 {
		t.Fatal("no Provenance names a Flag sent as a Communication")
	}
	l, err := gw.Sync.Link(ctx, "ehr", flag.Tenant, flag.Type, flag.ResourceID, string(BuildFlagCommunication))
	if err != nil {
		t.Fatal(err)
	}
	l.Hash = deletedHash // no link: what the killed worker wrote is unknown here
	if err := gw.Sync.PutLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	touch(t, gw.Store, flag)
	touch(t, gw.Store, prov)
	// The killed worker held both rows: leased again, the Flag's
	// Communication (which Oracle cannot search) is held for review.
	if _, err := gw.Sync.Fanout(ctx, fhir.DefaultTenant, 1000, time.Now()); err != nil {
		t.Fatal(err)
	}
	if ds, err := gw.Sync.Lease(ctx, "ehr", "killed", 10, time.Now(), time.Millisecond); err != nil || len(ds) != 2 {
		t.Fatalf("leased %d rows (%v); want the Flag and its Provenance", len(ds), err)
	}
	time.Sleep(5 * time.Millisecond)
	return gw, ob, flag, prov
}

// TestOutboundReplayWhileLeased: a row waiting for a dead-lettered
// target (a Provenance naming a Flag whose alert Communication is held
// for review, as Oracle Health) goes on as soon as the target is
// replayed, even when the replay comes while the worker holds the row,
// after it looked at the target and before it recorded the long wait.
// Without the look after the Finish (wakeIfRevived) the row waits
// PatientWait (10 minutes) though its target was sent long before: in
// TestChaosKill/oracle a killed worker's Flags are held, and such a row
// stayed pending.
func TestOutboundReplayWhileLeased(t *testing.T) {
	ctx := t.Context()
	gw, ob, flag, prov := heldFlag(t)

	rs := &replayBeforeFinish{Store: gw.Sync}
	ob.Sync = rs
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := ob.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := gw.Sync.Counts(ctx, "ehr")
		if err != nil {
			t.Fatal(err)
		}
		if c[syncstore.StatePending] == 0 && c[syncstore.StateDead] == 0 {
			break
		}
		// Nothing due for PatientWait: the worker would idle that long.
		if due := dueRows(t, gw.Sync, time.Now().Add(time.Minute)); due == 0 || time.Now().After(deadline) {
			t.Fatalf("%v, %d rows due within a minute, after the replay of %d dead letters while %s was leased:%s",
				c, due, rs.replayed, rs.waiter, describePending(t, gw.Sync))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rs.waiter != prov.Ref() || rs.replayed != 1 {
		t.Fatalf("waiter %q, %d replayed; want %s waiting for the held %s: the test did not set up the race", rs.waiter, rs.replayed, prov.Ref(), flag.Ref())
	}
	if _, err := gw.Sync.Link(ctx, "ehr", flag.Tenant, flag.Type, flag.ResourceID, string(BuildFlagCommunication)); err != nil {
		t.Errorf("the replayed Flag has no link: %v", err)
	}
}

// dueRows counts the pending rows due by at.
func dueRows(t *testing.T, s syncstore.Store, at time.Time) int {
	n := 0
	for _, d := range mustDeliveries(t, s, "ehr", syncstore.StatePending) {
		if !d.NextAt.After(at) {
			n++
		}
	}
	return n
}

func describePending(t *testing.T, s syncstore.Store) string {
	var b strings.Builder
	for _, d := range mustDeliveries(t, s, "ehr", "") {
		if d.State != syncstore.StateDone {
			fmt.Fprintf(&b, "\n%s: %s, due in %s: %q", d.Ref(), d.State, time.Until(d.NextAt).Round(time.Second), d.LastError)
		}
	}
	return b.String()
}

// TestOutboundDiscardWakes: discarding a held dead letter (what
// `kapbridge sync discard` runs) wakes the row waiting for it, which then
// goes at once, without the reference, instead of after PatientWait.
func TestOutboundDiscardWakes(t *testing.T) {
	ctx := t.Context()
	gw, ob, flag, prov := heldFlag(t)
	if _, err := ob.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err := gw.Sync.Delivery(ctx, "ehr", flag.Tenant, flag.Type, flag.ResourceID); err != nil || d.State != syncstore.StateDead {
		t.Fatalf("the Flag is %q (%v), want held for review (dead)", d.State, err)
	}
	p, err := gw.Sync.Delivery(ctx, "ehr", prov.Tenant, prov.Type, prov.ResourceID)
	if err != nil || p.State != syncstore.StatePending || time.Until(p.NextAt) < time.Minute {
		t.Fatalf("the Provenance is %q, due in %s (%v); want waiting long for the held Flag", p.State, time.Until(p.NextAt), err)
	}
	if n, err := Discard(ctx, gw.Sync, "ehr", flag.Ref(), time.Now()); err != nil || n != 1 {
		t.Fatalf("discarded %d (%v)", n, err)
	}
	if due := dueRows(t, gw.Sync, time.Now().Add(time.Second)); due == 0 {
		t.Fatalf("nothing due after the discard:%s", describePending(t, gw.Sync))
	}
	drain(t, ob)
	if p, _ := gw.Sync.Delivery(ctx, "ehr", prov.Tenant, prov.Type, prov.ResourceID); p.State != syncstore.StateDone {
		t.Errorf("the Provenance is %q after the discard and a drain: %q", p.State, p.LastError)
	}
}

// TestOutboundDeadTargetChanged: a row waiting for a dead-lettered
// target goes on soon after the target's own next change goes through
// (here the Flag withdrawn, so its row finishes as a deletion), not
// after PatientWait: the worker watches the dead targets its rows wait
// for and wakes them once one is dead no more.
func TestOutboundDeadTargetChanged(t *testing.T) {
	ctx := t.Context()
	gw, ob, flag, prov := heldFlag(t)
	if _, err := ob.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := gw.Sync.Delivery(ctx, "ehr", prov.Tenant, prov.Type, prov.ResourceID)
	if err != nil || p.State != syncstore.StatePending || time.Until(p.NextAt) < time.Minute {
		t.Fatalf("the Provenance is %q, due in %s (%v); want waiting long for the held Flag", p.State, time.Until(p.NextAt), err)
	}
	deleteLocal(t, gw.Store, fhir.Key{Tenant: flag.Tenant, Type: flag.Type, ID: flag.ResourceID})
	drain(t, ob) // fails after 30 s with the Provenance still pending
	if p, _ := gw.Sync.Delivery(ctx, "ehr", prov.Tenant, prov.Type, prov.ResourceID); p.State != syncstore.StateDone {
		t.Errorf("the Provenance is %q: %q", p.State, p.LastError)
	}
}
