package mappings

import (
	"strconv"

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
	"vitals.bp_rise":             "PL",
	"vitals.dissociation":        "PL",
	"vitals.bp_pre_dose":         "PM",
	"clearance.override":         "PM",
	"schedule.no_preparation":    "PL",
	"course.spravato_indication": "PL",
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
