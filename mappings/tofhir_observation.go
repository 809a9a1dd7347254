package mappings

import (
	"github.com/kapbridge/kapbridge/fhir"
)

var sideEffects = map[string]string{
	"nausea": "nausea", "dizziness": "dizziness", "dissociation_confusion": "dissociation-confusion",
	"bp_elevation": "bp-elevation", "emotional_flooding": "emotional-flooding",
}

var redFlags = map[string]string{"mania": "mania", "confusion": "confusion", "dependence": "dependence"}

var phases = map[string]bool{"before": true, "during": true, "discharge": true}

// interpret is a vital sign's interpretation under the Mapper's Limits
// (nil when within them or not judged).
func (mp *mapping) interpret(vital string, x float64) *fhir.Value {
	code := mp.m.Limits.interpretation(vital, x)
	if code == "" {
		return nil
	}
	return mp.arr(mp.concept("", mp.coding("interp."+code)))
}

// observation -> one vital-sign Observation per vital (R4 vital-signs
// profiles), a dissociation rating, an Observation per side effect and red
// flag, a Flag per red flag. Findings of Check (a pre-dose BP to hold the dose
// for, a rise from the session's baseline) become Flags by FindingFlags.
func (mp *mapping) observation(o *Observation) error {
	s, ok := mp.b.Session(o.Session)
	if !ok {
		return unresolved("observation.session", KindSession, o.Session)
	}
	c, cl, err := mp.sessionCourse("session.course", s)
	if err != nil {
		return err
	}
	mp.begin(KindObservation, o.Header, cl, false)
	if !isRFC3339(o.Time) {
		return invalid("observation.time", "%q is not RFC 3339", o.Time)
	}
	when := mp.str(o.Time)
	subject := mp.patientRef(c.Client)
	enc := mp.encounterRef(s)
	if enc == nil {
		mp.warn("observation.session", "session %q is %s, not held: no encounter reference", s.ID, s.Status)
	}
	var performer *fhir.Value
	if o.Performer != "" {
		performer = mp.arr(mp.practitionerRef(o.Performer))
	}
	var ext *fhir.Value
	if o.Phase != "" {
		if !phases[o.Phase] {
			return invalid("observation.phase", "%q is not before, during or discharge", o.Phase)
		}
		ext = mp.arr(mp.extension(ExtSessionPhase, mem("valueCode", mp.str(o.Phase))))
	}
	var note *fhir.Value
	if o.Comment != "" {
		// The comment belongs to the whole observation: every resource
		// made from it carries it.
		note = mp.arr(mp.obj(mem("text", mp.str(o.Comment))))
	}
	observe := func(suffix []string, profiles []string, category string, code *fhir.Value, value fhir.Member, rest ...fhir.Member) {
		var buf [16]fhir.Member
		body := append(buf[:0],
			mem("extension", mp.clone(ext)),
			mem("status", mp.str("final")),
			mem("category", mp.arr(mp.concept("", mp.coding(category)))),
			mem("code", code),
			mem("subject", mp.clone(subject)),
			mem("encounter", mp.clone(enc)),
			mem("effectiveDateTime", mp.clone(when)),
			mem("performer", mp.clone(performer)),
			value)
		body = append(body, rest...)
		body = append(body, mem("note", mp.clone(note)))
		mp.emit("Observation", suffix, append(profiles, ProfileSessionObservation), false, body...)
	}
	flag := func(suffix []string, code *fhir.Value) {
		mp.emit("Flag", suffix, nil, false,
			mem("status", mp.str("active")),
			mem("category", mp.arr(mp.concept("", mp.coding("flag.safety")))),
			mem("code", code),
			mem("subject", mp.clone(subject)),
			mem("period", mp.obj(mem("start", mp.clone(when)))),
			mem("encounter", mp.clone(enc)),
			mem("author", mp.practitionerRef(o.Performer)))
	}
	vitalsCat := "category.vital-signs"

	if v := o.Vitals; v != nil {
		if v.Systolic != nil || v.Diastolic != nil {
			comp := func(concept_ string, x *float64, vital string) *fhir.Value {
				c := mp.obj(mem("code", mp.concept("", mp.coding(concept_))))
				if x == nil {
					mp.warn("observation.vitals", "blood pressure without %s: data absent", codeOf(concept_).Display)
					c.Set("dataAbsentReason", mp.concept("", mp.obj(mem("system", mp.str("http://terminology.hl7.org/CodeSystem/data-absent-reason")), mem("code", mp.str("not-performed")))))
					return c
				}
				c.Set("valueQuantity", mp.ucum(*x, "ucum.mmHg"))
				if in := mp.interpret(vital, *x); in != nil {
					c.Set("interpretation", in)
				}
				return c
			}
			observe([]string{"bp"}, []string{ProfileVitalSigns, ProfileBP}, vitalsCat,
				mp.concept("blood pressure", mp.coding("vitals.bp")), mem("", nil),
				mem("component", mp.arr(comp("vitals.systolic", v.Systolic, "systolic"), comp("vitals.diastolic", v.Diastolic, "diastolic"))))
		}
		one := func(x *float64, suffix, prof, codeConcept, unit, text string, extra ...*fhir.Value) {
			if x == nil {
				return
			}
			codings := append([]*fhir.Value{mp.coding(codeConcept)}, extra...)
			profs := []string{ProfileVitalSigns, prof}
			if suffix == "spo2" {
				profs = append(profs, ProfileUSCorePulseOx)
			}
			observe([]string{suffix}, profs, vitalsCat, mp.concept(text, codings...), mem("valueQuantity", mp.ucum(*x, unit)),
				mem("interpretation", mp.interpret(suffix, *x)))
		}
		one(v.HeartRate, "hr", ProfileHeartRate, "vitals.hr", "ucum.min-1", "heart rate")
		// SpO2: the R4 oxygensat profile wants 2708-6, US Core pulse-ox 59408-5.
		one(v.SpO2, "spo2", ProfileOxygenSat, "vitals.spo2", "ucum.%", "oxygen saturation", mp.coding("vitals.spo2.base"))
		one(v.RespiratoryRate, "rr", ProfileRespRate, "vitals.rr", "ucum.min-1", "respiratory rate")
		one(v.WeightKg, "weight", ProfileBodyWeight, "vitals.weight", "ucum.kg", "body weight")
		one(v.TemperatureC, "temp", ProfileBodyTemp, "vitals.temp", "ucum.Cel", "body temperature")
	}
	if o.Dissociation != nil {
		observe([]string{"dissociation"}, nil, "category.exam",
			mp.concept("dissociation (clinician rating 0-10)", mp.localCoding(CSObservation, "dissociation-rating", "")),
			mem("valueInteger", mp.integer(*o.Dissociation)))
	}
	if o.Sedation != nil {
		observe([]string{"sedation"}, nil, "category.exam",
			mp.concept("sedation (MOAA/S 0-5, 5 = alert)", mp.localCoding(CSObservation, "sedation-moaas", "")),
			mem("valueInteger", mp.integer(*o.Sedation)))
	}
	for _, se := range o.SideEffects {
		code, ok := sideEffects[se]
		if !ok {
			return invalid("observation.side_effects", "%q is not a known side effect", se)
		}
		observe([]string{"side-effect", code}, nil, "category.exam",
			mp.concept("side effect", mp.localCoding(CSObservation, "side-effect", "")),
			mem("valueCodeableConcept", mp.concept("", mp.localCoding(CSSideEffect, code, ""))))
	}
	for _, rf := range o.RedFlags {
		code, ok := redFlags[rf]
		if !ok {
			return invalid("observation.red_flags", "%q is not mania, confusion or dependence", rf)
		}
		observe([]string{"red-flag", code}, nil, "category.exam",
			mp.concept("red flag", mp.localCoding(CSObservation, "red-flag", "")),
			mem("valueCodeableConcept", mp.concept("", mp.localCoding(CSRedFlag, code, ""))))
		flag([]string{"red-flag", code}, mp.concept("red flag: "+rf, mp.localCoding(CSRedFlag, code, "")))
	}
	if len(mp.out) == 0 {
		mp.warn("observation", "no vitals, dissociation, sedation, side effect or red flag: nothing to map")
	}
	return nil
}
