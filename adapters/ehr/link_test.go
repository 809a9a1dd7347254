package ehr

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// TestLinkPatientMatch: where an EHR offers Patient/$match but no
// identifier search, the client is linked by $match's one certain match;
// none or several leave the client waiting with the reason (never
// guessed), and LinkPatient confirms one by hand.
func TestLinkPatientMatch(t *testing.T) {
	var answer atomic.Value // the match ids to answer with
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/Patient/$match" {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		asked.Add(1)
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"onlyCertainMatches"`) || !strings.Contains(string(body), "KC-1") {
			http.Error(w, "want onlyCertainMatches and the MRN", http.StatusBadRequest)
			return
		}
		var entries []map[string]any
		for _, id := range answer.Load().([]string) {
			entries = append(entries, map[string]any{"resource": map[string]any{"resourceType": "Patient", "id": id},
				"search": map[string]any{"mode": "match", "score": 1}})
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		json.NewEncoder(w).Encode(map[string]any{"resourceType": "Bundle", "type": "searchset", "entry": entries})
	}))
	defer srv.Close()
	client, err := NewClient(Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	p, _ := fhir.ParseJSON([]byte(`{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:practice/mrn","value":"KC-1"}],"name":[{"family":"Doe"}],"birthDate":"1980-01-01"}`), fhir.StoredLimits)
	k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: "p1"}
	if err := st.Update(t.Context(), func(tx fhir.Tx) error {
		_, err := (write.Writer{}).Put(t.Context(), tx, k, fhir.Version{Key: k}, p)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ss := syncstore.NewMemory(st)
	conn := syncstore.Connection{Name: "ehr", Tenant: fhir.DefaultTenant, MRNSystem: "urn:ehr-mrn"}
	caps := &Capabilities{Resources: map[string]*ResourceCapability{"Patient": {Type: "Patient", Interactions: []Interaction{InteractionRead}, Operations: []string{"match"}}}}
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ob := &Outbound{Conn: conn, Sync: ss, Store: st, Client: client, Caps: caps, Plan: PlanWrites(caps), Now: func() time.Time { return now }}
	ob.defaults()

	for _, tc := range []struct {
		ids    []string
		state  string
		remote string
		reason string
	}{
		{nil, syncstore.PatientWaiting, "", "found no certain match"},
		{[]string{"e1", "e2"}, syncstore.PatientWaiting, "", "2 certain matches (e1, e2): ambiguous, not guessed"},
		{[]string{"e7"}, syncstore.PatientLinked, "e7", ""},
	} {
		answer.Store(tc.ids)
		pl, err := ob.linkPatient(t.Context(), fhir.DefaultTenant, "Patient/p1", true)
		if err != nil {
			t.Fatal(err)
		}
		if pl.State != tc.state || pl.RemoteID != tc.remote || !strings.Contains(pl.Reason, tc.reason) {
			t.Errorf("with matches %v: %+v; want %s %q, reason %q", tc.ids, pl, tc.state, tc.remote, tc.reason)
		}
		if tc.state == syncstore.PatientWaiting && !strings.Contains(pl.Reason, "kapbridge ehr link ehr p1") {
			t.Errorf("a waiting client's reason does not say how to link it: %q", pl.Reason)
		}
	}
	// Linked: not asked again.
	n := asked.Load()
	if pl, _ := ob.linkPatient(t.Context(), fhir.DefaultTenant, "Patient/p1", true); pl.RemoteID != "e7" || asked.Load() != n {
		t.Errorf("a linked client was matched again")
	}
	if err := LinkPatient(t.Context(), ss, conn, "Patient/p1", "Patient/e9", now); err != nil {
		t.Fatal(err)
	}
	if pl, _ := ss.PatientLink(t.Context(), "ehr", fhir.DefaultTenant, "p1"); pl.RemoteID != "e9" || pl.State != syncstore.PatientLinked {
		t.Errorf("after LinkPatient: %+v", pl)
	}
	if err := LinkPatient(t.Context(), ss, conn, "p1", "a/b", now); err == nil {
		t.Error("LinkPatient took a remote id with a slash")
	}
}
