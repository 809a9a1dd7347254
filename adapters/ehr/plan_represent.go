package ehr

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"strings"
	"unicode/utf8"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
)

// The representation builders make, from a KAP resource an EHR does not
// accept, a resource it does (the Builder a plan's Part names). They are
// pure: the same input gives the same output, byte for byte. Each output
// carries the input's practice identifiers (system = the practice's
// namespace URI, value as mapped), so a later sync finds what it wrote by
// searching the output's type by that identifier, and the input's
// security labels, so the privacy gate judges it as it judges the input.
// What an output cannot carry is returned as a warning.

// ErrRepresentation: the input cannot be represented (wrong resource
// type, no practice identifier, no recipient). Test with errors.Is.
var ErrRepresentation = errors.New("ehr: cannot build the representation")

// Codes the builders use; each was checked in a published HL7 artifact.
const (
	loincSystem         = "http://loinc.org"
	sysDocRefCategory   = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category" // US Core 3.1-8.0
	sysCommCategory     = "http://terminology.hl7.org/CodeSystem/communication-category"
	sysObsCategory      = "http://terminology.hl7.org/CodeSystem/observation-category"
	loincPlanOfCareNote = "18776-5" // "Plan of care note": C-CDA on FHIR CarePlanDocumentType value set
	attachmentXHTML     = "application/xhtml+xml"
	attachmentFHIRJSON  = "application/fhir+json"
	extPlannedCount     = mappings.ExtPlannedCount
	extDosePerKg        = mappings.ExtDosePerKg
)

// CarePlanDocument represents a course's CarePlan as a DocumentReference
// with two attachments: a readable XHTML summary (every text escaped) and
// the CarePlan's own JSON. related may hold the Conditions, Goals and
// CareTeam the CarePlan names, so the summary can name them too. date
// (a FHIR instant, or "") stamps DocumentReference.date.
func CarePlanDocument(carePlan *fhir.Value, related []*fhir.Value, date string) (*fhir.Value, []mappings.Problem, error) {
	if err := checkInput(carePlan, "CarePlan"); err != nil {
		return nil, nil, err
	}
	ids, err := practiceIdentifiers(carePlan)
	if err != nil {
		return nil, nil, err
	}
	title := carePlan.GetString("title")
	if title == "" {
		title = "Care plan"
	}
	x := newXHTML(title)
	x.para("Summary of a course of ketamine-assisted psychotherapy, made by kapbridge from the practice's record. The structured CarePlan is attached to this document as FHIR R4 JSON.")
	x.startTable()
	x.row("Status", carePlan.GetString("status"))
	x.row("Intent", carePlan.GetString("intent"))
	x.row("Period", periodText(carePlan.Get("period")))
	x.row("Category", readableConcepts(carePlan.Get("category")))
	x.row("Patient", refText(carePlan.Get("subject")))
	x.row("Author", refText(carePlan.Get("author")))
	x.row("Description", carePlan.GetString("description"))
	x.endTable()
	byRef := map[string]*fhir.Value{}
	for _, r := range related {
		byRef[r.GetString("resourceType")+"/"+r.GetString("id")] = r
	}
	named := func(heading string, refs *fhir.Value, text func(*fhir.Value) string) {
		if refs == nil || len(refs.Array) == 0 {
			return
		}
		var items []string
		for _, ref := range refs.Array {
			if r, ok := byRef[ref.GetString("reference")]; ok {
				items = append(items, text(r))
			} else {
				items = append(items, refText(ref))
			}
		}
		x.heading(heading)
		x.list(items)
	}
	named("Conditions addressed", carePlan.Get("addresses"), func(c *fhir.Value) string {
		return readableConcept(c.Get("code"))
	})
	named("Goals", carePlan.Get("goal"), func(g *fhir.Value) string {
		s := readableConcept(g.Get("description"))
		if cat := readableConcepts(g.Get("category")); cat != "" {
			s += " (" + cat + ")"
		}
		return s
	})
	named("Care team", carePlan.Get("careTeam"), func(ct *fhir.Value) string {
		var ms []string
		for _, p := range elementsOf(ct.Get("participant")) {
			m := refText(p.Get("member"))
			if role := readableConcepts(p.Get("role")); role != "" {
				m = role + ": " + m
			}
			ms = append(ms, m)
		}
		s := ct.GetString("name")
		if len(ms) > 0 {
			s += " (" + strings.Join(ms, "; ") + ")"
		}
		return s
	})
	if acts := elementsOf(carePlan.Get("activity")); len(acts) > 0 {
		x.heading("Activities")
		x.startTable("Activity", "Status", "When", "Planned", "Product", "Performers")
		for _, a := range acts {
			d := a.Get("detail")
			when := periodText(d.Get("scheduledPeriod"))
			if when == "" {
				when = timingText(d.Get("scheduledTiming"))
			}
			if when == "" {
				when = d.GetString("scheduledString")
			}
			planned := ""
			for _, e := range elementsOf(d.Get("extension")) {
				if e.GetString("url") == extPlannedCount && e.Get("valueInteger") != nil {
					planned = e.Get("valueInteger").Str
				}
			}
			var perf []string
			for _, p := range elementsOf(d.Get("performer")) {
				perf = append(perf, refText(p))
			}
			what := readableConcept(d.Get("code"))
			if what == "" {
				what = refText(a.Get("reference"))
			}
			x.cells(what, d.GetString("status"), when, planned, readableConcept(d.Get("productCodeableConcept")), strings.Join(perf, ", "))
		}
		x.endTable()
	}
	if notes := elementsOf(carePlan.Get("note")); len(notes) > 0 {
		x.heading("Notes")
		var items []string
		for _, n := range notes {
			items = append(items, n.GetString("text"))
		}
		x.list(items)
	}
	x.para("Source: CarePlan " + carePlan.GetString("id") + ", identifier " + identifierText(ids) + ".")

	docStatus := "preliminary" // the course is still going on
	switch carePlan.GetString("status") {
	case "completed", "revoked":
		docStatus = "final"
	case "entered-in-error":
		docStatus = "entered-in-error"
	}
	typ := jsonObject(
		jsonMember("coding", jsonArray(jsonObject(
			jsonMember("system", jsonString(loincSystem)),
			jsonMember("code", jsonString(loincPlanOfCareNote)),
			jsonMember("display", jsonString("Plan of care note"))))),
		jsonMember("text", jsonString(title)))
	var author *fhir.Value
	if a := carePlan.Get("author"); a != nil {
		author = jsonArray(cloneValue(a))
	}
	var warnings []mappings.Problem
	if carePlan.Get("contained") != nil {
		warnings = append(warnings, mappings.Problem{Code: mappings.CodeNotCarried, Severity: mappings.SeverityWarning, Field: "CarePlan.contained", Message: "kept in the attached JSON only; the summary does not show contained resources"})
	}
	doc := documentReference(BuildCarePlanDocument, carePlan, ids, docStatus, typ, carePlan.Get("subject"), author, date,
		title, x.bytes(), "CarePlan "+carePlan.GetString("id")+" (FHIR R4 JSON)",
		jsonObject(jsonMember("period", cloneValue(carePlan.Get("period")))))
	return doc, warnings, nil
}

// QuestionnaireResponseDocument represents a screening's
// QuestionnaireResponse as a DocumentReference: the questions and answers
// as readable XHTML, and the QuestionnaireResponse's JSON. questionnaire,
// when given, supplies the question texts (the response may carry only
// link ids) and its title.
func QuestionnaireResponseDocument(qr, questionnaire *fhir.Value, date string) (*fhir.Value, []mappings.Problem, error) {
	if err := checkInput(qr, "QuestionnaireResponse"); err != nil {
		return nil, nil, err
	}
	ids, err := practiceIdentifiers(qr)
	if err != nil {
		return nil, nil, err
	}
	var warnings []mappings.Problem
	texts := map[string]string{}
	title := ""
	if questionnaire != nil {
		if questionnaire.GetString("resourceType") != "Questionnaire" {
			return nil, nil, fmt.Errorf("%w: %s given as the Questionnaire", ErrRepresentation, questionnaire.GetString("resourceType"))
		}
		if u := questionnaire.GetString("url"); u != qr.GetString("questionnaire") {
			warnings = append(warnings, mappings.Problem{Code: mappings.CodeNotCarried, Severity: mappings.SeverityWarning, Field: "QuestionnaireResponse.questionnaire",
				Message: fmt.Sprintf("names %q, the Questionnaire given is %q: its texts were not used", qr.GetString("questionnaire"), u)})
		} else {
			title = questionnaire.GetString("title")
			var walk func(items *fhir.Value)
			walk = func(items *fhir.Value) {
				for _, it := range elementsOf(items) {
					texts[it.GetString("linkId")] = it.GetString("text")
					walk(it.Get("item"))
				}
			}
			walk(questionnaire.Get("item"))
		}
	}
	if title == "" {
		title = qr.GetString("questionnaire")
	}
	if title == "" {
		title = "Questionnaire"
	}
	heading := "Questionnaire response: " + title
	x := newXHTML(heading)
	x.para("Answers recorded by the therapy practice, made readable by kapbridge. The structured QuestionnaireResponse is attached to this document as FHIR R4 JSON.")
	x.startTable()
	x.row("Questionnaire", qr.GetString("questionnaire"))
	x.row("Status", qr.GetString("status"))
	x.row("Authored", qr.GetString("authored"))
	x.row("Patient", refText(qr.Get("subject")))
	x.row("Author", refText(qr.Get("author")))
	x.endTable()
	x.startTable("Question", "Answer")
	var walk func(items *fhir.Value, depth int)
	walk = func(items *fhir.Value, depth int) {
		for _, it := range elementsOf(items) {
			q := it.GetString("text")
			if t := texts[it.GetString("linkId")]; t != "" {
				q = t
			}
			if q == "" {
				q = it.GetString("linkId")
			}
			q = strings.Repeat("— ", depth) + q
			var answers []string
			for _, a := range elementsOf(it.Get("answer")) {
				answers = append(answers, valueText(a, "value"))
				walk(a.Get("item"), depth+1)
			}
			x.cells(q, strings.Join(answers, "; "))
			walk(it.Get("item"), depth+1)
		}
	}
	walk(qr.Get("item"), 0)
	x.endTable()
	x.para("Source: QuestionnaireResponse " + qr.GetString("id") + ", identifier " + identifierText(ids) + ".")

	docStatus := "final"
	switch qr.GetString("status") {
	case "in-progress":
		docStatus = "preliminary"
	case "amended":
		docStatus = "amended"
	case "entered-in-error":
		docStatus = "entered-in-error"
	}
	var author *fhir.Value
	if a := qr.Get("author"); a != nil {
		author = jsonArray(cloneValue(a))
	}
	var ctx *fhir.Value
	if enc := qr.Get("encounter"); enc != nil {
		ctx = jsonObject(jsonMember("encounter", jsonArray(cloneValue(enc))))
	}
	doc := documentReference(BuildQuestionnaireResponseDocument, qr, ids, docStatus, jsonObject(jsonMember("text", jsonString(heading))),
		qr.Get("subject"), author, date, heading, x.bytes(),
		"QuestionnaireResponse "+qr.GetString("id")+" (FHIR R4 JSON)", ctx)
	return doc, warnings, nil
}

// documentReference assembles the DocumentReference of a summary: the
// XHTML first, the source's JSON second.
func documentReference(builder Builder, src *fhir.Value, ids *fhir.Value, docStatus string, typ, subject, author *fhir.Value,
	date, title string, xhtml []byte, jsonTitle string, context *fhir.Value) *fhir.Value {
	source := src.Encode()
	attachment := func(contentType string, data []byte, title string) *fhir.Value {
		sum := sha1.Sum(data)
		return jsonObject(jsonMember("attachment", jsonObject(
			jsonMember("contentType", jsonString(contentType)),
			jsonMember("data", jsonString(base64.StdEncoding.EncodeToString(data))),
			jsonMember("size", fhir.Number(int64(len(data)))),
			jsonMember("hash", jsonString(base64.StdEncoding.EncodeToString(sum[:]))),
			jsonMember("title", jsonString(title)))))
	}
	var dateV *fhir.Value
	if date != "" {
		dateV = jsonString(date)
	}
	if context != nil && len(context.Members) == 0 {
		context = nil
	}
	return jsonObject(
		jsonMember("resourceType", jsonString("DocumentReference")),
		jsonMember("id", jsonString(derivedID(builder, src))),
		jsonMember("meta", securityMeta(src)),
		jsonMember("identifier", ids),
		jsonMember("status", jsonString("current")),
		jsonMember("docStatus", jsonString(docStatus)),
		jsonMember("type", typ),
		jsonMember("category", jsonArray(jsonObject(jsonMember("coding", jsonArray(jsonObject(
			jsonMember("system", jsonString(sysDocRefCategory)),
			jsonMember("code", jsonString("clinical-note")),
			jsonMember("display", jsonString("Clinical Note")))))))),
		jsonMember("subject", cloneValue(subject)),
		jsonMember("date", dateV),
		jsonMember("author", author),
		jsonMember("description", jsonString(title)),
		jsonMember("securityLabel", securityLabels(src)),
		jsonMember("content", jsonArray(
			attachment(attachmentXHTML, xhtml, title),
			attachment(attachmentFHIRJSON, source, jsonTitle))),
		jsonMember("context", context))
}

// DoseObservation represents a MedicationAdministration as an Observation
// recording the dose: the medication as the code, the dose as the value,
// route, lot, dose per kg and medication as components (text-coded: no
// standard codes exist for them), the administration's time, patient,
// encounter and performers.
func DoseObservation(ma *fhir.Value) (*fhir.Value, []mappings.Problem, error) {
	if err := checkInput(ma, "MedicationAdministration"); err != nil {
		return nil, nil, err
	}
	ids, err := practiceIdentifiers(ma)
	if err != nil {
		return nil, nil, err
	}
	var warnings []mappings.Problem
	warn := func(field, msg string) {
		warnings = append(warnings, mappings.Problem{Code: mappings.CodeNotCarried, Severity: mappings.SeverityWarning, Field: field, Message: msg})
	}

	// The medication: a concept, or a reference to a contained Medication.
	med := ma.Get("medicationCodeableConcept")
	var lot *fhir.Value
	if ref := ma.Get("medicationReference").GetString("reference"); ref != "" {
		if strings.HasPrefix(ref, "#") {
			for _, c := range elementsOf(ma.Get("contained")) {
				if c.GetString("resourceType") == "Medication" && c.GetString("id") == ref[1:] {
					med = c.Get("code")
					lot = c.Get("batch").Get("lotNumber")
				}
			}
		}
		if med == nil {
			warn("MedicationAdministration.medicationReference", "names "+ref+", which is not contained: the medication is given by its reference text only")
			med = jsonObject(jsonMember("text", jsonString(refText(ma.Get("medicationReference")))))
		}
	}
	medText := readableConcept(med)
	code := cloneValue(med)
	if code == nil {
		code = jsonObject()
	}
	code.Set("text", jsonString(strings.TrimSpace(medText+" dose administered")))

	dosage := ma.Get("dosage")
	var components []*fhir.Value
	component := func(name string, value fhir.Member) {
		if value.Value == nil {
			return
		}
		components = append(components, jsonObject(jsonMember("code", jsonObject(jsonMember("text", jsonString(name)))), value))
	}
	component("route", jsonMember("valueCodeableConcept", cloneValue(dosage.Get("route"))))
	for _, e := range elementsOf(dosage.Get("extension")) {
		if e.GetString("url") == extDosePerKg {
			component("dose per kg", jsonMember("valueQuantity", cloneValue(e.Get("valueQuantity"))))
		}
	}
	component("rate", jsonMember("valueQuantity", cloneValue(dosage.Get("rateQuantity"))))
	if lot != nil {
		component("lot number", jsonMember("valueString", cloneValue(lot)))
	}
	component("dosage", jsonMember("valueString", cloneValue(dosage.Get("text"))))
	if dosage.Get("dose") == nil {
		warn("MedicationAdministration.dosage.dose", "no dose: the Observation has no value")
	}

	var performers []*fhir.Value
	for _, p := range elementsOf(ma.Get("performer")) {
		a := p.Get("actor")
		switch t, _, _ := strings.Cut(a.GetString("reference"), "/"); t {
		case "Practitioner", "PractitionerRole", "Patient", "RelatedPerson":
			performers = append(performers, cloneValue(a))
		default:
			warn("MedicationAdministration.performer", "actor "+refText(a)+" cannot perform an Observation: left out")
		}
	}
	for _, f := range []string{"reasonReference", "reasonCode", "request", "device", "partOf", "supportingInformation", "eventHistory"} {
		if ma.Get(f) != nil {
			warn("MedicationAdministration."+f, "not carried by the Observation")
		}
	}
	var notes []*fhir.Value
	for _, n := range elementsOf(ma.Get("note")) {
		notes = append(notes, cloneValue(n))
	}
	notes = append(notes, jsonObject(jsonMember("text", jsonString(
		"Recorded by kapbridge from MedicationAdministration "+ma.GetString("id")+" (identifier "+identifierText(ids)+"): this EHR does not accept MedicationAdministration writes."))))

	status := "final"
	switch ma.GetString("status") {
	case "in-progress", "on-hold":
		status = "preliminary"
	case "not-done":
		status = "cancelled"
	case "entered-in-error":
		status = "entered-in-error"
	case "unknown":
		status = "unknown"
	}
	var effective fhir.Member
	switch {
	case ma.Get("effectivePeriod") != nil:
		effective = jsonMember("effectivePeriod", cloneValue(ma.Get("effectivePeriod")))
	case ma.Get("effectiveDateTime") != nil:
		effective = jsonMember("effectiveDateTime", cloneValue(ma.Get("effectiveDateTime")))
	}
	var perf *fhir.Value
	if len(performers) > 0 {
		perf = jsonArray(performers...)
	}
	var comps *fhir.Value
	if len(components) > 0 {
		comps = jsonArray(components...)
	}
	obs := jsonObject(
		jsonMember("resourceType", jsonString("Observation")),
		jsonMember("id", jsonString(derivedID(BuildDoseObservation, ma))),
		jsonMember("meta", securityMeta(ma)),
		jsonMember("identifier", ids),
		jsonMember("status", jsonString(status)),
		jsonMember("category", jsonArray(jsonObject(jsonMember("coding", jsonArray(jsonObject(
			jsonMember("system", jsonString(sysObsCategory)),
			jsonMember("code", jsonString("therapy")),
			jsonMember("display", jsonString("Therapy")))))))),
		jsonMember("code", code),
		jsonMember("subject", cloneValue(ma.Get("subject"))),
		jsonMember("encounter", cloneValue(ma.Get("context"))),
		effective,
		jsonMember("performer", perf),
		jsonMember("valueQuantity", cloneValue(dosage.Get("dose"))),
		jsonMember("note", jsonArray(notes...)),
		jsonMember("component", comps))
	return obs, warnings, nil
}

// FlagCommunication represents a safety-signal Flag as an urgent alert to
// the prescriber: a Communication (category alert, priority urgent) about
// the Flag's patient, to recipient (a Reference to the prescriber), whose
// payload names the rule (the Flag's code) and the value that raised it,
// read from evidence: the Observation that raised it, or the
// QuestionnaireResponse whose item the Flag's code names. sent (a FHIR
// dateTime, or "") stamps Communication.sent.
func FlagCommunication(flag *fhir.Value, evidence []*fhir.Value, recipient *fhir.Value, sent string) (*fhir.Value, []mappings.Problem, error) {
	if err := checkInput(flag, "Flag"); err != nil {
		return nil, nil, err
	}
	ids, err := practiceIdentifiers(flag)
	if err != nil {
		return nil, nil, err
	}
	if recipient == nil || recipient.Kind != fhir.KindObject || (recipient.GetString("reference") == "" && recipient.Get("identifier") == nil) {
		return nil, nil, fmt.Errorf("%w: a safety alert needs the prescriber as its recipient (a Reference)", ErrRepresentation)
	}
	var warnings []mappings.Problem
	rule := readableConcept(flag.Get("code"))
	var codes []string
	for _, c := range elementsOf(flag.Get("code").Get("coding")) {
		codes = append(codes, codingText(c))
	}
	var b strings.Builder
	b.WriteString("KAP safety signal: " + rule + ".")
	if len(codes) > 0 {
		b.WriteString(" Rule: " + strings.Join(codes, ", ") + ".")
	}
	var about []*fhir.Value
	var values []string
	for _, ev := range evidence {
		switch ev.GetString("resourceType") {
		case "Observation":
			values = append(values, observationText(ev))
		case "QuestionnaireResponse":
			for _, c := range elementsOf(flag.Get("code").Get("coding")) {
				if it := findItem(ev.Get("item"), c.GetString("code")); it != nil {
					var as []string
					for _, a := range elementsOf(it.Get("answer")) {
						as = append(as, valueText(a, "value"))
					}
					q := it.GetString("text")
					if q == "" {
						q = "item " + it.GetString("linkId")
					}
					values = append(values, q+": "+strings.Join(as, "; "))
				}
			}
		default:
			warnings = append(warnings, mappings.Problem{Code: mappings.CodeNotCarried, Severity: mappings.SeverityWarning, Field: "evidence", Message: ev.GetString("resourceType") + " is not read as evidence"})
			continue
		}
		if id := ev.GetString("id"); id != "" {
			about = append(about, jsonObject(jsonMember("reference", jsonString(ev.GetString("resourceType")+"/"+id))))
		}
	}
	if len(values) > 0 {
		b.WriteString(" Value: " + strings.Join(values, "; ") + ".")
	} else {
		warnings = append(warnings, mappings.Problem{Code: mappings.CodeNotCarried, Severity: mappings.SeverityWarning, Field: "evidence", Message: "no Observation or QuestionnaireResponse item gives the value that raised the signal"})
	}
	if start := flag.Get("period").GetString("start"); start != "" {
		b.WriteString(" Since " + start + ".")
	}
	b.WriteString(" Flag status: " + flag.GetString("status") + ".")
	b.WriteString(" Sent by kapbridge as an alert because this EHR does not accept Flags (identifier " + identifierText(ids) + ").")

	var sentV, aboutV *fhir.Value
	if sent != "" {
		sentV = jsonString(sent)
	}
	if len(about) > 0 {
		aboutV = jsonArray(about...)
	}
	status := "completed"
	if flag.GetString("status") == "entered-in-error" {
		status = "entered-in-error"
	}
	var reason *fhir.Value
	if c := flag.Get("code"); c != nil {
		reason = jsonArray(cloneValue(c))
	}
	com := jsonObject(
		jsonMember("resourceType", jsonString("Communication")),
		jsonMember("id", jsonString(derivedID(BuildFlagCommunication, flag))),
		jsonMember("meta", securityMeta(flag)),
		jsonMember("identifier", ids),
		jsonMember("status", jsonString(status)),
		jsonMember("category", jsonArray(jsonObject(jsonMember("coding", jsonArray(jsonObject(
			jsonMember("system", jsonString(sysCommCategory)),
			jsonMember("code", jsonString("alert")),
			jsonMember("display", jsonString("Alert")))))))),
		jsonMember("priority", jsonString("urgent")),
		jsonMember("subject", cloneValue(flag.Get("subject"))),
		jsonMember("about", aboutV),
		jsonMember("encounter", cloneValue(flag.Get("encounter"))),
		jsonMember("sent", sentV),
		jsonMember("recipient", jsonArray(cloneValue(recipient))),
		jsonMember("sender", cloneValue(flag.Get("author"))),
		jsonMember("reasonCode", reason),
		jsonMember("payload", jsonArray(jsonObject(jsonMember("contentString", jsonString(b.String()))))))
	return com, warnings, nil
}

// ---- reading the inputs ----

func checkInput(res *fhir.Value, typ string) error {
	if res == nil || res.Kind != fhir.KindObject {
		return fmt.Errorf("%w: no %s given", ErrRepresentation, typ)
	}
	if got := res.GetString("resourceType"); got != typ {
		return fmt.Errorf("%w: a %s, not a %s", ErrRepresentation, got, typ)
	}
	return nil
}

// practiceIdentifiers returns, as an array, res's identifiers in a
// practice's namespace (mappings.NSPracticeRecordIDs/{practice}/{kind}),
// or an error when it has none: a representation the sync could not find
// again must not be written.
func practiceIdentifiers(res *fhir.Value) (*fhir.Value, error) {
	var out []*fhir.Value
	for _, id := range elementsOf(res.Get("identifier")) {
		if strings.HasPrefix(id.GetString("system"), mappings.NSPracticeRecordIDs+"/") && id.GetString("value") != "" {
			out = append(out, jsonObject(
				jsonMember("system", jsonString(id.GetString("system"))),
				jsonMember("value", jsonString(id.GetString("value")))))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s/%s has no practice identifier (system %s/...)", ErrRepresentation,
			res.GetString("resourceType"), res.GetString("id"), mappings.NSPracticeRecordIDs)
	}
	return jsonArray(out...), nil
}

func identifierText(ids *fhir.Value) string {
	var s []string
	for _, id := range elementsOf(ids) {
		s = append(s, id.GetString("system")+"|"+id.GetString("value"))
	}
	return strings.Join(s, ", ")
}

// securityMeta is a meta holding res's security labels, or nil.
func securityMeta(res *fhir.Value) *fhir.Value {
	sec := res.Get("meta").Get("security")
	if sec == nil {
		return nil
	}
	return jsonObject(jsonMember("security", cloneValue(sec)))
}

// securityLabels are res's meta.security codings as the CodeableConcepts
// of DocumentReference.securityLabel, or nil.
func securityLabels(res *fhir.Value) *fhir.Value {
	var out []*fhir.Value
	for _, c := range elementsOf(res.Get("meta").Get("security")) {
		out = append(out, jsonObject(jsonMember("coding", jsonArray(cloneValue(c)))))
	}
	if len(out) == 0 {
		return nil
	}
	return jsonArray(out...)
}

// derivedID is the id of a representation: a name-based UUID over the
// builder and the source's type and id, so building again gives the same
// id (where an EHR lets the client choose ids, writes converge).
func derivedID(b Builder, src *fhir.Value) string {
	sum := sha1.Sum([]byte("kapbridge-ehr-representation\x00" + string(b) + "\x00" + src.GetString("resourceType") + "/" + src.GetString("id")))
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// elementsOf returns the elements of an array, or the value itself as a
// one-element list (FHIR elements of cardinality 1 given where many are
// expected), or nil.
func elementsOf(v *fhir.Value) []*fhir.Value {
	switch {
	case v == nil:
		return nil
	case v.Kind == fhir.KindArray:
		return v.Array
	}
	return []*fhir.Value{v}
}

func codingText(c *fhir.Value) string {
	s := c.GetString("code")
	if sys := c.GetString("system"); sys != "" {
		s = sys + "|" + s
	}
	if d := c.GetString("display"); d != "" {
		s += " (" + d + ")"
	}
	return s
}

// readableConcept is how a person reads a CodeableConcept: its text, else its
// codings' displays, else its codings.
func readableConcept(cc *fhir.Value) string {
	if cc == nil {
		return ""
	}
	if t := cc.GetString("text"); t != "" {
		return t
	}
	var ds []string
	for _, c := range elementsOf(cc.Get("coding")) {
		if d := c.GetString("display"); d != "" {
			ds = append(ds, d)
		}
	}
	if len(ds) > 0 {
		return strings.Join(ds, ", ")
	}
	var cs []string
	for _, c := range elementsOf(cc.Get("coding")) {
		cs = append(cs, codingText(c))
	}
	return strings.Join(cs, ", ")
}

func readableConcepts(ccs *fhir.Value) string {
	var s []string
	for _, cc := range elementsOf(ccs) {
		if t := readableConcept(cc); t != "" {
			s = append(s, t)
		}
	}
	return strings.Join(s, "; ")
}

func refText(ref *fhir.Value) string {
	if ref == nil {
		return ""
	}
	if d := ref.GetString("display"); d != "" {
		return d
	}
	if r := ref.GetString("reference"); r != "" {
		return r
	}
	if id := ref.Get("identifier"); id != nil {
		return id.GetString("system") + "|" + id.GetString("value")
	}
	return ""
}

func periodText(p *fhir.Value) string {
	start, end := p.GetString("start"), p.GetString("end")
	switch {
	case start != "" && end != "":
		return start + " to " + end
	case start != "":
		return "from " + start
	case end != "":
		return "until " + end
	}
	return ""
}

func timingText(t *fhir.Value) string {
	r := t.Get("repeat")
	if r == nil {
		return readableConcept(t.Get("code"))
	}
	var s []string
	if f, p, u := r.Get("frequency"), r.Get("period"), r.GetString("periodUnit"); f != nil && p != nil {
		s = append(s, f.Str+" every "+p.Str+" "+u)
	}
	if c := r.Get("count"); c != nil {
		s = append(s, c.Str+" times")
	}
	if b := periodText(r.Get("boundsPeriod")); b != "" {
		s = append(s, b)
	}
	return strings.Join(s, ", ")
}

func quantityText(q *fhir.Value) string {
	if q == nil {
		return ""
	}
	s := q.GetString("comparator")
	if v := q.Get("value"); v != nil {
		s += v.Str
	}
	unit := q.GetString("unit")
	if unit == "" {
		unit = q.GetString("code")
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

// valueText reads the value[x] of v (prefix "value"), whatever its type.
func valueText(v *fhir.Value, prefix string) string {
	for _, m := range v.Members {
		if !strings.HasPrefix(m.Key, prefix) || m.Key == prefix {
			continue
		}
		switch m.Key[len(prefix):] {
		case "Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity":
			return quantityText(m.Value)
		case "CodeableConcept":
			return readableConcept(m.Value)
		case "Coding":
			if d := m.Value.GetString("display"); d != "" {
				return d
			}
			return codingText(m.Value)
		case "Boolean":
			if m.Value.Bool {
				return "yes"
			}
			return "no"
		case "Period":
			return periodText(m.Value)
		case "Reference":
			return refText(m.Value)
		case "Range":
			return quantityText(m.Value.Get("low")) + " to " + quantityText(m.Value.Get("high"))
		case "Ratio":
			return quantityText(m.Value.Get("numerator")) + " / " + quantityText(m.Value.Get("denominator"))
		case "Attachment":
			return "attachment " + m.Value.GetString("title")
		}
		if m.Value.Kind == fhir.KindString || m.Value.Kind == fhir.KindNumber {
			return m.Value.Str
		}
	}
	return ""
}

// observationText is "code: value" of an Observation, components included.
func observationText(o *fhir.Value) string {
	s := readableConcept(o.Get("code"))
	var vs []string
	if v := valueText(o, "value"); v != "" {
		vs = append(vs, v)
	}
	for _, c := range elementsOf(o.Get("component")) {
		if v := valueText(c, "value"); v != "" {
			vs = append(vs, readableConcept(c.Get("code"))+" "+v)
		}
	}
	if len(vs) > 0 {
		s += ": " + strings.Join(vs, ", ")
	}
	if t := o.GetString("effectiveDateTime"); t != "" {
		s += " at " + t
	} else if p := periodText(o.Get("effectivePeriod")); p != "" {
		s += ", " + p
	}
	return s
}

// findItem finds the item whose linkId, or one of whose codes, is key.
func findItem(items *fhir.Value, key string) *fhir.Value {
	if key == "" {
		return nil
	}
	for _, it := range elementsOf(items) {
		if it.GetString("linkId") == key {
			return it
		}
		if found := findItem(it.Get("item"), key); found != nil {
			return found
		}
		for _, a := range elementsOf(it.Get("answer")) {
			if found := findItem(a.Get("item"), key); found != nil {
				return found
			}
		}
	}
	return nil
}

// ---- building ----

func jsonMember(key string, v *fhir.Value) fhir.Member { return fhir.Member{Key: key, Value: v} }

// jsonObject makes an object of the members whose value is not nil.
func jsonObject(ms ...fhir.Member) *fhir.Value {
	o := fhir.Object()
	for _, m := range ms {
		if m.Value != nil {
			o.Members = append(o.Members, m)
		}
	}
	return o
}

func jsonArray(vs ...*fhir.Value) *fhir.Value { return &fhir.Value{Kind: fhir.KindArray, Array: vs} }

func jsonString(s string) *fhir.Value { return fhir.String(s) }

// cloneValue copies v deeply, so that no output shares a node with its
// input.
func cloneValue(v *fhir.Value) *fhir.Value {
	if v == nil {
		return nil
	}
	c := *v
	if v.Array != nil {
		c.Array = make([]*fhir.Value, len(v.Array))
		for i, e := range v.Array {
			c.Array[i] = cloneValue(e)
		}
	}
	if v.Members != nil {
		c.Members = make([]fhir.Member, len(v.Members))
		for i, m := range v.Members {
			c.Members[i] = fhir.Member{Key: m.Key, Value: cloneValue(m.Value)}
		}
	}
	return &c
}

// xhtml writes a small XHTML document; every text goes through xmlText.
type xhtml struct{ b strings.Builder }

func newXHTML(title string) *xhtml {
	x := &xhtml{}
	x.b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.b.WriteString(`<html xmlns="http://www.w3.org/1999/xhtml" lang="en">` + "\n")
	x.b.WriteString("<head><meta http-equiv=\"Content-Type\" content=\"application/xhtml+xml; charset=UTF-8\"/><title>" + xmlText(title) + "</title></head>\n<body>\n")
	x.b.WriteString("<h1>" + xmlText(title) + "</h1>\n")
	return x
}

func (x *xhtml) para(s string)    { x.b.WriteString("<p>" + xmlText(s) + "</p>\n") }
func (x *xhtml) heading(s string) { x.b.WriteString("<h2>" + xmlText(s) + "</h2>\n") }

func (x *xhtml) list(items []string) {
	x.b.WriteString("<ul>\n")
	for _, it := range items {
		x.b.WriteString("<li>" + xmlText(it) + "</li>\n")
	}
	x.b.WriteString("</ul>\n")
}

// startTable opens a table; with headers, a header row.
func (x *xhtml) startTable(headers ...string) {
	x.b.WriteString("<table>\n")
	if len(headers) > 0 {
		x.b.WriteString("<tr>")
		for _, h := range headers {
			x.b.WriteString("<th>" + xmlText(h) + "</th>")
		}
		x.b.WriteString("</tr>\n")
	}
}

// row is a label/value row; an empty value leaves the row out.
func (x *xhtml) row(label, value string) {
	if value == "" {
		return
	}
	x.b.WriteString("<tr><th>" + xmlText(label) + "</th><td>" + xmlText(value) + "</td></tr>\n")
}

func (x *xhtml) cells(values ...string) {
	x.b.WriteString("<tr>")
	for _, v := range values {
		x.b.WriteString("<td>" + xmlText(v) + "</td>")
	}
	x.b.WriteString("</tr>\n")
}

func (x *xhtml) endTable() { x.b.WriteString("</table>\n") }

func (x *xhtml) bytes() []byte {
	return []byte(x.b.String() + "</body>\n</html>\n")
}

// xmlText escapes s for XHTML text and attribute values, and replaces
// what XML 1.0 cannot carry at all (control characters, invalid UTF-8)
// with U+FFFD.
func xmlText(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			b.WriteRune('\uFFFD')
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0xFFFE, r == 0xFFFF:
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(r)
		}
	}
	return html.EscapeString(b.String())
}
