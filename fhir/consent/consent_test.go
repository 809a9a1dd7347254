package consent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/consent"
)

func parse(t *testing.T, s string) *fhir.Value {
	t.Helper()
	v, err := fhir.ParseJSON([]byte(s), fhir.StoredLimits)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const (
	note = `{"resourceType":"DocumentReference","id":"n1","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]},"subject":{"reference":"Patient/p1"}}`
	// labelled only in DocumentReference.securityLabel
	noteLabel = `{"resourceType":"DocumentReference","id":"n2","securityLabel":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]}],"subject":{"reference":"Patient/p1"}}`
	obs       = `{"resourceType":"Observation","id":"o1","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]},"subject":{"reference":"Patient/p1"}}`
	noteProv  = `{"resourceType":"Provenance","id":"pv","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]},"target":[{"reference":"DocumentReference/n1"}]}`
)

func consentJSON(id, status, patient, typ, actor, label, start, end string) string {
	lbl := ""
	if label != "" {
		lbl = `,"securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"` + label + `"}]`
	}
	return `{"resourceType":"Consent","id":"` + id + `","status":"` + status + `","patient":{"reference":"` + patient + `"},
	"provision":{"type":"` + typ + `","period":{"start":"` + start + `","end":"` + end + `"},
	"actor":[{"reference":{"reference":"` + actor + `"}}]` + lbl + `}}`
}

func TestDecide(t *testing.T) {
	at := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	permit := consentJSON("c1", "active", "Patient/p1", "permit", "Practitioner/rx", "PSYTHPN", "2026-01-01", "2026-12-31")
	for _, tc := range []struct {
		name, res, recipient string
		consents             []string
		allowed              bool
		reason               string
	}{
		{"note without consent", note, "Practitioner/rx", nil, false, "no active Consent"},
		{"note with consent", note, "Practitioner/rx", []string{permit}, true, "permits"},
		{"note label element only", noteLabel, "Practitioner/rx", nil, false, "no active Consent"},
		{"note label element, consent", noteLabel, "Practitioner/rx", []string{permit}, true, ""},
		{"note to another recipient", note, "Practitioner/other", []string{permit}, false, "no active Consent"},
		{"note, no recipient", note, "", []string{permit}, false, "names no recipient"},
		{"note, consent of another patient", note, "Practitioner/rx", []string{consentJSON("c1", "active", "Patient/p2", "permit", "Practitioner/rx", "PSYTHPN", "2026-01-01", "")}, false, ""},
		{"note, consent inactive", note, "Practitioner/rx", []string{consentJSON("c1", "inactive", "Patient/p1", "permit", "Practitioner/rx", "PSYTHPN", "2026-01-01", "")}, false, ""},
		{"note, consent expired", note, "Practitioner/rx", []string{consentJSON("c1", "active", "Patient/p1", "permit", "Practitioner/rx", "PSYTHPN", "2025-01-01", "2026-05-31")}, false, ""},
		{"note, consent not yet", note, "Practitioner/rx", []string{consentJSON("c1", "active", "Patient/p1", "permit", "Practitioner/rx", "PSYTHPN", "2026-06-02", "")}, false, ""},
		{"note, consent for PSY only", note, "Practitioner/rx", []string{consentJSON("c1", "active", "Patient/p1", "permit", "Practitioner/rx", "PSY", "2026-01-01", "")}, false, ""},
		{"note, permit and deny", note, "Practitioner/rx", []string{permit, consentJSON("c2", "active", "Patient/p1", "deny", "Practitioner/rx", "PSYTHPN", "2026-01-01", "")}, false, "Consent/c2 denies"},
		{"note's provenance", noteProv, "Practitioner/rx", []string{permit}, false, "tied to no patient"},
		{"observation", obs, "Practitioner/rx", nil, true, ""},
		{"observation, treatment record denied", obs, "Practitioner/rx", []string{consentJSON("c3", "active", "Patient/p1", "deny", "Practitioner/rx", "PSY", "2026-01-01", "")}, false, "Consent/c3 denies the treatment record"},
		{"observation, denied to another", obs, "Practitioner/rx", []string{consentJSON("c3", "active", "Patient/p1", "deny", "Practitioner/x", "PSY", "2026-01-01", "")}, true, ""},
		{"observation, notes permit irrelevant", obs, "Practitioner/rx", []string{permit}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cs []*fhir.Value
			for _, c := range tc.consents {
				cs = append(cs, parse(t, c))
			}
			d := consent.Decide(parse(t, tc.res), cs, tc.recipient, at)
			if d.Allowed != tc.allowed || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("Decide = %+v; want allowed %v, reason containing %q", d, tc.allowed, tc.reason)
			}
		})
	}
}
