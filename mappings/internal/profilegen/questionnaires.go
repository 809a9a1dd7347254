package main

import (
	"github.com/kapbridge/kapbridge/fhir"
)

// The screening Questionnaires. Every item's linkId is its code (a LOINC
// code where kap-domain.md section 2 verifies one, else a kap-instrument
// or kap-clearance-item code), so a QuestionnaireResponse can be written
// and read with the code tables alone. Totals are read-only integer items
// with the total-score LOINC code.

const (
	loinc         = "http://loinc.org"
	ordinalExt    = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
	questionnaire = canonicalBase + "/Questionnaire/"
)

type answer struct {
	system, code, display string
	score                 int // -1: not scored
}

type item struct {
	system, code, text string
	kind               string // choice, boolean, integer, string
	answers            []answer
	valueSet           string
	required, readOnly bool
	repeats            bool
	enableWhen         *fhir.Value
}

type instrument struct {
	id, name, title, description string
	panel                        string // LOINC panel code, "" for none
	panelSystem                  string
	items                        []item
}

var (
	phqAnswers = []answer{{loinc, "LA6568-5", "Not at all", 0}, {loinc, "LA6569-3", "Several days", 1},
		{loinc, "LA6570-1", "More than half the days", 2}, {loinc, "LA6571-9", "Nearly every day", 3}}
	yesNo = []answer{{loinc, "LA33-6", "Yes", -1}, {loinc, "LA32-8", "No", -1}}
	// The PHQ-9 difficulty answers (LOINC answer list LL359-1), as the
	// Medizininformatik-Initiative PRO IG's ValueSet and an SDC PHQ-9
	// Questionnaire both list them (status V2; note LA6575-0 is "Very" and
	// LA6574-3 "Extremely", not in code order).
	phqDifficulty = []answer{{loinc, "LA6572-7", "Not difficult at all", 0}, {loinc, "LA6573-5", "Somewhat difficult", 1},
		{loinc, "LA6575-0", "Very difficult", 2}, {loinc, "LA6574-3", "Extremely difficult", 3}}
)

func scored(codes []string, texts []string, answers []answer) []item {
	out := make([]item, len(codes))
	for i := range codes {
		out[i] = item{system: loinc, code: codes[i], text: texts[i], kind: "choice", answers: answers, required: true}
	}
	return out
}

func total(code string) item {
	return item{system: loinc, code: code, text: "Total score", kind: "integer", readOnly: true}
}

func instruments() []instrument {
	phq := scored([]string{"44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"},
		[]string{"Little interest or pleasure in doing things", "Feeling down, depressed, or hopeless",
			"Trouble falling or staying asleep, or sleeping too much", "Feeling tired or having little energy",
			"Poor appetite or overeating", "Feeling bad about yourself, or that you are a failure, or have let yourself or your family down",
			"Trouble concentrating on things, such as reading the newspaper or watching television",
			"Moving or speaking so slowly that other people could have noticed, or the opposite: being so fidgety or restless that you have been moving around a lot more than usual",
			"Thoughts that you would be better off dead, or of hurting yourself in some way"}, phqAnswers)
	phq = append(phq, item{system: loinc, code: "69722-7", kind: "choice", answers: phqDifficulty,
		text: "How difficult have these problems made it for you to do your work, take care of things at home, or get along with other people?"},
		total("44261-6"))

	gad := scored([]string{"69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"},
		[]string{"Feeling nervous, anxious, or on edge", "Not being able to stop or control worrying",
			"Worrying too much about different things", "Trouble relaxing", "Being so restless that it is hard to sit still",
			"Becoming easily annoyed or irritable", "Feeling afraid, as if something awful might happen"}, phqAnswers)
	gad = append(gad, total("70274-6"))

	var pclScale []answer
	for i, label := range pcl5Scale {
		pclScale = append(pclScale, answer{csInstrument, "pcl5-a" + itoa(i), label, i})
	}
	var pcl []item
	for i, text := range pcl5Items {
		pcl = append(pcl, item{system: csInstrument, code: "pcl5-" + itoa(i+1), text: text, kind: "choice", answers: pclScale, required: true})
	}
	pcl = append(pcl, total("101698-9"))

	cssrs := scored([]string{"93246-7", "93247-5", "93248-3", "93249-1", "93250-9", "93267-3", "93269-9"},
		[]string{"In the past month, have you wished you were dead or wished you could go to sleep and not wake up?",
			"In the past month, have you had any actual thoughts of killing yourself?",
			"In the past month, have you been thinking about how you might do this?",
			"In the past month, have you had these thoughts and had some intention of acting on them?",
			"In the past month, have you started to work out or worked out the details of how to kill yourself, and do you intend to carry out this plan?",
			"Have you ever done anything, started to do anything, or prepared to do anything to end your life?",
			"Was this within the past 3 months?"}, yesNo)
	// The screener's skip logic: Q3-Q5 are asked only after a yes to Q2,
	// Q6b only after a yes to Q6.
	for q := 2; q <= 4; q++ {
		cssrs[q].required = false
		cssrs[q].enableWhen = arr(obj("question", "93247-5", "operator", "=", "answerCoding", coding(loinc, "LA33-6", "Yes")))
	}
	cssrs[6].required = false
	cssrs[6].enableWhen = arr(obj("question", "93267-3", "operator", "=", "answerCoding", coding(loinc, "LA33-6", "Yes")))

	var audit []item
	for i, it := range auditcItems {
		n := itoa(i + 1)
		var as []answer
		for j, a := range it.answers {
			as = append(as, answer{csInstrument, "auditc-" + n + "-a" + itoa(j), a, j})
		}
		audit = append(audit, item{system: csInstrument, code: "auditc-" + n, text: it.text, kind: "choice", answers: as, required: true})
	}
	audit = append(audit, total("75626-2"))

	var dast []item
	for i, text := range dast10Items {
		dast = append(dast, item{system: csInstrument, code: "dast10-" + itoa(i+1), text: text, kind: "choice", answers: yesNo, required: true})
	}
	dast = append(dast, total("82667-7"))

	clearance := []item{}
	for _, c := range codeSystemOf(csClearanceItem).concepts {
		clearance = append(clearance, item{system: csClearanceItem, code: c.code, kind: "boolean", required: true,
			text: c.display + ": is this finding present? " + c.definition})
	}
	clearance = append(clearance,
		item{code: "medications", kind: "string", repeats: true, text: "Current medications (contraindicated-medications says whether any is contraindicated)"},
		item{system: csObservation, code: "clearance-decision", kind: "choice", required: true,
			text: "Clearance decision", valueSet: valueSetURL(csClearanceOutcome)},
		item{code: "override-reason", kind: "string",
			text:       "The prescriber's reason for clearing despite a contraindication answered yes",
			enableWhen: arr(obj("question", "clearance-decision", "operator", "=", "answerCoding", coding(csClearanceOutcome, "cleared", "Cleared")))},
		item{code: "pregnancy-test-positive", kind: "boolean", text: "Pregnancy test, where one was done: is it positive?"},
		item{code: "pregnancy-test-date", kind: "dateTime", text: "Pregnancy test date",
			enableWhen: arr(obj("question", "pregnancy-test-positive", "operator", "exists", "answerBoolean", true))})

	return []instrument{
		{"kap-medical-clearance", "KAPMedicalClearance", "KAP medical clearance", "Medical clearance before a KAP course: the contraindications screened (each present or absent) and the prescriber's decision.", "", "", clearance},
		{"phq-9", "PHQ9", "Patient Health Questionnaire-9 (PHQ-9)", "Depression severity over the last 2 weeks; total 0-27; item 9 above 0 is a safety flag.", "44249-1", loinc, phq},
		{"gad-7", "GAD7", "Generalized Anxiety Disorder-7 (GAD-7)", "Anxiety severity over the last 2 weeks; total 0-21.", "69737-5", loinc, gad},
		{"pcl-5", "PCL5", "PTSD Checklist for DSM-5 (PCL-5)", "PTSD symptoms in the past month: 20 items 0-4, total 0-80; probable PTSD from 31-33.", "101697-1", loinc, pcl},
		{"cssrs-screener", "CSSRSScreener", "Columbia Suicide Severity Rating Scale screener (recent)", "C-SSRS screener questions with yes/no answers; triaged to low, moderate or high risk.", "93373-9", loinc, cssrs},
		{"audit-c", "AUDITC", "AUDIT-C", "Alcohol use: 3 items 0-4, total 0-12; positive from 4 for men, 3 for women.", "72109-2", loinc, audit},
		{"dast-10", "DAST10", "Drug Abuse Screening Test (DAST-10)", "Drug use in the past 12 months: 10 yes/no items, total 0-10; positive from 3.", "82666-9", loinc, dast},
	}
}

func (in instrument) resource() *fhir.Value {
	kv := header("Questionnaire", questionnaire+in.id, in.name, in.title, "active", in.description)
	var code *fhir.Value
	if in.panel != "" {
		code = arr(coding(in.panelSystem, in.panel, ""))
	}
	var items []*fhir.Value
	for _, it := range in.items {
		items = append(items, it.resource())
	}
	kv = append(kv, "subjectType", []string{"Patient"}, "code", code, "item", items)
	return obj(kv...)
}

func (it item) resource() *fhir.Value {
	var code *fhir.Value
	if it.system != "" {
		code = arr(coding(it.system, it.code, ""))
	}
	var options []*fhir.Value
	for _, a := range it.answers {
		var ext *fhir.Value
		if a.score >= 0 {
			ext = arr(obj("url", ordinalExt, "valueDecimal", a.score))
		}
		options = append(options, obj("extension", ext, "valueCoding", coding(a.system, a.code, a.display)))
	}
	opt := func(b bool) any {
		if b {
			return true
		}
		return nil
	}
	return obj("linkId", it.code, "code", code, "text", it.text, "type", it.kind,
		"enableWhen", it.enableWhen, "required", opt(it.required), "repeats", opt(it.repeats),
		"readOnly", opt(it.readOnly), "answerValueSet", it.valueSet, "answerOption", options)
}
