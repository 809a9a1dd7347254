package fhir

import "bytes"

// Disclosure: which stored resources an answer may carry, decided in one
// place. A resource's Sensitivity is read from its meta.security labels
// (SensitivityOf) when the store writes a version, kept with the version
// (a deletion keeps the Sensitivity of what it deleted), and compared with
// the Audience of a request: every path that answers with stored data
// (read, vread, history, search, includes, _has, chains, conditional
// matches, Bundle entries, error messages) asks the Audience, and stores
// leave hidden resources out of their queries so counts, sort order and
// paging cannot betray them either.

// Sensitivity is the set of disclosure-restricting security labels a
// resource carries. Stores persist it as an integer; the bits never change
// meaning.
type Sensitivity uint32

const (
	// PsychotherapyNote: v3-ActCode PSYTHPN. A psychotherapy note (45 CFR
	// 164.501) is disclosed only with the patient's authorization for an
	// identified recipient.
	PsychotherapyNote Sensitivity = 1 << iota
	// VeryRestricted: v3-Confidentiality V.
	VeryRestricted
	// Restricted: v3-Confidentiality R.
	Restricted
)

// Label systems.
const (
	SysActCode         = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	SysConfidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
)

// SensitivityOf reads the disclosure-restricting labels in res's
// meta.security.
func SensitivityOf(res *Value) Sensitivity {
	var s Sensitivity
	sec := res.Get("meta").Get("security")
	var labels []*Value
	switch {
	case sec == nil:
	case sec.Kind == KindArray:
		labels = sec.Array
	default:
		labels = []*Value{sec}
	}
	for _, l := range labels {
		switch sys, code := l.GetString("system"), l.GetString("code"); {
		case sys == SysActCode && code == "PSYTHPN":
			s |= PsychotherapyNote
		case sys == SysConfidentiality && code == "V":
			s |= VeryRestricted
		case sys == SysConfidentiality && code == "R":
			s |= Restricted
		}
	}
	return s
}

// SensitivityOfJSON is SensitivityOf for a stored body. Empty JSON (a
// deletion) has none of its own. A body that does not parse yet mentions
// PSYTHPN is taken as a note: erring on the side of the patient.
func SensitivityOfJSON(b []byte) Sensitivity {
	if len(b) == 0 || !bytes.Contains(b, []byte(`"PSYTHPN"`)) && !bytes.Contains(b, []byte(SysConfidentiality)) {
		return 0 // the cheap test rules out nearly every resource
	}
	root, err := ParseJSON(b, StoredLimits)
	if err != nil {
		if bytes.Contains(b, []byte(`"PSYTHPN"`)) {
			return PsychotherapyNote
		}
		return 0
	}
	return SensitivityOf(root)
}

// Audience is whom an answer goes to, as far as disclosure is concerned:
// the sensitivities it may receive. The zero Audience is the public one,
// which receives none of the withheld sensitivities.
type Audience struct {
	// May lists the sensitivities this audience may receive beyond the
	// public ones.
	May Sensitivity
}

// Withheld are the sensitivities no audience receives unless its May
// names them. Until the API authenticates its callers (the authorization
// issue) that is psychotherapy notes; R and V are recorded for the Consent
// rules to come but not yet withheld.
const Withheld = PsychotherapyNote

// Hidden is the set of sensitivities a store must leave out of any
// answer for a.
func (a Audience) Hidden() Sensitivity { return Withheld &^ a.May }

// Withholds reports whether v must not reach a: not its content, not its
// existence.
func (a Audience) Withholds(v Version) bool { return v.Sensitivity&a.Hidden() != 0 }
