package server

import (
	"bytes"

	"github.com/kapbridge/kapbridge/fhir"
)

// Psychotherapy notes (45 CFR 164.501) are stored labelled with the
// v3-ActCode sensitivity PSYTHPN. Their disclosure needs the patient's
// authorization for a named recipient, and this API does not yet know who
// its caller is (client authentication arrives with roadmap item 2), so it
// discloses none: a read answers 403, and searches and histories leave
// them out and say how many they left out. The practice's own tools read
// notes from the practice record store, not from here.

const sysActCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

// withheld reports whether v is a psychotherapy note.
func withheld(v fhir.Version) bool {
	if v.Deleted || !bytes.Contains(v.JSON, []byte(`"PSYTHPN"`)) {
		return false // the cheap test rules out nearly every resource
	}
	root, err := fhir.ParseJSON(v.JSON, fhir.DefaultLimits)
	if err != nil {
		return true // unreadable yet mentioning PSYTHPN: err on the side of the patient
	}
	for _, l := range arrayOf(root.Get("meta").Get("security")) {
		if l.GetString("system") == sysActCode && l.GetString("code") == "PSYTHPN" {
			return true
		}
	}
	return false
}

// withheldError is the answer to a read of a psychotherapy note.
func withheldError(v fhir.Version) error {
	return fhir.Errorf(fhir.IssueSecurity, "", "%s/%s is a psychotherapy note (PSYTHPN); it is not disclosed without the patient's authorization for an identified recipient", v.Type, v.ID)
}

// withholdNotes removes psychotherapy notes from vs and returns how many
// it removed.
func withholdNotes(vs []fhir.Version) ([]fhir.Version, int) {
	out := vs[:0:0]
	n := 0
	for _, v := range vs {
		if withheld(v) {
			n++
			continue
		}
		out = append(out, v)
	}
	return out, n
}

// withheldIssue reports notes left out of a Bundle.
func withheldIssue(n int) fhir.Issue {
	return fhir.Issue{Severity: fhir.SeverityInformation, Code: fhir.IssueSecurity,
		Diagnostics: itoa(int64(n)) + " psychotherapy note(s) matched and were withheld: notes are not disclosed without the patient's authorization"}
}
