package main

import (
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// The project's own CodeSystems: kap-domain.md says KAP concepts without a
// standard code (session types, clearance outcome, red flags, ...) belong
// in local code systems with canonical URLs the gateway serves. The URLs
// are those of mappings/canonical.go (see urls.go).

const (
	version     = "0.1.0"
	publisher   = "kapbridge"
	releaseDate = "2026-11-26" // fixed so the artifacts regenerate byte for byte
)

type concept struct{ code, display, definition string }

type codeSystem struct {
	url, name, title, description string
	concepts                      []concept
}

// id is the last segment of the canonical URL: the logical id the server
// stores the artifact under.
func idOf(url string) string { return url[strings.LastIndexByte(url, '/')+1:] }

// header is the metadata every artifact carries. The tag lets a client
// find every artifact with one search (_tag) where the server stores them.
func header(rt, url, name, title, status, description string) []any {
	return []any{"resourceType", rt, "id", idOf(url), "meta", obj("tag", arr(coding(csTag, "conformance", "Conformance artifact"))), "url", url, "version", version, "name", name,
		"title", title, "status", status, "experimental", false, "date", releaseDate, "publisher", publisher,
		"description", description}
}

var pcl5Items = []string{
	"Repeated, disturbing, and unwanted memories of the stressful experience",
	"Repeated, disturbing dreams of the stressful experience",
	"Suddenly feeling or acting as if the stressful experience were actually happening again",
	"Feeling very upset when something reminded you of the stressful experience",
	"Having strong physical reactions when something reminded you of the stressful experience",
	"Avoiding memories, thoughts, or feelings related to the stressful experience",
	"Avoiding external reminders of the stressful experience",
	"Trouble remembering important parts of the stressful experience",
	"Having strong negative beliefs about yourself, other people, or the world",
	"Blaming yourself or someone else for the stressful experience or what happened after it",
	"Having strong negative feelings such as fear, horror, anger, guilt, or shame",
	"Loss of interest in activities that you used to enjoy",
	"Feeling distant or cut off from other people",
	"Trouble experiencing positive feelings",
	"Irritable behavior, angry outbursts, or acting aggressively",
	"Taking too many risks or doing things that could cause you harm",
	"Being superalert or watchful or on guard",
	"Feeling jumpy or easily startled",
	"Having difficulty concentrating",
	"Trouble falling or staying asleep",
}

var pcl5Scale = []string{"Not at all", "A little bit", "Moderately", "Quite a bit", "Extremely"}

// AUDIT-C items and their answers, scored 0-4 in order. LOINC has item
// codes for AUDIT-C, but kap-domain.md lists none as verified, so they are
// local codes here.
var auditcItems = []struct {
	text    string
	answers []string
}{
	{"How often do you have a drink containing alcohol?", []string{"Never", "Monthly or less", "2-4 times a month", "2-3 times a week", "4 or more times a week"}},
	{"How many standard drinks containing alcohol do you have on a typical day?", []string{"1 or 2", "3 or 4", "5 or 6", "7 to 9", "10 or more"}},
	{"How often do you have six or more drinks on one occasion?", []string{"Never", "Less than monthly", "Monthly", "Weekly", "Daily or almost daily"}},
}

// DAST-10 items (past 12 months), answered yes/no; item 3 is
// reverse-scored. Local codes: kap-domain.md lists no LOINC item codes.
var dast10Items = []string{
	"Have you used drugs other than those required for medical reasons?",
	"Do you use more than one drug at a time?",
	"Are you always able to stop using drugs when you want to?",
	"Have you had blackouts or flashbacks as a result of drug use?",
	"Do you ever feel bad or guilty about your drug use?",
	"Does your spouse (or parents) ever complain about your involvement with drugs?",
	"Have you neglected your family because of your use of drugs?",
	"Have you engaged in illegal activities in order to obtain drugs?",
	"Have you ever experienced withdrawal symptoms when you stopped taking drugs?",
	"Have you had medical problems as a result of your drug use?",
}

func instrumentConcepts() []concept {
	cs := []concept{
		{"pcl5", "PCL-5", "PTSD Checklist for DSM-5: 20 items scored 0-4, total 0-80 (LOINC panel 101697-1; its items have no LOINC codes)."},
		{"madrs", "MADRS", "Montgomery-Asberg Depression Rating Scale, clinician-rated, total 0-60."},
		{"qids-sr16", "QIDS-SR16", "Quick Inventory of Depressive Symptomatology, self-report, 16 items, total 0-27."},
		{"cadss", "CADSS", "Clinician-Administered Dissociative States Scale: dissociation during and after a ketamine dose."},
		{"ymrs", "YMRS", "Young Mania Rating Scale, clinician-rated: mania screening before and during a course."},
		{"mdq", "MDQ", "Mood Disorder Questionnaire: bipolar-spectrum screening before clearance."},
		{"bprs", "BPRS", "Brief Psychiatric Rating Scale: psychotic symptoms screening."},
	}
	for i, text := range pcl5Items {
		n := itoa(i + 1)
		cs = append(cs, concept{"pcl5-" + n, "PCL-5 item " + n, "PCL-5 item " + n + ": in the past month, how much were you bothered by: " + text + "."})
	}
	for i, label := range pcl5Scale {
		n := itoa(i)
		cs = append(cs, concept{"pcl5-a" + n, label, "PCL-5 answer scored " + n + " (" + label + ")."})
	}
	for i, it := range auditcItems {
		n := itoa(i + 1)
		cs = append(cs, concept{"auditc-" + n, "AUDIT-C item " + n, "AUDIT-C item " + n + ": " + it.text})
		for j, a := range it.answers {
			m := itoa(j)
			cs = append(cs, concept{"auditc-" + n + "-a" + m, a, "AUDIT-C item " + n + " answer scored " + m + " (" + a + ")."})
		}
	}
	for i, text := range dast10Items {
		n := itoa(i + 1)
		def := "DAST-10 item " + n + " (past 12 months): " + text
		if i == 2 {
			def += " Reverse-scored: no scores 1."
		}
		cs = append(cs, concept{"dast10-" + n, "DAST-10 item " + n, def})
	}
	return cs
}

func codeSystems() []codeSystem {
	return []codeSystem{
		{csSessionType, "KAPSessionType", "KAP session type", "The kinds of appointment in a ketamine-assisted psychotherapy course.", []concept{
			{"consultation", "Consultation", "Initial consultation and medical clearance, once, before any dose."},
			{"preparation", "Preparation", "Therapist session before dosing: intentions and treatment goals."},
			{"dosing", "Dosing", "Medicine session: ketamine or esketamine given under monitoring, with vitals and dissociation observed."},
			{"integration", "Integration", "Therapist session between or after dosing sessions to integrate the experience."},
			{"maintenance", "Maintenance", "Optional later dosing and integration, every 4-12 weeks after the course."},
		}},
		{csClearanceOutcome, "KAPClearanceOutcome", "KAP medical clearance outcome", "The prescriber's decision after the medical clearance screening.", []concept{
			{"cleared", "Cleared", "No contraindication found: dosing may start."},
			{"not-cleared", "Not cleared", "A contraindication rules out ketamine treatment."},
			{"deferred", "Deferred", "Decision postponed until more information (records, tests, consultation) is available."},
		}},
		{csClearanceItem, "KAPClearanceItem", "KAP medical clearance item", "The findings screened before a KAP course; each is present (a risk) or absent.", []concept{
			{"cardiovascular", "Cardiovascular issues", "Uncontrolled hypertension, aneurysm, recent myocardial infarction or other cardiovascular disease a blood pressure rise would endanger."},
			{"psychotic-disorder", "Psychotic disorder", "Current or past psychotic disorder, which ketamine may worsen."},
			{"bipolar-i", "Bipolar I disorder", "Bipolar I disorder: risk of ketamine-induced mania."},
			{"substance-misuse", "Substance misuse", "Current or past substance misuse, including ketamine: risk of dependence."},
			{"pregnancy", "Pregnancy", "Pregnancy or breastfeeding."},
			{"contraindicated-medications", "Contraindicated medications", "Medications that interact with ketamine (for example MAOIs, high-dose benzodiazepines, lamotrigine, stimulants)."},
		}},
		{csRedFlag, "KAPRedFlag", "KAP red flag", "Safety signals in a KAP course that need the prescriber's attention.", []concept{
			{"mania", "Mania", "Signs of mania or hypomania after a dose."},
			{"confusion", "Confusion", "Confusion or disorientation persisting beyond the expected recovery time."},
			{"dependence", "Dependence", "Signs of craving, misuse or dependence on ketamine."},
		}},
		{csSideEffect, "KAPSideEffect", "KAP side effect", "Expected, usually transient side effects observed in a dosing session.", []concept{
			{"nausea", "Nausea", "Nausea or vomiting during or after the dose."},
			{"dizziness", "Dizziness", "Dizziness or unsteadiness."},
			{"dissociation-confusion", "Dissociation or confusion", "Dissociation or confusion beyond what the session intends."},
			{"bp-elevation", "Blood pressure elevation", "Transient rise in blood pressure after the dose."},
			{"emotional-flooding", "Emotional flooding", "Overwhelming emotion that the therapist needed to help the client through."},
		}},
		{csInstrument, "KAPInstrument", "KAP instruments without LOINC codes", "Instruments, items and answers used in KAP for which no verified LOINC code exists.", instrumentConcepts()},
		{csCondition, "KAPCondition", "KAP condition", "Conditions KAP treats that have no standard code.", []concept{
			{"treatment-resistant-depression", "Treatment-resistant depression", "Major depressive disorder where two or more adequate antidepressant trials have failed; coded together with SNOMED 370143000."},
		}},
		{csObservation, "KAPObservation", "KAP observation", "Observation codes and interpretations used in KAP sessions and screenings.", []concept{
			{"dissociation-rating", "Dissociation rating", "Clinician rating of dissociation during a dosing session, 0 (none) to 10 (complete)."},
			{"sedation-moaas", "Sedation (MOAA/S)", "Modified Observer's Assessment of Alertness/Sedation in a dosing session: 5 responds readily to the name in a normal tone (alert), 4 lethargic response, 3 responds to the name called loudly or repeatedly, 2 to prodding or shaking, 1 to a painful stimulus, 0 no response."},
			{"cssrs-triage", "C-SSRS screener triage", "Suicide risk triage from the C-SSRS screener answers: none, low, moderate or high."},
			{"side-effect", "Side effect", "A side effect observed in a dosing session; the value is a kap-side-effect code."},
			{"red-flag", "Red flag", "A safety signal observed in a session; the value is a kap-red-flag code."},
			{"clearance-decision", "Medical clearance decision", "The clearance decision of a screening; the value is a kap-clearance-outcome code."},
			{"risk-none", "No risk", "C-SSRS triage: no screener question answered yes."},
			{"risk-low", "Low risk", "C-SSRS triage: only questions 1-2 answered yes."},
			{"risk-moderate", "Moderate risk", "C-SSRS triage: question 3 (method) answered yes."},
			{"risk-high", "High risk", "C-SSRS triage: question 4 or 5 (intent, plan), or behaviour within the past 3 months."},
			{"minimal", "Minimal", "Severity band: minimal symptoms (PHQ-9, GAD-7 0-4)."},
			{"mild", "Mild", "Severity band: mild (PHQ-9, GAD-7 5-9)."},
			{"moderate", "Moderate", "Severity band: moderate (PHQ-9, GAD-7 10-14)."},
			{"moderately-severe", "Moderately severe", "Severity band: moderately severe (PHQ-9 15-19)."},
			{"severe", "Severe", "Severity band: severe (PHQ-9 20-27, GAD-7 15-21)."},
			{"screen-positive", "Screen positive", "The screening total is at or above the instrument's cut-off (PCL-5, AUDIT-C, DAST-10)."},
			{"screen-negative", "Screen negative", "The screening total is below the instrument's cut-off."},
			{"treatment-response", "Treatment response", "A follow-up PHQ-9 or GAD-7 total at least 50 % below the client's baseline (first) total; the value is true or false."},
			{"remission", "Remission", "A follow-up PHQ-9 total below 5; the value is true or false."},
		}},
		{csCarePlanCategory, "KAPCarePlanCategory", "KAP care plan category", "Categories of CarePlan the gateway writes.", []concept{
			{"kap-course", "KAP course", "A course of ketamine-assisted psychotherapy: consultation, preparation, dosing, integration and maintenance."},
		}},
		{csPractitionerRole, "KAPPractitionerRole", "KAP practitioner role", "The roles practitioners take in a KAP course.", []concept{
			{"prescriber", "Prescriber", "Writes the prescription, monitors vitals and manages medical risk (MD, DO, NP, PA)."},
			{"therapist", "Therapist", "Leads preparation, in-session support and integration (LCPC, LCSW, LMFT, psychologist)."},
			{"administrator", "Administrator", "Gives the medicine under supervision (RN, CRNA, trained clinic staff)."},
		}},
		{csConsentScope, "KAPConsentScope", "KAP consent scope", "What part of a client's record a Consent permits or denies sharing.", []concept{
			{"process-notes", "Process notes", "The therapist's process notes (psychotherapy notes, 45 CFR 164.501): disclosed only with this authorization."},
			{"treatment-record", "Treatment record", "The KAP treatment record other than process notes: sessions, medication and monitoring, scores, plan and progress."},
		}},
		{csDocumentType, "KAPDocumentType", "KAP document type", "Kinds of document the gateway keeps.", []concept{
			{"process-note", "Process note", "A therapist's process note of a session: a psychotherapy note, labelled V + PSYTHPN and never exported without an authorization."},
		}},
		{csSessionPhase, "KAPSessionPhase", "KAP session phase", "When in a dosing session an observation was made (the Spravato REMS form asks for blood pressure at these points).", []concept{
			{"before", "Before dosing", "Before the dose is given."},
			{"during", "During monitoring", "During the monitored time after the dose (for example at 40 minutes)."},
			{"discharge", "Before discharge", "Before the client leaves the clinic."},
		}},
		{csTag, "KAPTag", "kapbridge resource tags", "Tags the gateway puts on resources it manages itself.", []concept{
			{"conformance", "Conformance artifact", "A profile, CodeSystem, ValueSet or Questionnaire the gateway publishes; served read-only."},
		}},
	}
}

func (cs codeSystem) resource() *fhir.Value {
	var concepts []*fhir.Value
	for _, c := range cs.concepts {
		concepts = append(concepts, obj("code", c.code, "display", c.display, "definition", c.definition))
	}
	kv := header("CodeSystem", cs.url, cs.name, cs.title, "active", cs.description)
	kv = append(kv, "caseSensitive", true, "valueSet", valueSetURL(cs.url), "content", "complete",
		"count", len(cs.concepts), "concept", concepts)
	return obj(kv...)
}

// valueSetURL is the all-codes ValueSet of a local CodeSystem: same id,
// under /ValueSet/.
func valueSetURL(csURL string) string {
	return strings.Replace(csURL, "/CodeSystem/", "/ValueSet/", 1)
}

// allCodes is the ValueSet holding every code of cs.
func (cs codeSystem) allCodes() *fhir.Value {
	kv := header("ValueSet", valueSetURL(cs.url), cs.name, cs.title, "active", "All codes of "+cs.title+". "+cs.description)
	kv = append(kv, "immutable", true, "compose", obj("include", arr(obj("system", cs.url))))
	return obj(kv...)
}

// Further ValueSets the profiles bind to.
func boundValueSets() []*fhir.Value {
	url := canonicalBase + "/ValueSet/kap-screening-response-status"
	kv := header("ValueSet", url, "KAPScreeningResponseStatus", "Status of a finished KAP screening response",
		"active", "The QuestionnaireResponse statuses a screening the gateway exchanges can have: it is finished (completed) or corrected later (amended).")
	kv = append(kv, "immutable", true, "compose", obj("include", arr(obj(
		"system", "http://hl7.org/fhir/questionnaire-answers-status",
		"concept", arr(obj("code", "completed", "display", "Completed"), obj("code", "amended", "display", "Amended"))))))
	return []*fhir.Value{obj(kv...)}
}

func itoa(n int) string { return fhir.Number(int64(n)).Str }

func codeSystemOf(url string) codeSystem {
	for _, cs := range codeSystems() {
		if cs.url == url {
			return cs
		}
	}
	panic("profilegen: no code system " + url)
}
