package mappings

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// flagPriority is the flag-priority code of a finding that becomes a Flag:
// every alert (SeverityAlert) and the warnings listed here. Blood pressure
// has a gradient: a rise from the session's baseline (the expected
// transient peak is below it) is low, a pre-dose reading to hold the dose
// for is medium, a hypertensive-crisis level is high. Findings not listed
// and not alerts make no Flag; the safety.* findings have their own Flags
// from the mapping of the record itself (red flags, PHQ-9 item 9, C-SSRS).
var flagPriority = map[string]string{
	"vitals.bp_rise":                "PL",
	"vitals.dissociation":           "PL",
	"vitals.bp_pre_dose":            "PM",
	"dose.concomitant":              "PM",
	"clearance.override":            "PM",
	"dosing.pregnancy_test_missing": "PM",
	"schedule.no_preparation":       "PL",
	"course.spravato_indication":    "PL",
}

// FindingFlag reports whether a finding becomes a Flag, and its priority.
func FindingFlag(p Problem) (priority string, ok bool) {
	if pr, ok := flagPriority[p.Code]; ok {
		return pr, true
	}
	if p.Severity == SeverityAlert {
		return "PH", true
	}
	return "", false
}

// ToFHIRChecked is ToFHIR with the findings of Check on the record: each
// finding a prescriber must see (FindingFlag) becomes a Flag (category
// safety, the flag-priority extension, code the check's code in
// kap-check, text the finding's message, which states the value and the
// rule), listed in the record's Provenance like its other resources. A
// record that maps to nothing else (a planned session) still carries its
// Flags.
func (m *Mapper) ToFHIRChecked(b Lookup, r Record, findings []Problem) ([]*fhir.Value, []Problem, error) {
	return m.toFHIR(b, r, findings)
}

// findingFlags emits the Flags of findings for the record being mapped.
func (mp *mapping) findingFlags(r Record, findings []Problem) {
	var subject, enc *fhir.Value
	var client *Client
	var when string // the time of what the finding is about
	switch rp := recordPointer(r).(type) {
	case *Course:
		client, _ = mp.b.Client(rp.Client)
		subject, when = mp.patientRef(rp.Client), rp.Start
	case *Screening:
		client, _ = mp.b.Client(rp.Client)
		subject, when = mp.patientRef(rp.Client), rp.Date
	case *Session:
		if c, cl, err := mp.sessionCourse("session.course", rp); err == nil {
			client, subject, enc, when = cl, mp.patientRef(c.Client), mp.encounterRef(rp), sessionStart(rp)
		}
	case *Observation:
		when = rp.Time
		if s, ok := mp.b.Session(rp.Session); ok {
			if c, cl, err := mp.sessionCourse("session.course", s); err == nil {
				client, subject, enc = cl, mp.patientRef(c.Client), mp.encounterRef(s)
			}
		}
	}
	var period *fhir.Value
	if isDay(when) || isRFC3339(when) {
		period = mp.obj(mem("start", mp.str(when)))
	}
	n := map[string]int{}
	for _, f := range findings {
		pr, ok := FindingFlag(f)
		if !ok {
			continue
		}
		if subject == nil {
			mp.warn(f.Field, "finding %s: no patient known, so no Flag: %s", f.Code, f.Message)
			continue
		}
		if mp.kind == "" {
			h := r.RecordHeader()
			mp.begin(h.Kind, h, client, false)
		}
		n[f.Code]++
		text := f.Code + ": " + f.Message
		if f.Field != "" {
			text = f.Code + " (" + f.Field + "): " + f.Message
		}
		mp.emit("Flag", []string{"finding", f.Code, strconv.Itoa(n[f.Code])}, nil, false,
			mem("extension", mp.arr(mp.extension(ExtFlagPriority, mem("valueCodeableConcept", mp.concept("", mp.coding("flag.priority."+pr)))))),
			mem("status", mp.str("active")),
			mem("category", mp.arr(mp.concept("", mp.coding("flag.safety")))),
			mem("code", mp.concept(text, mp.localCoding(CSCheck, f.Code, ""))),
			mem("subject", mp.clone(subject)),
			mem("period", mp.clone(period)),
			mem("encounter", mp.clone(enc)))
	}
}

// CodePendingOverdue is the kap-check code of the Flag a safety-relevant
// record raises when it has waited longer than Limits.PendingMax for the
// records it names (CHECKS.md, "Pending records").
const CodePendingOverdue = "record.pending_overdue"

// SafetyRelevant reports whether a record that waits must not wait
// unseen: a dose given (a session with a dose, a held dosing or
// maintenance session), an observation (vital signs, dissociation, red
// flags), a screening (clearance, suicide-risk instruments).
func SafetyRelevant(r Record) bool {
	switch rp := recordPointer(r).(type) {
	case *Session:
		return rp.Dose != nil || (rp.Status == "held" && (rp.Type == "dosing" || rp.Type == "maintenance"))
	case *Observation:
		return rp.Vitals != nil || rp.Dissociation != nil || rp.Sedation != nil || len(rp.RedFlags) > 0
	case *Screening:
		return rp.Clearance != nil || rp.PregnancyTest != nil || len(rp.Instruments) > 0
	}
	return false
}

// OverdueFlag is the Flag of a safety-relevant record of client that has
// waited for the records in waiting since since (a pure mapping: the
// caller says how long, and for whom). Its id is fixed per record, so
// raising it again replaces it; the record's mapping, once it can map,
// removes it (the Applier deletes what a record's mapping no longer
// makes).
//
// client "" is a record whose patient is not known yet (an observation of
// a session the gateway has not seen): a Flag needs a subject, so it
// hangs on the practice itself, a logical reference to its Organization
// by the practice identifier (the gateway keeps no Organization resource;
// PractitionerRole.organization names the practice the same way). Such a
// Flag is the practice's to act on: the sync does not send it to an EHR,
// which files alerts under a patient (adapters/ehr ArtifactOf).
func (m *Mapper) OverdueFlag(b Lookup, r Record, client string, waiting []string, since time.Time, age time.Duration) (*fhir.Value, error) {
	var cl *Client
	var subject *fhir.Value
	mp := mapping{m: m, b: b}
	if client != "" {
		var ok bool
		if cl, ok = b.Client(client); !ok {
			return nil, unresolved("client", KindClient, client)
		}
		subject = mp.patientRef(client)
	} else {
		subject = mp.practiceOrganization()
	}
	h := r.RecordHeader()
	// Without a client no Part 2 program is known: R + PSY, as for any
	// KAP content.
	mp.begin(h.Kind, h, cl, false)
	what := string(h.Kind) + " " + h.ID
	if s, ok := recordPointer(r).(*Session); ok && s.Dose != nil {
		what += fmt.Sprintf(" (%s %g mg %s at %s)", s.Dose.Drug, s.Dose.Mg, s.Dose.Route, sessionStart(s))
	}
	text := fmt.Sprintf("%s: %s has waited %s (since %s) for %s, longer than the practice's %s (pending_max_hours): it is stored but not yet mapped",
		CodePendingOverdue, what, age.Round(time.Minute), since.UTC().Format(time.RFC3339), strings.Join(waiting, ", "), m.Limits.PendingMax())
	if client == "" {
		text += "; its patient is not known yet, so this Flag is on the practice"
	}
	return mp.emit("Flag", []string{"pending-overdue"}, nil, false,
		mem("extension", mp.arr(mp.extension(ExtFlagPriority, mem("valueCodeableConcept", mp.concept("", mp.coding("flag.priority.PH")))))),
		mem("status", mp.str("active")),
		mem("category", mp.arr(mp.concept("", mp.coding("flag.safety")))),
		mem("code", mp.concept(text, mp.localCoding(CSCheck, CodePendingOverdue, ""))),
		mem("subject", subject),
		mem("period", mp.obj(mem("start", mp.str(since.UTC().Format(time.RFC3339)))))), nil
}

// practiceOrganization is a logical reference to the practice's
// Organization, by the practice identifier.
func (mp *mapping) practiceOrganization() *fhir.Value {
	return mp.obj(mem("type", mp.str("Organization")),
		mem("identifier", mp.obj(mem("system", mp.str(NSPracticeRecordIDs)), mem("value", mp.str(mp.m.Practice)))),
		mem("display", mp.str("practice "+mp.m.Practice)))
}
