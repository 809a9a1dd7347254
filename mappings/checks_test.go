package mappings

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

func f64(x float64) *float64 { return &x }
func boolp(b bool) *bool     { return &b }

// checkFixture is a small, clean course: every record in it checks
// without findings (TestCheckFixtureClean), so each row's case changes one
// thing and expects exactly its finding.
type checkFixture struct {
	client                     *Client
	prescriber, therapist, adm *Practitioner
	course                     *Course
	consult, prep, dosing      *Session
	screening                  *Screening
	weight, during             *Observation
	note                       *Note
	consent                    *Consent
}

func newCheckFixture() *checkFixture {
	no := func() *bool { return boolp(false) }
	return &checkFixture{
		client:     &Client{Header: Header{Kind: KindClient, ID: "c1"}, Name: Name{Family: "Doe"}, BirthDate: "1980-01-01"},
		prescriber: &Practitioner{Header: Header{Kind: KindPractitioner, ID: "rx"}, Name: Name{Family: "Rx"}, Role: "prescriber", Credential: "MD"},
		therapist:  &Practitioner{Header: Header{Kind: KindPractitioner, ID: "th"}, Name: Name{Family: "Th"}, Role: "therapist", Credential: "LCSW"},
		adm:        &Practitioner{Header: Header{Kind: KindPractitioner, ID: "rn"}, Name: Name{Family: "Rn"}, Role: "administrator", Credential: "RN"},
		course: &Course{Header: Header{Kind: KindCourse, ID: "k1"}, Client: "c1", Prescriber: "rx", Therapist: "th", Team: []string{"rn"},
			Indications: []string{"trd"}, Route: "iv", Planned: PlannedCounts{2, 6, 6}, Status: "active", Start: "2026-01-05", End: "2026-03-31"},
		consult: &Session{Header: Header{Kind: KindSession, ID: "s1"}, Course: "k1", Type: "consultation", Status: "held",
			PlannedStart: "2026-01-05T09:00:00-05:00", ActualStart: "2026-01-05T09:00:00-05:00", ActualEnd: "2026-01-05T10:00:00-05:00", Practitioners: []string{"rx", "th"}},
		prep: &Session{Header: Header{Kind: KindSession, ID: "s1p"}, Course: "k1", Type: "preparation", Status: "held",
			PlannedStart: "2026-01-08T09:00:00-05:00", ActualStart: "2026-01-08T09:00:00-05:00", ActualEnd: "2026-01-08T10:00:00-05:00", Practitioners: []string{"th"}},
		dosing: &Session{Header: Header{Kind: KindSession, ID: "s2"}, Course: "k1", Type: "dosing", Status: "held",
			PlannedStart: "2026-01-12T10:00:00-05:00", ActualStart: "2026-01-12T10:00:00-05:00", ActualEnd: "2026-01-12T11:10:00-05:00",
			Dose: &Dose{Drug: "ketamine", Mg: 35, MgPerKg: f64(0.5), Route: "iv", AdministeredBy: "rn", MonitoredMin: 60}},
		screening: &Screening{Header: Header{Kind: KindScreening, ID: "sc1"}, Client: "c1", Course: "k1", Date: "2026-01-05T09:30:00-05:00", PerformedBy: "rx",
			Clearance: &Clearance{Cardiovascular: no(), PsychoticDisorder: no(), BipolarI: no(), SubstanceMisuse: no(), Pregnancy: no(), ContraindicatedMeds: no(), Decision: "cleared"},
			Instruments: []InstrumentResult{
				{Instrument: "phq9", Items: []int{2, 2, 2, 2, 1, 1, 1, 1, 0}, Total: intp(12)},
				{Instrument: "cssrs", Items: []int{1, 0, 0, 0, 0, 0, 0}},
			}},
		weight: &Observation{Header: Header{Kind: KindObservation, ID: "o1"}, Session: "s1", Time: "2026-01-05T09:10:00-05:00", Performer: "rx",
			Vitals: &Vitals{Systolic: f64(120), Diastolic: f64(80), HeartRate: f64(70), SpO2: f64(98), RespiratoryRate: f64(14), WeightKg: f64(70), TemperatureC: f64(36.8)}},
		during: &Observation{Header: Header{Kind: KindObservation, ID: "o2"}, Session: "s2", Time: "2026-01-12T10:20:00-05:00", Performer: "rn", Phase: "during",
			Vitals: &Vitals{Systolic: f64(130), Diastolic: f64(85), HeartRate: f64(80)}, Dissociation: intp(5), SideEffects: []string{"nausea"}},
		note:    &Note{Header: Header{Kind: KindNote, ID: "n1"}, Session: "s2", Author: "th", Date: "2026-01-13", Text: "x"},
		consent: &Consent{Header: Header{Kind: KindConsent, ID: "ct1"}, Client: "c1", Recipient: "rx", Scope: "process_notes", Decision: "permit", Start: "2026-01-05"},
	}
}

func (f *checkFixture) records() []Record {
	return []Record{f.client, f.prescriber, f.therapist, f.adm, f.course, f.consult, f.prep, f.dosing, f.screening, f.weight, f.during, f.note, f.consent}
}

func (f *checkFixture) book(skip ...Record) *Book {
	b := NewBook()
	for _, r := range f.records() {
		if !slices.Contains(skip, r) {
			b.Add(r)
		}
	}
	return b
}

func TestCheckFixtureClean(t *testing.T) {
	f := newCheckFixture()
	b := f.book()
	for _, r := range f.records() {
		if got := Check(b, r, CheckConfig{}); len(got) > 0 {
			t.Errorf("%s %s: %v", r.RecordHeader().Kind, r.RecordHeader().ID, got)
		}
	}
}

// checkCase is one row of CHECKS.md: build a book and a record from a
// clean fixture changed in one way, and expect the row's finding.
type checkCase struct {
	code     string
	severity string
	field    string // the finding's Field
	message  string // a substring of its Message
	setup    func(f *checkFixture) (*Book, Record)
	cfg      CheckConfig
}

// inBook adds the fixture and returns r (already changed by the caller).
func inBook(f *checkFixture, r Record) (*Book, Record) { b := f.book(); b.Add(r); return b, r }

var checkCases = []checkCase{
	{"vitals.range.systolic", "error", "vitals.systolic", "300 mm[Hg] is outside 50-260", func(f *checkFixture) (*Book, Record) {
		f.during.Vitals.Systolic = f64(300)
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"vitals.range.diastolic", "error", "vitals.diastolic", "20 mm[Hg] is outside 30-160", func(f *checkFixture) (*Book, Record) {
		f.during.Vitals.Diastolic = f64(20)
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"vitals.range.heart_rate", "error", "vitals.heart_rate", "300 /min is outside 25-250", func(f *checkFixture) (*Book, Record) {
		f.during.Vitals.HeartRate = f64(300)
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"vitals.range.spo2", "error", "vitals.spo2", "9.8 % is outside 50-100", func(f *checkFixture) (*Book, Record) {
		f.weight.Vitals.SpO2 = f64(9.8) // a slipped decimal point
		return inBook(f, f.weight)
	}, CheckConfig{}},
	{"vitals.range.respiratory_rate", "error", "vitals.respiratory_rate", "outside 4-60", func(f *checkFixture) (*Book, Record) {
		f.weight.Vitals.RespiratoryRate = f64(2)
		return inBook(f, f.weight)
	}, CheckConfig{}},
	{"vitals.range.weight", "error", "vitals.weight_kg", "700 kg is outside 20-350", func(f *checkFixture) (*Book, Record) {
		f.weight.Vitals.WeightKg = f64(700)
		return inBook(f, f.weight)
	}, CheckConfig{}},
	{"vitals.range.temperature", "error", "vitals.temperature_c", "98.6 °C is outside 30-44", func(f *checkFixture) (*Book, Record) {
		f.weight.Vitals.TemperatureC = f64(98.6) // Fahrenheit
		return inBook(f, f.weight)
	}, CheckConfig{}},
	{"instrument.items", "error", "instruments[0].items", "PHQ-9 item 3 is 5: want 0-3", func(f *checkFixture) (*Book, Record) {
		f.screening.Instruments[0] = InstrumentResult{Instrument: "phq9", Items: []int{0, 0, 5, 0, 0, 0, 0, 0, 0}}
		return inBook(f, f.screening)
	}, CheckConfig{}},
	{"instrument.total", "error", "instruments[0].total", "PHQ-9 supplied total 13 disagrees with the items, which score 12", func(f *checkFixture) (*Book, Record) {
		f.screening.Instruments[0].Total = intp(13)
		return inBook(f, f.screening)
	}, CheckConfig{}},
	{"clearance.contraindication", "error", "clearance.decision", "cleared with psychotic_disorder, bipolar_i, pregnancy, contraindicated_medications answered yes and no override_reason", func(f *checkFixture) (*Book, Record) {
		// Issue 12: cleared while pregnancy, bipolar I, psychosis and a
		// contraindicated medication (phenelzine) are answered yes.
		cl := f.screening.Clearance
		cl.Pregnancy, cl.BipolarI, cl.PsychoticDisorder, cl.ContraindicatedMeds = boolp(true), boolp(true), boolp(true), boolp(true)
		cl.Medications = []string{"phenelzine 15 mg"}
		return inBook(f, f.screening)
	}, CheckConfig{}},
	{"clearance.override", "warning", "clearance.override_reason", "cleared despite cardiovascular, overridden by the prescriber: BP controlled on amlodipine", func(f *checkFixture) (*Book, Record) {
		f.screening.Clearance.Cardiovascular = boolp(true)
		f.screening.Clearance.OverrideReason = "BP controlled on amlodipine; cardiology letter on file"
		return inBook(f, f.screening)
	}, CheckConfig{}},
	{"role.clearance_by", "error", "performed_by", `a clearance decision by "th", a therapist holding LCSW`, func(f *checkFixture) (*Book, Record) {
		f.screening.PerformedBy = "th"
		return inBook(f, f.screening)
	}, CheckConfig{}},
	{"dosing.no_clearance", "error", "actual_start", `client "c1" has no screening with a clearance decision at or before it`, func(f *checkFixture) (*Book, Record) {
		f.screening.Clearance = nil
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dosing.not_cleared", "alert", "actual_start", `the clearance decision in force is "not_cleared" (screening "sc2"`, func(f *checkFixture) (*Book, Record) {
		// Issue 12: a later screening decided not_cleared (pregnancy
		// found) revokes the earlier cleared one.
		b := f.book()
		b.Add(&Screening{Header: Header{Kind: KindScreening, ID: "sc2"}, Client: "c1", Date: "2026-01-10", PerformedBy: "rx",
			Clearance: &Clearance{Pregnancy: boolp(true), Decision: "not_cleared"}})
		return b, f.dosing
	}, CheckConfig{}},
	{"dosing.clearance_expired", "alert", "actual_start", `is 7 days old, past the 5 days it is valid`, func(f *checkFixture) (*Book, Record) {
		return inBook(f, f.dosing)
	}, CheckConfig{Limits: Limits{ClearanceValidDays: 5}}},
	{"dosing.pregnancy_test", "alert", "actual_start", `the latest pregnancy test before it (2026-01-10, screening "sc1") is positive`, func(f *checkFixture) (*Book, Record) {
		f.screening.PregnancyTest = &PregnancyTest{Date: "2026-01-10", Result: "positive"}
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dosing.pregnancy_test_missing", "warning", "actual_start", `held dosing session at 2026-01-12T10:00:00-05:00: client "c1" (female, 35 years) has no pregnancy test on file at or before it`, func(f *checkFixture) (*Book, Record) {
		f.client.Sex, f.client.BirthDate = "female", "1990-06-30"
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dose.missing", "warning", "dose", "held dosing session without a dose", func(f *checkFixture) (*Book, Record) {
		f.dosing.Dose = nil
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dose.no_route", "error", "dose.route", "dose without a route", func(f *checkFixture) (*Book, Record) {
		f.dosing.Dose.Route = ""
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dose.session_type", "error", "dose", "a dose on a integration session", func(f *checkFixture) (*Book, Record) {
		f.dosing.Type = "integration"
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dose.drug_route", "error", "dose.drug", "esketamine is given only as Spravato nasal spray, not by route iv", func(f *checkFixture) (*Book, Record) {
		f.dosing.Dose.Drug = "esketamine"
		f.dosing.Dose.MgPerKg = nil
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dose.product", "error", "dose.product", "product 238083 is a ketamine HCl injectable (RxNorm), given IV or IM, not by route lozenge", func(f *checkFixture) (*Book, Record) {
		f.dosing.Dose.Route, f.dosing.Dose.MgPerKg, f.dosing.Dose.MonitoredMin = "lozenge", nil, 95
		f.dosing.Dose.Product = "238083"
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dose.spravato_mg", "warning", "dose.mg", "Spravato dose 70 mg", func(f *checkFixture) (*Book, Record) {
		f.course.Route = "spravato"
		f.dosing.Dose = &Dose{Drug: "esketamine", Mg: 70, Route: "spravato", Lot: "L1", MonitoredMin: 125}
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dose.mg_per_kg", "warning", "dose.mg_per_kg", "0.5 mg/kg, but 50 mg for 70 kg", func(f *checkFixture) (*Book, Record) {
		f.dosing.Dose.Mg = 50
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dose.mg_per_kg_ceiling", "alert", "dose.mg_per_kg", "ketamine 5 mg/kg iv, above the ceiling of 1 mg/kg", func(f *checkFixture) (*Book, Record) {
		f.dosing.Dose.Mg, f.dosing.Dose.MgPerKg = 350, f64(5) // issue 12: ketamine 5 mg/kg
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dose.concomitant", "warning", "concomitant[0]", "maoi taken with the dose: may raise blood pressure further", func(f *checkFixture) (*Book, Record) {
		f.dosing.Concomitant = []string{"maoi"}
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"dose.escalation", "warning", "dose.mg", `1.2 mg/kg, 2.4 times the course's first iv dose (0.5 mg/kg, session "s0" at 2026-01-09T10:00:00-05:00)`, func(f *checkFixture) (*Book, Record) {
		s0 := *f.dosing
		d0 := *f.dosing.Dose
		s0.ID, s0.Dose = "s0", &d0
		s0.PlannedStart, s0.ActualStart, s0.ActualEnd = "2026-01-09T10:00:00-05:00", "2026-01-09T10:00:00-05:00", "2026-01-09T11:10:00-05:00"
		in := &Session{Header: Header{Kind: KindSession, ID: "i0"}, Course: "k1", Type: "integration", Status: "held", PlannedStart: "2026-01-10T10:00:00-05:00"}
		f.dosing.Dose.Mg, f.dosing.Dose.MgPerKg = 84, f64(1.2)
		b := f.book()
		b.Add(&s0)
		b.Add(in)
		return b, f.dosing
	}, CheckConfig{Limits: Limits{KetamineMgPerKgIV: 2}}},
	{"role.administered_by", "alert", "dose.administered_by", `dose given by "th", a therapist holding LCSW, who is not licensed to administer it`, func(f *checkFixture) (*Book, Record) {
		f.dosing.Dose.AdministeredBy = "th"
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"role.prescriber_credential", "alert", "prescriber", `prescriber "rx2" holds LCSW, which cannot prescribe`, func(f *checkFixture) (*Book, Record) {
		b := f.book()
		b.Add(&Practitioner{Header: Header{Kind: KindPractitioner, ID: "rx2"}, Name: Name{Family: "X"}, Role: "prescriber", Credential: "LCSW"})
		f.course.Prescriber = "rx2"
		b.Add(f.course)
		return b, f.course
	}, CheckConfig{}},
	{"session.before_course", "error", "actual_start", "session on 2026-01-04, before its course starts on 2026-01-05", func(f *checkFixture) (*Book, Record) {
		f.consult.PlannedStart = "2026-01-04T09:00:00-05:00"
		f.consult.ActualStart, f.consult.ActualEnd = "2026-01-04T09:00:00-05:00", "2026-01-04T10:00:00-05:00"
		return inBook(f, f.consult)
	}, CheckConfig{}},
	{"session.after_course", "warning", "planned_start", "after its course ended on 2026-03-31", func(f *checkFixture) (*Book, Record) {
		s := &Session{Header: Header{Kind: KindSession, ID: "s9"}, Course: "k1", Type: "integration", Status: "planned", PlannedStart: "2026-04-02T10:00:00-04:00"}
		return inBook(f, s)
	}, CheckConfig{}},
	{"session.end_before_start", "error", "actual_end", "before it starts", func(f *checkFixture) (*Book, Record) {
		f.consult.ActualEnd = "2026-01-05T08:00:00-05:00"
		return inBook(f, f.consult)
	}, CheckConfig{}},
	{"session.short", "warning", "dose.monitored_minutes", "30 monitored minutes, fewer than the 40 a iv session needs", func(f *checkFixture) (*Book, Record) {
		f.dosing.Dose.MonitoredMin = 30
		return inBook(f, f.dosing)
	}, CheckConfig{}},
	{"schedule.min_interval", "alert", "actual_start", `is 5.0 hours from the dose of session "s3"`, func(f *checkFixture) (*Book, Record) {
		// Issue 12: two doses on the same day.
		s3 := *f.dosing
		s3.ID = "s3"
		s3.PlannedStart, s3.ActualStart, s3.ActualEnd = "2026-01-12T15:00:00-05:00", "2026-01-12T15:00:00-05:00", "2026-01-12T16:10:00-05:00"
		b := f.book()
		b.Add(&s3)
		return b, f.dosing
	}, CheckConfig{}},
	{"schedule.no_preparation", "warning", "actual_start", "the course's first dose, at 2026-01-12T10:00:00-05:00, with no preparation session held before it", func(f *checkFixture) (*Book, Record) {
		return f.book(f.prep), f.dosing
	}, CheckConfig{}},
	{"schedule.maintenance_weeks", "warning", "maintenance_weeks", "maintenance every 1 weeks, outside the usual 4-12", func(f *checkFixture) (*Book, Record) {
		f.course.Maintenance = 1
		return inBook(f, f.course)
	}, CheckConfig{}},
	{"schedule.no_integration", "warning", "actual_start", `no integration session held between the dose of session "s0"`, func(f *checkFixture) (*Book, Record) {
		s0 := *f.dosing
		s0.ID = "s0"
		s0.PlannedStart, s0.ActualStart, s0.ActualEnd = "2026-01-09T10:00:00-05:00", "2026-01-09T10:00:00-05:00", "2026-01-09T11:10:00-05:00"
		b := f.book()
		b.Add(&s0)
		return b, f.dosing
	}, CheckConfig{}},
	{"schedule.induction_window", "warning", "", "dosing sessions from 2026-01-12 (\"s2\") to 2027-01-11 (\"s9\"): 364 days, longer than the 28-day induction window", func(f *checkFixture) (*Book, Record) {
		// Issue 12: a one-year induction.
		s9 := &Session{Header: Header{Kind: KindSession, ID: "s9"}, Course: "k1", Type: "dosing", Status: "planned", PlannedStart: "2027-01-11T10:00:00-05:00"}
		f.course.End = ""
		b := f.book()
		b.Add(s9)
		b.Add(f.course)
		return b, f.course
	}, CheckConfig{}},
	{"schedule.spravato_frequency", "warning", "actual_start", "2 Spravato doses in the 7 days up to 2026-02-12T10:00:00-05:00 (day 32 of the course's doses), more than the label's from week 5: weekly", func(f *checkFixture) (*Book, Record) {
		f.course.Route = "spravato"
		b := f.book(f.dosing)
		add := func(id, at string) *Session {
			s := &Session{Header: Header{Kind: KindSession, ID: id}, Course: "k1", Type: "dosing", Status: "held", PlannedStart: at, ActualStart: at,
				Dose: &Dose{Drug: "esketamine", Mg: 56, Route: "spravato", MonitoredMin: 120, AdministeredBy: "rn"}}
			b.Add(s)
			b.Add(&Session{Header: Header{Kind: KindSession, ID: "i-" + id}, Course: "k1", Type: "integration", Status: "held", PlannedStart: strings.Replace(at, "T10", "T15", 1)})
			return s
		}
		add("d1", "2026-01-12T10:00:00-05:00")
		add("d2", "2026-02-09T10:00:00-05:00")
		return b, add("d3", "2026-02-12T10:00:00-05:00")
	}, CheckConfig{}},
	{"course.dosing_count", "warning", "planned.dosing", "10 dosing sessions planned, more than the usual 8", func(f *checkFixture) (*Book, Record) {
		f.course.Planned.Dosing = 10
		return inBook(f, f.course)
	}, CheckConfig{}},
	{"course.spravato_indication", "warning", "indications[0]", "Spravato for ptsd", func(f *checkFixture) (*Book, Record) {
		f.course.Route, f.course.Indications = "spravato", []string{"ptsd"}
		return inBook(f, f.course)
	}, CheckConfig{}},
	{"ref.pending", "warning", "session", `session "s2" is not known yet`, func(f *checkFixture) (*Book, Record) {
		return f.book(f.dosing), f.during
	}, CheckConfig{}},
	{"ref.role", "warning", "therapist", `practitioner "rx" is a prescriber, expected a therapist`, func(f *checkFixture) (*Book, Record) {
		f.course.Therapist = "rx"
		return inBook(f, f.course)
	}, CheckConfig{}},
	{"vitals.bp_pre_dose", "alert", "vitals", "pre-dose blood pressure 150/95 mm[Hg] is above the practice's 140/90 (predose_systolic, predose_diastolic): hold the dose", func(f *checkFixture) (*Book, Record) {
		o := &Observation{Header: Header{Kind: KindObservation, ID: "o0"}, Session: "s2", Time: "2026-01-12T09:55:00-05:00", Phase: "before", Vitals: &Vitals{Systolic: f64(150), Diastolic: f64(95)}}
		return inBook(f, o)
	}, CheckConfig{}},
	{"vitals.bp_crisis", "alert", "vitals", "blood pressure 185/125 mm[Hg] (at 2026-01-12T10:20:00-05:00) is above the hypertensive-crisis level 180/120", func(f *checkFixture) (*Book, Record) {
		f.during.Phase = ""
		f.during.Vitals.Systolic, f.during.Vitals.Diastolic = f64(185), f64(125)
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"vitals.bp_rise", "warning", "vitals", "blood pressure 165/95 mm[Hg] during the session rose +45/+15 from the pre-dose 120/80", func(f *checkFixture) (*Book, Record) {
		b := f.book()
		b.Add(&Observation{Header: Header{Kind: KindObservation, ID: "o0"}, Session: "s2", Time: "2026-01-12T09:55:00-05:00", Phase: "before", Vitals: &Vitals{Systolic: f64(120), Diastolic: f64(80)}})
		f.during.Vitals.Systolic, f.during.Vitals.Diastolic = f64(165), f64(95)
		b.Add(f.during)
		return b, f.during
	}, CheckConfig{}},
	{"vitals.discharge_unresolved", "alert", "dissociation", "dissociation 3/10 at discharge: not resolved", func(f *checkFixture) (*Book, Record) {
		f.during.Phase, f.during.Dissociation, f.during.SideEffects = "discharge", intp(3), nil
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"vitals.sedation_deep", "alert", "sedation", "sedation MOAA/S 1/5 (during the session): deep sedation", func(f *checkFixture) (*Book, Record) {
		f.during.Dissociation, f.during.SideEffects, f.during.Sedation = nil, nil, intp(1)
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"vitals.spo2", "alert", "vitals.spo2", "SpO2 85 % (during the session) is at or below 91 % (spo2_critical)", func(f *checkFixture) (*Book, Record) {
		f.during.Vitals.SpO2 = f64(85)
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"vitals.heart_rate", "alert", "vitals.heart_rate", "heart rate 140 /min (during the session) is at or above 131 /min", func(f *checkFixture) (*Book, Record) {
		f.during.Vitals.HeartRate = f64(140)
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"vitals.respiratory_rate", "alert", "vitals.respiratory_rate", "respiratory rate 6 /min (during the session) is at or below 8 /min (resp_rate_critical_low): respiratory depression", func(f *checkFixture) (*Book, Record) {
		f.during.Vitals.RespiratoryRate = f64(6)
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"vitals.dissociation", "warning", "dissociation", "dissociation 10/10 (during the session), at or above 8", func(f *checkFixture) (*Book, Record) {
		f.during.Dissociation = intp(10)
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"safety.red_flag", "warning", "red_flags[0]", "red flag: mania", func(f *checkFixture) (*Book, Record) {
		f.during.RedFlags = []string{"mania"}
		return inBook(f, f.during)
	}, CheckConfig{}},
	{"safety.phq9_item9", "warning", "instruments[0].items[8]", "PHQ-9 item 9", func(f *checkFixture) (*Book, Record) {
		f.screening.Instruments[0] = InstrumentResult{Instrument: "phq9", Items: []int{2, 2, 2, 2, 1, 1, 1, 0, 1}, Total: intp(12)}
		return inBook(f, f.screening)
	}, CheckConfig{}},
	{"safety.cssrs", "warning", "instruments[1].items", "C-SSRS screener triage high", func(f *checkFixture) (*Book, Record) {
		f.screening.Instruments[1].Items = []int{1, 1, 0, 1, 0, 0, 0}
		return inBook(f, f.screening)
	}, CheckConfig{}},
}

// TestCheckTable: one subtest per row of CHECKS.md, named by its code.
// Each expects exactly one finding, the row's.
func TestCheckTable(t *testing.T) {
	for _, tc := range checkCases {
		t.Run(tc.code, func(t *testing.T) {
			b, r := tc.setup(newCheckFixture())
			got := Check(b, r, tc.cfg)
			if len(got) != 1 {
				t.Fatalf("want one finding %s, got %v", tc.code, got)
			}
			g := got[0]
			if g.Code != tc.code || g.Severity != tc.severity || g.Field != tc.field || !strings.Contains(g.Message, tc.message) {
				t.Errorf("got %s\nwant %s %s %s: ...%s...", g, tc.severity, tc.code, tc.field, tc.message)
			}
		})
	}
}

// More cases per row: the boundaries and the cases where a row must stay
// quiet.
func TestCheckRowDetails(t *testing.T) {
	codes := func(fs []Problem) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Code)
		}
		return out
	}
	t.Run("sedation must have resolved at discharge", func(t *testing.T) {
		for _, tc := range []struct {
			phase string
			moaas int
			cfg   Limits
			want  []string
		}{
			{"discharge", 4, Limits{}, []string{"vitals.discharge_unresolved"}},
			{"discharge", 5, Limits{}, nil},
			{"during", 2, Limits{}, nil}, // expected in a session
			{"discharge", 4, Limits{DischargeSedationMin: 4}, nil},
			// Deep sedation during the session: an alert now, not only at
			// discharge.
			{"during", 1, Limits{}, []string{"vitals.sedation_deep"}},
			{"during", 0, Limits{}, []string{"vitals.sedation_deep"}},
			{"before", 1, Limits{}, []string{"vitals.sedation_deep"}},
			{"during", 2, Limits{SedationDeepMax: 2}, []string{"vitals.sedation_deep"}},
		} {
			f := newCheckFixture()
			f.during.Phase, f.during.Dissociation, f.during.SideEffects, f.during.Sedation = tc.phase, nil, nil, intp(tc.moaas)
			got := Check(f.book(), f.during, CheckConfig{Limits: tc.cfg})
			if !slices.Equal(codes(got), tc.want) {
				t.Errorf("%s MOAA/S %d (%+v): %v", tc.phase, tc.moaas, tc.cfg, got)
			} else if len(got) == 1 && tc.phase == "discharge" && (got[0].Field != "sedation" || !strings.Contains(got[0].Message, "sedation MOAA/S 4/5 at discharge: not resolved (at least 5")) {
				t.Errorf("finding %v", got[0])
			} else if len(got) == 1 && tc.phase != "discharge" && (got[0].Field != "sedation" || got[0].Severity != "alert" || !strings.Contains(got[0].Message, fmt.Sprintf("sedation MOAA/S %d/5 (", tc.moaas)) || !strings.Contains(got[0].Message, "deep sedation")) {
				t.Errorf("finding %v", got[0])
			}
		}
	})
	t.Run("escalation against every earlier dose, not only the first", func(t *testing.T) {
		// Earlier doses of the fixture's course (s2, 0.5 mg/kg IV, on
		// 2026-01-12) and then one more on 2026-01-20 (mg/kg given).
		for _, tc := range []struct {
			name    string
			earlier []float64 // mg/kg of doses on 2026-01-14, -16, ...
			now     float64
			want    string // the message part, "" for no finding
		}{
			{"a drop then a jump: 3.6 times the previous", []float64{0.25}, 0.9, `0.9 mg/kg, 3.6 times the previous iv dose (0.25 mg/kg, session "e0"`},
			{"a lower dose between: 2.8 times an earlier one", []float64{0.25, 0.6}, 0.7, `0.7 mg/kg, 2.8 times an earlier iv dose (0.25 mg/kg, session "e0"`},
			{"creeping up to 2.2 times the first", []float64{0.7, 0.9}, 1.1, `1.1 mg/kg, 2.2 times the course's first iv dose (0.5 mg/kg, session "s2"`},
			{"a doubling of the lowest is within the ratio", []float64{0.6, 0.8}, 1.0, ""},
		} {
			f := newCheckFixture()
			b := f.book()
			for i, x := range tc.earlier {
				e := *f.dosing
				d := *f.dosing.Dose
				d.MgPerKg, d.Mg = f64(x), x*70
				e.ID, e.Dose = fmt.Sprintf("e%d", i), &d
				day := fmt.Sprintf("2026-01-%02dT10:00:00-05:00", 14+2*i)
				e.PlannedStart, e.ActualStart, e.ActualEnd = day, day, fmt.Sprintf("2026-01-%02dT11:10:00-05:00", 14+2*i)
				b.Add(&e)
			}
			now := *f.dosing
			d := *f.dosing.Dose
			d.MgPerKg, d.Mg = f64(tc.now), tc.now*70
			now.ID, now.Dose = "now", &d
			now.PlannedStart, now.ActualStart, now.ActualEnd = "2026-01-20T10:00:00-05:00", "2026-01-20T10:00:00-05:00", "2026-01-20T11:10:00-05:00"
			b.Add(&now)
			var got []Problem
			for _, p := range Check(b, &now, CheckConfig{Limits: Limits{KetamineMgPerKgIV: 2}}) {
				if p.Code == "dose.escalation" {
					got = append(got, p)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("%s: %v", tc.name, got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0].Message, tc.want)):
				t.Errorf("%s: %v, want ...%s...", tc.name, got, tc.want)
			}
		}
	})
	t.Run("pregnancy test: where it applies, before the dose", func(t *testing.T) {
		for _, tc := range []struct {
			name, sex, born string
			test            *PregnancyTest
			status          string
			want            []string
		}{
			{"female 35, no test, held", "female", "1990-06-30", nil, "held", []string{"dosing.pregnancy_test_missing"}},
			{"female 35, no test, planned", "female", "1990-06-30", nil, "planned", []string{"dosing.pregnancy_test_missing"}},
			{"female 35, no test, cancelled", "female", "1990-06-30", nil, "cancelled", nil},
			{"female 35, negative test", "female", "1990-06-30", &PregnancyTest{Date: "2026-01-05", Result: "negative"}, "held", nil},
			{"female 35, test after the dose", "female", "1990-06-30", &PregnancyTest{Date: "2026-01-13", Result: "negative"}, "held", []string{"dosing.pregnancy_test_missing"}},
			{"female turning 51 the day before", "female", "1975-01-11", nil, "held", nil},
			{"female 50 until the day after", "female", "1975-01-13", nil, "held", []string{"dosing.pregnancy_test_missing"}},
			{"female 11", "female", "2014-06-30", nil, "held", nil},
			{"male", "male", "1990-06-30", nil, "held", nil},
			{"sex not recorded", "", "1990-06-30", nil, "held", nil},
		} {
			f := newCheckFixture()
			f.client.Sex, f.client.BirthDate = tc.sex, tc.born
			f.screening.PregnancyTest = tc.test
			f.dosing.Status = tc.status
			if tc.status != "held" {
				f.dosing.ActualStart, f.dosing.ActualEnd, f.dosing.Dose = "", "", nil
			}
			if got := codes(Check(f.book(), f.dosing, CheckConfig{})); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
		// The ages are configurable.
		f := newCheckFixture()
		f.client.Sex, f.client.BirthDate = "female", "1970-06-30"
		if got := codes(Check(f.book(), f.dosing, CheckConfig{Limits: Limits{PregnancyTestAgeMax: 60}})); !slices.Equal(got, []string{"dosing.pregnancy_test_missing"}) {
			t.Errorf("age 55 with pregnancy_test_age_max 60: %v", got)
		}
	})
	t.Run("range bounds are inclusive", func(t *testing.T) {
		f := newCheckFixture()
		f.weight.Vitals = &Vitals{Systolic: f64(50), Diastolic: f64(30), HeartRate: f64(250), SpO2: f64(100), RespiratoryRate: f64(4), WeightKg: f64(350), TemperatureC: f64(44)}
		// Plausible, so no range error; the heart and respiratory rates
		// are alerts.
		if got := codes(Check(f.book(), f.weight, CheckConfig{})); !slices.Equal(got, []string{"vitals.heart_rate", "vitals.respiratory_rate"}) {
			t.Errorf("%v", got)
		}
	})
	t.Run("pre-dose threshold is strictly above and configurable", func(t *testing.T) {
		f := newCheckFixture()
		o := &Observation{Header: Header{Kind: KindObservation, ID: "o0"}, Session: "s2", Time: "2026-01-12T09:55:00-05:00", Phase: "before", Vitals: &Vitals{Systolic: f64(140), Diastolic: f64(90)}}
		if got := Check(f.book(), o, CheckConfig{}); len(got) != 0 {
			t.Errorf("140/90 at the default 140/90: %v", got)
		}
		o.Vitals.Diastolic = f64(91)
		if got := codes(Check(f.book(), o, CheckConfig{})); !slices.Equal(got, []string{"vitals.bp_pre_dose"}) {
			t.Errorf("140/91: %v", got)
		}
		var lim Limits
		if err := lim.Parse("predose_systolic=160, predose_diastolic=100"); err != nil {
			t.Fatal(err)
		}
		if got := Check(f.book(), o, CheckConfig{Limits: lim}); len(got) != 0 {
			t.Errorf("140/91 at a practice's 160/100: %v", got)
		}
		// Before a consultation no dose is held: only a crisis counts.
		o.Session = "s1"
		o.Vitals.Systolic = f64(170)
		if got := Check(f.book(), o, CheckConfig{}); len(got) != 0 {
			t.Errorf("170/91 before a consultation: %v", got)
		}
	})
	t.Run("issue 12: the expected transient peak is not a pre-dose 185/115", func(t *testing.T) {
		f := newCheckFixture()
		b := f.book()
		before := &Observation{Header: Header{Kind: KindObservation, ID: "o0"}, Session: "s2", Time: "2026-01-12T09:55:00-05:00", Phase: "before", Vitals: &Vitals{Systolic: f64(125), Diastolic: f64(80)}}
		b.Add(before)
		f.during.Vitals.Systolic, f.during.Vitals.Diastolic = f64(152), f64(96) // the ~40 minute peak: +27/+16
		b.Add(f.during)
		if got := Check(b, f.during, CheckConfig{}); len(got) != 0 {
			t.Errorf("transient peak: %v", got)
		}
		before.Vitals.Systolic, before.Vitals.Diastolic = f64(185), f64(115)
		if got := codes(Check(b, before, CheckConfig{})); !slices.Equal(got, []string{"vitals.bp_pre_dose", "vitals.bp_crisis"}) {
			t.Errorf("pre-dose 185/115: %v", got)
		}
		// At discharge BP must have come back down.
		dis := &Observation{Header: Header{Kind: KindObservation, ID: "o9"}, Session: "s2", Time: "2026-01-12T11:05:00-05:00", Phase: "discharge", Vitals: &Vitals{Systolic: f64(150), Diastolic: f64(92)}, Dissociation: intp(0)}
		b.Add(dis)
		if got := codes(Check(b, dis, CheckConfig{})); !slices.Equal(got, []string{"vitals.discharge_unresolved"}) {
			t.Errorf("discharge 150/92: %v", got)
		}
		dis.Vitals.Systolic, dis.Vitals.Diastolic = f64(128), f64(82)
		if got := Check(b, dis, CheckConfig{}); len(got) != 0 {
			t.Errorf("discharge 128/82: %v", got)
		}
	})
	t.Run("issue 12: SpO2 85, heart rate 140, respiratory rate 6, dissociation 10/10", func(t *testing.T) {
		f := newCheckFixture()
		f.during.Vitals.SpO2, f.during.Vitals.HeartRate, f.during.Vitals.RespiratoryRate, f.during.Dissociation = f64(85), f64(140), f64(6), intp(10)
		want := []string{"vitals.spo2", "vitals.heart_rate", "vitals.respiratory_rate", "vitals.dissociation"}
		if got := codes(Check(f.book(), f.during, CheckConfig{})); !slices.Equal(got, want) {
			t.Errorf("%v, want %v", got, want)
		}
	})
	t.Run("issue 12: maintenance every 52 weeks; Spravato 28 mg is labelled", func(t *testing.T) {
		f := newCheckFixture()
		f.course.Maintenance = 52
		if got := codes(Check(f.book(), f.course, CheckConfig{})); !slices.Equal(got, []string{"schedule.maintenance_weeks"}) {
			t.Errorf("52 weeks: %v", got)
		}
		f.course.Route = "spravato"
		f.dosing.Dose = &Dose{Drug: "esketamine", Mg: 28, Route: "spravato", MonitoredMin: 120, AdministeredBy: "rn"}
		if got := Check(f.book(), f.dosing, CheckConfig{}); len(got) != 0 {
			t.Errorf("Spravato 28 mg: %v", got)
		}
	})
	t.Run("issue 12: a later cleared decision restores clearance; deferred revokes", func(t *testing.T) {
		f := newCheckFixture()
		b := f.book()
		b.Add(&Screening{Header: Header{Kind: KindScreening, ID: "sc2"}, Client: "c1", Date: "2026-01-09", PerformedBy: "rx", Clearance: &Clearance{Decision: "deferred"}})
		if got := codes(Check(b, f.dosing, CheckConfig{})); !slices.Equal(got, []string{"dosing.not_cleared"}) {
			t.Errorf("deferred: %v", got)
		}
		no := boolp(false)
		b.Add(&Screening{Header: Header{Kind: KindScreening, ID: "sc3"}, Client: "c1", Date: "2026-01-11", PerformedBy: "rx",
			Clearance: &Clearance{Cardiovascular: no, PsychoticDisorder: no, BipolarI: no, SubstanceMisuse: no, Pregnancy: no, ContraindicatedMeds: no, Decision: "cleared"}})
		if got := Check(b, f.dosing, CheckConfig{}); len(got) != 0 {
			t.Errorf("cleared again: %v", got)
		}
	})
	t.Run("clearance after the dose does not count", func(t *testing.T) {
		f := newCheckFixture()
		f.screening.Date = "2026-01-12T12:00:00-05:00"
		if got := codes(Check(f.book(), f.dosing, CheckConfig{})); !slices.Equal(got, []string{"dosing.no_clearance"}) {
			t.Errorf("%v", got)
		}
		f.screening.Date = "2026-01-12" // a date-only screening counts for its whole day
		if got := Check(f.book(), f.dosing, CheckConfig{}); len(got) != 0 {
			t.Errorf("%v", got)
		}
	})
	t.Run("no clearance needed for a planned dosing without a dose", func(t *testing.T) {
		f := newCheckFixture()
		f.dosing.Status, f.dosing.Dose, f.dosing.ActualStart, f.dosing.ActualEnd = "planned", nil, "", ""
		if got := Check(f.book(f.screening), f.dosing, CheckConfig{}); len(got) != 0 {
			t.Errorf("%v", got)
		}
	})
	t.Run("maintenance dose needs clearance too", func(t *testing.T) {
		f := newCheckFixture()
		f.dosing.Type = "maintenance"
		if got := codes(Check(f.book(f.screening), f.dosing, CheckConfig{})); !slices.Equal(got, []string{"dosing.no_clearance"}) {
			t.Errorf("%v", got)
		}
	})
	t.Run("spravato 56 and 84 mg are quiet; ketamine by spravato route is an error", func(t *testing.T) {
		f := newCheckFixture()
		f.course.Route = "spravato"
		for _, mg := range []float64{56, 84} {
			f.dosing.Dose = &Dose{Drug: "esketamine", Mg: mg, Route: "spravato", MonitoredMin: 120}
			if got := Check(f.book(), f.dosing, CheckConfig{}); len(got) != 0 {
				t.Errorf("%g mg: %v", mg, got)
			}
		}
		f.dosing.Dose = &Dose{Drug: "ketamine", Mg: 56, Route: "spravato", MonitoredMin: 120}
		if got := codes(Check(f.book(), f.dosing, CheckConfig{})); !slices.Equal(got, []string{"dose.drug_route"}) {
			t.Errorf("%v", got)
		}
	})
	t.Run("short session from actual times, per route and configurable", func(t *testing.T) {
		f := newCheckFixture()
		f.dosing.Dose.MonitoredMin = 0 // 70 minutes by the clock
		f.dosing.Dose.Route = "lozenge"
		f.dosing.Dose.MgPerKg = nil
		got := Check(f.book(), f.dosing, CheckConfig{})
		if len(got) != 1 || got[0].Code != "session.short" || !strings.Contains(got[0].Message, "70 monitored minutes, fewer than the 90") {
			t.Errorf("%v", got)
		}
		if got := Check(f.book(), f.dosing, CheckConfig{MonitoringMinutes: map[string]int{"lozenge": 60}}); len(got) != 0 {
			t.Errorf("with a 60 minute lozenge minimum: %v", got)
		}
	})
	t.Run("mg per kg uses the latest weight before the dose", func(t *testing.T) {
		f := newCheckFixture()
		later := &Observation{Header: Header{Kind: KindObservation, ID: "o3"}, Session: "s2", Time: "2026-01-12T10:00:00-05:00", Vitals: &Vitals{WeightKg: f64(100)}}
		b := f.book()
		b.Add(later)
		got := Check(b, f.dosing, CheckConfig{})
		if len(got) != 1 || got[0].Code != "dose.mg_per_kg" || !strings.Contains(got[0].Message, "for 100 kg") {
			t.Errorf("%v", got)
		}
		if got := Check(b, f.dosing, CheckConfig{MgPerKgTolerance: 0.5}); len(got) != 0 {
			t.Errorf("tolerance 50%%: %v", got)
		}
	})
	t.Run("dosing count from sessions in the book", func(t *testing.T) {
		f := newCheckFixture()
		b := f.book()
		for i := range 9 {
			s := *f.dosing
			s.ID = "d" + string(rune('a'+i))
			b.Add(&s)
		}
		if got := codes(Check(b, f.course, CheckConfig{})); !slices.Equal(got, []string{"course.dosing_count"}) {
			t.Errorf("%v", got)
		}
		if got := Check(b, f.course, CheckConfig{MaxDosing: 12}); len(got) != 0 {
			t.Errorf("%v", got)
		}
	})
	t.Run("pending references skip the rules that need them", func(t *testing.T) {
		f := newCheckFixture()
		f.screening.Clearance.Decision = "deferred" // would be no_clearance, but the course is unknown
		got := Check(f.book(f.course), f.dosing, CheckConfig{})
		if c := codes(got); !slices.Equal(c, []string{"ref.pending"}) || got[0].Field != "course" {
			t.Errorf("%v", got)
		}
		if got := codes(Check(NewBook(), f.consent, CheckConfig{})); !slices.Equal(got, []string{"ref.pending", "ref.pending"}) {
			t.Errorf("consent in an empty book: %v", got)
		}
		if got := Check(nil, f.client, CheckConfig{}); len(got) != 0 {
			t.Errorf("nil book: %v", got)
		}
	})
	t.Run("records by value check like pointers", func(t *testing.T) {
		f := newCheckFixture()
		f.during.RedFlags = []string{"confusion", "dependence"}
		if got := codes(Check(f.book(), *f.during, CheckConfig{})); !slices.Equal(got, []string{"safety.red_flag", "safety.red_flag"}) {
			t.Errorf("%v", got)
		}
	})
	t.Run("cssrs low is quiet, moderate warns", func(t *testing.T) {
		f := newCheckFixture()
		f.screening.Instruments[1].Items = []int{1, 1, 0, 0, 0, 0, 0}
		if got := Check(f.book(), f.screening, CheckConfig{}); len(got) != 0 {
			t.Errorf("low: %v", got)
		}
		f.screening.Instruments[1].Items = []int{1, 1, 1, 0, 0, 0, 0}
		if got := codes(Check(f.book(), f.screening, CheckConfig{})); !slices.Equal(got, []string{"safety.cssrs"}) {
			t.Errorf("moderate: %v", got)
		}
	})
	t.Run("findings come in table order", func(t *testing.T) {
		f := newCheckFixture()
		f.during.RedFlags = []string{"mania"}
		f.during.Vitals.Systolic = f64(300)
		got := codes(Check(f.book(), f.during, CheckConfig{}))
		if !slices.Equal(got, []string{"vitals.range.systolic", "safety.red_flag"}) {
			t.Errorf("%v", got)
		}
	})
}

// TestCheckTableDocumented holds CHECKS.md, CheckCodes and checkCases to
// each other: same codes, same order, same severities.
func TestCheckTableDocumented(t *testing.T) {
	raw, err := os.ReadFile("CHECKS.md")
	if err != nil {
		t.Fatal(err)
	}
	_, limitsDoc, ok := strings.Cut(string(raw), "\n## Thresholds\n")
	if !ok {
		t.Fatal(`CHECKS.md has no "## Thresholds" section`)
	}
	doc, _, _ := strings.Cut(string(raw), "\n## ") // the table of checks
	if !strings.Contains(string(raw), "| `"+CodePendingOverdue+"` | alert |") {
		t.Errorf("CHECKS.md does not document %s", CodePendingOverdue)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9_.]+)` \\| (error|alert|warning)(?: \\(Flag (P[LMH])\\))? \\|")
	var docCodes []string
	docSeverity := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		docCodes = append(docCodes, m[1])
		docSeverity[m[1]] = m[2]
		// The Flag mark is FindingFlag's: an alert without a mark is PH,
		// a warning without one makes no Flag.
		want, flagged := FindingFlag(Problem{Code: m[1], Severity: m[2]})
		switch {
		case m[3] != "" && m[3] != want:
			t.Errorf("%s: CHECKS.md says Flag %s, FindingFlag %q", m[1], m[3], want)
		case m[3] == "" && m[2] == "alert" && want != "PH":
			t.Errorf("%s: an unmarked alert is PH, FindingFlag says %q", m[1], want)
		case m[3] == "" && m[2] == "warning" && flagged && !strings.HasPrefix(m[1], "safety."):
			t.Errorf("%s: FindingFlag makes a Flag (%s) that CHECKS.md does not mark", m[1], want)
		}
	}
	if n := strings.Count(doc, "\n| `"); n != len(docCodes) {
		t.Errorf("CHECKS.md has %d table rows but %d parse as | `code` | severity |", n, len(docCodes))
	}
	var testCodes []string
	for _, tc := range checkCases {
		testCodes = append(testCodes, tc.code)
		if docSeverity[tc.code] != tc.severity {
			t.Errorf("%s: CHECKS.md says %q, the test %q", tc.code, docSeverity[tc.code], tc.severity)
		}
	}
	if !slices.Equal(docCodes, CheckCodes) {
		t.Errorf("CHECKS.md codes %v\ndiffer from CheckCodes %v", docCodes, CheckCodes)
	}
	if !slices.Equal(testCodes, CheckCodes) {
		t.Errorf("test cases %v\ndiffer from CheckCodes %v", testCodes, CheckCodes)
	}
	// The thresholds table is LimitTable, with every default's source.
	limitRow := regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\| ([0-9.]+) \\| [^|]+ \\| ([^|]+) \\|$")
	var names []string
	for _, m := range limitRow.FindAllStringSubmatch(limitsDoc, -1) {
		names = append(names, m[1])
		for _, l := range LimitTable {
			if l.Name == m[1] && (strconv.FormatFloat(l.Default, 'g', -1, 64) != m[2] || strings.TrimSpace(m[3]) != l.Source) {
				t.Errorf("threshold %s: CHECKS.md says %s (%s), LimitTable %g (%s)", m[1], m[2], m[3], l.Default, l.Source)
			}
		}
	}
	if !slices.Equal(names, LimitNames()) {
		t.Errorf("CHECKS.md thresholds %v\ndiffer from LimitTable %v", names, LimitNames())
	}
}

// The example courses, all in one book, have no error findings; their
// warnings are the ones the README describes.
func TestCheckExamples(t *testing.T) {
	b := NewBook()
	var all []Record
	for _, path := range recordFiles(t) {
		if !strings.HasSuffix(path, ".ndjson") {
			continue
		}
		for _, r := range loadRecords(t, path) {
			b.Add(r)
			all = append(all, r)
		}
	}
	warnings := map[string]int{}
	for _, r := range all {
		for _, f := range Check(b, r, CheckConfig{}) {
			if !slices.Contains(CheckCodes, f.Code) {
				t.Errorf("code %s is not in CheckCodes", f.Code)
			}
			if f.Severity == SeverityError {
				t.Errorf("%s %s: %s", r.RecordHeader().Kind, r.RecordHeader().ID, f)
				continue
			}
			warnings[f.Code]++
		}
	}
	var got []string
	for c := range warnings {
		got = append(got, c)
	}
	sort.Strings(got)
	// safety.phq9_item9: the IM baseline; safety.red_flag: the lozenge
	// course's confusion at dosing 4. The transient rises above 140/90
	// during IM, IV and Spravato sessions stay below the rise from their
	// sessions' baselines that the rules count (issue 12).
	if want := []string{"safety.phq9_item9", "safety.red_flag"}; !slices.Equal(got, want) {
		t.Errorf("warning codes %v (%v), want %v", got, warnings, want)
	}
}

func TestBook(t *testing.T) {
	f := newCheckFixture()
	b := f.book()
	var _ Lookup = b
	if b.Len() != len(f.records()) {
		t.Errorf("Len %d", b.Len())
	}
	if s := b.SessionsOf("k1"); len(s) != 3 || s[0].ID != "s1" || s[1].ID != "s1p" || s[2].ID != "s2" {
		t.Errorf("SessionsOf %v", s)
	}
	// An update replaces the record and moves it in the indexes.
	moved := *f.dosing
	moved.Course = "k2"
	b.Add(moved) // by value
	if s := b.SessionsOf("k1"); len(s) != 2 {
		t.Errorf("after moving s2: SessionsOf(k1) = %v", s)
	}
	if s := b.SessionsOf("k2"); len(s) != 1 || s[0].Course != "k2" {
		t.Errorf("SessionsOf(k2) = %v", s)
	}
	if got, ok := b.Session("s2"); !ok || got.Course != "k2" {
		t.Errorf("Session(s2) = %v", got)
	}
	if _, ok := b.Client("rx"); ok {
		t.Error("a practitioner id found as a client")
	}
	if r, ok := b.Get(KindPractitioner, "rx"); !ok || r.(*Practitioner).Role != "prescriber" {
		t.Errorf("Get = %v", r)
	}
	if n := len(b.All(KindPractitioner)); n != 3 {
		t.Errorf("All(practitioner) = %d", n)
	}
	if o := b.ObservationsOf("s2"); len(o) != 1 || o[0].ID != "o2" {
		t.Errorf("ObservationsOf %v", o)
	}
	if n := b.NotesOf("s2"); len(n) != 1 {
		t.Errorf("NotesOf %v", n)
	}
	if s := b.ScreeningsOf("c1"); len(s) != 1 {
		t.Errorf("ScreeningsOf %v", s)
	}
	if c := b.CoursesOf("c1"); len(c) != 1 {
		t.Errorf("CoursesOf %v", c)
	}
	if c := b.ConsentsOf("c1"); len(c) != 1 {
		t.Errorf("ConsentsOf %v", c)
	}
	b.Add(nil)
	b.Add((*Client)(nil))
	if b.Len() != len(f.records()) {
		t.Errorf("nil records were added")
	}
}
