package fhir_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	// The invariants are evaluated by package fhirpath, which registers
	// itself with this package when linked (as every server links it).
	_ "github.com/kapbridge/kapbridge/fhir/fhirpath"
)

// invariantViolations: each body breaks one R4 invariant (of a resource,
// a backbone element or a data type) and nothing else; it must be refused
// naming the key and the element. The key's issue carries the
// definition's text; ext-1 (both) and dom-2 are caught by the structural
// checks first, and name the key too.
var invariantViolations = []struct{ key, body, path string }{
	// Observation and the data types it holds
	{"obs-6", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","dataAbsentReason":{"text":"gone"}}`, "Observation"},
	{"obs-7", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"valueString":"a",
		"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"valueString":"b"}]}`, "Observation"},
	{"obs-3", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"referenceRange":[{"type":{"text":"normal"}}]}`, "Observation.referenceRange[0]"},
	{"sqty-1", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"referenceRange":[{"low":{"value":1,"comparator":"<"}}]}`, "Observation.referenceRange[0].low"},
	{"qty-3", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1,"code":"mg"}}`, "Observation.valueQuantity"},
	{"per-1", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectivePeriod":{"start":"2024-02-01","end":"2024-01-01"}}`, "Observation.effectivePeriod"},
	{"rng-2", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueRange":{"low":{"value":5},"high":{"value":1}}}`, "Observation.valueRange"},
	{"rat-1", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueRatio":{"numerator":{"value":1}}}`, "Observation.valueRatio"},
	{"ele-1", `{"resourceType":"Observation","status":"final","code":{"id":"c1"}}`, "Observation.code"},
	{"ref-1", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#nowhere"}}`, "Observation.subject"},
	// Patient, its backbones and data types
	{"ele-1", `{"resourceType":"Patient","_birthDate":{"id":"b1"}}`, "Patient.birthDate"},
	{"ext-1", `{"resourceType":"Patient","extension":[{"url":"http://example.org/x"}]}`, "Patient.extension[0]"},
	{"ext-1", `{"resourceType":"Patient","extension":[{"url":"http://example.org/x","valueString":"a","extension":[{"url":"y","valueString":"b"}]}]}`, "Patient.extension[0]"},
	{"ext-1", `{"resourceType":"Patient","_gender":{"extension":[{"url":"http://example.org/x"}]}}`, "Patient.gender.extension[0]"},
	{"pat-1", `{"resourceType":"Patient","contact":[{"gender":"female"}]}`, "Patient.contact[0]"},
	{"cpt-2", `{"resourceType":"Patient","telecom":[{"value":"555-0100"}]}`, "Patient.telecom[0]"},
	{"att-1", `{"resourceType":"Patient","photo":[{"data":"aGVsbG8="}]}`, "Patient.photo[0]"},
	{"dom-2", `{"resourceType":"Patient","managingOrganization":{"reference":"#o1"},"contained":[{"resourceType":"Organization","id":"o1","name":"o",
		"contained":[{"resourceType":"Organization","id":"o2","name":"p"}]}]}`, "Patient.contained[0].contained"},
	{"dom-3", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o1","name":"o"}]}`, "Patient"},
	{"dom-4", `{"resourceType":"Patient","managingOrganization":{"reference":"#o1"},"contained":[{"resourceType":"Organization","id":"o1","name":"o","meta":{"versionId":"3"}}]}`, "Patient"},
	{"dom-5", `{"resourceType":"Patient","managingOrganization":{"reference":"#o1"},"contained":[{"resourceType":"Organization","id":"o1","name":"o",
		"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}]}`, "Patient"},
	// Organization
	{"org-1", `{"resourceType":"Organization","active":true}`, "Organization"},
	{"org-2", `{"resourceType":"Organization","name":"o","address":[{"use":"home","city":"Springfield"}]}`, "Organization.address[0]"},
	{"org-3", `{"resourceType":"Organization","name":"o","telecom":[{"system":"phone","value":"1","use":"home"}]}`, "Organization.telecom[0]"},
	// Appointment
	{"app-1", `{"resourceType":"Appointment","status":"proposed","participant":[{"status":"accepted"}]}`, "Appointment.participant[0]"},
	{"app-2", `{"resourceType":"Appointment","status":"proposed","start":"2024-01-01T10:00:00Z","participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"}]}`, "Appointment"},
	{"app-3", `{"resourceType":"Appointment","status":"booked","participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"}]}`, "Appointment"},
	{"app-4", `{"resourceType":"Appointment","status":"proposed","cancelationReason":{"text":"x"},"participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"}]}`, "Appointment"},
	// Bundle
	{"bdl-1", `{"resourceType":"Bundle","type":"collection","total":3}`, "Bundle"},
	{"bdl-2", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001","resource":{"resourceType":"Patient"},"search":{"mode":"match"}}]}`, "Bundle"},
	{"bdl-3", `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001","resource":{"resourceType":"Patient"}}]}`, "Bundle"},
	{"bdl-4", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001","resource":{"resourceType":"Patient"},"response":{"status":"200"}}]}`, "Bundle"},
	{"bdl-5", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001"}]}`, "Bundle.entry[0]"},
	{"bdl-7", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001","resource":{"resourceType":"Patient"}},
		{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001","resource":{"resourceType":"Patient"}}]}`, "Bundle"},
	{"bdl-8", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"http://example.org/fhir/Patient/1/_history/2","resource":{"resourceType":"Patient","id":"1"}}]}`, "Bundle.entry[0]"},
	{"bdl-9", `{"resourceType":"Bundle","type":"document","timestamp":"2024-01-01T00:00:00Z","entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001",
		"resource":{"resourceType":"Composition","status":"final","type":{"text":"x"},"date":"2024-01-01","author":[{"display":"a"}],"title":"t"}}]}`, "Bundle"},
	{"bdl-10", `{"resourceType":"Bundle","type":"document","identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000009"},
		"entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001","resource":{"resourceType":"Composition","status":"final","type":{"text":"x"},"date":"2024-01-01","author":[{"display":"a"}],"title":"t"}}]}`, "Bundle"},
	{"bdl-11", `{"resourceType":"Bundle","type":"document","identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000009"},"timestamp":"2024-01-01T00:00:00Z",
		"entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001","resource":{"resourceType":"Patient"}}]}`, "Bundle"},
	{"bdl-12", `{"resourceType":"Bundle","type":"message","entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001","resource":{"resourceType":"Patient"}}]}`, "Bundle"},
	// an entry's resource is checked as a resource of its own
	{"obs-6", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001",
		"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","dataAbsentReason":{"text":"gone"}}}]}`, "Bundle.entry[0].resource"},
	// Questionnaire and QuestionnaireResponse
	{"que-1", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group"}]}`, "Questionnaire.item[0]"},
	{"que-2", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"string"},{"linkId":"1","type":"string"}]}`, "Questionnaire"},
	{"que-3", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"display","text":"t","code":[{"code":"c"}]}]}`, "Questionnaire.item[0]"},
	{"que-4", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"choice","answerValueSet":"http://example.org/vs","answerOption":[{"valueString":"a"}]}]}`, "Questionnaire.item[0]"},
	{"que-6", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"display","text":"t","required":true}]}`, "Questionnaire.item[0]"},
	{"que-7", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"string"},{"linkId":"2","type":"string","enableWhen":[{"question":"1","operator":"exists","answerString":"x"}]}]}`, "Questionnaire.item[1].enableWhen[0]"},
	{"que-12", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"boolean"},{"linkId":"2","type":"string","enableWhen":[
		{"question":"1","operator":"=","answerBoolean":true},{"question":"1","operator":"exists","answerBoolean":true},{"question":"1","operator":"!=","answerBoolean":false}]}]}`, "Questionnaire.item[1]"},
	{"que-1", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"2","type":"group"}]}]}`, "Questionnaire.item[0].item[0]"},
	{"qrs-1", `{"resourceType":"QuestionnaireResponse","status":"completed","item":[{"linkId":"1","answer":[{"valueString":"a"}],"item":[{"linkId":"2"}]}]}`, "QuestionnaireResponse.item[0]"},
	// Dosage, Timing, Duration (inside MedicationRequest)
	{"tim-1", medRequest(`"timing":{"repeat":{"duration":1}}`), "MedicationRequest.dosageInstruction[0].timing.repeat"},
	{"tim-6", medRequest(`"timing":{"repeat":{"periodMax":2,"periodUnit":"d"}}`), "MedicationRequest.dosageInstruction[0].timing.repeat"},
	{"tim-9", medRequest(`"timing":{"repeat":{"when":["C"],"offset":30}}`), "MedicationRequest.dosageInstruction[0].timing.repeat"},
	{"drt-1", medRequest(`"timing":{"repeat":{"boundsDuration":{"value":1,"system":"http://example.org/units","code":"d"}}}`), "MedicationRequest.dosageInstruction[0].timing.repeat.boundsDuration"},
	{"sqty-1", medRequest(`"doseAndRate":[{"doseQuantity":{"value":1,"comparator":">"}}]`), "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity"},
	// Condition, CarePlan, Consent, Goal, ServiceRequest, Task, ...
	{"age-1", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"onsetAge":{"value":-1,"system":"http://unitsofmeasure.org","code":"a"}}`, "Condition.onsetAge"},
	{"con-4", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"abatementDateTime":"2024-01-01",
		"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]}}`, "Condition"},
	{"con-1", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"stage":[{"type":{"text":"x"}}]}`, "Condition.stage[0]"},
	{"cpl-3", `{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/1"},
		"activity":[{"reference":{"reference":"ServiceRequest/1"},"detail":{"status":"scheduled"}}]}`, "CarePlan.activity[0]"},
	{"ppc-1", `{"resourceType":"Consent","status":"active","scope":{"text":"x"},"category":[{"text":"x"}],"patient":{"reference":"Patient/1"}}`, "Consent"},
	{"gol-1", `{"resourceType":"Goal","lifecycleStatus":"active","description":{"text":"x"},"subject":{"reference":"Patient/1"},"target":[{"detailString":"x"}]}`, "Goal.target[0]"},
	{"prr-1", `{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"orderDetail":[{"text":"x"}]}`, "ServiceRequest"},
	{"inv-1", `{"resourceType":"Task","status":"ready","intent":"order","authoredOn":"2024-02-01","lastModified":"2024-01-01"}`, "Task"},
	{"imm-1", `{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/1"},"occurrenceString":"x",
		"education":[{"publicationDate":"2020-01-01"}]}`, "Immunization.education[0]"},
	{"mad-1", `{"resourceType":"MedicationAdministration","status":"completed","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"},
		"effectiveDateTime":"2024-01-01","dosage":{"text":"x"}}`, "MedicationAdministration.dosage"},
	{"ait-1", `{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/1"}}`, "AllergyIntolerance"},
	{"ait-2", `{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/1"},
		"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},
		"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"entered-in-error"}]}}`, "AllergyIntolerance"},
}

func medRequest(dosage string) string {
	return `{"resourceType":"MedicationRequest","status":"active","intent":"order","medicationCodeableConcept":{"text":"ketamine"},
	"subject":{"reference":"Patient/1"},"dosageInstruction":[{` + dosage + `}]}`
}

// Narrative attacks and breakages (txt-1): each refused at the div.
var narrativeViolations = map[string]string{
	"script":          `<div xmlns="http://www.w3.org/1999/xhtml"><p>hi</p><script>alert(1)</script></div>`,
	"onload":          `<div xmlns="http://www.w3.org/1999/xhtml"><img src="x.png" onload="alert(1)"/></div>`,
	"onclick upper":   `<div xmlns="http://www.w3.org/1999/xhtml"><p OnClick="alert(1)">x</p></div>`,
	"javascript: url": `<div xmlns="http://www.w3.org/1999/xhtml"><a href="javascript:alert(1)">x</a></div>`,
	"spaced js url":   `<div xmlns="http://www.w3.org/1999/xhtml"><a href=" java&#x09;script:alert(1)">x</a></div>`,
	"unbalanced":      `<div xmlns="http://www.w3.org/1999/xhtml"><p>x</div>`,
	"iframe":          `<div xmlns="http://www.w3.org/1999/xhtml"><iframe src="http://evil.example"></iframe>x</div>`,
	"form":            `<div xmlns="http://www.w3.org/1999/xhtml"><form action="http://evil.example"><p>x</p></form></div>`,
	"no namespace":    `<div><p>x</p></div>`,
	"two roots":       `<div xmlns="http://www.w3.org/1999/xhtml">a</div><div xmlns="http://www.w3.org/1999/xhtml">b</div>`,
	"svg":             `<div xmlns="http://www.w3.org/1999/xhtml"><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>x</div>`,
}

func TestInvariantViolations(t *testing.T) {
	if !fhir.InvariantsChecked() {
		t.Fatal("no invariant checker registered")
	}
	keys := map[string]bool{}
	types := map[string]bool{}
	for _, tc := range invariantViolations {
		keys[tc.key] = true
		types[strings.SplitN(tc.path, ".", 2)[0]] = true
		t.Run(tc.key+" "+tc.path, func(t *testing.T) {
			wantRefused(t, tc.body, tc.key, tc.path)
		})
	}
	for name, div := range narrativeViolations {
		keys["txt-1"] = true
		t.Run("txt-1 "+name, func(t *testing.T) {
			body := `{"resourceType":"Patient","text":{"status":"generated","div":` + jsonString(div) + `}}`
			wantRefused(t, body, "txt-1", "Patient.text.div")
		})
	}
	if n := len(invariantViolations) + len(narrativeViolations); n < 40 || len(keys) < 40 {
		t.Errorf("%d violations of %d invariants: the table should hold at least 40", n, len(keys))
	}
	t.Logf("%d violations of %d invariants across %d resource types", len(invariantViolations)+len(narrativeViolations), len(keys), len(types))
}

// wantRefused: body is refused as invalid (400), every error naming key,
// one of them at path with the definition's text.
func wantRefused(t *testing.T, body, key, path string) {
	t.Helper()
	_, _, err := fhir.ParseResource([]byte(body))
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		t.Fatalf("accepted (%v), want %s refused", err, key)
	}
	if fhir.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("status %d, want 400", fhir.StatusOf(err))
	}
	found := false
	for _, is := range fe.Issues {
		if !strings.Contains(is.Diagnostics, key) {
			t.Errorf("an issue besides %s: %v", key, is)
			continue
		}
		if len(is.Expression) == 1 && is.Expression[0] == path {
			found = true
			if is.Code == fhir.IssueInvariant && !strings.HasPrefix(is.Diagnostics, key+": ") || len(is.Diagnostics) < len(key)+10 {
				t.Errorf("diagnostics %q: want the key and the definition's text", is.Diagnostics)
			}
		}
	}
	if !found {
		t.Errorf("no %s issue at %s: %v", key, path, fe.Issues)
	}
}

func jsonString(s string) string { return string(fhir.String(s).Encode()) }

// Valid resources that exercise the same invariants' other side.
var invariantHolds = []string{
	`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
		"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}],
		"referenceRange":[{"low":{"value":1}},{"text":"normal"}],"effectivePeriod":{"start":"2024-01-01","end":"2024-01-01T10:00:00Z"}}`,
	`{"resourceType":"Observation","status":"final","code":{"text":"x"},"dataAbsentReason":{"text":"gone"}}`,
	`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueRange":{"low":{"value":1},"high":{"value":1}}}`,
	`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueRatio":{"numerator":{"value":1},"denominator":{"value":2}}}`,
	`{"resourceType":"Patient","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]},
		"managingOrganization":{"reference":"#o1"},"contained":[{"resourceType":"Organization","id":"o1","name":"o"}],
		"contact":[{"name":{"family":"F"}}],"telecom":[{"system":"phone","value":"555"}],"photo":[{"contentType":"image/png","data":"aGVsbG8="}],
		"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Ann <b>F</b> <a href=\"https://example.org/p\">link</a></p><img src=\"#p\" alt=\"\"/></div>"}}`,
	`{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">   </div>"}}`,
	`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:9d3f8e1a-0000-4000-8000-000000000001","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`,
	`{"resourceType":"Bundle","type":"searchset","total":1,"entry":[{"fullUrl":"http://example.org/fhir/Patient/1","resource":{"resourceType":"Patient","id":"1"},"search":{"mode":"match"}}]}`,
	`{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"boolean"},{"linkId":"2","type":"group","enableWhen":[{"question":"1","operator":"exists","answerBoolean":true}],
		"item":[{"linkId":"3","type":"display","text":"t"}]}]}`,
	medRequest(`"timing":{"repeat":{"boundsDuration":{"value":1,"system":"http://unitsofmeasure.org","code":"d"},"duration":1,"durationUnit":"h","when":["MORN"],"offset":30}}`),
	`{"resourceType":"Condition","subject":{"reference":"Patient/1"},"onsetAge":{"value":40,"system":"http://unitsofmeasure.org","code":"a"},"abatementString":"later",
		"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"resolved"}]}}`,
}

func TestInvariantsHold(t *testing.T) {
	for _, body := range invariantHolds {
		if _, _, err := fhir.ParseResource([]byte(body)); err != nil {
			t.Errorf("%v\n%s", err, body)
		}
	}
}

// Warnings are not refused: Validate leaves them out, Profiles.Validate
// reports them.
func TestInvariantWarnings(t *testing.T) {
	cases := map[string]string{
		"dom-6": `{"resourceType":"Patient"}`,
		"txt-2": `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"> </div>"}}`,
		"con-3": `{"resourceType":"Condition","subject":{"reference":"Patient/1"},
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}]}]}`,
		"que-0": `{"resourceType":"Questionnaire","status":"draft","name":"not an identifier"}`,
	}
	for key, body := range cases {
		v, _, err := fhir.ParseResource([]byte(body))
		if err != nil {
			t.Errorf("%s: refused: %v", key, err)
			continue
		}
		var none *fhir.Profiles
		found := false
		for _, is := range none.Validate(v) {
			if strings.HasPrefix(is.Diagnostics, key+": ") && is.Severity == fhir.SeverityWarning && is.Code == fhir.IssueInvariant {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no warning in %v", key, none.Validate(v))
		}
	}
}
