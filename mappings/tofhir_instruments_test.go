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
