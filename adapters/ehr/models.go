package ehr

import (
	"encoding/json"
	"fmt"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Outcome is an OperationOutcome an EHR sent back. Issues are always
// filled; Model only when golang-fhir-models could read the document.
// The models refuse a whole document over one code they do not know (an
// EHR's own issue type, say), so such a document is read leniently
// instead: every issue's strings as they are, Model nil, and Strict saying
// why the models refused it. Either way nothing of what the EHR said about
// the failure is lost; the raw body stays with the *Error too.
type Outcome struct {
	Issues []OutcomeIssue
	Model  *models.OperationOutcome
	Strict error
}

// OutcomeIssue is one issue, as strings.
type OutcomeIssue struct {
	Severity    string
	Code        string
	Diagnostics string
	// Details is details.text, else its codings' display or code.
	Details string
	// Expression is expression, else the deprecated location.
	Expression []string
}

// ParseOperationOutcome reads an OperationOutcome. It fails only when
// data is not a JSON object whose resourceType is OperationOutcome with an
// issue array (or no issue at all).
func ParseOperationOutcome(data []byte) (*Outcome, error) {
	if err := checkResourceType(data, "OperationOutcome"); err != nil {
		return nil, err
	}
	m, err := models.UnmarshalOperationOutcome(data)
	if err == nil {
		o := &Outcome{Model: &m}
		for _, is := range m.Issue {
			oi := OutcomeIssue{Severity: is.Severity.Code(), Code: is.Code.Code(), Expression: is.Expression}
			if is.Diagnostics != nil {
				oi.Diagnostics = *is.Diagnostics
			}
			if len(oi.Expression) == 0 {
				oi.Expression = is.Location
			}
			if d := is.Details; d != nil {
				oi.Details = conceptText(d.Text, len(d.Coding), func(i int) (*string, *string) { return d.Coding[i].Display, d.Coding[i].Code })
			}
			o.Issues = append(o.Issues, oi)
		}
		return o, nil
	}
	return lenientOutcome(data, err)
}

func lenientOutcome(data []byte, strict error) (*Outcome, error) {
	var doc struct {
		Issue json.RawMessage `json:"issue"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("ehr: OperationOutcome: %w", err)
	}
	var issues []json.RawMessage
	if len(doc.Issue) > 0 && string(doc.Issue) != "null" {
		if err := json.Unmarshal(doc.Issue, &issues); err != nil {
			return nil, fmt.Errorf("ehr: OperationOutcome.issue is not an array")
		}
	}
	o := &Outcome{Strict: strict}
	for _, raw := range issues {
		var is struct {
			Severity, Code, Diagnostics json.RawMessage
			Details                     json.RawMessage
			Expression, Location        json.RawMessage
		}
		if json.Unmarshal(raw, &is) != nil {
			continue // not an object: nothing to report from it
		}
		oi := OutcomeIssue{Severity: asString(is.Severity), Code: asString(is.Code), Diagnostics: asString(is.Diagnostics)}
		_ = json.Unmarshal(is.Expression, &oi.Expression)
		if len(oi.Expression) == 0 {
			_ = json.Unmarshal(is.Location, &oi.Expression)
		}
		var d struct {
			Text   *string
			Coding []struct{ Code, Display *string }
		}
		if json.Unmarshal(is.Details, &d) == nil {
			oi.Details = conceptText(d.Text, len(d.Coding), func(i int) (*string, *string) { return d.Coding[i].Display, d.Coding[i].Code })
		}
		o.Issues = append(o.Issues, oi)
	}
	return o, nil
}

// asString reads a JSON string, or writes any other JSON value as it came.
func asString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func conceptText(text *string, n int, coding func(int) (display, code *string)) string {
	if text != nil && *text != "" {
		return *text
	}
	for i := range n {
		if d, c := coding(i); d != nil && *d != "" {
			return *d
		} else if c != nil && *c != "" {
			return *c
		}
	}
	return ""
}

// Summary lists the issues' severity and code ("error/processing,
// warning/informational"): no diagnostics, which may quote patient data.
func (o *Outcome) Summary() string {
	if o == nil || len(o.Issues) == 0 {
		return ""
	}
	parts := make([]string, 0, len(o.Issues))
	for _, is := range o.Issues {
		parts = append(parts, is.Severity+"/"+is.Code)
	}
	return strings.Join(parts, ", ")
}

// Text is every issue in full, diagnostics and details included: for the
// failed delivery's record, which may hold PHI, never for a log.
func (o *Outcome) Text() string {
	if o == nil {
		return ""
	}
	var b strings.Builder
	for i, is := range o.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(is.Severity + "/" + is.Code)
		for _, s := range []string{is.Details, is.Diagnostics} {
			if s != "" {
				b.WriteString(": " + s)
			}
		}
		if len(is.Expression) > 0 {
			b.WriteString(" at " + strings.Join(is.Expression, ", "))
		}
	}
	return b.String()
}

// ParseBundle reads a Bundle (a search result, a history, a batch or
// transaction response) with golang-fhir-models. Entries' resources stay
// raw JSON (Bundle.entry.resource), as received: decode each by its
// resourceType. An unknown code in the Bundle's own elements fails the
// whole read, as the models do.
func ParseBundle(data []byte) (*models.Bundle, error) {
	if err := checkResourceType(data, "Bundle"); err != nil {
		return nil, err
	}
	b, err := models.UnmarshalBundle(data)
	if err != nil {
		return nil, fmt.Errorf("ehr: Bundle: %w", err)
	}
	return &b, nil
}

// NextLink is the URL of the Bundle's next page, or "".
func NextLink(b *models.Bundle) string {
	for _, l := range b.Link {
		if l.Relation == "next" {
			return l.Url
		}
	}
	return ""
}

// checkResourceType: the models' Unmarshal functions do not look at
// resourceType, so an OperationOutcome would read as an empty Bundle.
func checkResourceType(data []byte, want string) error {
	var probe struct {
		ResourceType *string `json:"resourceType"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return fmt.Errorf("ehr: %s: not a JSON object: %w", want, err)
	}
	if probe.ResourceType == nil {
		return fmt.Errorf("ehr: %s: no resourceType", want)
	}
	if *probe.ResourceType != want {
		return fmt.Errorf("ehr: want resourceType %s, got %q", want, clip(*probe.ResourceType, 64))
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
