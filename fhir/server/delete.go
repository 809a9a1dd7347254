package server

import (
	"context"
	"net/http"

	"github.com/kapbridge/kapbridge/fhir"
)

// delete handles DELETE /{type}/{id}: a deletion version; reads then
// answer 410, history keeps every version. Deleting what is already
// deleted changes nothing (204); deleting what never existed is a 404.
func (s *Server) delete(ctx context.Context, r *Request) (*Response, error) {
	k := r.key()
	ifMatch, err := parseIfMatch(r.Header.Get("If-Match"))
	if err != nil {
		return nil, err
	}
	var out fhir.Version
	err = s.store.Update(ctx, func(tx fhir.Tx) (err error) {
		out, _, err = s.deleteIn(ctx, tx, k, ifMatch, r.Audience)
		return err
	})
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("ETag", etag(out.VersionID))
	return &Response{Status: http.StatusNoContent, Header: h}, nil
}

// maxConditionalDeletes bounds what one conditional delete removes: more
// matches are refused (412), nothing deleted, rather than some of them.
const maxConditionalDeletes = 100

// conditionalDelete handles DELETE /{type}?criteria: every live resource
// of type the criteria match (at most maxConditionalDeletes; the
// CapabilityStatement declares "multiple"), deleted in one transaction.
// It answers 200 with an OperationOutcome listing each deletion, or
// saying nothing matched (Prefer: return=minimal: 204). Resources the
// caller may not see match nothing, and criteria naming the identifier
// of one are refused as other writes are (hiddenTargetError).
func (s *Server) conditionalDelete(ctx context.Context, r *Request) (*Response, error) {
	typ := r.params.typ
	if r.URL.RawQuery == "" {
		return nil, fhir.Errorf(fhir.IssueNotSupported, "", "DELETE needs an id (DELETE /%s/{id}) or criteria (DELETE /%s?identifier=system|value)", typ, typ).WithStatus(http.StatusMethodNotAllowed)
	}
	if r.Header.Get("If-Match") != "" {
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "If-Match names one version of one resource: delete by id (DELETE /%s/{id}) to use it", typ)
	}
	criteria := conditionalQuery(r)
	tenant, aud := r.tenant(), r.Audience
	var deleted []fhir.Version
	err := s.store.Update(ctx, func(tx fhir.Tx) error {
		deleted = deleted[:0]
		ids, err := s.matchConditionMax(ctx, tx, tenant, typ, criteria, aud, condWrite, maxConditionalDeletes+1)
		if err != nil {
			return err
		}
		if len(ids) > maxConditionalDeletes {
			return fhir.Errorf(fhir.IssueMultipleMatches, "", "more than %d %s resources match %q; a conditional delete removes at most %d: narrow the criteria (nothing was deleted)", maxConditionalDeletes, typ, criteria, maxConditionalDeletes).
				WithStatus(http.StatusPreconditionFailed)
		}
		for _, id := range ids {
			v, _, err := s.deleteIn(ctx, tx, fhir.Key{Tenant: tenant, Type: typ, ID: id}, 0, aud)
			if err != nil {
				return err
			}
			deleted = append(deleted, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if preferReturn(r.Header) == "minimal" {
		return &Response{Status: http.StatusNoContent}, nil
	}
	return &Response{Status: http.StatusOK, Body: conditionalDeleteOutcome(typ, deleted, maxConditionalDeletes+1)}, nil
}

// conditionalDeleteOutcome lists what a conditional delete deleted (ids
// and versions only), or says it matched nothing.
func conditionalDeleteOutcome(typ string, deleted []fhir.Version, maxIssues int) []byte {
	var issues []fhir.Issue
	for _, v := range deleted {
		issues = append(issues, fhir.Issue{Severity: fhir.SeverityInformation, Code: fhir.IssueInformational,
			Diagnostics: "deleted " + v.Type + "/" + v.ID + " (version " + itoa(v.VersionID) + ")"})
	}
	if len(issues) == 0 {
		issues = []fhir.Issue{{Severity: fhir.SeverityInformation, Code: fhir.IssueInformational,
			Diagnostics: "no " + typ + " matched the criteria; nothing was deleted"}}
	}
	return fhir.OperationOutcomeMax(issues, max(maxIssues, maxConditionalDeletes+1))
}
