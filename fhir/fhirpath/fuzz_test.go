package fhirpath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// seedExpressions are the expressions of the official suite (when it is
// beside the repository) and of this package's tables.
func seedExpressions(f *testing.F) []string {
	var out []string
	for _, e := range []string{
		"dataAbsentReason.empty() or value.empty()",
		"hasValue() or (children().count() > id.count())",
		"name.where(given = 'x').exists()", "2 + 2 /", "'abc", "@2015-13-01",
		"text.`div`.htmlChecks()", "component.value.ofType(Quantity).value > 15.9 'kPa'",
		"(1 | 2 | 3).aggregate($this + $total, 0)", "%`vs-administrative-gender`",
		"@2014-01-01T08.highBoundary(17)", "1.587.lowBoundary(2)", "'a,b'.split(',').join('-')",
		"Patient.name.sort(-family, -given.first())", "subject.resolve().name",
	} {
		out = append(out, e)
	}
	dir := filepath.Join("..", "..", "..", "shared", "fhirpath-tests")
	if _, err := os.Stat(filepath.Join(dir, "tests-fhir-r4.xml")); err == nil {
		_, suite := loadSuite(f)
		for _, g := range suite.Groups {
			for _, t := range g.Tests {
				out = append(out, t.Expr.Text)
			}
		}
	}
	return out
}

// FuzzParse: no text makes the parser panic, and every refusal is an
// *Error placed inside the text.
func FuzzParse(f *testing.F) {
	for _, e := range seedExpressions(f) {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, src string) {
		// Not through the cache, which would keep every fuzzed text.
		_, err := compile(src, Options{Strict: true, ContextType: "Observation"})
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%q: error of type %T: %v", src, err, err)
		}
		if e.Pos < 0 || e.Pos > len(src) || e.Line < 1 || e.Col < 1 {
			t.Fatalf("%q: error outside the text: %+v", src, e)
		}
		if e.Kind != Syntax && e.Kind != Semantic {
			t.Fatalf("%q: compile error of kind %s", src, e.Kind)
		}
	})
}

// FuzzEvaluate: no expression makes evaluation over a sample Observation
// and Patient panic; failures are *Error.
func FuzzEvaluate(f *testing.F) {
	for _, e := range seedExpressions(f) {
		f.Add(e)
	}
	obs := mustParse(f, observationJSON)
	pat := mustParse(f, patientJSON)
	f.Fuzz(func(t *testing.T, src string) {
		e, err := compile(src, Options{})
		if err != nil {
			return // FuzzParse's business
		}
		for _, res := range []*fhir.Value{obs, pat} {
			_, err := e.Evaluate(res, nil)
			if err != nil {
				var fe *Error
				if !errors.As(err, &fe) {
					t.Fatalf("%q: error of type %T: %v", src, err, err)
				}
			}
		}
	})
}
