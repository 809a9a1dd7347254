package ehr

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// deleteLocal deletes a gateway resource through the change hook, as the
// FHIR API does.
func deleteLocal(t *testing.T, st fhir.Store, k fhir.Key) {
	t.Helper()
	err := st.Update(t.Context(), func(tx fhir.Tx) error {
		cur, err := tx.Read(t.Context(), k)
		if err != nil {
			return err
		}
		_, err = (write.Writer{Changed: syncstore.Enqueue}).Delete(t.Context(), tx, k, cur, cur.LastUpdated)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOutboundDeletions: a vitals Observation deleted at the practice is
// deleted on the full server (delete declared), and on Epic and Oracle
// Health (no delete declared) stays there, its row noted "deletion not
// sent" with the reason; a repeat sends nothing, and the same resource
// written again is created anew.
func TestOutboundDeletions(t *testing.T) {
	for _, profile := range []string{"full", "epic", "oracle"} {
		t.Run(profile, func(t *testing.T) {
			gw := gatewayStores(t)[0].open(t)
			sb := startSyncSandbox(t, profile)
			ob := newOutbound(t, gw, sb.connection("ehr", ""))
			allows := ob.Caps.Allows("Observation", InteractionDelete)
			if allows != (profile == "full") {
				t.Fatalf("%s declares delete of Observation: %v", profile, allows)
			}
			importCourse(t, gw.Store, "im")
			drain(t, ob)
			var obs syncstore.Delivery
			for _, d := range mustDeliveries(t, gw.Sync, "ehr", syncstore.StateDone) {
				if r := readRemote(t, gw.Store, d.Type, d.ResourceID); d.Type == "Observation" && r != nil {
					if a, _ := ArtifactOf(r); a == ArtifactVitals {
						obs = d
						break
					}
				}
			}
			l, err := gw.Sync.Link(t.Context(), "ehr", obs.Tenant, obs.Type, obs.ResourceID, "")
			if err != nil || readRemote(t, sb.Store, "Observation", l.RemoteID) == nil {
				t.Fatalf("the vitals Observation %s is not on the EHR: %+v, %v", obs.Ref(), l, err)
			}
			k := fhir.Key{Tenant: obs.Tenant, Type: obs.Type, ID: obs.ResourceID}
			deleteLocal(t, gw.Store, k)
			drain(t, ob)
			d, err := gw.Sync.Delivery(t.Context(), "ehr", obs.Tenant, obs.Type, obs.ResourceID)
			if err != nil || d.State != syncstore.StateDone {
				t.Fatalf("the deletion's row: %+v, %v", d, err)
			}
			remote := readRemote(t, sb.Store, "Observation", l.RemoteID)
			if allows {
				if remote != nil || d.LastError != "" {
					t.Errorf("on %s the deletion did not go: remote %v, note %q", profile, remote != nil, d.LastError)
				}
			} else if remote == nil || !strings.HasPrefix(d.LastError, NoteDeletionNotSent) || !strings.Contains(d.LastError, "declares no delete of Observation") {
				t.Errorf("on %s: remote still there %v, note %q; want it there and the reason noted", profile, remote != nil, d.LastError)
			}
			// Again: nothing more is sent.
			before := remoteCount(t, sb.Store)
			touch(t, gw.Store, d)
			drain(t, ob)
			if after := remoteCount(t, sb.Store); after != before {
				t.Errorf("a repeated deletion wrote %d versions on the EHR", after-before)
			}
			if !allows {
				return
			}
			// Written again at the practice: created anew on the EHR.
			err = gw.Store.Update(t.Context(), func(tx fhir.Tx) error {
				old, err := gw.Store.VRead(t.Context(), k, 1)
				if err != nil {
					return err
				}
				res, _ := fhir.ParseJSON(old.JSON, fhir.StoredLimits)
				cur, _ := tx.Read(t.Context(), k)
				_, err = (write.Writer{Changed: syncstore.Enqueue}).Put(t.Context(), tx, k, cur, res)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			drain(t, ob)
			l2, err := gw.Sync.Link(t.Context(), "ehr", obs.Tenant, obs.Type, obs.ResourceID, "")
			if err != nil || l2.Hash == deletedHash || readRemote(t, sb.Store, "Observation", l2.RemoteID) == nil {
				t.Errorf("the resource written again is not on the EHR: %+v, %v", l2, err)
			}
		})
	}
}

// changeLocal rewrites a gateway resource through the change hook.
func changeLocal(t *testing.T, st fhir.Store, k fhir.Key, edit func(r *fhir.Value)) {
	t.Helper()
	err := st.Update(t.Context(), func(tx fhir.Tx) error {
		cur, err := tx.Read(t.Context(), k)
		if err != nil {
			return err
		}
		r, err := fhir.ParseJSON(cur.JSON, fhir.StoredLimits)
		if err != nil {
			return err
		}
		edit(r)
		_, err = (write.Writer{Changed: syncstore.Enqueue}).Put(t.Context(), tx, k, cur, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOutboundPatchOracle: Oracle Health takes Communication by create
// and patch, not update. A safety signal's alert Communication goes by
// POST; when the Flag changes, the change goes as a JSON Patch with
// If-Match (the EHR's version history says PATCH, no second
// Communication); after someone edits it on the EHR, the stale If-Match
// gets a 412, and the patch is computed again from what the EHR holds
// and lands.
func TestOutboundPatchOracle(t *testing.T) {
	gw := gatewayStores(t)[0].open(t)
	sb := startSyncSandbox(t, "oracle")
	ob := newOutbound(t, gw, sb.connection("ehr", ""))
	m := ob.Plan.Entry(ArtifactSafetySignal).Route.Parts[0].Method
	if m.Type != "Communication" || !m.Create || m.Update != UpdatePatch {
		t.Fatalf("Oracle plan for safety signals: %+v; want Communication, create, patch", m)
	}
	importCourse(t, gw.Store, "im")
	drain(t, ob)
	flag, l := doneWithLink(t, gw.Sync, "Flag", BuildFlagCommunication)
	if l.RemoteID == "" || len(l.Body) == 0 {
		t.Fatalf("no Flag went as a Communication with its body kept: %+v", l)
	}
	comms := distinctRemote(t, sb.Store, "Communication")
	k := fhir.Key{Tenant: flag.Tenant, Type: "Flag", ID: flag.ResourceID}
	rk := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Communication", ID: l.RemoteID}
	changeLocal(t, gw.Store, k, func(r *fhir.Value) { r.Set("status", jsonString("inactive")) })
	drain(t, ob)
	v, err := sb.Store.Read(t.Context(), rk)
	if err != nil {
		t.Fatal(err)
	}
	if v.VersionID != 2 || v.Method != http.MethodPatch || !strings.Contains(string(v.JSON), "Flag status: inactive.") {
		t.Errorf("after the Flag changed, the EHR's Communication is v%d by %q: %s; want v2 by PATCH with the new status", v.VersionID, v.Method, v.JSON)
	}
	if n := distinctRemote(t, sb.Store, "Communication"); n != comms {
		t.Errorf("%d Communications on the EHR, was %d: the change made another", n, comms)
	}
	if l2, _ := gw.Sync.Link(t.Context(), "ehr", flag.Tenant, "Flag", flag.ResourceID, string(BuildFlagCommunication)); l2.RemoteVersion != "2" ||
		!strings.Contains(string(l2.Body), "Flag status: inactive.") {
		t.Errorf("link after the patch: version %q, body %s", l2.RemoteVersion, l2.Body)
	}
	// Someone edits it on the EHR; then the Flag changes again.
	err = sb.Store.Update(t.Context(), func(tx fhir.Tx) error {
		cur, err := tx.Read(t.Context(), rk)
		if err != nil {
			return err
		}
		r, _ := fhir.ParseJSON(cur.JSON, fhir.StoredLimits)
		r.Set("note", jsonArray(jsonObject(jsonMember("text", jsonString("seen by the nurse")))))
		_, err = (write.Writer{}).Put(t.Context(), tx, rk, cur, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	changeLocal(t, gw.Store, k, func(r *fhir.Value) { r.Set("status", jsonString("active")) })
	drain(t, ob)
	if n := sb.preconditionFailed.Load(); n != 1 {
		t.Errorf("the EHR answered 412 %d times, want once (the patch's stale If-Match)", n)
	}
	v, _ = sb.Store.Read(t.Context(), rk)
	if v.VersionID != 4 || v.Method != http.MethodPatch || !strings.Contains(string(v.JSON), "Flag status: active.") || strings.Contains(string(v.JSON), "seen by the nurse") {
		t.Errorf("after the 412 the EHR's Communication is v%d by %q: %s; want v4 by PATCH, the practice's content", v.VersionID, v.Method, v.JSON)
	}
}

func TestJSONPatch(t *testing.T) {
	a, _ := fhir.ParseJSON([]byte(`{"resourceType":"Communication","status":"completed","payload":[{"contentString":"x"}],"note":[{"text":"a"}],"a/b~c":1,"category":[1,2]}`), fhir.StoredLimits)
	b, _ := fhir.ParseJSON([]byte(`{"resourceType":"Communication","status":"completed","payload":[{"contentString":"y"}],"priority":"urgent","a/b~c":2,"category":[1]}`), fhir.StoredLimits)
	got, _ := json.Marshal(jsonPatch(a, b))
	want := `[{"op":"remove","path":"/note"},{"op":"replace","path":"/payload/0/contentString","value":"y"},{"op":"add","path":"/priority","value":"urgent"},{"op":"replace","path":"/a~1b~0c","value":2},{"op":"replace","path":"/category","value":[1]}]`
	if string(got) != want {
		t.Errorf("patch\n%s\nwant\n%s", got, want)
	}
	if ops := jsonPatch(a, a); len(ops) != 0 {
		t.Errorf("patch of a to itself: %v", ops)
	}
}

// distinctRemote counts the resources of typ the EHR holds (not versions).
func distinctRemote(t *testing.T, st fhir.Store, typ string) int {
	ids := map[string]bool{}
	for _, v := range allVersions(t, st) {
		if v.Type == typ {
			ids[v.ID] = true
		}
	}
	return len(ids)
}

// TestOutboundReAdded: a connection removed (its links go with it) and
// added again under the same name, to the same EHR, then backfilled,
// finds what it wrote before instead of creating second copies: a resource
// older than the connection is never created without a search.
func TestOutboundReAdded(t *testing.T) {
	gw := gatewayStores(t)[0].open(t)
	sb := startSyncSandbox(t, "full")
	ob := newOutbound(t, gw, sb.connection("ehr", ""))
	importCourse(t, gw.Store, "im")
	drain(t, ob)
	before := map[string]int{}
	for _, typ := range []string{"Observation", "Patient", "Flag", "CarePlan", "Communication", "MedicationAdministration"} {
		before[typ] = distinctRemote(t, sb.Store, typ)
	}
	if before["Observation"] == 0 {
		t.Fatal("nothing reached the EHR the first time")
	}
	if err := gw.Sync.RemoveConnection(t.Context(), "ehr"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond) // the new connection's Created is later than every resource
	ob2 := newOutbound(t, gw, sb.connection("ehr", ""))
	for after := ""; ; {
		next, _, err := gw.Sync.Backfill(t.Context(), "ehr", after, 500, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if next == "" {
			break
		}
		after = next
	}
	drain(t, ob2)
	for typ, n := range before {
		if got := distinctRemote(t, sb.Store, typ); got != n {
			t.Errorf("%s on the EHR: %d before the connection was added again, %d after its backfill (want no second copies)", typ, n, got)
		}
	}
}

// TestOutboundHeldForReview: on Oracle Health an alert Communication
// cannot be searched for, so a row leased again after an earlier holder
// may have created it (Leases > 1, no link) is held for review, not sent;
// once replayed (its note says it was held) it is sent.
func TestOutboundHeldForReview(t *testing.T) {
	gw := gatewayStores(t)[0].open(t)
	sb := startSyncSandbox(t, "oracle")
	ob := newOutbound(t, gw, sb.connection("ehr", ""))
	importCourse(t, gw.Store, "im")
	drain(t, ob)
	flag, l := doneWithLink(t, gw.Sync, "Flag", BuildFlagCommunication)
	if l.RemoteID == "" {
		t.Fatal("no Flag went as a Communication")
	}
	// The Communication landed but its link was never recorded (the
	// worker was killed): no link, and the row leased again.
	l.Hash = deletedHash
	if err := gw.Sync.PutLink(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	before := distinctRemote(t, sb.Store, "Communication")
	flag.Leases = 2
	r := ob.Deliver(t.Context(), flag)
	if r.State != syncstore.StateDead || !strings.HasPrefix(r.Error, NoteHeldForReview) {
		t.Fatalf("a Flag leased again without a link: %+v; want dead, held for review", r)
	}
	if got := distinctRemote(t, sb.Store, "Communication"); got != before {
		t.Errorf("the held Communication was sent again: %d -> %d", before, got)
	}
	// A person checked and replays it: the note says it was held, so it
	// goes (here a second copy: the reviewer chose to send).
	flag.LastError, flag.Leases = r.Error, 3
	if r := ob.Deliver(t.Context(), flag); r.State != syncstore.StateDone {
		t.Fatalf("the replayed row: %+v; want done", r)
	}
	if got := distinctRemote(t, sb.Store, "Communication"); got != before+1 {
		t.Errorf("after the replay %d Communications, want %d", got, before+1)
	}
}

// TestOutboundPatchOracleTypes: Oracle Health's other patch-only types,
// Encounter (a session) and MedicationRequest (the course's
// prescription), written natively: a change to each goes as a JSON Patch
// of the same remote resource, and the link records the new version.
func TestOutboundPatchOracleTypes(t *testing.T) {
	gw := gatewayStores(t)[0].open(t)
	sb := startSyncSandbox(t, "oracle")
	ob := newOutbound(t, gw, sb.connection("ehr", ""))
	for _, a := range []Artifact{ArtifactSession, ArtifactPrescription} {
		if m := ob.Plan.Entry(a).Route.Parts[0].Method; !m.Create || m.Update != UpdatePatch {
			t.Fatalf("Oracle plan for %s: %+v; want create, patch", a, m)
		}
	}
	importCourse(t, gw.Store, "im")
	drain(t, ob)
	edits := map[string]struct {
		edit func(*fhir.Value)
		want string
	}{
		"Encounter": {func(r *fhir.Value) { r.Set("status", jsonString("cancelled")) }, `"status":"cancelled"`},
		"MedicationRequest": {func(r *fhir.Value) {
			r.Set("note", jsonArray(jsonObject(jsonMember("text", jsonString("hold until BP rechecked")))))
		}, "hold until BP rechecked"},
	}
	for typ, e := range edits {
		t.Run(typ, func(t *testing.T) {
			d, l := doneWithLink(t, gw.Sync, typ, BuildAsMapped)
			if l.RemoteID == "" || len(l.Body) == 0 {
				t.Fatalf("no %s went natively with its body kept: %+v", typ, l)
			}
			before := distinctRemote(t, sb.Store, typ)
			changeLocal(t, gw.Store, fhir.Key{Tenant: d.Tenant, Type: typ, ID: d.ResourceID}, e.edit)
			drain(t, ob)
			v, err := sb.Store.Read(t.Context(), fhir.Key{Tenant: fhir.DefaultTenant, Type: typ, ID: l.RemoteID})
			if err != nil {
				t.Fatal(err)
			}
			if v.Method != http.MethodPatch || !strings.Contains(string(v.JSON), e.want) {
				t.Errorf("after the change the EHR's %s is v%d by %q: %s; want a PATCH with %s", typ, v.VersionID, v.Method, v.JSON, e.want)
			}
			if n := distinctRemote(t, sb.Store, typ); n != before {
				t.Errorf("%d %ss on the EHR, was %d: the change made another", n, typ, before)
			}
			if l2, _ := gw.Sync.Link(t.Context(), "ehr", d.Tenant, typ, d.ResourceID, string(BuildAsMapped)); l2.RemoteVersion != strconv.FormatInt(v.VersionID, 10) {
				t.Errorf("link version %q after the patch, the EHR's is %d", l2.RemoteVersion, v.VersionID)
			}
		})
	}
}

// TestOutboundPrescriberOwned: the course's prescription (a
// MedicationRequest) that the prescriber changed in the EHR after the
// gateway wrote it is never written over: a later change of the
// practice's version is held for review (a dead letter saying why), and
// the EHR keeps the prescriber's order. As Oracle Health (JSON Patch with
// If-Match) and as a full server (conditional update, looked at first).
func TestOutboundPrescriberOwned(t *testing.T) {
	for _, profile := range []string{"oracle", "full"} {
		t.Run(profile, func(t *testing.T) {
			gw := gatewayStores(t)[0].open(t)
			sb := startSyncSandbox(t, profile)
			ob := newOutbound(t, gw, sb.connection("ehr", ""))
			importCourse(t, gw.Store, "im")
			drain(t, ob)
			d, l := doneWithLink(t, gw.Sync, "MedicationRequest", BuildAsMapped)
			if l.RemoteID == "" {
				t.Fatal("the prescription did not go natively")
			}
			// The prescriber stops the order in the EHR.
			rk := fhir.Key{Tenant: fhir.DefaultTenant, Type: "MedicationRequest", ID: l.RemoteID}
			if err := sb.Store.Update(t.Context(), func(tx fhir.Tx) error {
				cur, err := tx.Read(t.Context(), rk)
				if err != nil {
					return err
				}
				r, _ := fhir.ParseJSON(cur.JSON, fhir.StoredLimits)
				r.Set("status", jsonString("stopped"))
				_, err = (write.Writer{}).Put(t.Context(), tx, rk, cur, r)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			// Then the practice's version changes.
			changeLocal(t, gw.Store, fhir.Key{Tenant: d.Tenant, Type: d.Type, ID: d.ResourceID}, func(r *fhir.Value) {
				r.Set("note", jsonArray(jsonObject(jsonMember("text", jsonString("dose reviewed")))))
			})
			drain(t, ob)
			v, err := sb.Store.Read(t.Context(), rk)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(v.JSON), `"status":"stopped"`) || strings.Contains(string(v.JSON), "dose reviewed") {
				t.Errorf("the prescriber's order was written over: v%d %s", v.VersionID, v.JSON)
			}
			got, err := gw.Sync.Delivery(t.Context(), "ehr", d.Tenant, d.Type, d.ResourceID)
			if err != nil || got.State != syncstore.StateDead || !strings.Contains(got.LastError, "the prescriber changed") {
				t.Errorf("the practice's change: %q %q (%v); want held for review, saying the prescriber changed it", got.State, got.LastError, err)
			}
		})
	}
}

// doneWithLink is the first row of typ delivered to "ehr" whose part
// built by b has a link there (zero values when none has).
func doneWithLink(t *testing.T, s syncstore.Store, typ string, b Builder) (syncstore.Delivery, syncstore.Link) {
	t.Helper()
	for _, d := range mustDeliveries(t, s, "ehr", syncstore.StateDone) {
		if d.Type != typ {
			continue
		}
		if l, err := s.Link(t.Context(), "ehr", d.Tenant, d.Type, d.ResourceID, string(b)); err == nil && l.RemoteID != "" {
			return d, l
		}
	}
	return syncstore.Delivery{}, syncstore.Link{}
}
