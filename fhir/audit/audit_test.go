package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/audit"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/server"
)

func TestInteraction(t *testing.T) {
	for _, tc := range []struct{ method, path, code, action string }{
		{"GET", "/Patient/1", "read", "R"},
		{"GET", "/Patient/1/_history/2", "vread", "R"},
		{"GET", "/Patient/1/_history", "history-instance", "R"},
		{"GET", "/Patient", "search-type", "R"},
		{"POST", "/Patient/_search", "search-type", "R"},
		{"POST", "/Patient", "create", "C"},
		{"PUT", "/Patient/1", "update", "U"},
		{"PATCH", "/Patient/1", "patch", "U"},
		{"DELETE", "/Patient/1", "delete", "D"},
		{"POST", "/", "batch", "E"},
		{"GET", "/Patient/1/$everything", "operation", "E"},
		{"GET", "/_history", "history-system", "R"},
		{"POST", "/auth/token", "token", "E"},
	} {
		code, action := audit.Record{Method: tc.method, Path: tc.path}.Interaction()
		if code != tc.code || action != tc.action {
			t.Errorf("%s %s: %s %s, want %s %s", tc.method, tc.path, code, action, tc.code, tc.action)
		}
	}
}

// TestEventIsValidR4: every AuditEvent the trail writes passes the
// server's own strict R4 validation, and carries no query string.
func TestEventIsValidR4(t *testing.T) {
	for _, r := range []audit.Record{
		{When: time.Now(), RequestID: "r1", Method: "GET", Path: "/Patient/p1", Status: 200, ClientID: "c", Tenant: "t", Address: "10.0.0.1", Type: "Patient", ID: "p1"},
		{When: time.Now(), RequestID: "r2", Method: "GET", Path: "/Patient", Status: 401},
		{When: time.Now(), RequestID: "r3", Method: "POST", Path: "/", Status: 500, ClientID: "c"},
	} {
		b := r.JSON()
		if _, _, err := fhir.ParseResource(b); err != nil {
			t.Errorf("%s: not a valid AuditEvent: %v\n%s", r.RequestID, err, b)
		}
	}
}

// TestTrailWritesEveryRecord: a burst bigger than the queue is written in
// full (the caller waits rather than losing one), to the tenant given,
// searchable by outcome.
func TestTrailWritesEveryRecord(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	tr := audit.NewTrail(audit.TrailConfig{Store: st, Tenant: func(p string) string { return p + "#audit" }, NewID: server.NewUUID, Queue: 8})
	for i := range 600 {
		status := 200
		if i%3 == 0 {
			status = 403
		}
		if err := tr.Record(audit.Record{When: time.Now(), RequestID: "r", Method: "GET", Path: "/Patient", Status: status, Tenant: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	tr.Close()
	q, err := search.ParseQuery("AuditEvent", map[string][]string{"outcome": {"4"}, "_count": {"1000"}, "_total": {"accurate"}}, "", true)
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Search(context.Background(), "acme#audit", q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 200 || len(res.Matches) != 200 || !strings.Contains(string(res.Matches[0].JSON), `"outcome":"4"`) {
		t.Fatalf("refused requests found: total %d, %d matches; want 200", res.Total, len(res.Matches))
	}
	if err := tr.Record(audit.Record{RequestID: "late"}); err == nil {
		t.Fatal("a record after Close was taken")
	}
}
