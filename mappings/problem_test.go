package mappings

import (
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// TestProblemText: the text forms the practice API, the rejects file and
// stored reasons have always shown, now of one type.
func TestProblemText(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{Code: "vitals.range.systolic", Severity: SeverityError, Field: "vitals.systolic", Message: "300 is out"}, "vitals.range.systolic vitals.systolic: 300 is out"},
		{Problem{Code: "course.dosing_count", Severity: SeverityWarning, Message: "7 planned"}, "course.dosing_count: 7 planned"},
		{Problem{Code: CodeInvalidRecord, Severity: SeverityError, Field: "birth_date", Message: "not a date"}, "birth_date: not a date"},
		{Problem{Code: CodeInvalidRecord, Severity: SeverityError, Message: "invalid JSON"}, "invalid JSON"},
		{Problem{Code: CodeNotCarried, Severity: SeverityWarning, Field: "client.sex", Message: "not carried"}, "client.sex: not carried"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.p, got, tc.want)
		}
	}
}

// TestProblemIssue: a problem on a FHIR route is an OperationOutcome
// issue saying where it is.
func TestProblemIssue(t *testing.T) {
	p := Problem{Code: CodeInvalidRecord, Severity: SeverityError, Record: Ref{KindClient, "c-2"}, Field: "birth_date", Line: 4, Message: "not a date"}
	is := p.Issue()
	if is.Severity != fhir.SeverityError || is.Code != fhir.IssueInvalid || is.Diagnostics != `line 4, client "c-2": birth_date: not a date` || len(is.Expression) != 0 {
		t.Errorf("%+v", is)
	}
	w := Problem{Code: "vitals.bp_rise", Severity: SeverityWarning, Field: "vitals", Message: "high"}.Issue()
	if w.Severity != fhir.SeverityWarning || w.Code != fhir.IssueBusinessRule || w.Diagnostics != "vitals.bp_rise vitals: high" {
		t.Errorf("%+v", w)
	}
	// An alert's record was accepted: a warning issue, not an error.
	a := Problem{Code: "vitals.spo2", Severity: SeverityAlert, Field: "vitals.spo2", Message: "85"}.Issue()
	if a.Severity != fhir.SeverityWarning || a.Code != fhir.IssueBusinessRule {
		t.Errorf("%+v", a)
	}
}

// TestProblemsSayWhatAndWhere: every problem Decode, Check and ToFHIR
// report has a code, a severity and its record (where the record is
// known).
func TestProblemsSayWhatAndWhere(t *testing.T) {
	check := func(src string, ps []Problem, rec Ref) {
		t.Helper()
		for _, p := range ps {
			if p.Code == "" || (p.Severity != SeverityError && p.Severity != SeverityWarning) || p.Record != rec {
				t.Errorf("%s: %+v (record %v)", src, p, rec)
			}
		}
	}
	_, err := Decode([]byte(`{"kind":"client","id":"c","name":{"family":"X"},"birth_date":"x"}`))
	re := err.(*RecordError)
	check("Decode", re.Problems, Ref{KindClient, "c"})
	for _, path := range recordFiles(t) {
		recs := loadRecords(t, path)
		b := NewBook()
		for _, r := range recs {
			b.Add(r)
		}
		m := testMapper()
		for _, r := range recs {
			h := r.RecordHeader()
			check("Check", Check(b, r, CheckConfig{}), Ref{h.Kind, h.ID})
			if _, warns, err := m.ToFHIR(b, r); err == nil {
				check("ToFHIR", warns, Ref{h.Kind, h.ID})
			}
		}
	}
}
