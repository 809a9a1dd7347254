package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// IssueType is a code from the FHIR issue-type value set
// (http://hl7.org/fhir/ValueSet/issue-type).
type IssueType string

// The issue types kapbridge uses.
const (
	IssueInvalid         IssueType = "invalid"
	IssueStructure       IssueType = "structure"
	IssueRequired        IssueType = "required"
	IssueValue           IssueType = "value"
	IssueInvariant       IssueType = "invariant"
	IssueSecurity        IssueType = "security"
	IssueLogin           IssueType = "login"
	IssueForbidden       IssueType = "forbidden"
	IssueProcessing      IssueType = "processing"
	IssueNotSupported    IssueType = "not-supported"
	IssueDuplicate       IssueType = "duplicate"
	IssueMultipleMatches IssueType = "multiple-matches"
	IssueNotFound        IssueType = "not-found"
	IssueDeleted         IssueType = "deleted"
	IssueTooLong         IssueType = "too-long"
	IssueCodeInvalid     IssueType = "code-invalid"
	IssueBusinessRule    IssueType = "business-rule"
	IssueConflict        IssueType = "conflict"
	IssueTransient       IssueType = "transient"
	IssueException       IssueType = "exception"
	IssueTooCostly       IssueType = "too-costly"
	IssueInformational   IssueType = "informational"
)

// Severity is an OperationOutcome issue severity.
type Severity string

// The four severities of http://hl7.org/fhir/ValueSet/issue-severity.
const (
	SeverityFatal       Severity = "fatal"
	SeverityError       Severity = "error"
	SeverityWarning     Severity = "warning"
	SeverityInformation Severity = "information"
)

// Issue is one problem found: it becomes one OperationOutcome.issue.
type Issue struct {
	Severity    Severity
	Code        IssueType
	Diagnostics string
	// Expression holds FHIRPath-style locations such as
	// "Observation.component[1].code".
	Expression []string
	// Omitted is set only on the issue that closes a capped list (see
	// CapIssues): how many issues were found and not listed.
	Omitted int
}

// DefaultMaxIssues is how many issues an OperationOutcome lists by
// default (limit max-issues): enough to fix a resource in one round, while
// a body of a million bad values cannot make a million-issue answer.
const DefaultMaxIssues = 100

// CapIssues returns issues shortened to at most max entries (max <= 0:
// DefaultMaxIssues): when there are more, the first max-1 and a last,
// informational issue saying how many more were found and not listed.
// Lists capped before (by the validator, or entries of a transaction)
// are counted right: their closing issues are folded into the new one.
func CapIssues(issues []Issue, max int) []Issue {
	if max <= 0 {
		max = DefaultMaxIssues
	}
	omitted, listed := 0, 0
	for _, is := range issues {
		if is.Omitted > 0 {
			omitted += is.Omitted
		} else {
			listed++
		}
	}
	if omitted == 0 && listed <= max {
		return issues
	}
	keep := min(listed, max-1)
	omitted += listed - keep
	out := make([]Issue, 0, keep+1)
	for _, is := range issues {
		if len(out) == keep {
			break
		}
		if is.Omitted == 0 {
			out = append(out, is)
		}
	}
	return append(out, Issue{Severity: SeverityInformation, Code: IssueInformational, Omitted: omitted,
		Diagnostics: fmt.Sprintf("%d more issues were found and are not listed: an OperationOutcome lists at most %s",
			omitted, LimitText("max-issues", int64(max)))})
}

// Error is the one error type of kapbridge's FHIR layer. Its Code is a FHIR
// issue type; StatusOf maps it to an HTTP status. Clients see Issues; logs
// may also see Err, the underlying cause, which never reaches a client.
type Error struct {
	Code   IssueType
	Issues []Issue
	// Status overrides the table in StatusOf where one issue type maps to
	// several HTTP statuses (for example a precondition failure, 412, and a
	// version conflict, 409, are both "conflict").
	Status int
	Err    error
}

// Errorf builds an Error with a single error-severity issue.
func Errorf(code IssueType, expression string, format string, args ...any) *Error {
	is := Issue{Severity: SeverityError, Code: code, Diagnostics: fmt.Sprintf(format, args...)}
	if expression != "" {
		is.Expression = []string{expression}
	}
	return &Error{Code: code, Issues: []Issue{is}}
}

// WithStatus sets the HTTP status and returns e, for chaining.
func (e *Error) WithStatus(status int) *Error { e.Status = status; return e }

// Wrap records cause as the underlying error and returns e, for chaining.
func (e *Error) Wrap(cause error) *Error { e.Err = cause; return e }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	for i, is := range e.Issues {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if len(is.Expression) > 0 {
			b.WriteString(strings.Join(is.Expression, ","))
			b.WriteString(": ")
		}
		b.WriteString(is.Diagnostics)
		if i == 4 && len(e.Issues) > 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Issues)-5)
			break
		}
	}
	if e.Err != nil {
		b.WriteString(" (cause: ")
		b.WriteString(e.Err.Error())
		b.WriteString(")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// statusByCode is the one table from issue type to HTTP status.
var statusByCode = map[IssueType]int{
	IssueInvalid:         http.StatusBadRequest,
	IssueStructure:       http.StatusBadRequest,
	IssueRequired:        http.StatusBadRequest,
	IssueValue:           http.StatusBadRequest,
	IssueInvariant:       http.StatusBadRequest,
	IssueCodeInvalid:     http.StatusBadRequest,
	IssueTooLong:         http.StatusRequestEntityTooLarge,
	IssueSecurity:        http.StatusForbidden,
	IssueProcessing:      http.StatusUnprocessableEntity,
	IssueBusinessRule:    http.StatusUnprocessableEntity,
	IssueNotSupported:    http.StatusBadRequest,
	IssueDuplicate:       http.StatusConflict,
	IssueConflict:        http.StatusConflict,
	IssueMultipleMatches: http.StatusPreconditionFailed,
	IssueNotFound:        http.StatusNotFound,
	IssueDeleted:         http.StatusGone,
	IssueTransient:       http.StatusServiceUnavailable,
	IssueTooCostly:       http.StatusForbidden,
	IssueException:       http.StatusInternalServerError,
}

// StatusOf returns the HTTP status for err: the Error's own Status if set,
// else the table entry for its code; 500 for any other error.
func StatusOf(err error) int {
	var fe *Error
	if !errors.As(err, &fe) {
		return http.StatusInternalServerError
	}
	if fe.Status != 0 {
		return fe.Status
	}
	if s, ok := statusByCode[fe.Code]; ok {
		return s
	}
	return http.StatusBadRequest
}

// AsError returns err as an *Error. The store's sentinels become conflict
// (409) and not-found (404); any other error becomes an opaque "exception"
// whose diagnostics reveal nothing of the cause.
func AsError(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	switch {
	case errors.Is(err, ErrVersionConflict):
		return Errorf(IssueConflict, "", "the resource was changed by concurrent writers faster than this write could retry; send it again").Wrap(err)
	case errors.Is(err, ErrNotFound):
		return Errorf(IssueNotFound, "", "not found").Wrap(err)
	}
	return Errorf(IssueException, "", "internal error").Wrap(err)
}

// OperationOutcome renders issues as an OperationOutcome resource (JSON),
// at most DefaultMaxIssues of them (CapIssues).
func OperationOutcome(issues []Issue) []byte {
	return OperationOutcomeMax(issues, DefaultMaxIssues)
}

// OperationOutcomeMax renders issues as an OperationOutcome resource
// (JSON), at most max of them (CapIssues).
func OperationOutcomeMax(issues []Issue, max int) []byte {
	issues = CapIssues(issues, max)
	type ooIssue struct {
		Severity    Severity  `json:"severity"`
		Code        IssueType `json:"code"`
		Diagnostics string    `json:"diagnostics,omitempty"`
		Expression  []string  `json:"expression,omitempty"`
	}
	out := struct {
		ResourceType string    `json:"resourceType"`
		Issue        []ooIssue `json:"issue"`
	}{ResourceType: "OperationOutcome"}
	for _, is := range issues {
		out.Issue = append(out.Issue, ooIssue{is.Severity, is.Code, is.Diagnostics, is.Expression})
	}
	if len(out.Issue) == 0 {
		out.Issue = []ooIssue{{Severity: SeverityInformation, Code: IssueInformational, Diagnostics: "ok"}}
	}
	b, _ := json.Marshal(out)
	return b
}

// Sentinel errors of the Store. Backends wrap them; callers test with
// errors.Is.
var (
	// ErrNotFound: no version of the resource (or of that version) exists.
	ErrNotFound = errors.New("resource not found")
	// ErrVersionConflict: a write lost a race for the next version number.
	// Store.Update retries the whole transaction when it sees it.
	ErrVersionConflict = errors.New("version conflict")
)
