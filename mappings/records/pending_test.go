package records

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
)

// TestPendingOverdue: issue 12 item 9. Pending records are listed with
// their age; a safety-relevant one pending longer than the limit raises a
// Flag, which goes once the record maps; one whose patient is unknown (a
// red-flag observation of a session that does not exist) raises its Flag
// on the practice's Organization.
func TestPendingOverdue(t *testing.T) {
	a := testApplier(openTestStore(t))
	ctx := t.Context()
	apply := func(js string) Result {
		t.Helper()
		rec, err := mappings.Decode([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		res, err := a.Apply(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, js := range []string{
		`{"kind":"client","id":"c","name":{"family":"Client"},"birth_date":"1980-01-01","sex":"female"}`,
		`{"kind":"practitioner","id":"rx","name":{"family":"Prescriber"},"role":"prescriber","credential":"MD"}`,
		`{"kind":"practitioner","id":"th","name":{"family":"Therapist"},"role":"therapist","credential":"LCSW"}`,
		`{"kind":"course","id":"k","client":"c","prescriber":"rx","therapist":"th","indications":["trd"],"route":"iv","planned":{"preparation":2,"dosing":6,"integration":6},"status":"active","start":"2026-01-01"}`,
	} {
		if res := apply(js); res.Status != StatusCreated {
			t.Fatalf("%s: %s %v", js, res.Status, res.Errors)
		}
	}
	if res := apply(`{"kind":"session","id":"s1","course":"k","type":"dosing","status":"held","planned_start":"2026-01-05T10:00:00Z","actual_start":"2026-01-05T10:00:00Z","actual_end":"2026-01-05T11:00:00Z","dose":{"drug":"ketamine","mg":35,"route":"iv","monitored_minutes":60}}`); res.Status != StatusPending {
		t.Fatalf("session: %s", res.Status)
	}
	if res := apply(`{"kind":"observation","id":"o-ghost","session":"nowhere","time":"2026-01-05T10:40:00Z","red_flags":["confusion"]}`); res.Status != StatusPending {
		t.Fatalf("observation of an unknown session: %s", res.Status)
	}
	if res := apply(`{"kind":"client","id":"c2","name":{"family":"Other"},"birth_date":"1980-01-01","mrn":"x"}`); res.Status != StatusCreated {
		t.Fatal(res.Status)
	}

	max := 24 * time.Hour
	now := time.Now().Add(time.Hour)
	list, err := a.PendingRecords(ctx, now, max)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].AgeSeconds < 3500 || list[0].Overdue || !list[0].SafetyRelevant {
		t.Fatalf("listing after an hour: %+v", list)
	}
	if f, u, err := a.FlagOverdue(ctx, now, max); err != nil || len(f)+len(u) != 0 {
		t.Fatalf("nothing is overdue after an hour: %v %v %v", f, u, err)
	}

	later := time.Now().Add(25 * time.Hour)
	flagged, unflagged, err := a.FlagOverdue(ctx, later, max)
	if err != nil {
		t.Fatal(err)
	}
	if len(flagged) != 2 || flagged[0].ID != "s1" || !strings.HasPrefix(flagged[0].Flag, "Flag/") ||
		flagged[1].ID != "o-ghost" || !strings.HasPrefix(flagged[1].Flag, "Flag/") {
		t.Fatalf("flagged %+v", flagged)
	}
	if len(unflagged) != 0 {
		t.Fatalf("unflagged %+v", unflagged)
	}
	// The ghost's Flag: on the practice, naming the record and what it
	// waits for, valid R4 (the Applier validated it before writing).
	gref, err := ParseResourceRef(flagged[1].Flag)
	if err != nil {
		t.Fatal(err)
	}
	gv, err := a.Store.Read(ctx, fhir.Key{Tenant: fhir.DefaultTenant, Type: "Flag", ID: gref.ID})
	if err != nil {
		t.Fatal(err)
	}
	ghost, err := fhir.ParseJSON(gv.JSON, fhir.StoredLimits)
	if err != nil {
		t.Fatal(err)
	}
	if subj := ghost.Get("subject"); subj.GetString("type") != "Organization" || subj.Get("identifier").GetString("value") != a.Mapper.Practice || subj.GetString("reference") != "" {
		t.Errorf("ghost Flag subject %s", subj.Encode())
	}
	for _, want := range []string{"observation o-ghost has waited", "session/nowhere", "its patient is not known yet", `"code":"record.pending_overdue"`} {
		if !strings.Contains(string(gv.JSON), want) {
			t.Errorf("ghost Flag lacks %s: %s", want, gv.JSON)
		}
	}
	ref, err := ParseResourceRef(flagged[0].Flag)
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Store.Read(ctx, fhir.Key{Tenant: fhir.DefaultTenant, Type: "Flag", ID: ref.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"code":"record.pending_overdue"`, "session s1 (ketamine 35 mg iv at 2026-01-05T10:00:00Z) has waited", "clearance/c", `"code":"PH"`} {
		if !strings.Contains(string(v.JSON), want) {
			t.Errorf("overdue Flag lacks %s: %s", want, v.JSON)
		}
	}
	// Raising it again at the same time changes nothing; an hour later
	// it is a new version of the same Flag, not another.
	if again, _, err := a.FlagOverdue(ctx, later, max); err != nil || len(again) != 2 || again[0].Flag != flagged[0].Flag {
		t.Errorf("again: %+v %v", again, err)
	}
	if again, _, err := a.FlagOverdue(ctx, later.Add(time.Hour), max); err != nil || len(again) != 2 || again[0].Flag != strings.TrimSuffix(flagged[0].Flag, "/1")+"/2" {
		t.Errorf("an hour later: %+v %v", again, err)
	}
	list, _ = a.PendingRecords(ctx, later, max)
	if len(list) != 2 || !list[0].Overdue || list[0].Flag == "" || list[0].AgeSeconds < 25*3600-5 || !list[1].Overdue || list[1].Flag == "" {
		t.Errorf("listing after 25 hours: %+v", list)
	}

	// The clearance arrives: the session maps and its overdue Flag goes.
	apply(`{"kind":"screening","id":"sc","client":"c","date":"2026-01-02","performed_by":"rx","clearance":{"cardiovascular":false,"psychotic_disorder":false,"bipolar_i":false,"substance_misuse":false,"pregnancy":false,"contraindicated_medications":false,"decision":"cleared"}}`)
	v, err = a.Store.Read(ctx, fhir.Key{Tenant: fhir.DefaultTenant, Type: "Flag", ID: ref.ID})
	if err == nil && !v.Deleted {
		t.Errorf("the overdue Flag outlived the record's mapping: %s", v.JSON)
	}
	if list, _ := a.PendingRecords(ctx, later, max); len(list) != 1 || list[0].ID != "o-ghost" {
		t.Errorf("pending after the clearance: %+v", list)
	}
}

// TestApplyJudgesRiseWhateverTheOrder: a reading during a session is
// judged by its rise from the session's pre-dose reading, whichever of
// the two arrives first (the baseline arriving later re-judges it).
func TestApplyJudgesRiseWhateverTheOrder(t *testing.T) {
	for _, order := range []string{"baseline first", "baseline last"} {
		t.Run(order, func(t *testing.T) {
			a := testApplier(openTestStore(t))
			ctx := t.Context()
			apply := func(js string) Result {
				t.Helper()
				rec, err := mappings.Decode([]byte(js))
				if err != nil {
					t.Fatal(err)
				}
				res, err := a.Apply(ctx, rec)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			for _, js := range []string{
				`{"kind":"client","id":"c","name":{"family":"Client"},"birth_date":"1980-01-01"}`,
				`{"kind":"practitioner","id":"rx","name":{"family":"Prescriber"},"role":"prescriber","credential":"MD"}`,
				`{"kind":"practitioner","id":"th","name":{"family":"Therapist"},"role":"therapist","credential":"LCSW"}`,
				`{"kind":"course","id":"k","client":"c","prescriber":"rx","therapist":"th","indications":["trd"],"route":"iv","planned":{"preparation":1,"dosing":6,"integration":6},"status":"active","start":"2026-01-01"}`,
				`{"kind":"screening","id":"sc","client":"c","date":"2026-01-02","performed_by":"rx","clearance":{"cardiovascular":false,"psychotic_disorder":false,"bipolar_i":false,"substance_misuse":false,"pregnancy":false,"contraindicated_medications":false,"decision":"cleared"}}`,
				`{"kind":"session","id":"s1","course":"k","type":"dosing","status":"held","planned_start":"2026-01-05T10:00:00Z","actual_start":"2026-01-05T10:00:00Z","actual_end":"2026-01-05T11:00:00Z","dose":{"drug":"ketamine","mg":35,"route":"iv","monitored_minutes":60}}`,
			} {
				apply(js)
			}
			before := `{"kind":"observation","id":"o0","session":"s1","time":"2026-01-05T09:55:00Z","phase":"before","vitals":{"systolic":120,"diastolic":80}}`
			during := `{"kind":"observation","id":"o1","session":"s1","time":"2026-01-05T10:40:00Z","phase":"during","vitals":{"systolic":165,"diastolic":95}}`
			var got []mappings.Problem
			collect := func(r Result) {
				for _, rr := range append([]Result{r}, r.Related...) {
					if rr.ID == "o1" {
						got = rr.Warnings
					}
				}
			}
			if order == "baseline first" {
				apply(before)
				collect(apply(during))
			} else {
				collect(apply(during))
				collect(apply(before))
			}
			if !slices.ContainsFunc(got, func(p mappings.Problem) bool {
				return p.Code == "vitals.bp_rise" && strings.Contains(p.Message, "rose +45/+15 from the pre-dose 120/80")
			}) {
				t.Errorf("o1's findings: %v", got)
			}
		})
	}
}
