package fhir_test

import (
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// Valid R4 that a too-strict validator would refuse.
func TestValidateAccepts(t *testing.T) {
	big := strings.Repeat("QUJD", 3<<18) // 3 MB of base64: over the string limit, allowed
	tests := map[string]string{
		"aligned primitive extensions":       `{"resourceType":"Patient","name":[{"given":["Ann",null],"_given":[null,{"extension":[{"url":"http://example.org/x","valueString":"y"}]}]}]}`,
		"extension only, no value":           `{"resourceType":"Patient","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}}`,
		"required element as extension only": `{"resourceType":"Observation","_status":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]},"code":{"text":"x"}}`,
		"references in every form": `{"resourceType":"Observation","status":"final","code":{"text":"x"},` +
			`"subject":{"reference":"Patient/p1/_history/2"},"performer":[{"reference":"http://example.org/fhir/Practitioner/1"},` +
			`{"reference":"urn:uuid:8f5c1b2e-6a4d-4f7e-9c3b-2d1e0f9a8b7c"},{"reference":"Organization?identifier=x|1"},{"reference":"#pr1"},{"display":"Dr X"}],` +
			`"contained":[{"resourceType":"Practitioner","id":"pr1"}]}`,
		"decimal forms":   `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":-1.50e+3}}`,
		"integer limits":  `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueInteger":-2147483648}`,
		"partial dates":   `{"resourceType":"Patient","birthDate":"1970","deceasedDateTime":"2020-02"}`,
		"leap day":        `{"resourceType":"Patient","birthDate":"2000-02-29","deceasedDateTime":"2024-02-29T10:00:00Z"}`,
		"leap second":     `{"resourceType":"Observation","status":"final","code":{"text":"x"},"issued":"2016-12-31T23:59:60.123+14:00"}`,
		"base64 over 1MB": `{"resourceType":"Binary","contentType":"application/octet-stream","data":"` + big + `"}`,
		"nested resources": `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":` +
			`{"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Patient","active":true}}]},` +
			`"request":{"method":"POST","url":"Parameters"}}]}`,
		"nested questionnaire items": `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"group","item":[{"linkId":"1.1.1","type":"string"}]}]}]}`,
		"narrative":                  `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}`,
	}
	for name, body := range tests {
		if _, _, err := fhir.ParseResource([]byte(body)); err != nil {
			t.Errorf("%s: %v", name, short(err))
		}
	}
}

// Validate reports every issue, not only the first.
func TestValidateAllIssues(t *testing.T) {
	v, err := fhir.ParseJSON([]byte(`{"resourceType":"Observation","foo":1,"valueInteger":1.5,"subject":{"reference":"Medication/1"},"_status":"x"}`), fhir.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	issues := fhir.Validate(v)
	for _, want := range []string{"Observation.foo", "Observation.valueInteger", "Observation.subject", "Observation._status", "Observation.code"} {
		if !hasExpression(issues, want) {
			t.Errorf("no issue at %s in %v", want, issues)
		}
	}
	if hasExpression(issues, "Observation.status") {
		t.Errorf("status reported missing although _status is present: %v", issues)
	}
	if fhir.Validate(fhir.String("x")) == nil || fhir.Validate(nil) == nil {
		t.Error("non-objects validate")
	}
}

// Strings over 1 MB are refused by type even when the parser was given a
// larger string limit; base64Binary is exempt.
func TestValidateStringLimit(t *testing.T) {
	long := strings.Repeat("a", 1<<20+1)
	lim := fhir.Limits{MaxStringBytes: 4 << 20}
	v, err := fhir.ParseJSON([]byte(`{"resourceType":"Patient","name":[{"family":"`+long+`"}]}`), lim)
	if err != nil {
		t.Fatal(err)
	}
	issues := fhir.Validate(v)
	if len(issues) != 1 || issues[0].Code != fhir.IssueTooLong || !hasExpression(issues, "Patient.name[0].family") {
		t.Errorf("got %v", issues)
	}
}
