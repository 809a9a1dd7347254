package records

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
)

// exportEnv is a store with records applied to it, on one backend.
type exportEnv struct {
	store   search.Store
	applier *Applier
}

// forEachStore runs fn on SQLite and, when KAPBRIDGE_TEST_POSTGRES_DSN is
// set, on PostgreSQL (a fresh schema), each with a fresh store.
func forEachStore(t *testing.T, fn func(t *testing.T, e *exportEnv)) {
	stores := map[string]func(testing.TB) search.Store{"sqlite": openTestStore}
	if sqltest.PostgresDSN(t) != "" {
		stores["postgres"] = openPGStore
	} else {
		t.Log("KAPBRIDGE_TEST_POSTGRES_DSN not set: the PostgreSQL half of the export tests is skipped")
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			fn(t, &exportEnv{store: s, applier: testApplier(s)})
		})
	}
}

// importCourse applies a course file, all of whose records must be
// accepted; it returns the status counts.
func (e *exportEnv) importCourse(t *testing.T, recs []mappings.Record) map[string]int {
	t.Helper()
	return applyAll(t, e.applier, recs)
}

// exportCourse exports a course of e's store and decodes the output.
func exportCourse(t *testing.T, e *exportEnv, course string) ([]byte, []mappings.Record, ExportSummary) {
	t.Helper()
	ex := &Exporter{Store: e.store, Mapper: e.applier.Mapper, Tenant: e.applier.Tenant}
	var out bytes.Buffer
	sum, err := ex.Export(context.Background(), course, &out)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), decodeLines(t, "export", out.Bytes()), sum
}

func findRecord[T mappings.Record](recs []mappings.Record, id string) (T, bool) {
	for _, r := range recs {
		if v, ok := r.(T); ok && r.RecordHeader().ID == id {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// TestExportRoundTrip: a course applied as records exports as the same
// records (every record of the file, nothing else), and re-applying the
// export changes nothing.
func TestExportRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *exportEnv) {
		src := loadRecords(t, "course-iv")
		e.importCourse(t, src)
		// Another course's records in the same store stay out.
		e.importCourse(t, loadRecords(t, "course-im"))
		out, recs, sum := exportCourse(t, e, "iv-course")
		if len(sum.Merged) != 0 {
			t.Errorf("nothing changed in FHIR, yet merged %v", sum.Merged)
		}
		want := map[string]mappings.Record{}
		for _, rec := range src {
			h := rec.RecordHeader()
			want[string(h.Kind)+"/"+h.ID] = rec
		}
		if len(recs) != len(want) {
			t.Errorf("exported %d records, the file has %d", len(recs), len(want))
		}
		seenKind := 0
		for _, r := range recs {
			h := r.RecordHeader()
			w, ok := want[string(h.Kind)+"/"+h.ID]
			if !ok {
				t.Errorf("exported %s %s, not in the course file", h.Kind, h.ID)
				continue
			}
			gj, _ := json.Marshal(r)
			wj, _ := json.Marshal(w)
			if !bytes.Equal(gj, wj) {
				t.Errorf("%s %s differs:\n got %s\nwant %s", h.Kind, h.ID, gj, wj)
			}
			// Dependency order: kinds never go back.
			k := kindIndex(h.Kind)
			if k < seenKind {
				t.Errorf("%s %s after a later kind", h.Kind, h.ID)
			}
			seenKind = k
		}
		if sum.Records[mappings.KindNote] == 0 || sum.Records[mappings.KindConsent] != 1 {
			t.Errorf("notes and the consent belong in the export: %v", sum.Records)
		}

		if c := e.importCourse(t, decodeLines(t, "export", out)); c[StatusUnchanged] != len(recs) {
			t.Errorf("re-applying the export: %v, want %d unchanged", c, len(recs))
		}

		var nf bytes.Buffer
		_, err := (&Exporter{Store: e.store, Mapper: e.applier.Mapper, Tenant: e.applier.Tenant}).Export(context.Background(), "no-such-course", &nf)
		if !errors.Is(err, ErrCourseNotFound) {
			t.Errorf("unknown course: %v", err)
		}
	})
}

func kindIndex(k mappings.Kind) int {
	for i, x := range mappings.Kinds {
		if x == k {
			return i
		}
	}
	return -1
}

// TestExportMergesEHRChanges: what a prescriber changes in FHIR comes back
// in the export: the CarePlan put on hold holds the
// course, a changed MedicationAdministration changes the dose, an EHR's
// own vital-signs Observation becomes a new observation record.
func TestExportMergesEHRChanges(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *exportEnv) {
		e.importCourse(t, loadRecords(t, "course-iv"))
		ns, tenant := e.applier.Mapper.Practice, e.applier.tenant()
		_, before, _ := exportCourse(t, e, "iv-course")

		// The prescriber puts the course on hold.
		cpID := mappings.ResourceID(ns, mappings.KindCourse, "iv-course", "CarePlan")
		e.fhirPut(t, tenant, "CarePlan", cpID, func(v map[string]any) { v["status"] = "on-hold" })

		// ... records a different dose for the first dosing session.
		var dosing *mappings.Session
		for _, r := range before {
			if s, ok := r.(*mappings.Session); ok && s.Type == "dosing" && s.Dose != nil {
				dosing = s
				break
			}
		}
		if dosing == nil {
			t.Fatal("no dosing session with a dose in the course")
		}
		maID := mappings.ResourceID(ns, mappings.KindSession, dosing.ID, "MedicationAdministration", "dose")
		newMg := dosing.Dose.Mg + 2.5
		e.fhirPut(t, tenant, "MedicationAdministration", maID, func(v map[string]any) {
			v["dosage"].(map[string]any)["dose"].(map[string]any)["value"] = newMg
		})

		// ... and takes a heart rate in clinic.
		enc := mappings.ResourceID(ns, mappings.KindSession, dosing.ID, "Encounter")
		patient := mappings.ResourceID(ns, mappings.KindClient, "iv-client", "Patient")
		hr := `{"resourceType":"Observation","status":"final",
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
			"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},
			"subject":{"reference":"Patient/` + patient + `"},"encounter":{"reference":"Encounter/` + enc + `"},
			"effectiveDateTime":"2026-01-20T10:45:00-05:00",
			"valueQuantity":{"value":91,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
		e.fhirCreate(t, tenant, "Observation", hr)

		out, recs, sum := exportCourse(t, e, "iv-course")
		course, ok := findRecord[*mappings.Course](recs, "iv-course")
		if !ok || course.Status != "on_hold" {
			t.Errorf("course status %q, want on_hold (merged %v)", course.Status, sum.Merged)
		}
		s, ok := findRecord[*mappings.Session](recs, dosing.ID)
		if !ok || s.Dose == nil || s.Dose.Mg != newMg {
			t.Errorf("session %s dose %+v, want %v mg", dosing.ID, s.Dose, newMg)
		} else if s.Dose.MonitoredMin != dosing.Dose.MonitoredMin {
			t.Errorf("monitored minutes %d lost (was %d)", s.Dose.MonitoredMin, dosing.Dose.MonitoredMin)
		}
		var ehr *mappings.Observation
		for _, r := range recs {
			if o, ok := r.(*mappings.Observation); ok && strings.HasPrefix(o.ID, "ehr-") {
				ehr = o
			}
		}
		if ehr == nil || ehr.Session != dosing.ID || ehr.Vitals == nil || ehr.Vitals.HeartRate == nil || *ehr.Vitals.HeartRate != 91 {
			t.Errorf("the EHR's heart rate is not an observation record: %+v", ehr)
		}
		if len(recs) != len(before)+1 {
			t.Errorf("%d records, want %d (one new observation)", len(recs), len(before)+1)
		}
		t.Logf("merged: %v", sum.Merged)

		// The merged export is valid input: applying it takes the changes
		// as the practice's own, and nothing is rejected (applyAll fails
		// on a rejection).
		e.importCourse(t, decodeLines(t, "merged export", out))
	})
}

// fhirPut changes a stored resource as an EHR integration would (a new
// version through write.Writer, in a store transaction: the FHIR API's
// own path is the end-to-end test's, cmd/kapbridge
// TestServePracticeAPIAndExport).
func (e *exportEnv) fhirPut(t *testing.T, tenant, typ, id string, change func(map[string]any)) {
	t.Helper()
	k := fhir.Key{Tenant: tenant, Type: typ, ID: id}
	err := e.store.Update(context.Background(), func(tx fhir.Tx) error {
		cur, err := tx.Read(context.Background(), k)
		if err != nil {
			return err
		}
		var v map[string]any
		if err := json.Unmarshal(cur.JSON, &v); err != nil {
			return err
		}
		change(v)
		b, _ := json.Marshal(v)
		res, err := fhir.ParseJSON(b, fhir.DefaultLimits)
		if err != nil {
			return err
		}
		_, err = write.Writer{}.Put(context.Background(), tx, k, cur, res)
		return err
	})
	if err != nil {
		t.Fatalf("change %s/%s: %v", typ, id, err)
	}
}

// fhirCreate creates a resource as an EHR would.
func (e *exportEnv) fhirCreate(t *testing.T, tenant, typ, body string) {
	t.Helper()
	res, err := fhir.ParseJSON([]byte(body), fhir.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	k := fhir.Key{Tenant: tenant, Type: typ, ID: "ehr-" + typ + "-1"}
	if err := e.store.Update(context.Background(), func(tx fhir.Tx) error {
		_, err := write.Writer{}.Put(context.Background(), tx, k, fhir.Version{Key: k}, res)
		return err
	}); err != nil {
		t.Fatalf("create %s: %v", typ, err)
	}
}
