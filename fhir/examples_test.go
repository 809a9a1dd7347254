package fhir_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// The official examples that are not valid R4, with the element that makes
// them so. Every other official example must validate clean.
var invalidExamples = map[string]string{
	"Questionnaire-qs1.json":           "Questionnaire.item[0].item[0].linkId",
	"Observation-clinical-gender.json": "Observation.performer[0]",
	"MedicationRequest-medrx0301.json": "MedicationRequest.dispenseRequest.performer",
}

func TestOfficialExamples(t *testing.T) {
	files, err := filepath.Glob("../testdata/fhir-r4-examples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, rt, err := fhir.ParseResource(data)
		want, bad := invalidExamples[name]
		if !bad {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if !strings.HasPrefix(name, rt+"-") {
				t.Errorf("%s: resourceType %q", name, rt)
			}
			continue
		}
		var fe *fhir.Error
		if !errors.As(err, &fe) {
			t.Errorf("%s: want an *Error naming %s, got %v", name, want, err)
			continue
		}
		if !hasExpression(fe.Issues, want) {
			t.Errorf("%s: no issue at %s: %v", name, want, fe)
		}
	}
}

func hasExpression(issues []fhir.Issue, want string) bool {
	for _, is := range issues {
		for _, e := range is.Expression {
			if e == want {
				return true
			}
		}
	}
	return false
}
