package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/audit"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// viaWriter is what the REST API's writer stores for r's AuditEvent: the
// JSON stamped by write.Stamp and the index search.Extract finds in it.
func viaWriter(t testing.TB, r audit.Record, id string, ts time.Time) ([]byte, []fhir.IndexEntry) {
	res, err := fhir.ParseJSON(r.JSON(), fhir.StoredLimits)
	if err != nil {
		t.Fatalf("%+v: %v", r, err)
	}
	write.Stamp(res, id, 1, ts)
	entries := search.Extract(res, "http://gw.example")
	search.IndexIdentifiers(entries)
	return res.Encode(), entries
}

func sameIndex(a, b []fhir.IndexEntry) bool {
	key := func(l []fhir.IndexEntry) []string {
		out := make([]string, len(l))
		for i, e := range l {
			out[i] = fmt.Sprintf("%+v", e)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func checkDirect(t testing.TB, r audit.Record) {
	ts := time.Date(2026, 11, 30, 3, 4, 5, 123456789, time.UTC)
	wantJSON, wantIdx := viaWriter(t, r, "ev-1", ts.Truncate(time.Microsecond))
	if got := r.Stored("ev-1", ts); !sameJSON(got, wantJSON) {
		t.Errorf("%+v: stored JSON\n%s\nwant (as the writer stamps it)\n%s", r, got, wantJSON)
	}
	idx, ok := r.Index("ev-1", ts)
	if !ok {
		return // indexed the general way
	}
	if !sameIndex(idx, wantIdx) {
		t.Errorf("%+v: index\n%+v\nwant (search.Extract)\n%+v", r, idx, wantIdx)
	}
}

// TestIndexMatchesExtract: the index the trail builds from a record is
// the one search.Extract finds in its AuditEvent, and the JSON it stores
// the one write.Stamp makes, for every shape of record the server makes.
func TestIndexMatchesExtract(t *testing.T) {
	when := time.Date(2026, 11, 30, 2, 3, 4, 987654321, time.FixedZone("x", 3600))
	for _, r := range []audit.Record{
		{When: when, RequestID: "r1", Method: "GET", Path: "/Patient/p1", Status: 200, ClientID: "writer", Tenant: "default", Address: "127.0.0.1", Type: "Patient", ID: "p1"},
		{When: when, RequestID: "r2", Method: "GET", Path: "/Observation/o.1-x", Status: 404, ClientID: "c", Address: "::1", Type: "Observation", ID: "o.1-x"},
		{When: when, RequestID: "r3", Method: "GET", Path: "/Patient", Status: 401, Address: "10.0.0.7", Type: "Patient"},
		{When: when, RequestID: "r4", Method: "POST", Path: "/", Status: 200, ClientID: "w", Bundle: "transaction"},
		{When: when, RequestID: "r4", Method: "PUT", Path: "/Patient/p2", Status: 201, ClientID: "w", Type: "Patient", ID: "p2", Entry: 3, Bundle: "transaction", Note: "not applied: rolled back"},
		{When: when, RequestID: "r5", Method: "GET", Path: "/Patient/p1/$everything", Status: 200, ClientID: "w", Type: "Patient", ID: "p1"},
		{When: when, RequestID: "r6", Method: "GET", Path: "/Patient/_history", Status: 200, ClientID: "w", Type: "Patient", ID: "_history"},
		{When: when, RequestID: "r7", Method: "POST", Path: "/auth/token", Status: 400, Address: "192.168.1.20"},
		{When: when, RequestID: "r8", Method: "GET", Path: "/practice/v1/records", Status: 200, ClientID: "ÄÖ-client", Address: "Fe80::1"},
		{When: when, RequestID: "", Method: "GET", Path: "/Patient/x", Status: 431, Type: "Patient", ID: "x"},
		{When: when, RequestID: "r9", Method: "GET", Path: "/Patient/a b", Status: 404, Type: "Patient", ID: "a b"},
		{When: when, RequestID: "r10", Method: "DELETE", Path: "/Nonsense/1", Status: 404, Type: "Nonsense", ID: "1"},
	} {
		checkDirect(t, r)
	}
}

// FuzzIndexMatchesExtract holds Record.Index and Record.Stored to the
// general path for any strings a request could bring (X-Request-Id, the
// path, the client's address through a trusted proxy).
func FuzzIndexMatchesExtract(f *testing.F) {
	f.Add("r1", "GET", "/Patient/p1", 200, "writer", "127.0.0.1", "Patient", "p1", 0)
	f.Add("r2", "PUT", "/Observation/o", 201, "", "::1", "Observation", "o", 2)
	f.Add("req id with spaces", "POST", "/", 403, "c", "", "", "", 0)
	f.Add("x\u00e9<&>", "GET", "/Patient/\u00e9", 404, "\u00c4", "FE80::1", "Patient", "\u00e9", 1)
	f.Fuzz(func(t *testing.T, reqID, method, path string, status int, client, addr, typ, id string, entry int) {
		if status < 100 || status > 599 || entry < 0 || entry > 100000 {
			return
		}
		r := audit.Record{When: time.Unix(1796000000, 123456000), RequestID: reqID, Method: method, Path: path, Status: status,
			ClientID: client, Address: addr, Type: typ, ID: id, Entry: entry}
		if _, err := fhir.ParseJSON(r.JSON(), fhir.StoredLimits); err != nil {
			return // strings the general path cannot store either
		}
		checkDirect(t, r)
	})
}

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
