package audit_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/audit"
	"github.com/kapbridge/kapbridge/fhir/search"
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
