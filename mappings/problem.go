package mappings

import (
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// Problem is one thing wrong with practice input, or worth someone's
// look: a record that does not decode, a finding of Check, something a
// mapping could not carry, a resource an EHR sent that no record holds.
// It is the one shape in which the KAP side says so, whoever reports it:
// the practice API renders problems in its JSON, the import in its
// rejects file, FHIR routes as OperationOutcome issues (Issue).
type Problem struct {
	// Code says what kind of problem it is, stably (callers and tests key
	// on it): a code of Check (CheckCodes, CHECKS.md) or one of the Code
	// constants below.
	Code string
	// Severity is SeverityError (the input cannot be used as it is),
	// SeverityAlert (it happened and broke a safety rule: kept, mapped and
	// flagged) or SeverityWarning (it can be used, but someone should look).
	Severity string
	// Record is the record the problem is in, where known (the zero Ref
	// for a text that is not a record at all).
	Record Ref
	// Field is the JSON path of the field at fault in the record
	// ("dose.mg", "instruments[2].items"); "" for the record as a whole.
	Field string
	// Line is the 1-based line of the input where the record starts; 0
	// where the input has no lines or it is not known.
	Line    int
	Message string
}

// Severities of a Problem.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
	// SeverityAlert: something that happened (a dose given, a vital sign
	// measured) broke a safety rule. The record is kept and mapped, never
	// held back, and the finding reaches the prescriber as a Flag of high
	// priority (Mapper.FindingFlags); callers list it beside warnings.
	SeverityAlert = "alert"
)

// Codes of the problems found outside Check (Check's are CheckCodes).
const (
	// CodeInvalidRecord: the text is not a valid record (syntax, unknown
	// or missing fields, formats, enums, size, encoding), found by Decode
	// or the readers before it.
	CodeInvalidRecord = "record.invalid"
	// CodeNotCarried: a mapping could not carry a value, or carried it
	// with a default the caller should know about.
	CodeNotCarried = "mapping.not_carried"
	// CodeMappingFailed: the record does not map to FHIR (ToFHIR's error).
	CodeMappingFailed = "mapping.failed"
	// CodeInvalidResource: a resource the mapping made fails validation
	// (base R4 or a claimed profile): a gateway bug, reported on the
	// record so it is seen.
	CodeInvalidResource = "mapping.invalid_resource"
	// CodeKept: a resource an EHR sent carries nothing a record can hold;
	// FromFHIR keeps it as FHIR.
	CodeKept = "fromfhir.kept"
	// CodeChangedByEHR: FromFHIR changed a record's field from an EHR's
	// resource (a course's status from its CarePlan).
	CodeChangedByEHR = "fromfhir.changed"
)

// checkCodes is CheckCodes as a set.
var checkCodes = func() map[string]bool {
	m := make(map[string]bool, len(CheckCodes))
	for _, c := range CheckCodes {
		m[c] = true
	}
	return m
}()

// String is the problem as one line of text, as the practice API's
// errors and warnings, the import's rejects file and a rejected record's
// stored reasons have always shown it: a check's code before the field
// ("vitals.range.systolic vitals.systolic: 250 is out of ..."), any
// other problem's field and message ("birth_date: ... is not a date"), or
// the message alone.
func (p Problem) String() string {
	var b strings.Builder
	if checkCodes[p.Code] {
		b.WriteString(p.Code)
		if p.Field != "" {
			b.WriteString(" ")
			b.WriteString(p.Field)
		}
		b.WriteString(": ")
	} else if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// issueTypes maps the codes found outside Check to FHIR issue types; a
// check's finding is a business rule.
var issueTypes = map[string]fhir.IssueType{
	CodeInvalidRecord:   fhir.IssueInvalid,
	CodeNotCarried:      fhir.IssueInformational,
	CodeMappingFailed:   fhir.IssueProcessing,
	CodeInvalidResource: fhir.IssueException,
	CodeKept:            fhir.IssueInformational,
	CodeChangedByEHR:    fhir.IssueInformational,
}

// Issue is the problem as an OperationOutcome issue, for FHIR routes.
// Diagnostics carries where it is (line, record) and String; Expression
// stays empty, since a record's field is not a FHIRPath into a resource.
func (p Problem) Issue() fhir.Issue {
	is := fhir.Issue{Severity: fhir.SeverityError, Code: fhir.IssueBusinessRule}
	if p.Severity == SeverityWarning || p.Severity == SeverityAlert {
		// An alert's record was accepted (kept and flagged): an error
		// issue would tell a client the request failed.
		is.Severity = fhir.SeverityWarning
	}
	if t, ok := issueTypes[p.Code]; ok {
		is.Code = t
	}
	var where []string
	if p.Line > 0 {
		where = append(where, "line "+strconv.Itoa(p.Line))
	}
	if p.Record.Kind != "" || p.Record.ID != "" {
		where = append(where, strings.TrimSpace(string(p.Record.Kind)+" "+strconv.Quote(p.Record.ID)))
	}
	is.Diagnostics = p.String()
	if len(where) > 0 {
		is.Diagnostics = strings.Join(where, ", ") + ": " + is.Diagnostics
	}
	return is
}

// Texts renders problems with String, in order (nil for none).
func Texts(ps []Problem) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
