package mappings

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// FHIR -> KAP: what prescribers' EHRs send back. Vital-sign and
// dissociation Observations become observation records; a
// MedicationAdministration becomes the dose of its session; a CarePlan's
// status (on hold, revoked ...) becomes its course's status; a Flag coding
// a KAP red flag becomes an observation record with that red flag.
// Everything else is kept as FHIR with the reason, never dropped: the
// caller stores it and reports it.

// Records is what FromFHIR needs of the practice's records: the lookups,
// and every record of a kind, to resolve the gateway's ids (which are
// one-way hashes) back to practice ids. The Book satisfies it.
type Records interface {
	Lookup
	All(kind Kind) []Record
}

var _ Records = (*Book)(nil)

// Kept is a resource FromFHIR could not map, and why: a problem of code
// CodeKept (a warning; its Message is the reason).
type Kept struct {
	Resource *fhir.Value
	Problem
}

// String names the resource and says why it was kept: "Flag/f2: ...".
func (k Kept) String() string {
	return k.Resource.GetString("resourceType") + "/" + k.Resource.GetString("id") + ": " + k.Message
}

// Inbound is what FromFHIR makes of a batch of resources.
type Inbound struct {
	// Records are new or updated practice records, in the order of the
	// first resource that made each.
	Records []Record
	Kept    []Kept
	// Warnings say what the records took from the resources that a
	// practice should hear of (CodeChangedByEHR).
	Warnings []Problem
}

// reverseIndex maps the gateway's resource ids back to practice ids.
type reverseIndex struct {
	patients      map[string]string   // Patient id -> client id
	practitioners map[string]string   // Practitioner id -> practitioner id
	encounters    map[string]*Session // Encounter id -> held session
	carePlans     map[string]*Course  // CarePlan id -> course
}

func (m *Mapper) index(b Records) *reverseIndex {
	ix := &reverseIndex{map[string]string{}, map[string]string{}, map[string]*Session{}, map[string]*Course{}}
	for _, r := range b.All(KindClient) {
		id := r.RecordHeader().ID
		ix.patients[ResourceID(m.Practice, KindClient, id, "Patient")] = id
	}
	for _, r := range b.All(KindPractitioner) {
		id := r.RecordHeader().ID
		ix.practitioners[ResourceID(m.Practice, KindPractitioner, id, "Practitioner")] = id
	}
	for _, r := range b.All(KindSession) {
		if s, ok := r.(*Session); ok {
			ix.encounters[ResourceID(m.Practice, KindSession, s.ID, "Encounter")] = s
		}
	}
	for _, r := range b.All(KindCourse) {
		if c, ok := r.(*Course); ok {
			ix.carePlans[ResourceID(m.Practice, KindCourse, c.ID, "CarePlan")] = c
		}
	}
	return ix
}

// refID returns the id of a literal reference to typ ("Encounter/x",
// "https://ehr/fhir/Encounter/x/_history/2"), or "".
func refID(ref *fhir.Value, typ string) string {
	r := ref.GetString("reference")
	if i := strings.Index(r, "/_history/"); i >= 0 {
		r = r[:i]
	}
	i := strings.LastIndex(r, typ+"/")
	if i < 0 || (i > 0 && r[i-1] != '/') {
		return ""
	}
	return r[i+len(typ)+1:]
}

// practiceID returns the record id and suffix of a resource the gateway
// made from a record of kind (its practice identifier), or "" for a
// resource someone else made.
func (m *Mapper) practiceID(res *fhir.Value, kind Kind) (id, suffix string) {
	sys := NSPracticeRecordIDs + "/" + m.Practice + "/" + string(kind)
	ids := res.Get("identifier")
	var list []*fhir.Value
	switch {
	case ids == nil:
	case ids.Kind == fhir.KindArray:
		list = ids.Array
	default:
		list = []*fhir.Value{ids}
	}
	for _, v := range list {
		if v.GetString("system") == sys {
			val := v.GetString("value")
			if i := strings.IndexByte(val, '/'); i >= 0 {
				return val[:i], val[i+1:]
			}
			return val, ""
		}
	}
	return "", ""
}

// codings returns the codings of a CodeableConcept.
func codings(cc *fhir.Value) []*fhir.Value {
	if c := cc.Get("coding"); c != nil && c.Kind == fhir.KindArray {
		return c.Array
	}
	return nil
}

// conceptIn returns the first concept of the code table among a
// CodeableConcept's codings, "" if none.
func conceptIn(cc *fhir.Value) string {
	for _, c := range codings(cc) {
		if k := conceptOf(c.GetString("system"), c.GetString("code")); k != "" {
			return k
		}
	}
	return ""
}

// localCode returns the code of a CodeableConcept in a project system.
func localCode(cc *fhir.Value, system string) string {
	for _, c := range codings(cc) {
		if c.GetString("system") == system {
			return c.GetString("code")
		}
	}
	return ""
}

func quantityValue(q *fhir.Value, unit string) (float64, bool) {
	if q == nil {
		return 0, false
	}
	v := q.Get("value")
	if v == nil || v.Kind != fhir.KindNumber {
		return 0, false
	}
	if q.GetString("system") != SysUCUM || q.GetString("code") != codeOf(unit).Code {
		return 0, false
	}
	x, err := strconv.ParseFloat(v.Str, 64)
	return x, err == nil
}

func reverseMap(m map[string]string) map[string]string {
	r := make(map[string]string, len(m))
	for k, v := range m {
		r[v] = k
	}
	return r
}

var (
	sideEffectByCode = reverseMap(sideEffects)
	redFlagByCode    = reverseMap(redFlags)
	courseStatusOf   = reverseMap(carePlanStatus)
)

// inbound is the state of one FromFHIR call.
type inbound struct {
	m    *Mapper
	b    Records
	ix   *reverseIndex
	out  Inbound
	obs  map[string]*Observation // by record id
	sess map[string]*Session     // sessions updated in this batch, by id
	crs  map[string]*Course
}

func (in *inbound) keep(res *fhir.Value, format string, args ...any) {
	in.out.Kept = append(in.out.Kept, Kept{Resource: res, Problem: Problem{Code: CodeKept, Severity: SeverityWarning, Message: fmt.Sprintf(format, args...)}})
}

// FromFHIR maps resources an EHR sent back to practice records. It is
// pure: the records are new values (an updated session or course is a
// copy of the one in b with the change applied), and b is only read.
func (m *Mapper) FromFHIR(b Records, resources []*fhir.Value) Inbound {
	in := &inbound{m: m, b: b, ix: m.index(b), obs: map[string]*Observation{}, sess: map[string]*Session{}, crs: map[string]*Course{}}
	for _, res := range resources {
		if res == nil || res.Kind != fhir.KindObject {
			continue
		}
		switch rt := res.GetString("resourceType"); rt {
		case "Observation":
			in.observation(res)
		case "Flag":
			in.flag(res)
		case "MedicationAdministration":
			in.medicationAdministration(res)
		case "CarePlan":
			in.carePlan(res)
		default:
			in.keep(res, "%s: no practice record kind carries it", rt)
		}
	}
	return in.out
}

// observationFor returns the observation record a resource adds to: the
// gateway's own (by its practice identifier), else one per EHR encounter,
// time and performer.
func (in *inbound) observationFor(res *fhir.Value, enc *fhir.Value, when string) (*Observation, string) {
	s := in.ix.encounters[refID(enc, "Encounter")]
	if s == nil {
		return nil, "its encounter is not a session of this practice"
	}
	if when == "" || !isRFC3339(when) {
		return nil, "its time is not an RFC 3339 instant"
	}
	performer := ""
	if perf := res.Get("performer"); perf != nil && perf.Kind == fhir.KindArray && len(perf.Array) > 0 {
		performer = in.ix.practitioners[refID(perf.Array[0], "Practitioner")]
	} else if a := res.Get("author"); a != nil {
		performer = in.ix.practitioners[refID(a, "Practitioner")]
	}
	id, _ := in.m.practiceID(res, KindObservation)
	if id == "" {
		// An EHR's observation: the record id is a hash of what groups
		// its resources, so a re-poll converges on the same record.
		h := sha1.Sum([]byte(s.ID + "\x00" + when + "\x00" + performer))
		id = "ehr-" + hex.EncodeToString(h[:12])
	}
	if o := in.obs[id]; o != nil {
		return o, ""
	}
	o := &Observation{Header: Header{Kind: KindObservation, ID: id}, Session: s.ID, Time: when, Performer: performer}
	in.obs[id] = o
	in.out.Records = append(in.out.Records, o)
	return o, ""
}

func (in *inbound) observation(res *fhir.Value) {
	switch st := res.GetString("status"); st {
	case "final", "amended", "corrected":
	default:
		in.keep(res, "Observation status %q: only final results become records", st)
		return
	}
	when := res.GetString("effectiveDateTime")
	if when == "" {
		when = res.Get("effectivePeriod").GetString("start")
	}
	code := res.Get("code")
	concept := conceptIn(code)
	local := localCode(code, CSObservation)
	// Check the value before creating the record, so a resource kept for
	// its value does not leave an empty record behind.
	var apply func(*Observation)
	switch {
	case concept == "vitals.bp" || concept == "vitals.systolic" || concept == "vitals.diastolic":
		sys, dia, ok := bloodPressure(res, concept)
		if !ok {
			in.keep(res, "blood pressure without a value in mm[Hg]")
			return
		}
		apply = func(o *Observation) {
			v := vitalsOf(o)
			if sys != nil {
				v.Systolic = sys
			}
			if dia != nil {
				v.Diastolic = dia
			}
		}
	case vitalField(concept) != nil:
		unit := vitalUnit[concept]
		x, ok := quantityValue(res.Get("valueQuantity"), unit)
		if !ok {
			in.keep(res, "%s without a value in %s", codeOf(concept).Display, codeOf(unit).Code)
			return
		}
		apply = func(o *Observation) { *vitalField(concept)(vitalsOf(o)) = &x }
	case local == "dissociation-rating":
		v := res.Get("valueInteger")
		if v == nil {
			in.keep(res, "dissociation rating without valueInteger")
			return
		}
		n, err := strconv.Atoi(v.Str)
		if err != nil || n < 0 || n > 10 {
			in.keep(res, "dissociation rating %s is not 0-10", v.Str)
			return
		}
		apply = func(o *Observation) { o.Dissociation = &n }
	case local == "sedation-moaas":
		v := res.Get("valueInteger")
		if v == nil {
			in.keep(res, "sedation rating without valueInteger")
			return
		}
		n, err := strconv.Atoi(v.Str)
		if err != nil || n < 0 || n > 5 {
			in.keep(res, "sedation rating %s is not MOAA/S 0-5", v.Str)
			return
		}
		apply = func(o *Observation) { o.Sedation = &n }
	case local == "side-effect":
		se, ok := sideEffectByCode[localCode(res.Get("valueCodeableConcept"), CSSideEffect)]
		if !ok {
			in.keep(res, "side effect not coded in %s", CSSideEffect)
			return
		}
		apply = func(o *Observation) { o.SideEffects = appendNew(o.SideEffects, se) }
	case local == "red-flag":
		rf, ok := redFlagByCode[localCode(res.Get("valueCodeableConcept"), CSRedFlag)]
		if !ok {
			in.keep(res, "red flag not coded in %s", CSRedFlag)
			return
		}
		apply = func(o *Observation) { o.RedFlags = appendNew(o.RedFlags, rf) }
	default:
		in.keep(res, "Observation code is not a vital sign, dissociation rating, side effect or red flag the gateway knows")
		return
	}
	o, why := in.observationFor(res, res.Get("encounter"), when)
	if o == nil {
		in.keep(res, "Observation: %s", why)
		return
	}
	apply(o)
	in.common(o, res)
}

// common reads what every Observation of a record carries: the phase
// extension and the comment.
func (in *inbound) common(o *Observation, res *fhir.Value) {
	if ext := res.Get("extension"); ext != nil {
		for _, e := range ext.Array {
			if e.GetString("url") == ExtSessionPhase && phases[e.GetString("valueCode")] {
				o.Phase = e.GetString("valueCode")
			}
		}
	}
	if n := res.Get("note"); n != nil && len(n.Array) > 0 && o.Comment == "" {
		o.Comment = n.Array[0].GetString("text")
	}
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func vitalsOf(o *Observation) *Vitals {
	if o.Vitals == nil {
		o.Vitals = &Vitals{}
	}
	return o.Vitals
}

var vitalUnit = map[string]string{
	"vitals.hr": "ucum.min-1", "vitals.spo2": "ucum.%", "vitals.spo2.base": "ucum.%", "vitals.rr": "ucum.min-1",
	"vitals.weight": "ucum.kg", "vitals.temp": "ucum.Cel",
}

// vitalField returns the Vitals field a vital-sign concept fills, or nil.
func vitalField(concept string) func(*Vitals) **float64 {
	switch concept {
	case "vitals.hr":
		return func(v *Vitals) **float64 { return &v.HeartRate }
	case "vitals.spo2", "vitals.spo2.base":
		return func(v *Vitals) **float64 { return &v.SpO2 }
	case "vitals.rr":
		return func(v *Vitals) **float64 { return &v.RespiratoryRate }
	case "vitals.weight":
		return func(v *Vitals) **float64 { return &v.WeightKg }
	case "vitals.temp":
		return func(v *Vitals) **float64 { return &v.TemperatureC }
	}
	return nil
}

// bloodPressure reads a BP panel's components, or a lone systolic or
// diastolic Observation.
func bloodPressure(res *fhir.Value, concept string) (sys, dia *float64, ok bool) {
	if concept != "vitals.bp" {
		x, ok := quantityValue(res.Get("valueQuantity"), "ucum.mmHg")
		if !ok {
			return nil, nil, false
		}
		if concept == "vitals.systolic" {
			return &x, nil, true
		}
		return nil, &x, true
	}
	comps := res.Get("component")
	if comps == nil {
		return nil, nil, false
	}
	for _, c := range comps.Array {
		x, ok := quantityValue(c.Get("valueQuantity"), "ucum.mmHg")
		if !ok {
			continue
		}
		switch conceptIn(c.Get("code")) {
		case "vitals.systolic":
			sys = &x
		case "vitals.diastolic":
			dia = &x
		}
	}
	return sys, dia, sys != nil || dia != nil
}

// flag: a KAP red flag becomes an observation record with it; the
// gateway's own BP Flags are derived from a reading the record already has.
func (in *inbound) flag(res *fhir.Value) {
	if id, suffix := in.m.practiceID(res, KindObservation); id != "" && suffix == "bp" {
		in.keep(res, "the gateway's own blood-pressure flag: derived from the reading, nothing to update")
		return
	}
	rf, ok := redFlagByCode[localCode(res.Get("code"), CSRedFlag)]
	if !ok {
		in.keep(res, "Flag code is not a KAP red flag")
		return
	}
	if st := res.GetString("status"); st != "active" {
		in.keep(res, "Flag status %q: only an active red flag is a finding", st)
		return
	}
	o, why := in.observationFor(res, res.Get("encounter"), res.Get("period").GetString("start"))
	if o == nil {
		in.keep(res, "Flag: %s", why)
		return
	}
	o.RedFlags = appendNew(o.RedFlags, rf)
}

// session returns the copy of a session this batch updates.
func (in *inbound) session(s *Session) *Session {
	if c := in.sess[s.ID]; c != nil {
		return c
	}
	c := *s
	c.Practitioners = append([]string(nil), s.Practitioners...)
	if s.Dose != nil {
		d := *s.Dose
		c.Dose = &d
	}
	in.sess[s.ID] = &c
	in.out.Records = append(in.out.Records, &c)
	return &c
}

// medicationAdministration -> the dose of the session its context names.
func (in *inbound) medicationAdministration(res *fhir.Value) {
	if st := res.GetString("status"); st != "completed" {
		in.keep(res, "MedicationAdministration status %q: only a completed administration is a dose", st)
		return
	}
	s := in.ix.encounters[refID(res.Get("context"), "Encounter")]
	if s == nil {
		in.keep(res, "MedicationAdministration: its context is not a session of this practice")
		return
	}
	med := res.Get("medicationCodeableConcept")
	lot := ""
	if med == nil {
		if mr := res.Get("medicationReference").GetString("reference"); strings.HasPrefix(mr, "#") {
			if cs := res.Get("contained"); cs != nil {
				for _, c := range cs.Array {
					if c.GetString("id") == mr[1:] && c.GetString("resourceType") == "Medication" {
						med = c.Get("code")
						lot = c.Get("batch").GetString("lotNumber")
					}
				}
			}
		}
	}
	var drug, product string
	for _, cd := range codings(med) {
		if k := conceptOf(cd.GetString("system"), cd.GetString("code")); strings.HasPrefix(k, "drug.ketamine.") {
			product = strings.TrimPrefix(k, "drug.ketamine.")
		}
	}
	switch c := conceptIn(med); {
	case c == "drug.ketamine" || strings.HasPrefix(c, "drug.ketamine."):
		// The ingredient or an injectable product (238082-238084).
		drug = "ketamine"
	case c == "drug.esketamine" || c == "drug.esketamine.spravato":
		drug = "esketamine"
	default:
		in.keep(res, "MedicationAdministration: the medication is not ketamine or esketamine as the gateway codes them")
		return
	}
	dosage := res.Get("dosage")
	var route string
	switch conceptIn(dosage.Get("route")) {
	case "route.iv":
		route = "iv"
	case "route.im":
		route = "im"
	case "route.lozenge":
		route = "lozenge"
	case "route.spravato":
		route = "spravato"
	default:
		in.keep(res, "MedicationAdministration: the route is not one the gateway codes (SNOMED IV, IM, sublingual, nasal)")
		return
	}
	mg, ok := quantityValue(dosage.Get("dose"), "ucum.mg")
	if !ok {
		in.keep(res, "MedicationAdministration: the dose is not in mg")
		return
	}
	d := &Dose{Drug: drug, Mg: mg, Route: route, Lot: lot, Product: product}
	if ext := dosage.Get("extension"); ext != nil {
		for _, e := range ext.Array {
			if e.GetString("url") == ExtDosePerKg {
				if x, ok := quantityValue(e.Get("valueQuantity"), "ucum.mg/kg"); ok {
					d.MgPerKg = &x
				}
			}
		}
	}
	if perf := res.Get("performer"); perf != nil && len(perf.Array) > 0 {
		d.AdministeredBy = in.ix.practitioners[refID(perf.Array[0].Get("actor"), "Practitioner")]
	}
	c := in.session(s)
	if c.Dose != nil {
		// What the MedicationAdministration does not carry stays.
		d.MonitoredMin = c.Dose.MonitoredMin
	}
	c.Dose = d
}

// carePlan -> its course's status (an EHR holds or revokes a course).
func (in *inbound) carePlan(res *fhir.Value) {
	c := in.ix.carePlans[res.GetString("id")]
	if c == nil {
		if id, _ := in.m.practiceID(res, KindCourse); id != "" {
			c, _ = in.b.Course(id)
		}
	}
	if c == nil {
		in.keep(res, "CarePlan: not a course of this practice")
		return
	}
	st, ok := courseStatusOf[res.GetString("status")]
	if !ok {
		in.keep(res, "CarePlan status %q has no course status", res.GetString("status"))
		return
	}
	cp := in.crs[c.ID]
	if cp == nil {
		updated := *c
		cp = &updated
		in.crs[c.ID] = cp
		in.out.Records = append(in.out.Records, cp)
	}
	if cp.Status != st {
		in.out.Warnings = append(in.out.Warnings, Problem{Code: CodeChangedByEHR, Severity: SeverityWarning, Record: Ref{KindCourse, c.ID}, Field: "course.status",
			Message: "course " + c.ID + ": " + c.Status + " -> " + st + " (from the EHR's CarePlan)"})
	}
	cp.Status = st
}
