package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir/fhirtest"
)

// TestServeIG: serve -ig loads US Core 3.1.0 and enforces its profiles on
// writes that claim them; without it a claim of a profile the binary does
// not embed (us-core-observation-lab) is only a warning, while the
// published profiles it embeds whole (us-core-patient, the R4 vital
// signs: mappings/ig) are enforced, slices and invariants included; a
// guide that does not load stops the start.
func TestServeIG(t *testing.T) {
	usCore := fhirtest.SharedDir(t, "fhir-r4/us-core-3.1.0")
	patient := func(name string) string {
		return `{"resourceType":"Patient","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
		"identifier":[{"system":"http://hospital.example.org","value":"1"}],"name":[` + name + `],"gender":"female"}`
	}
	lab := func(category string) string {
		return `{"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"]},"status":"final",
		"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"` + category + `"}]}],
		"code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-01T10:00:00Z","valueString":"high"}`
	}
	bp := func(diastolic string) string {
		return `{"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/bp"]},"status":"final",
		"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
		"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-01T10:00:00Z",
		"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
		{"code":{"coding":[{"system":"http://loinc.org","code":"` + diastolic + `"}]},"valueQuantity":{"value":80,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`
	}
	post := func(base, body string) (int, string) {
		typ := "Patient"
		if strings.Contains(body, `"Observation"`) {
			typ = "Observation"
		}
		resp, err := http.Post(base+"/"+typ, "application/fhir+json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	with := startServe(t, filepath.Join(t.TempDir(), "ig.db"), []string{"-ig", usCore}, nil)
	if code, body := post(with, patient(`{"text":"Amy Shaw"}`)); code != http.StatusUnprocessableEntity || !strings.Contains(body, "us-core-8") {
		t.Errorf("a name without family or given, with -ig: %d %s", code, body)
	}
	if code, body := post(with, patient(`{"family":"Shaw","given":["Amy"]}`)); code != http.StatusCreated {
		t.Errorf("a valid US Core Patient: %d %s", code, body)
	}
	if code, body := post(with, lab("vital-signs")); code != http.StatusUnprocessableEntity || !strings.Contains(body, "slice Laboratory") {
		t.Errorf("a lab Observation without the laboratory category, with -ig: %d %s", code, body)
	}
	without := startServe(t, filepath.Join(t.TempDir(), "plain.db"), nil, nil)
	if code, body := post(without, lab("vital-signs")); code != http.StatusCreated {
		t.Errorf("us-core-observation-lab without -ig (not known: a warning): %d %s", code, body)
	}
	if code, body := post(without, patient(`{"text":"Amy Shaw"}`)); code != http.StatusUnprocessableEntity || !strings.Contains(body, "us-core-8") {
		t.Errorf("us-core-patient's invariant without -ig (embedded whole): %d %s", code, body)
	}
	if code, body := post(without, bp("8462-4")); code != http.StatusCreated {
		t.Errorf("a blood pressure meeting bp without -ig: %d %s", code, body)
	}
	if code, body := post(without, bp("8478-0")); code != http.StatusUnprocessableEntity || !strings.Contains(body, "slice DiastolicBP") {
		t.Errorf("a blood pressure without its diastolic component, without -ig: %d %s", code, body)
	}
	// An extensible binding (us-core-condition's category): a category
	// outside the value set is written, and the outcome a client asks for
	// lists the warning.
	condition := func(category string) string {
		return `{"resourceType":"Condition","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition"]},
		"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
		"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}]},
		"category":[{"coding":[{"system":"` + category + `"}]}],
		"code":{"coding":[{"system":"http://snomed.info/sct","code":"35489007"}]},"subject":{"reference":"Patient/1"}}`
	}
	const extensibleWarning = `"severity":"warning","code":"code-invalid","diagnostics":"no coding is in the extensible value set http://hl7.org/fhir/us/core/ValueSet/us-core-condition-category`
	for _, tc := range []struct {
		category string
		warned   bool
	}{
		{`http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item`, false},
		{`http://kapbridge.org/fhir/CodeSystem/kap-condition","code":"finding`, true},
	} {
		req, err := http.NewRequest(http.MethodPost, without+"/Condition", strings.NewReader(condition(tc.category)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Prefer", "return=OperationOutcome")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		if resp.StatusCode != http.StatusCreated || !strings.Contains(body, `"resourceType":"OperationOutcome"`) || strings.Contains(body, extensibleWarning) != tc.warned ||
			strings.Contains(body, `"severity":"error"`) {
			t.Errorf("a us-core-condition with category %s, Prefer: return=OperationOutcome: want 201 and the extensible-binding warning listed %v, got %d %s", tc.category, tc.warned, resp.StatusCode, body)
		}
	}
	err := run(context.Background(), []string{"serve", "-listen", "127.0.0.1:0", "-ig", filepath.Join(t.TempDir(), "missing")},
		func(k string) string {
			if k == "KAPBRIDGE_STORE" {
				return filepath.Join(t.TempDir(), "x.db")
			}
			return ""
		}, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-ig") {
		t.Errorf("a missing IG: %v", err)
	}
}
