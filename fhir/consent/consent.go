// Package consent decides whether a stored resource may be disclosed to a
// recipient outside the practice, from the resource's security labels
// and the patient's FHIR Consents (kap-domain.md section 6). EHR sync
// asks it before every write; the API's authorization can ask it too.
//
// The rules:
//   - A psychotherapy note (PSYTHPN) or a very restricted resource (V)
//     goes only where an active Consent of its patient, in force at the
//     time, permits PSYTHPN to that recipient (provision.actor), and no
//     such Consent denies it (45 CFR 164.508(a)(2)). One without a patient
//     it can be tied to never goes.
//   - Anything else (R + PSY is every KAP resource's default) is PHI that
//     may go to the prescriber for treatment, unless an active Consent of
//     its patient in force denies that recipient the treatment record
//     (PSY, or a denial naming no label).
//
// Decide is pure: the caller reads the Consents.
package consent

import (
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// Decision is the answer, with the reason for people (sync status lists
// it beside what was held back).
type Decision struct {
	Allowed bool
	Reason  string
}

// Labels.
const (
	labelNote = "PSYTHPN"
	labelPSY  = "PSY"
)

// Decide reports whether res may go to recipient ("Practitioner/id", the
// local reference a Consent's provision.actor names) at time at, given
// consents (Consent resources; those of other patients are ignored).
func Decide(res *fhir.Value, consents []*fhir.Value, recipient string, at time.Time) Decision {
	sens := fhir.SensitivityOf(res) | labelSensitivity(res.Get("securityLabel"))
	note := sens&(fhir.PsychotherapyNote|fhir.VeryRestricted) != 0
	patient := PatientOf(res)
	if note && patient == "" {
		return Decision{false, "a psychotherapy note (or very restricted) resource tied to no patient never leaves"}
	}
	permit, deny := false, ""
	for _, c := range consents {
		if c.GetString("resourceType") != "Consent" || c.GetString("status") != "active" {
			continue
		}
		if patient == "" || c.Get("patient").GetString("reference") != patient {
			continue
		}
		for _, p := range provisions(c.Get("provision")) {
			if !inForce(p.Get("period"), at) || !names(p.Get("actor"), recipient) {
				continue
			}
			labels := codes(p.Get("securityLabel"))
			id := "Consent/" + c.GetString("id")
			switch p.GetString("type") {
			case "permit":
				if note && labels[labelNote] {
					permit = true
				}
			case "deny":
				switch {
				case note && labels[labelNote]:
					deny = id + " denies psychotherapy notes to " + recipient
				case !note && (labels[labelPSY] || len(labels) == 0):
					deny = id + " denies the treatment record to " + recipient
				}
			}
		}
	}
	switch {
	case deny != "":
		return Decision{false, deny}
	case note && !permit:
		if recipient == "" {
			return Decision{false, "a psychotherapy note goes only to a named recipient with the patient's Consent; this connection names no recipient"}
		}
		return Decision{false, "a psychotherapy note: no active Consent of " + patient + " permits it to " + recipient}
	case note:
		return Decision{true, "a Consent of " + patient + " permits psychotherapy notes to " + recipient}
	}
	return Decision{true, ""}
}

// PatientOf is the "Patient/id" a resource is about: subject, patient,
// or the Patient itself; "" if none.
func PatientOf(res *fhir.Value) string {
	if res.GetString("resourceType") == "Patient" {
		return "Patient/" + res.GetString("id")
	}
	for _, k := range []string{"subject", "patient"} {
		if r := res.Get(k).GetString("reference"); strings.HasPrefix(r, "Patient/") {
			return r
		}
	}
	return ""
}

// labelSensitivity reads a DocumentReference.securityLabel
// (CodeableConcepts) as SensitivityOf reads meta.security.
func labelSensitivity(ccs *fhir.Value) fhir.Sensitivity {
	var s fhir.Sensitivity
	for _, cc := range elements(ccs) {
		for _, c := range elements(cc.Get("coding")) {
			switch sys, code := c.GetString("system"), c.GetString("code"); {
			case sys == fhir.SysActCode && code == labelNote:
				s |= fhir.PsychotherapyNote
			case sys == fhir.SysConfidentiality && code == "V":
				s |= fhir.VeryRestricted
			}
		}
	}
	return s
}

func elements(v *fhir.Value) []*fhir.Value {
	switch {
	case v == nil:
		return nil
	case v.Kind == fhir.KindArray:
		return v.Array
	}
	return []*fhir.Value{v}
}

// provisions is the provision and its nested ones.
func provisions(p *fhir.Value) []*fhir.Value {
	if p == nil {
		return nil
	}
	out := []*fhir.Value{p}
	for _, n := range elements(p.Get("provision")) {
		out = append(out, provisions(n)...)
	}
	return out
}

// codes are the ActCode and Confidentiality codes of Codings.
func codes(v *fhir.Value) map[string]bool {
	out := map[string]bool{}
	for _, c := range elements(v) {
		if sys := c.GetString("system"); sys == fhir.SysActCode || sys == fhir.SysConfidentiality {
			out[c.GetString("code")] = true
		}
	}
	return out
}

func names(actors *fhir.Value, recipient string) bool {
	if recipient == "" {
		return false
	}
	for _, a := range elements(actors) {
		if a.Get("reference").GetString("reference") == recipient {
			return true
		}
	}
	return false
}

// inForce reports whether at falls in period (dates inclusive of their
// whole day, in UTC; an open end is open).
func inForce(period *fhir.Value, at time.Time) bool {
	if period == nil {
		return true
	}
	day := at.UTC().Format("2006-01-02")
	if s := period.GetString("start"); s != "" && day < s[:min(len(s), 10)] {
		return false
	}
	if e := period.GetString("end"); e != "" && day > e[:min(len(e), 10)] {
		return false
	}
	return true
}
