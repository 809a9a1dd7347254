package mappings

import (
	"slices"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }

// routeConcepts code a dose route (SNOMED): a lozenge is sublingual,
// Spravato nasal.
var routeConcepts = map[string]textCoding{
	"iv":       {"intravenous", "route.iv"},
	"im":       {"intramuscular", "route.im"},
	"lozenge":  {"sublingual", "route.lozenge"},
	"spravato": {"nasal", "route.spravato"},
}

// routeConcept is the CodeableConcept of a dose route, nil for an unknown
// one.
func (a *arena) routeConcept(route string) *fhir.Value { return a.textConcept(routeConcepts, route) }

// drugConcept codes the drug of a dose, and its product when the dose
// names one (Dose.Product, a ketamine injectable's SCD).
func (a *arena) drugConcept(drug, product string) *fhir.Value {
	switch drug {
	case "esketamine":
		// The SCDF and Spravato's SBDF: the product is always Spravato.
		return a.concept("esketamine", a.coding("drug.esketamine"), a.coding("drug.esketamine.spravato"))
	case "ketamine":
		if _, ok := codeIndex["drug.ketamine."+product]; ok && product != "" {
			return a.concept("ketamine", a.coding("drug.ketamine"), a.coding("drug.ketamine."+product))
		}
		return a.concept("ketamine", a.coding("drug.ketamine"))
	}
	return nil
}

// sessionCourse resolves a session's course and client.
func (mp *mapping) sessionCourse(field string, s *Session) (*Course, *Client, error) {
	c, ok := mp.b.Course(s.Course)
	if !ok {
		return nil, nil, unresolved(field, KindCourse, s.Course)
	}
	cl, ok := mp.b.Client(c.Client)
	if !ok {
		return nil, nil, unresolved("course.client", KindClient, c.Client)
	}
	return c, cl, nil
}

// encounterRef is the Encounter of a session, nil unless it was held
// (only held sessions become Encounters).
func (mp *mapping) encounterRef(s *Session) *fhir.Value {
	if s == nil || s.Status != "held" {
		return nil
	}
	return mp.refTo("Encounter", KindSession, s.ID)
}

// session -> Encounter (held sessions) + MedicationAdministration (a dose).
// Planned, cancelled and no-show sessions are CarePlan activities of the
// course only, so they map to nothing here.
//
// The Encounter does not point at the course: R4 Encounter.basedOn takes
// only a ServiceRequest and episodeOfCare an EpisodeOfCare, neither of
// which the gateway makes; the CarePlan activity's outcomeReference points
// at the Encounter instead, which base R4 allows.
func (mp *mapping) session(s *Session) error {
	c, cl, err := mp.sessionCourse("session.course", s)
	if err != nil {
		return err
	}
	mp.begin(KindSession, s.Header, cl, false)
	if !validSessionType(s.Type) {
		return invalid("session.type", "%q is not one of %v", s.Type, sessionTypes)
	}
	if _, ok := activityStatus[s.Status]; !ok {
		return invalid("session.status", "%q is not planned, held, cancelled or no_show", s.Status)
	}
	for _, f := range []struct{ name, v string }{{"planned_start", s.PlannedStart}, {"planned_end", s.PlannedEnd}, {"actual_start", s.ActualStart}, {"actual_end", s.ActualEnd}} {
		if f.v != "" && !isRFC3339(f.v) {
			return invalid("session."+f.name, "%q is not RFC 3339", f.v)
		}
	}
	if s.Status != "held" {
		if s.Dose != nil {
			mp.warn("session.dose", "a %s session gave no dose: the dose is not mapped", s.Status)
		}
		return nil
	}
	start, end := s.ActualStart, s.ActualEnd
	if start == "" {
		start, end = s.PlannedStart, s.PlannedEnd
		mp.warn("session.actual_start", "missing for a held session: the planned times stand in")
	}
	var parts []*fhir.Value
	for _, p := range s.Practitioners {
		parts = append(parts, mp.obj(mem("individual", mp.practitionerRef(p))))
	}
	var reasons []*fhir.Value
	for _, ind := range c.Indications {
		reasons = append(reasons, mp.refTo("Condition", KindCourse, c.ID, ind))
	}
	var length *fhir.Value
	if s.Dose != nil && s.Dose.MonitoredMin > 0 {
		// The REMS form asks for the monitored minutes; Encounter.length
		// is the time the client was in the session.
		length = mp.ucum(float64(s.Dose.MonitoredMin), "ucum.min")
	}
	enc := mp.emit("Encounter", nil, []string{ProfileUSCoreEncounter}, false,
		mem("status", mp.str("finished")),
		mem("class", mp.coding("encounter.AMB")),
		mem("type", mp.arr(mp.sessionTypeCode(s.Type))),
		mem("subject", mp.patientRef(c.Client)),
		mem("participant", mp.arr(parts...)),
		mem("period", mp.period(start, end)),
		mem("length", length),
		mem("reasonReference", mp.arr(reasons...)))
	if s.Dose == nil {
		if len(s.Concomitant) > 0 {
			mp.warn("session.concomitant", "without a dose the concomitant medication classes are not carried (they are noted on the dose's MedicationAdministration)")
		}
		if s.Type == "dosing" {
			mp.warn("session.dose", "a held dosing session without a dose: no MedicationAdministration")
		}
		return nil
	}
	if s.Type != "dosing" && s.Type != "maintenance" {
		mp.warn("session.dose", "a dose in a %s session is mapped as given", s.Type)
	}
	d := s.Dose
	med := mp.drugConcept(d.Drug, d.Product)
	if med == nil {
		return invalid("session.dose.drug", "%q is not ketamine or esketamine", d.Drug)
	}
	if d.Product != "" && (d.Drug != "ketamine" || !slices.Contains(ProductCodes, d.Product)) {
		// Check's dose.product error names it; a caller that maps anyway
		// gets the ingredient alone, never a product code that is wrong.
		mp.warn("session.dose.product", "%q is not a product code of %s (%s): not carried", d.Product, d.Drug, strings.Join(ProductCodes, ", "))
	}
	route := mp.routeConcept(d.Route)
	if route == nil {
		return invalid("session.dose.route", "%q is not iv, im, lozenge or spravato", d.Route)
	}
	if end == "" {
		mp.warn("session.actual_end", "missing: the administration has a start only")
	}
	var medication fhir.Member
	var contained *fhir.Value
	if d.Lot != "" {
		// R4 MedicationAdministration has no lot: the medication is a
		// contained Medication whose batch carries it (the REMS form
		// asks for the lot).
		contained = mp.arr(mp.obj(
			mem("resourceType", mp.str("Medication")),
			mem("id", mp.str("med")),
			mem("code", med),
			mem("batch", mp.obj(mem("lotNumber", mp.str(d.Lot))))))
		medication = mem("medicationReference", mp.obj(mem("reference", mp.str("#med"))))
	} else {
		medication = mem("medicationCodeableConcept", med)
	}
	var perf *fhir.Value
	if d.AdministeredBy != "" {
		perf = mp.arr(mp.obj(mem("actor", mp.practitionerRef(d.AdministeredBy))))
	}
	var ext *fhir.Value
	if d.MgPerKg != nil {
		ext = mp.arr(mp.extension(ExtDosePerKg, mem("valueQuantity", mp.ucum(*d.MgPerKg, "ucum.mg/kg"))))
	}
	// effective[x] is when the dose was given, not the whole session.
	var effective, rate fhir.Member
	switch {
	case d.GivenAt != "" && !isRFC3339(d.GivenAt):
		return invalid("session.dose.given_at", "%q is not RFC 3339", d.GivenAt)
	case d.GivenAt != "" && d.InfusionMinutes > 0:
		t0, _ := parseTime(d.GivenAt)
		effective = mem("effectivePeriod", mp.period(d.GivenAt, t0.Add(time.Duration(d.InfusionMinutes)*time.Minute).Format(time.RFC3339)))
	case d.GivenAt != "":
		effective = mem("effectiveDateTime", mp.str(d.GivenAt))
	default:
		mp.warn("session.dose.given_at", "missing: the session's start (%s) stands for the time the dose was given", start)
		effective = mem("effectiveDateTime", mp.str(start))
	}
	if d.InfusionMinutes > 0 {
		rate = mem("rateQuantity", mp.ucum(d.Mg/float64(d.InfusionMinutes), "ucum.mg/min"))
	}
	mp.emit("MedicationAdministration", []string{"dose"}, nil, false,
		mem("contained", contained),
		mem("status", mp.str("completed")),
		medication,
		mem("subject", mp.patientRef(c.Client)),
		mem("context", mp.ref("Encounter", enc.GetString("id"))),
		effective,
		mem("request", mp.prescriptionRef(c)),
		mem("performer", perf),
		mem("reasonReference", mp.arr(mp.clones(reasons)...)),
		mem("note", concomitantNote(mp, s.Concomitant)),
		mem("dosage", mp.obj(
			mem("extension", ext),
			mem("route", route),
			mem("dose", mp.ucum(d.Mg, "ucum.mg")),
			rate)))
	return nil
}

// concomitantNote carries a session's concomitant medication classes on
// its dose (R4 MedicationAdministration has no element for them; the
// REMS form asks for them per session).
func concomitantNote(mp *mapping, classes []string) *fhir.Value {
	if len(classes) == 0 {
		return nil
	}
	return mp.arr(mp.obj(mem("text", mp.str("concomitant medication classes (Spravato REMS form): "+strings.Join(classes, ", ")))))
}

// prescriptionRef is the course's MedicationRequest, nil when the
// Mapper makes no prescriptions (NoPrescriptions).
func (mp *mapping) prescriptionRef(c *Course) *fhir.Value {
	if mp.m.NoPrescriptions {
		return nil
	}
	return mp.refTo("MedicationRequest", KindCourse, c.ID, "prescription")
}
