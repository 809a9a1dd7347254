package fhir_test

import (
	"errors"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirtest"
)

// TestInvalidResources runs the shared table the server tests POST: each
// body must be refused by ParseResource with the status and expression
// given, except the wrong-endpoint case, which only the server can see.
func TestInvalidResources(t *testing.T) {
	cases := fhirtest.InvalidResources()
	if len(cases) < 45 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		_, rt, err := fhir.ParseResource(c.Body)
		if err == nil {
			if rt == c.Type {
				t.Errorf("%s: accepted", c.Name)
			}
			continue
		}
		var fe *fhir.Error
		if !errors.As(err, &fe) {
			t.Errorf("%s: not an *Error: %v", c.Name, err)
			continue
		}
		if got := fhir.StatusOf(err); got != c.Status {
			t.Errorf("%s: status %d, want %d (%v)", c.Name, got, c.Status, short(err))
		}
		if c.Expression != "" && !hasExpression(fe.Issues, c.Expression) {
			t.Errorf("%s: no issue at %s: %v", c.Name, c.Expression, short(err))
		}
		for _, is := range fe.Issues {
			if is.Severity != fhir.SeverityError || is.Code == "" || is.Diagnostics == "" {
				t.Errorf("%s: incomplete issue %+v", c.Name, is)
			}
		}
	}
}

func short(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
