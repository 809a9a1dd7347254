package mappings

import (
	"encoding/base64"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// note -> DocumentReference labelled V + PSYTHPN, only. A process note is a
// psychotherapy note (45 CFR 164.501): it is kept apart from the record
// and its disclosure needs the client's authorization, so it maps to one
// resource that Exportable holds back until a Consent lets it out. Its
// Provenance carries the same labels, since even that a note exists is the
// note's business.
func (mp *mapping) note(n *Note) error {
	s, ok := mp.b.Session(n.Session)
	if !ok {
		return unresolved("note.session", KindSession, n.Session)
	}
	c, cl, err := mp.sessionCourse("session.course", s)
	if err != nil {
		return err
	}
	mp.begin(KindNote, n.Header, cl, true)
	var date, created *fhir.Value
	switch {
	case isRFC3339(n.Date):
		date, created = mp.str(n.Date), mp.str(n.Date) // DocumentReference.date is an instant
	case isDay(n.Date):
		created = mp.str(n.Date)
	default:
		return invalid("note.date", "%q is neither YYYY-MM-DD nor RFC 3339", n.Date)
	}
	var ctx *fhir.Value
	if enc := mp.encounterRef(s); enc != nil {
		ctx = mp.obj(mem("encounter", mp.arr(enc)))
	}
	mp.emit("DocumentReference", nil, []string{ProfileUSCoreDocumentRef}, false,
		mem("status", mp.str("current")),
		mem("docStatus", mp.str("final")),
		mem("type", mp.concept("psychotherapy process note", mp.localCoding(CSNoteType, "process-note", ""))),
		// US Core DocumentReference requires a category (extensible
		// binding): a process note is a clinical note.
		mem("category", mp.arr(mp.concept("", mp.coding("docref.clinical-note")))),
		mem("subject", mp.patientRef(c.Client)),
		mem("date", date),
		mem("author", mp.arr(mp.practitionerRef(n.Author))),
		mem("securityLabel", mp.arr(mp.concept("", mp.coding("sec.V")), mp.concept("", mp.coding("sec.PSYTHPN")))),
		mem("content", mp.arr(mp.obj(mem("attachment", mp.obj(
			mem("contentType", mp.str("text/plain; charset=utf-8")),
			mem("data", mp.str(base64.StdEncoding.EncodeToString([]byte(n.Text)))),
			mem("creation", created)))))),
		mem("context", ctx))
	return nil
}

// hasLabel reports whether a resource's meta.security holds the code.
func hasLabel(res *fhir.Value, system, code string) bool {
	sec := res.Get("meta").Get("security")
	if sec == nil {
		return false
	}
	for _, c := range sec.Array {
		if c.GetString("system") == system && c.GetString("code") == code {
			return true
		}
	}
	return false
}

// subjectOf is the Patient id a resource is about, "" if none.
func subjectOf(res *fhir.Value) string {
	for _, k := range []string{"subject", "patient"} {
		if r := res.Get(k).GetString("reference"); len(r) > len("Patient/") && r[:len("Patient/")] == "Patient/" {
			return r[len("Patient/"):]
		}
	}
	if res.GetString("resourceType") == "Patient" {
		return res.GetString("id")
	}
	return ""
}

// Exportable reports whether a mapped resource may leave the gateway for
// recipient (a practitioner's practice id) at time at, given the
// practice's consents.
//
// A resource labelled PSYTHPN (a process note) goes only where a Consent
// of its client, in force at that time, permits scope process_notes to
// that recipient, and no such Consent denies it. A resource about a client
// for whom a Consent in force denies treatment_record to the recipient
// stays too. Anything else is ordinary PHI that may go to a prescriber
// for treatment (kap-domain.md section 6). A PSYTHPN resource whose
// client cannot be told (a note's Provenance) never leaves; a resource of
// no known client (a Provenance, a Practitioner) is held back by any
// client's treatment_record denial to that recipient, erring on the side
// of the client who said no.
func (m *Mapper) Exportable(res *fhir.Value, consents []*Consent, recipient string, at time.Time) bool {
	patient := subjectOf(res)
	note := hasLabel(res, SysActCode, "PSYTHPN")
	if note && patient == "" {
		return false
	}
	permit, deny := false, false
	for _, c := range consents {
		if c.Recipient != recipient || !inForce(c, at) {
			continue
		}
		if patient != "" && ResourceID(m.Practice, KindClient, c.Client, "Patient") != patient {
			continue
		}
		switch {
		case c.Scope == "process_notes" && c.Decision == "permit":
			permit = true
		case c.Scope == "process_notes" && c.Decision == "deny":
			if note {
				deny = true
			}
		case c.Scope == "treatment_record" && c.Decision == "deny":
			if !note {
				deny = true
			}
		}
	}
	if deny {
		return false
	}
	if note {
		return permit
	}
	return true
}

// inForce reports whether at falls within the consent's days (end
// inclusive), read in UTC.
func inForce(c *Consent, at time.Time) bool {
	day := at.UTC().Format("2006-01-02")
	if c.Start == "" || day < c.Start {
		return false
	}
	return c.End == "" || day <= c.End
}
