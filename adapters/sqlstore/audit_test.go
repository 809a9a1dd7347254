package sqlstore_test

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir/audit"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// TestDirectTrailSearchesAsWriter: events the trail writes directly and
// events written through write.Writer (ViaWriter) are found by the same
// searches, in SQLite: every AuditEvent search parameter the events fill.
func TestDirectTrailSearchesAsWriter(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	when := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	records := []audit.Record{
		{When: when, RequestID: "r1", Method: "GET", Path: "/Patient/p1", Status: 200, ClientID: "writer", Address: "127.0.0.1", Type: "Patient", ID: "p1"},
		{When: when.Add(time.Minute), RequestID: "r2", Method: "GET", Path: "/Observation/o1", Status: 403, ClientID: "reader", Address: "10.0.0.2", Type: "Observation", ID: "o1"},
		{When: when.Add(2 * time.Minute), RequestID: "r3", Method: "POST", Path: "/", Status: 200, ClientID: "writer", Address: "127.0.0.1", Bundle: "batch"},
		{When: when.Add(2 * time.Minute), RequestID: "r3", Method: "PUT", Path: "/Patient/p2", Status: 201, ClientID: "writer", Address: "127.0.0.1", Type: "Patient", ID: "p2", Entry: 1, Bundle: "batch"},
		{When: when.Add(3 * time.Minute), RequestID: "r4", Method: "GET", Path: "/Patient", Status: 401, Address: "192.0.2.9", Type: "Patient"},
	}
	for _, tenant := range []string{"direct", "writer"} {
		tr := audit.NewTrail(audit.TrailConfig{Store: st, NewID: server.NewUUID, ViaWriter: tenant == "writer"})
		for _, r := range records {
			r.Tenant = tenant
			if err := tr.Record(r); err != nil {
				t.Fatal(err)
			}
		}
		tr.Close()
	}
	for _, q := range []string{
		"action=R", "action=E", "outcome=0", "outcome=4", "subtype=read", "subtype=http://hl7.org/fhir/restful-interaction|update",
		"type=rest", "type:text=restful", "date=ge2026-11-30T03:01:00Z", "date=lt2026-11-30T03:02:00Z", "address=127.0.0.1", "address:exact=10.0.0.2",
		"agent:identifier=urn:kapbridge:client|writer", "entity:identifier=urn:kapbridge:request-id|r3",
		"entity:identifier=urn:kapbridge:bundle-entry|r3%231", "entity=Patient/p1", "entity-type=2", "patient=Patient/p2", "patient=p1",
		"_lastUpdated=gt2000-01-01", "_id:missing=false",
	} {
		params, err := url.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		params.Set("_total", "accurate")
		n := map[string]int{}
		for _, tenant := range []string{"direct", "writer"} {
			pq, err := search.ParseQuery("AuditEvent", params, "", true)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			res, err := st.Search(ctx, tenant, pq, nil)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			n[tenant] = len(res.Matches)
		}
		if n["direct"] != n["writer"] || n["direct"] == 0 {
			t.Errorf("AuditEvent?%s: %d events written directly, %d through the writer; want the same, not 0", q, n["direct"], n["writer"])
		}
	}
}
