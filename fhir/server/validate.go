package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// typeOperation handles POST /{type}/{op}. The one type-level operation
// so far is $validate.
func (s *Server) typeOperation(ctx context.Context, r *Request) (*Response, error) {
	switch r.params.id {
	case "$validate":
		return s.validate(ctx, r, "")
	default:
		return nil, fhir.Errorf(fhir.IssueNotSupported, "", "POST %s is not an interaction this server supports (create is POST /%s; operations: $validate)", r.URL.Path, r.params.typ).WithStatus(http.StatusMethodNotAllowed)
	}
}

// instanceOperation handles POST /{type}/{id}/{op}: $validate of an
// update or a delete of that resource.
func (s *Server) instanceOperation(ctx context.Context, r *Request) (*Response, error) {
	switch r.params.compartment {
	case "$validate":
		if !idPattern.MatchString(r.params.id) {
			return nil, fhir.Errorf(fhir.IssueInvalid, "", "%q is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", r.params.id)
		}
		return s.validate(ctx, r, r.params.id)
	default:
		return nil, fhir.Errorf(fhir.IssueNotSupported, "", "POST %s is not an interaction this server supports (operations on an instance: $validate)", r.URL.Path).WithStatus(http.StatusMethodNotAllowed)
	}
}

// validateParams are the parameters of $validate this server takes, from
// the URL or from a Parameters body.
type validateParams struct {
	mode    string      // "", create, update, delete, profile
	profile string      // a StructureDefinition's canonical URL
	res     *fhir.Value // the resource; nil when the body is not one
}

// validate handles POST /{type}/$validate and POST /{type}/{id}/$validate
// (id non-empty). As the operation's definition says, it answers 200 with
// an OperationOutcome whether or not the resource is valid; a 4xx means
// validation itself could not be done as asked (an unknown mode or
// profile, a delete without an id).
//
// The body is the resource itself or a Parameters resource with a
// "resource" parameter, and "mode" and "profile" parameters, which may
// also be in the URL. Every mode checks what the matching write would:
// the base R4 rules and the profiles the resource claims, profile= one
// more profile; mode=create the conformance guard for a new resource;
// mode=update also the id against the URL's and whether the caller may
// write the target; mode=delete (no resource needed) whether the target
// exists, may be deleted, and is the caller's to delete.
func (s *Server) validate(ctx context.Context, r *Request, id string) (*Response, error) {
	typ := r.params.typ
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	vp, issues, err := s.validateRequest(typ, body, r.URL.Query())
	if err != nil {
		return nil, err
	}
	switch vp.mode {
	case "", "create", "update", "delete", "profile":
	default:
		return nil, fhir.Errorf(fhir.IssueInvalid, "", "$validate mode %q is not one of create, update, delete, profile", vp.mode)
	}
	if vp.mode == "profile" && vp.profile == "" {
		return nil, fhir.Errorf(fhir.IssueRequired, "", "$validate mode=profile needs a profile parameter")
	}
	if (vp.mode == "delete" || vp.mode == "update") && id == "" {
		if vp.mode == "delete" || vp.res == nil || vp.res.GetString("id") == "" {
			return nil, fhir.Errorf(fhir.IssueRequired, "", "$validate mode=%s needs the resource's id: POST /%s/{id}/$validate", vp.mode, typ)
		}
		id = vp.res.GetString("id")
	}
	if vp.mode != "delete" && vp.res == nil && len(issues) == 0 {
		return nil, fhir.Errorf(fhir.IssueRequired, "", "$validate needs a %s resource (the body, or a Parameters resource with a resource parameter)", typ)
	}
	if vp.res != nil && vp.mode != "delete" {
		issues = append(issues, s.profiles.Validate(vp.res)...)
		if vp.profile != "" {
			more, err := s.validateAgainst(ctx, r, vp.res, vp.profile)
			if err != nil {
				return nil, err
			}
			issues = append(issues, more...)
		}
	}
	more, err := s.validateMode(ctx, r, vp, id)
	if err != nil {
		return nil, err
	}
	issues = append(issues, more...)
	// Errors first, then warnings: the first issue says whether the
	// resource passes. Without errors, an informational issue leads and
	// says what was judged (warnings such as dom-6 follow it).
	slices.SortStableFunc(issues, func(a, b fhir.Issue) int { return severityRank(a.Severity) - severityRank(b.Severity) })
	if len(issues) == 0 || severityRank(issues[0].Severity) > severityRank(fhir.SeverityError) {
		what := "the base FHIR R4 definitions"
		if vp.profile != "" {
			what += " and " + vp.profile
		}
		msg := "the " + typ + " is valid against " + what
		if vp.mode == "delete" {
			msg = typ + "/" + id + " may be deleted"
		} else if vp.mode != "" && vp.mode != "profile" {
			msg += ", and the " + vp.mode + " would be accepted"
		}
		issues = append([]fhir.Issue{{Severity: fhir.SeverityInformation, Code: fhir.IssueInformational, Diagnostics: msg}}, issues...)
	}
	return &Response{Status: http.StatusOK, Body: fhir.OperationOutcomeMax(issues, s.lim.MaxIssues)}, nil
}

// validateRequest reads the parameters and the resource of a $validate:
// the resource's problems are issues (it is what is being validated);
// the error is for a request that cannot be validated at all.
func (s *Server) validateRequest(typ string, body []byte, query url.Values) (validateParams, []fhir.Issue, error) {
	var vp validateParams
	for k, vs := range query {
		switch k {
		case "_format", "_pretty":
		case "mode", "profile":
			if len(vs) != 1 {
				return vp, nil, fhir.Errorf(fhir.IssueInvalid, "", "$validate parameter %s given %d times", k, len(vs))
			}
			if k == "mode" {
				vp.mode = vs[0]
			} else {
				vp.profile = vs[0]
			}
		default:
			return vp, nil, fhir.Errorf(fhir.IssueNotSupported, "", "$validate parameter %q is not supported (mode, profile)", k)
		}
	}
	if len(body) == 0 {
		return vp, nil, nil
	}
	res, got, err := s.lim.Resource.ParseResource(body)
	if err != nil {
		fe := fhir.AsError(err)
		if fe.Status == http.StatusRequestEntityTooLarge {
			return vp, nil, fe
		}
		return vp, fe.Issues, nil
	}
	if got != "Parameters" || typ == "Parameters" {
		if got != typ {
			return vp, []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueInvalid,
				Diagnostics: "resourceType " + got + " does not match the " + typ + " endpoint", Expression: []string{got + ".resourceType"}}}, nil
		}
		vp.res = res
		return vp, nil, nil
	}
	var inner *fhir.Value
	for i, p := range arrayOf(res.Get("parameter")) {
		at := "Parameters.parameter[" + itoa(int64(i)) + "]"
		switch name := p.GetString("name"); name {
		case "resource":
			inner = p.Get("resource")
		case "mode", "profile":
			v := ""
			for _, m := range p.Members {
				if strings.HasPrefix(m.Key, "value") && m.Value.Kind == fhir.KindString {
					v = m.Value.Str
				}
			}
			if v == "" {
				return vp, nil, fhir.Errorf(fhir.IssueInvalid, at, "$validate parameter %s needs a value (valueCode, valueUri or valueCanonical)", name)
			}
			dst := &vp.mode
			if name == "profile" {
				dst = &vp.profile
			}
			if *dst != "" && *dst != v {
				return vp, nil, fhir.Errorf(fhir.IssueInvalid, at, "$validate parameter %s is %q in the URL and %q in the body", name, *dst, v)
			}
			*dst = v
		default:
			return vp, nil, fhir.Errorf(fhir.IssueNotSupported, at, "$validate parameter %q is not supported (resource, mode, profile)", name)
		}
	}
	if inner == nil {
		if vp.mode == "delete" {
			return vp, nil, nil
		}
		return vp, nil, fhir.Errorf(fhir.IssueRequired, "Parameters.parameter", "Parameters has no resource parameter to validate")
	}
	// Parameters.parameter.resource was validated with the Parameters;
	// only its type remains to check.
	if t := inner.GetString("resourceType"); t != typ {
		return vp, []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueInvalid,
			Diagnostics: "resource parameter holds a " + t + ", not a " + typ, Expression: []string{"Parameters.parameter.resource"}}}, nil
	}
	vp.res = inner
	return vp, nil, nil
}

// validateAgainst checks res against the profile named by url: one the
// server holds (Config.Profiles, its conformance resources), the base
// definition of res's type (already checked), or a StructureDefinition
// stored here with that url. Any other url cannot be validated against,
// which is an error, not a pass.
func (s *Server) validateAgainst(ctx context.Context, r *Request, res *fhir.Value, profile string) ([]fhir.Issue, error) {
	canonical, _, _ := strings.Cut(profile, "|")
	typ := res.GetString("resourceType")
	switch {
	case canonical == "http://hl7.org/fhir/StructureDefinition/"+typ:
		return nil, nil // the base definition: fhir.Validate checked it
	case s.profiles.Known(canonical):
		// Validate checks the profiles a resource claims: claim this one
		// alone, on a copy.
		claimed := fhir.Object()
		for _, m := range res.Members {
			if m.Key != "meta" {
				claimed.Members = append(claimed.Members, m)
			}
		}
		claimed.Set("meta", &fhir.Value{Kind: fhir.KindObject, Members: []fhir.Member{{Key: "profile",
			Value: &fhir.Value{Kind: fhir.KindArray, Array: []*fhir.Value{fhir.String(canonical)}}}}})
		return s.profiles.Validate(claimed), nil
	}
	q, err := s.lim.Search.ParseQuery("StructureDefinition", url.Values{"url": {canonical}}, s.base, true)
	if err != nil {
		return nil, err // a url the uri parameter refuses: the client's error, named
	}
	q.Hide = r.Audience.Hidden()
	found, err := s.store.Search(ctx, r.tenant(), q, nil)
	if err != nil {
		return nil, err
	}
	if len(found.Matches) == 1 {
		sd, err := fhir.ParseJSON(found.Matches[0].JSON, fhir.StoredLimits)
		if err != nil {
			return nil, err
		}
		return s.profiles.ValidateProfile(res, sd), nil
	}
	return nil, fhir.Errorf(fhir.IssueNotSupported, "", "$validate profile %q is not known to this server (neither built in nor a stored StructureDefinition): it cannot validate against it", profile)
}

// validateMode reports what the write the mode names would be refused
// for beyond the resource's own validity, as issues. An update of a
// resource the caller may not see is refused as the update itself would
// be (the generic 409), not reported: a report would say more.
func (s *Server) validateMode(ctx context.Context, r *Request, vp validateParams, id string) ([]fhir.Issue, error) {
	typ := r.params.typ
	issue := func(err error) []fhir.Issue { return fhir.AsError(err).Issues }
	switch vp.mode {
	case "create":
		if vp.res == nil {
			return nil, nil
		}
		newID := vp.res.GetString("id")
		if newID == "" {
			newID = "-"
		}
		if err := s.conf.guard(fhir.Key{Tenant: r.tenant(), Type: typ, ID: newID}, vp.res); err != nil {
			return issue(err), nil
		}
	case "update":
		if vp.res == nil {
			return nil, nil
		}
		switch bodyID := vp.res.GetString("id"); {
		case bodyID == "":
			return []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueRequired, Diagnostics: "an update must carry the id " + id + " in the resource", Expression: []string{typ + ".id"}}}, nil
		case bodyID != id:
			return []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueInvalid, Diagnostics: "resource id " + bodyID + " does not match the id " + id + " in the URL", Expression: []string{typ + ".id"}}}, nil
		}
		k := fhir.Key{Tenant: r.tenant(), Type: typ, ID: id}
		cur, err := s.store.Read(ctx, k)
		switch {
		case err != nil && !errors.Is(err, fhir.ErrNotFound):
			return nil, err
		case err == nil && hidden(r.Audience, cur):
			return nil, hiddenTargetError(typ)
		}
		if err := s.conf.guard(k, vp.res); err != nil {
			return issue(err), nil
		}
	case "delete":
		k := fhir.Key{Tenant: r.tenant(), Type: typ, ID: id}
		cur, err := s.store.Read(ctx, k)
		if err != nil && !errors.Is(err, fhir.ErrNotFound) {
			return nil, err
		}
		if err == nil && hidden(r.Audience, cur) {
			err = fhir.ErrNotFound // as a delete answers: as if it never existed
		}
		switch {
		case err != nil:
			return issue(notFound(err, k)), nil
		case cur.Deleted:
			return []fhir.Issue{{Severity: fhir.SeverityInformation, Code: fhir.IssueInformational, Diagnostics: typ + "/" + id + " is deleted already; deleting it again changes nothing"}}, nil
		}
		if err := s.conf.guard(k, nil); err != nil {
			return issue(err), nil
		}
	}
	return nil, nil
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

// severityRank orders issue severities, most severe first.
func severityRank(s fhir.Severity) int {
	switch s {
	case fhir.SeverityFatal:
		return 0
	case fhir.SeverityError:
		return 1
	case fhir.SeverityWarning:
		return 2
	}
	return 3
}
