package mappings

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings/ig"
)

// enableWhen is one condition of a published Questionnaire item.
type enableWhen struct {
	Question      string
	Operator      string
	AnswerBoolean *bool
	AnswerCoding  *struct{ System, Code string }
}

// disabledItems lists the linkIds of the Questionnaire's items whose
// enableWhen the response's answers do not meet (operators "=" and
// "exists", the ones the project's Questionnaires use).
func disabledItems(t *testing.T, questionnaire string, answers map[string][]*fhir.Value) map[string]bool {
	t.Helper()
	a, ok := ig.Lookup(questionnaire)
	if !ok {
		t.Fatalf("no Questionnaire %s", questionnaire)
	}
	var q struct {
		Item []struct {
			LinkID     string `json:"linkId"`
			EnableWhen []enableWhen
		}
	}
	if err := json.Unmarshal(a.JSON, &q); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, it := range q.Item {
		for _, ew := range it.EnableWhen {
			got := answers[ew.Question]
			met := false
			switch ew.Operator {
			case "exists":
				met = (len(got) > 0) == (ew.AnswerBoolean != nil && *ew.AnswerBoolean)
			case "=":
				for _, v := range got {
					if ew.AnswerCoding != nil && v.Get("valueCoding") != nil && v.Get("valueCoding").GetString("code") == ew.AnswerCoding.Code {
						met = true
					}
					if ew.AnswerBoolean != nil && v.Get("valueBoolean") != nil && string(v.Get("valueBoolean").Encode()) == map[bool]string{true: "true", false: "false"}[*ew.AnswerBoolean] {
						met = true
					}
				}
			default:
				t.Fatalf("%s: enableWhen operator %s not handled by this test", questionnaire, ew.Operator)
			}
			if !met {
				out[it.LinkID] = true
			}
		}
	}
	return out
}

// TestResponsesAnswerNoDisabledItem: issue 12 item 6. Every
// QuestionnaireResponse the mappings make, for the example courses and
// for C-SSRS answers that skip, answers no item its Questionnaire's
// enableWhen disables.
func TestResponsesAnswerNoDisabledItem(t *testing.T) {
	var qrs []*fhir.Value
	for _, name := range fullCourses {
		for _, v := range mapAll(t, testMapper(), loadCourse(t, name)) {
			if v.GetString("resourceType") == "QuestionnaireResponse" {
				qrs = append(qrs, v)
			}
		}
	}
	b := caseBook(false)
	sc := &Screening{Header: Header{ID: "sc"}, Client: "c1", Date: "2026-01-05", PerformedBy: "p1", Instruments: []InstrumentResult{
		{Instrument: "cssrs", Items: []int{1, 0, 0, 0, 0, 1, 0}},
		{Instrument: "phq9", Items: []int{1, 1, 1, 1, 1, 1, 1, 1, 0}, Difficulty: intp(2)},
	}}
	res, _, err := testMapper().ToFHIR(b, sc)
	if err != nil {
		t.Fatal(err)
	}
	cssrsItems := 0
	for _, v := range res {
		if v.GetString("resourceType") == "QuestionnaireResponse" {
			qrs = append(qrs, v)
			if strings.HasSuffix(v.GetString("questionnaire"), "cssrs-screener") {
				cssrsItems = len(v.Get("item").Array)
			}
		}
	}
	// Q1, Q2, Q6 and Q6b (Q6 is yes) answered; Q3-Q5 skipped (Q2 no).
	if cssrsItems != 4 {
		t.Errorf("C-SSRS response with Q2 no answers %d items, want 4 (Q1, Q2, Q6, Q6b)", cssrsItems)
	}
	for _, qr := range qrs {
		answers := map[string][]*fhir.Value{}
		for _, it := range qr.Get("item").Array {
			answers[it.GetString("linkId")] = it.Get("answer").Array
		}
		disabled := disabledItems(t, qr.GetString("questionnaire"), answers)
		for id := range answers {
			if disabled[id] {
				t.Errorf("%s answers %s, which its enableWhen disables", qr.GetString("questionnaire"), id)
			}
		}
	}
}

// TestInstrumentCodes: issue 12 item 6. The PHQ-9 difficulty is answered
// with its LOINC answer code, the C-SSRS triage carries LOINC 93374-7
// (suicide risk level), the scorer enforces the screener's skip logic,
// and a screening's medications are its current ones, not
// "contraindicated medications" unless the record says so.
func TestInstrumentCodes(t *testing.T) {
	if _, err := Score(InstrumentResult{Instrument: "cssrs", Items: []int{1, 0, 1, 0, 0, 0, 0}}); err == nil || !strings.Contains(err.Error(), "item 3 is yes but item 2") {
		t.Errorf("C-SSRS Q3 yes with Q2 no: %v", err)
	}
	b := caseBook(false)
	sc := &Screening{Header: Header{ID: "sc"}, Client: "c1", Date: "2026-01-05", PerformedBy: "p1",
		Clearance: &Clearance{ContraindicatedMeds: ptr(false), Medications: []string{"sertraline 100 mg"}, Decision: "cleared"},
		Instruments: []InstrumentResult{
			{Instrument: "phq9", Items: []int{1, 1, 1, 1, 1, 1, 1, 1, 0}, Difficulty: intp(3)},
			{Instrument: "cssrs", Items: []int{1, 1, 1, 0, 0, 0, 0}},
		}}
	res, _, err := testMapper().ToFHIR(b, sc)
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, v := range res {
		all += string(v.Encode())
	}
	for _, want := range []string{`"code":"LA6574-3","display":"Extremely difficult"`, `"code":"93374-7"`, `"text":"current medications"`} {
		if !strings.Contains(all, want) {
			t.Errorf("no %s in the screening's resources", want)
		}
	}
	if strings.Contains(all, "contraindicated medications taken") {
		t.Error(`"sertraline 100 mg" with contraindicated_medications false is shown as contraindicated`)
	}
}

// TestAdministrationShape: issue 12 item 7. The MedicationAdministration's
// effective[x] is when the dose was given (an infusion's period), not the
// session; an IV infusion carries its rate; it names the course's
// prescription (a MedicationRequest); Spravato carries its branded code.
func TestAdministrationShape(t *testing.T) {
	b := caseBook(false)
	m := testMapper()
	get := func(s *Session) *fhir.Value {
		t.Helper()
		res, warns, err := m.ToFHIR(b, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range res {
			if v.GetString("resourceType") == "MedicationAdministration" {
				if s.Dose.GivenAt == "" && !strings.Contains(fmtProblems(warns), "session.dose.given_at") {
					t.Errorf("no warning that the session's start stands in: %v", warns)
				}
				return v
			}
		}
		t.Fatal("no MedicationAdministration")
		return nil
	}
	s := &Session{Header: Header{ID: "s"}, Course: "k1", Type: "dosing", Status: "held", PlannedStart: "2026-01-06T10:00:00Z", ActualStart: "2026-01-06T10:00:00Z", ActualEnd: "2026-01-06T11:30:00Z",
		Dose: &Dose{Drug: "ketamine", Mg: 40, Route: "iv", GivenAt: "2026-01-06T10:05:00Z", InfusionMinutes: 40}}
	ma := get(s)
	if p := ma.Get("effectivePeriod"); p == nil || p.GetString("start") != "2026-01-06T10:05:00Z" || p.GetString("end") != "2026-01-06T10:45:00Z" {
		t.Errorf("infusion effective %s", ma.Encode())
	}
	if r := ma.Get("dosage").Get("rateQuantity"); r == nil || string(r.Get("value").Encode()) != "1" || r.GetString("code") != "mg/min" {
		t.Errorf("rate %s", ma.Get("dosage").Encode())
	}
	if !strings.HasPrefix(ma.Get("request").GetString("reference"), "MedicationRequest/") {
		t.Errorf("no request: %s", ma.Encode())
	}
	s.Dose = &Dose{Drug: "esketamine", Mg: 56, Route: "spravato", GivenAt: "2026-01-06T10:02:00Z"}
	ma = get(s)
	if ma.GetString("effectiveDateTime") != "2026-01-06T10:02:00Z" || !strings.Contains(string(ma.Encode()), `"code":"2201625"`) {
		t.Errorf("spravato %s", ma.Encode())
	}
	s.Dose.GivenAt = ""
	if ma = get(s); ma.GetString("effectiveDateTime") != "2026-01-06T10:00:00Z" {
		t.Errorf("without given_at: %s", ma.Encode())
	}
}

func fmtProblems(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.Field + " ")
	}
	return b.String()
}

// TestConcomitantCarried: a session's concomitant medication classes
// reach the EHR on its dose; without a dose they are reported as not
// carried, never dropped silently.
func TestConcomitantCarried(t *testing.T) {
	b := caseBook(false)
	s := &Session{Header: Header{ID: "s"}, Course: "k1", Type: "dosing", Status: "held", PlannedStart: "2026-01-06T10:00:00Z", ActualStart: "2026-01-06T10:00:00Z",
		Dose: &Dose{Drug: "esketamine", Mg: 56, Route: "spravato", GivenAt: "2026-01-06T10:02:00Z"}, Concomitant: []string{"benzodiazepine", "maoi"}}
	res, _, err := testMapper().ToFHIR(b, s)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range res {
		if v.GetString("resourceType") == "MedicationAdministration" && strings.Contains(string(v.Encode()), "benzodiazepine, maoi") {
			found = true
		}
	}
	if !found {
		t.Error("the concomitant classes are not on the MedicationAdministration")
	}
	s.Dose = nil
	_, warns, err := testMapper().ToFHIR(b, s)
	if err != nil || !strings.Contains(fmtProblems(warns), "session.concomitant") {
		t.Errorf("without a dose: %v %v", warns, err)
	}
}

// TestResponseAndRemission: issue 12 item 6. A follow-up PHQ-9 is judged
// against the client's first: response is a drop of at least 50 %,
// remission a total below 5; the first screening has neither; a lookup
// that cannot find screenings says so.
func TestResponseAndRemission(t *testing.T) {
	b := caseBook(false)
	base := &Screening{Header: Header{Kind: KindScreening, ID: "sc0"}, Client: "c1", Date: "2026-01-02", PerformedBy: "p1",
		Instruments: []InstrumentResult{{Instrument: "phq9", Items: []int{2, 2, 2, 2, 2, 2, 2, 2, 0}}}} // 16
	b.add(base)
	values := func(s *Screening) map[string]string {
		t.Helper()
		res, _, err := testMapper().ToFHIR(b, s)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, v := range res {
			if c := localCode(v.Get("code"), CSObservation); c == "treatment-response" || c == "remission" {
				out[c] = string(v.Get("valueBoolean").Encode())
			}
		}
		return out
	}
	if got := values(base); len(got) != 0 {
		t.Errorf("the baseline judged against itself: %v", got)
	}
	follow := func(items []int) *Screening {
		return &Screening{Header: Header{Kind: KindScreening, ID: "sc1"}, Client: "c1", Date: "2026-02-20", PerformedBy: "p1",
			Instruments: []InstrumentResult{{Instrument: "phq9", Items: items}}}
	}
	for _, tc := range []struct {
		items               []int
		response, remission string
	}{
		{[]int{1, 1, 1, 1, 1, 1, 1, 1, 0}, "true", "false"},  // 8: -50 %
		{[]int{1, 1, 1, 1, 1, 1, 1, 1, 1}, "false", "false"}, // 9: -44 %
		{[]int{1, 1, 1, 1, 0, 0, 0, 0, 0}, "true", "true"},   // 4
	} {
		got := values(follow(tc.items))
		if got["treatment-response"] != tc.response || got["remission"] != tc.remission {
			t.Errorf("%v: %v, want response %s remission %s", tc.items, got, tc.response, tc.remission)
		}
	}
	_, warns, err := testMapper().ToFHIR(lookupOnly{b}, follow([]int{1, 1, 1, 1, 1, 1, 1, 1, 0}))
	if err != nil || !strings.Contains(fmtProblems(warns), "screening.instruments") {
		t.Errorf("a plain Lookup: %v %v", warns, err)
	}
}

// lookupOnly hides a book's ScreeningsOf.
type lookupOnly struct{ b *memBook }

func (l lookupOnly) Client(id string) (*Client, bool)             { return l.b.Client(id) }
func (l lookupOnly) Practitioner(id string) (*Practitioner, bool) { return l.b.Practitioner(id) }
func (l lookupOnly) Course(id string) (*Course, bool)             { return l.b.Course(id) }
func (l lookupOnly) Session(id string) (*Session, bool)           { return l.b.Session(id) }
func (l lookupOnly) SessionsOf(c string) []*Session               { return l.b.SessionsOf(c) }
