package mappings

import (
	"errors"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

func ptr[T any](v T) *T { return &v }

// caseBook is a small practice: one client, a prescriber, a course with a
// held and a planned session.
func caseBook(sud bool) *memBook {
	b := newMemBook()
	b.add(&Client{Header: Header{Kind: KindClient, ID: "c1"}, Name: Name{Family: "A"}, BirthDate: "1990-02-03", SUDProgram: sud})
	b.add(&Practitioner{Header: Header{Kind: KindPractitioner, ID: "p1"}, Name: Name{Family: "P"}, Role: "prescriber", Credential: "NP", NPI: "1234567893"})
	b.add(&Course{Header: Header{Kind: KindCourse, ID: "k1"}, Client: "c1", Prescriber: "p1", Therapist: "p1", Indications: []string{"mdd"}, Route: "im", Status: "active", Start: "2026-01-05", Planned: PlannedCounts{Dosing: 6}})
	b.add(&Session{Header: Header{Kind: KindSession, ID: "held"}, Course: "k1", Type: "dosing", Status: "held", PlannedStart: "2026-01-06T10:00:00Z", ActualStart: "2026-01-06T10:05:00Z", ActualEnd: "2026-01-06T11:00:00Z"})
	b.add(&Session{Header: Header{Kind: KindSession, ID: "planned"}, Course: "k1", Type: "dosing", Status: "planned", PlannedStart: "2026-01-13T10:00:00Z"})
	return b
}

// types lists the resource types made, in order.
func types(res []*fhir.Value) string {
	var ts []string
	for _, r := range res {
		ts = append(ts, r.GetString("resourceType"))
	}
	return strings.Join(ts, " ")
}

// codesOf lists the codes of every Flag made.
func flagCodes(res []*fhir.Value) []string {
	var out []string
	for _, r := range res {
		if r.GetString("resourceType") == "Flag" {
			for _, c := range codings(r.Get("code")) {
				out = append(out, c.GetString("code"))
			}
		}
	}
	return out
}

func TestToFHIRCases(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	cases := []struct {
		name     string
		sud      bool
		m        Mapper
		rec      Record
		types    string   // resource types made, in order
		flags    []string // Flag codes made, nil to skip
		warn     string   // a warning field expected
		err      error
		labelETH bool
	}{
		{name: "client", rec: &Client{Header: Header{ID: "c1"}, Name: Name{Family: "A"}, BirthDate: "1990-02-03", Sex: "female", MRN: "M1", Pronouns: "they/them"}, types: "Patient Provenance"},
		{name: "client sud labels", sud: true, rec: &Client{Header: Header{ID: "c1"}, Name: Name{Family: "A"}, BirthDate: "1990-02-03", SUDProgram: true}, types: "Patient Provenance", labelETH: true},
		{name: "client bad sex", rec: &Client{Header: Header{ID: "c1"}, Name: Name{Family: "A"}, BirthDate: "1990-02-03", Sex: "x"}, types: "Patient Provenance", warn: "client.sex"},
		{name: "client bad date", rec: &Client{Header: Header{ID: "c1"}, Name: Name{Family: "A"}, BirthDate: "03/02/1990"}, err: ErrInvalidRecord},
		{name: "practitioner", rec: &Practitioner{Header: Header{ID: "p2"}, Name: Name{Family: "Q"}, Role: "therapist", Credential: "LMFT"}, types: "Practitioner PractitionerRole Provenance"},
		{name: "practitioner bad role", rec: &Practitioner{Header: Header{ID: "p2"}, Name: Name{Family: "Q"}, Role: "nurse"}, err: ErrInvalidRecord},
		{name: "course", rec: &Course{Header: Header{ID: "k2"}, Client: "c1", Prescriber: "p1", Therapist: "p1", Indications: []string{"trd", "chronic_pain"}, Route: "spravato", Status: "on_hold", Start: "2026-01-05", Goals: []string{"g"}}, types: "CarePlan Condition Condition Goal CareTeam MedicationRequest Provenance"},
		{name: "course with its prescription", rec: &Course{Header: Header{ID: "k2"}, Client: "c1", Prescriber: "p1", Therapist: "p1", Indications: []string{"trd"}, Route: "iv", Status: "revoked", Start: "2026-01-05"}, types: "CarePlan Condition CareTeam MedicationRequest Provenance"},
		{name: "course of unknown client", rec: &Course{Header: Header{ID: "k2"}, Client: "nobody", Route: "iv", Status: "active", Start: "2026-01-05"}, err: ErrUnresolved},
		{name: "course bad status", rec: &Course{Header: Header{ID: "k2"}, Client: "c1", Route: "iv", Status: "paused", Start: "2026-01-05"}, err: ErrInvalidRecord},
		{name: "course bad indication", rec: &Course{Header: Header{ID: "k2"}, Client: "c1", Route: "iv", Status: "active", Start: "2026-01-05", Indications: []string{"flu"}}, err: ErrInvalidRecord},
		{name: "held dosing session", rec: &Session{Header: Header{ID: "s"}, Course: "k1", Type: "dosing", Status: "held", PlannedStart: "2026-01-06T10:00:00Z", ActualStart: "2026-01-06T10:00:00Z", ActualEnd: "2026-01-06T11:00:00Z", Dose: &Dose{Drug: "ketamine", Mg: 50, MgPerKg: ptr(0.7), Route: "im", Lot: "L1", AdministeredBy: "p1", MonitoredMin: 60}}, types: "Encounter MedicationAdministration Provenance"},
		{name: "held session without actual times", rec: &Session{Header: Header{ID: "s"}, Course: "k1", Type: "integration", Status: "held", PlannedStart: "2026-01-06T10:00:00Z"}, types: "Encounter Provenance", warn: "session.actual_start"},
		{name: "held dosing without dose", rec: &Session{Header: Header{ID: "s"}, Course: "k1", Type: "dosing", Status: "held", PlannedStart: "2026-01-06T10:00:00Z", ActualStart: "2026-01-06T10:00:00Z"}, types: "Encounter Provenance", warn: "session.dose"},
		{name: "planned session makes nothing", rec: &Session{Header: Header{ID: "s"}, Course: "k1", Type: "dosing", Status: "planned", PlannedStart: "2026-01-06T10:00:00Z"}, types: ""},
		{name: "cancelled session with a dose", rec: &Session{Header: Header{ID: "s"}, Course: "k1", Type: "dosing", Status: "cancelled", PlannedStart: "2026-01-06T10:00:00Z", Dose: &Dose{Drug: "ketamine", Mg: 50, Route: "im"}}, types: "", warn: "session.dose"},
		{name: "session of unknown course", rec: &Session{Header: Header{ID: "s"}, Course: "none", Type: "dosing", Status: "held"}, err: ErrUnresolved},
		{name: "session bad drug", rec: &Session{Header: Header{ID: "s"}, Course: "k1", Type: "dosing", Status: "held", PlannedStart: "2026-01-06T10:00:00Z", ActualStart: "2026-01-06T10:00:00Z", Dose: &Dose{Drug: "psilocybin", Mg: 25, Route: "iv"}}, err: ErrInvalidRecord},
		{name: "session bad time", rec: &Session{Header: Header{ID: "s"}, Course: "k1", Type: "dosing", Status: "held", PlannedStart: "Monday"}, err: ErrInvalidRecord},
		{name: "bp above the pre-dose threshold: no Flag from the record alone (Check judges the phase; FindingFlags)", rec: &Observation{Header: Header{ID: "o"}, Session: "held", Time: "2026-01-06T10:40:00Z", Vitals: &Vitals{Systolic: ptr(150.0), Diastolic: ptr(85.0)}}, types: "Observation Provenance"},
		{name: "bp at threshold does not", rec: &Observation{Header: Header{ID: "o"}, Session: "held", Time: "2026-01-06T10:40:00Z", Vitals: &Vitals{Systolic: ptr(140.0), Diastolic: ptr(90.0)}}, types: "Observation Provenance"},
		{name: "practice limits", m: Mapper{Limits: Limits{PreDoseSystolic: 160, PreDoseDiastolic: 100}}, rec: &Observation{Header: Header{ID: "o"}, Session: "held", Time: "2026-01-06T10:40:00Z", Vitals: &Vitals{Systolic: ptr(150.0), Diastolic: ptr(95.0)}}, types: "Observation Provenance"},
		{name: "systolic only", rec: &Observation{Header: Header{ID: "o"}, Session: "held", Time: "2026-01-06T10:40:00Z", Vitals: &Vitals{Systolic: ptr(120.0)}}, types: "Observation Provenance", warn: "observation.vitals"},
		{name: "red flag", rec: &Observation{Header: Header{ID: "o"}, Session: "held", Time: "2026-01-06T10:40:00Z", RedFlags: []string{"mania"}, SideEffects: []string{"nausea"}, Dissociation: ptr(4)}, types: "Observation Observation Observation Flag Provenance", flags: []string{"mania"}},
		{name: "observation in a planned session", rec: &Observation{Header: Header{ID: "o"}, Session: "planned", Time: "2026-01-13T10:40:00Z", Vitals: &Vitals{HeartRate: ptr(70.0)}}, types: "Observation Provenance", warn: "observation.session"},
		{name: "observation bad side effect", rec: &Observation{Header: Header{ID: "o"}, Session: "held", Time: "2026-01-06T10:40:00Z", SideEffects: []string{"headache"}}, err: ErrInvalidRecord},
		{name: "empty observation", rec: &Observation{Header: Header{ID: "o"}, Session: "held", Time: "2026-01-06T10:40:00Z"}, types: "", warn: "observation"},
		{name: "clearance positives and safety signals", rec: &Screening{Header: Header{ID: "sc"}, Client: "c1", Date: "2026-01-05", PerformedBy: "p1",
			Clearance:   &Clearance{Cardiovascular: yes, PsychoticDisorder: no, BipolarI: no, SubstanceMisuse: no, Pregnancy: nil, ContraindicatedMeds: yes, Medications: []string{"phenelzine"}, Decision: "deferred"},
			Instruments: []InstrumentResult{{Instrument: "phq9", Items: []int{1, 1, 1, 1, 1, 1, 1, 1, 1}}, {Instrument: "cssrs", Items: []int{1, 1, 1, 0, 0, 0, 0}}}},
			types: "QuestionnaireResponse Observation Flag Flag QuestionnaireResponse Observation Flag QuestionnaireResponse Observation Flag Provenance",
			flags: []string{"cardiovascular", "contraindicated-medications", "44260-8", "6471006", "cssrs-triage", "risk-moderate"}, warn: "screening.clearance.pregnancy"},
		{name: "screening total disagrees", rec: &Screening{Header: Header{ID: "sc"}, Client: "c1", Date: "2026-01-05", Instruments: []InstrumentResult{{Instrument: "gad7", Items: []int{1, 1, 1, 1, 1, 1, 1}, Total: ptr(9)}}}, err: ErrInvalidRecord},
		{name: "note", rec: &Note{Header: Header{ID: "n"}, Session: "held", Author: "p1", Date: "2026-01-06", Text: "x"}, types: "DocumentReference Provenance"},
		{name: "consent", rec: &Consent{Header: Header{ID: "cs"}, Client: "c1", Recipient: "p1", Scope: "process_notes", Decision: "permit", Start: "2026-01-01"}, types: "Consent Provenance"},
		{name: "consent bad scope", rec: &Consent{Header: Header{ID: "cs"}, Client: "c1", Recipient: "p1", Scope: "everything", Decision: "permit", Start: "2026-01-01"}, err: ErrInvalidRecord},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := caseBook(tc.sud)
			m := tc.m
			m.Practice, m.Now = "acme-kap", testMapper().Now
			res, warns, err := m.ToFHIR(b, tc.rec)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := types(res); got != tc.types {
				t.Errorf("made %q, want %q", got, tc.types)
			}
			if tc.flags != nil && strings.Join(flagCodes(res), " ") != strings.Join(tc.flags, " ") {
				t.Errorf("flags %v, want %v", flagCodes(res), tc.flags)
			}
			found := tc.warn == ""
			for _, w := range warns {
				if w.Field == tc.warn {
					found = true
				}
			}
			if !found {
				t.Errorf("no warning on %s: %v", tc.warn, warns)
			}
			for _, v := range res {
				if _, _, err := fhir.ParseResource(v.Encode()); err != nil {
					t.Errorf("%s: %v", v.GetString("resourceType"), err)
				}
				if hasLabel(v, SysActCode, "ETH") != tc.labelETH {
					t.Errorf("%s: ETH label %v, want %v", v.GetString("resourceType"), !tc.labelETH, tc.labelETH)
				}
			}
		})
	}
}

// A record passed by value maps like the same record by pointer.
func TestToFHIRByValue(t *testing.T) {
	b := caseBook(false)
	m := testMapper()
	c := Client{Header: Header{Kind: KindClient, ID: "c1"}, Name: Name{Family: "A"}, BirthDate: "1990-02-03"}
	a, _, err1 := m.ToFHIR(b, c)
	p, _, err2 := m.ToFHIR(b, &c)
	if err1 != nil || err2 != nil || strings.Join(encodeAll(a), "") != strings.Join(encodeAll(p), "") {
		t.Fatal("by value and by pointer differ")
	}
}
