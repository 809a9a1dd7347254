package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/consent"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Consent on the way out (issue 14, item 4), the gate the EHR sync uses
// (fhir/consent):
//   - a client of the practice (no Recipient) sees all of the practice's
//     resources, psychotherapy notes included: they are its own notes;
//   - a prescriber's client (Recipient "Practitioner/id") sees only the
//     patients whose active Consent permits their record to Recipient (and
//     that no Consent denies it), and their psychotherapy notes only where
//     a Consent permits PSYTHPN to Recipient. Every request of such a
//     client is tied to one patient before it runs: the patient the path
//     names, the one the resource it names is about, or the one its search
//     names (patient=, subject=, or _id on Patient); the Consents of that
//     patient decide, and the request's Audience (the store's filter)
//     carries the notes decision, so no search, include, count or page
//     shows a note that is not permitted. Requests that cannot be tied to
//     one patient (Bundles, type and system history, conditional updates,
//     searches of patient data naming no patient) are refused with 403;
//     resources of an unshared patient answer 404, as a missing id.

// Gin context key of the Audience the consent gate decided.
const ctxAudience = "kapbridge.audience"

// principalAudience is the Audience of c's principal: the gate's decision
// for a prescriber, every sensitivity for the practice's own clients, the
// public one otherwise.
func principalAudience(c *gin.Context) fhir.Audience {
	if a, ok := c.Get(ctxAudience); ok {
		return a.(fhir.Audience)
	}
	if p := PrincipalOf(c); p != nil && p.Recipient == "" {
		return fhir.Audience{May: fhir.Withheld}
	}
	return fhir.Audience{}
}

// consentGate is the gate for a prescriber's client; nil lets the request
// through with the Audience it set.
func (s *Server) consentGate(c *gin.Context, p *auth.Principal) error {
	ctx := c.Request.Context()
	tenant := p.Tenant
	if tenant == "" {
		tenant = fhir.DefaultTenant
	}
	segs := strings.Split(strings.Trim(c.Request.URL.Path, "/"), "/")
	refuse := func(why string) error {
		return fhir.Errorf(fhir.IssueForbidden, "", "client %q is a prescriber's (%s): %s", p.ClientID, p.Recipient, why).WithStatus(http.StatusForbidden)
	}
	if segs[0] == "" || segs[0] == "_history" {
		return refuse("it sends one interaction at a time, each tied to one patient whose Consent is checked; no batch, transaction or system history")
	}
	typ := segs[0]
	if !fhir.IsResourceType(typ) || typ == auth.AuditType {
		return nil // the router's 404, or the audit tenant: nothing of a patient
	}
	var patient string
	switch {
	case len(segs) >= 2 && segs[1] == "_history", len(segs) == 1 && c.Request.Method == http.MethodPut:
		return refuse("type histories and conditional updates span patients")
	case len(segs) >= 2 && segs[1] == "_search", len(segs) == 1 && c.Request.Method == http.MethodGet:
		q := c.Request.URL.Query()
		if segs[len(segs)-1] == "_search" {
			if body, err := peekBody(c); err == nil {
				if form, err := url.ParseQuery(string(body)); err == nil {
					for k, v := range form {
						q[k] = append(q[k], v...)
					}
				}
			}
		}
		if typ != "Patient" && len(search.CompartmentParams("Patient", typ)) == 0 {
			c.Set(ctxAudience, fhir.Audience{}) // no patient's data
			return nil
		}
		patient = searchedPatient(typ, q)
		if patient == "" {
			return refuse("a search of " + typ + " names one patient shared with it: add patient=Patient/{id} (or _id=, searching Patient)")
		}
		if why := crossPatientIncludes(typ, q); why != "" {
			return refuse(why)
		}
	case len(segs) == 1 && c.Request.Method == http.MethodPost:
		body, err := peekBody(c)
		if err != nil {
			return nil // the handler answers the body's error
		}
		res, err := fhir.ParseJSON(body, fhir.DefaultLimits)
		if err != nil {
			return nil
		}
		if patient = consent.PatientOf(res); patient == "" {
			c.Set(ctxAudience, fhir.Audience{})
			return nil
		}
	case typ == "Patient":
		patient = "Patient/" + segs[1]
	default:
		head, err := s.store.Read(ctx, fhir.Key{Tenant: tenant, Type: typ, ID: segs[1]})
		switch {
		case errors.Is(err, fhir.ErrNotFound):
			// the handler's 404, or an update-as-create: its body's patient
		case err != nil:
			return err
		case head.Deleted:
			return notFoundAs(typ, segs[1]) // a 410 would tell an unshared client it existed
		default:
			res, err := fhir.ParseJSON(head.JSON, fhir.StoredLimits)
			if err != nil {
				return err
			}
			patient = consent.PatientOf(res)
		}
	}
	// An update names its patient in the body too: it must be shared as
	// well (a resource cannot be written into an unshared patient's record).
	if c.Request.Method == http.MethodPut && len(segs) == 2 {
		if body, err := peekBody(c); err == nil {
			if res, err := fhir.ParseJSON(body, fhir.DefaultLimits); err == nil {
				if bp := consent.PatientOf(res); bp != "" && bp != patient {
					ok, _, err := s.shares(ctx, tenant, bp, p.Recipient)
					if err != nil {
						return err
					}
					if !ok {
						return refuse("no active Consent of " + bp + " shares its record with " + p.Recipient)
					}
					if patient == "" {
						patient = bp
					}
				}
			}
		}
	}
	if patient == "" {
		c.Set(ctxAudience, fhir.Audience{})
		return nil
	}
	shared, notes, err := s.shares(ctx, tenant, patient, p.Recipient)
	if err != nil {
		return err
	}
	if !shared {
		if len(segs) >= 2 && segs[1] != "_search" {
			return notFoundAs(typ, segs[1])
		}
		return refuse("no active Consent of " + patient + " shares its record with " + p.Recipient)
	}
	aud := fhir.Audience{}
	if notes {
		aud.May = fhir.PsychotherapyNote
	}
	c.Set(ctxAudience, aud)
	return nil
}

func notFoundAs(typ, id string) error {
	return fhir.Errorf(fhir.IssueNotFound, "", "%s/%s not found", typ, id)
}

// searchedPatient is the one patient a search names, "" when it names
// none or several.
func searchedPatient(typ string, q url.Values) string {
	var found []string
	add := func(v string) {
		if v == "" || strings.Contains(v, ",") {
			found = append(found, "", "") // several, or none usable
			return
		}
		v = strings.TrimPrefix(v, "Patient/")
		if strings.Contains(v, "/") {
			found = append(found, "", "")
			return
		}
		found = append(found, "Patient/"+v)
	}
	for k, vs := range q {
		name, _, _ := strings.Cut(k, ":")
		switch {
		case typ == "Patient" && name == "_id", typ != "Patient" && (name == "patient" || name == "subject"):
			for _, v := range vs {
				add(v)
			}
		}
	}
	if len(found) == 0 {
		return ""
	}
	for _, f := range found[1:] {
		if f != found[0] {
			return ""
		}
	}
	return found[0]
}

// shares reads the Consents of patient and says whether they share its
// record with recipient (an active Consent permits it, none denies the
// treatment record), and whether they permit its psychotherapy notes.
func (s *Server) shares(ctx context.Context, tenant, patient, recipient string) (shared, notes bool, err error) {
	q, err := search.ParseQuery("Consent", url.Values{"patient": {patient}, "_count": {"1000"}}, s.base, false)
	if err != nil {
		return false, false, err
	}
	res, err := s.store.Search(ctx, tenant, q, nil)
	if err != nil {
		return false, false, err
	}
	var consents []*fhir.Value
	for _, v := range res.Matches {
		if c, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits); err == nil {
			consents = append(consents, c)
		}
	}
	now := s.now()
	ref, _ := json.Marshal(patient)
	record, _ := fhir.ParseJSON([]byte(`{"resourceType":"Observation","subject":{"reference":`+string(ref)+`}}`), fhir.StoredLimits)
	if !consent.Decide(record, consents, recipient, now).Allowed || !permits(consents, patient, recipient, now) {
		return false, false, nil
	}
	note, _ := fhir.ParseJSON([]byte(`{"resourceType":"DocumentReference","meta":{"security":[{"system":"`+fhir.SysActCode+`","code":"PSYTHPN"}]},"subject":{"reference":`+string(ref)+`}}`), fhir.StoredLimits)
	return true, consent.Decide(note, consents, recipient, now).Allowed, nil
}

// permits reports an active Consent of patient with a permit provision,
// in force at now, naming recipient: the patient shared its record with
// it.
func permits(consents []*fhir.Value, patient, recipient string, now time.Time) bool {
	day := now.UTC().Format("2006-01-02")
	for _, c := range consents {
		if c.GetString("status") != "active" || c.Get("patient").GetString("reference") != patient {
			continue
		}
		for _, p := range provisionTree(c.Get("provision")) {
			if p.GetString("type") != "permit" {
				continue
			}
			if st := p.Get("period").GetString("start"); st != "" && day < st[:min(len(st), 10)] {
				continue
			}
			if e := p.Get("period").GetString("end"); e != "" && day > e[:min(len(e), 10)] {
				continue
			}
			for _, a := range list(p.Get("actor")) {
				if a.Get("reference").GetString("reference") == recipient {
					return true
				}
			}
		}
	}
	return false
}

func provisionTree(p *fhir.Value) []*fhir.Value {
	if p == nil {
		return nil
	}
	out := []*fhir.Value{p}
	for _, n := range list(p.Get("provision")) {
		out = append(out, provisionTree(n)...)
	}
	return out
}

func list(v *fhir.Value) []*fhir.Value {
	switch {
	case v == nil:
		return nil
	case v.Kind == fhir.KindArray:
		return v.Array
	}
	return []*fhir.Value{v}
}

// crossPatientIncludes says why a prescriber's search could include
// resources of another patient than the one it names, "" when it cannot:
// an iterated include, a _revinclude other than Provenance:target, or an
// _include into patient data other than the patient itself (subject,
// patient).
func crossPatientIncludes(typ string, q url.Values) string {
	parsed, err := search.ParseQuery(typ, q, "", false)
	if err != nil {
		return "" // the search refuses it, reading nothing
	}
	for _, inc := range parsed.Include {
		if inc.Iterate {
			return "_include:iterate could reach other patients"
		}
		if inc.Param == nil {
			return "_include=* could reach other patients"
		}
		if inc.Param.Code == "subject" || inc.Param.Code == "patient" {
			continue
		}
		targets := inc.Param.Targets
		if inc.TargetType != "" {
			targets = []string{inc.TargetType}
		}
		for _, t := range targets {
			if t == "Patient" || len(search.CompartmentParams("Patient", t)) > 0 || t == "Resource" {
				return "_include=" + inc.SourceType + ":" + inc.Param.Code + " could reach another patient's " + t
			}
		}
	}
	for _, inc := range parsed.RevInclude {
		if inc.Iterate || inc.SourceType != "Provenance" || inc.Param == nil || inc.Param.Code != "target" {
			return "_revinclude could reach other patients (only _revinclude=Provenance:target is taken)"
		}
	}
	return ""
}
