package server

import (
	"context"
	"net/http"

	"github.com/kapbridge/kapbridge/fhir"
)

// typeOperation handles POST /{type}/{op}. The one type-level operation
// so far is $validate.
func (s *Server) typeOperation(ctx context.Context, r *Request) (*Response, error) {
	switch r.params.id {
	case "$validate":
		return s.validate(ctx, r)
	default:
		return nil, fhir.Errorf(fhir.IssueNotSupported, "", "POST %s is not an interaction this server supports (create is POST /%s; operations: $validate)", r.URL.Path, r.params.typ).WithStatus(http.StatusMethodNotAllowed)
	}
}

// validate handles POST /{type}/$validate. As the operation's definition
// says, it answers 200 with an OperationOutcome whether or not the
// resource is valid; a 4xx means validation itself could not be done.
// The body is the resource itself or a Parameters resource with a
// "resource" parameter.
func (s *Server) validate(_ context.Context, r *Request) (*Response, error) {
	typ := r.params.typ
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	issues, err := validationIssues(typ, body, s.lim.Resource, s.profiles)
	if err != nil {
		return nil, err
	}
	if len(issues) == 0 {
		issues = []fhir.Issue{{Severity: fhir.SeverityInformation, Code: fhir.IssueInformational,
			Diagnostics: "the " + typ + " is valid against the base FHIR R4 definitions"}}
	}
	return &Response{Status: http.StatusOK, Body: fhir.OperationOutcomeMax(issues, s.lim.MaxIssues)}, nil
}

// validationIssues parses and validates body as a typ (directly or inside
// a Parameters), and against the profiles it claims, and returns every
// problem. The error is for a request that cannot be validated at all (an
// unsupported parameter).
func validationIssues(typ string, body []byte, lim fhir.Limits, profiles *fhir.Profiles) ([]fhir.Issue, error) {
	res, got, err := lim.ParseResource(body)
	if err != nil {
		fe := fhir.AsError(err)
		if fe.Status == http.StatusRequestEntityTooLarge {
			return nil, fe
		}
		return fe.Issues, nil
	}
	if got == "Parameters" && typ != "Parameters" {
		var inner *fhir.Value
		for _, p := range arrayOf(res.Get("parameter")) {
			switch name := p.GetString("name"); name {
			case "resource":
				inner = p.Get("resource")
			case "mode", "profile":
				// The definition says a server that cannot validate as
				// asked SHALL return an error rather than a partial answer.
				return nil, fhir.Errorf(fhir.IssueNotSupported, "Parameters.parameter", "$validate parameter %q is not supported yet", name)
			}
		}
		if inner == nil {
			return nil, fhir.Errorf(fhir.IssueRequired, "Parameters.parameter", "Parameters has no resource parameter to validate")
		}
		// Parameters.parameter.resource was validated with the
		// Parameters; only its type remains to check.
		if t := inner.GetString("resourceType"); t != typ {
			return []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueInvalid,
				Diagnostics: "resource parameter holds a " + t + ", not a " + typ, Expression: []string{"Parameters.parameter.resource"}}}, nil
		}
		return profiles.Validate(inner), nil
	}
	if got != typ {
		return []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueInvalid,
			Diagnostics: "resourceType " + got + " does not match the " + typ + " endpoint", Expression: []string{got + ".resourceType"}}}, nil
	}
	// The profiles it claims, as a write would check them.
	return profiles.Validate(res), nil
}

func arrayOf(v *fhir.Value) []*fhir.Value {
	switch {
	case v == nil:
		return nil
	case v.Kind == fhir.KindArray:
		return v.Array
	default:
		return []*fhir.Value{v}
	}
}
