package ehr

import (
	"strings"
	"testing"

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
