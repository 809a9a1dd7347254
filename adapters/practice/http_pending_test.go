package practice

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/mappings/records"
)

// TestPendingListingAndFindings: issue 12 item 9 over HTTP. A red-flag
// observation of a session that does not exist is accepted as pending and
// listed with its age (overdue once past the limit); a dose given after a
// not_cleared decision is created, not left pending, and its answer names
// the finding (code, severity, field, message, the Flag's priority).
func TestPendingListingAndFindings(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	forEachStore(t, HTTPConfig{Now: func() time.Time { return clock() }}, func(t *testing.T, e *apiEnv) {
		now = time.Now()
		if a := e.post(t, "application/x-ndjson", readTestdata(t, "course-iv.ndjson")); a.status != http.StatusOK {
			t.Fatalf("import: %d %s", a.status, a.body)
		}
		a := e.post(t, "application/json", []byte(`{"kind":"observation","id":"o-ghost","session":"no-such-session","time":"2026-01-20T10:40:00-05:00","red_flags":["mania"]}`))
		if r := ingestBody(t, a); a.status != http.StatusOK || r.Results[0].Status != "pending" {
			t.Fatalf("ghost observation: %d %s", a.status, a.body)
		}
		list := func() PendingList {
			t.Helper()
			a := e.do(t, http.MethodGet, pathRecords+"?state=pending", "", nil)
			if a.status != http.StatusOK {
				t.Fatalf("listing: %d %s", a.status, a.body)
			}
			var l PendingList
			if err := json.Unmarshal(a.body, &l); err != nil {
				t.Fatal(err)
			}
			return l
		}
		l := list()
		i := slices.IndexFunc(l.Records, func(p records.PendingRecord) bool { return p.ID == "o-ghost" })
		if i < 0 || !l.Records[i].SafetyRelevant || l.Records[i].Overdue || !slices.Equal(l.Records[i].Waiting, []string{"session/no-such-session"}) {
			t.Fatalf("listing: %+v", l)
		}
		now = now.Add(25 * time.Hour)
		l = list()
		i = slices.IndexFunc(l.Records, func(p records.PendingRecord) bool { return p.ID == "o-ghost" })
		if i < 0 || !l.Records[i].Overdue || l.Records[i].AgeSeconds < 25*3600-60 || l.Overdue < 1 || l.MaxPending != "24h0m0s" {
			t.Errorf("listing a day later: %+v", l)
		}
		wantError(t, e.do(t, http.MethodGet, pathRecords, "", nil), http.StatusBadRequest, codeBadRequest)

		// A later screening decides not_cleared; a dose given after it is
		// created with an alert, not held back.
		e.post(t, "application/json", []byte(`{"kind":"screening","id":"sc-revoke","client":"iv-client","date":"2026-03-01","performed_by":"iv-prescriber","clearance":{"cardiovascular":false,"psychotic_disorder":false,"bipolar_i":false,"substance_misuse":false,"pregnancy":true,"contraindicated_medications":false,"decision":"not_cleared"}}`))
		a = e.post(t, "application/json", []byte(`{"kind":"session","id":"s-late","course":"iv-course","type":"maintenance","status":"held","planned_start":"2026-03-05T10:00:00-05:00","actual_start":"2026-03-05T10:00:00-05:00","actual_end":"2026-03-05T11:00:00-05:00","dose":{"drug":"ketamine","mg":35,"route":"iv","monitored_minutes":60}}`))
		r := ingestBody(t, a)
		if a.status != http.StatusOK || r.Results[0].Status != "created" {
			t.Fatalf("dose after not_cleared: %d %s", a.status, a.body)
		}
		j := slices.IndexFunc(r.Results[0].Findings, func(f Finding) bool { return f.Code == "dosing.not_cleared" })
		if j < 0 || r.Results[0].Findings[j].Severity != "alert" || r.Results[0].Findings[j].Flag != "PH" || r.Results[0].Findings[j].Message == "" {
			t.Errorf("findings %+v", r.Results[0].Findings)
		}
	})
}
