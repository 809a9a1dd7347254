package mappings

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// roundTripBook is a practice with a client, a team and a course of held
// and planned sessions, for the round-trip generators.
func roundTripBook(rng *rand.Rand) (*memBook, []*Session) {
	b := newMemBook()
	b.add(&Client{Header: Header{Kind: KindClient, ID: "cl"}, Name: Name{Family: "F"}, BirthDate: "1980-01-01", SUDProgram: rng.IntN(2) == 0})
	for _, p := range []struct{ id, role string }{{"pres", "prescriber"}, {"ther", "therapist"}, {"rn", "administrator"}} {
		b.add(&Practitioner{Header: Header{Kind: KindPractitioner, ID: p.id}, Name: Name{Family: p.id}, Role: p.role, Credential: "MD"})
	}
	b.add(&Course{Header: Header{Kind: KindCourse, ID: "co"}, Client: "cl", Prescriber: "pres", Therapist: "ther", Team: []string{"rn"}, Indications: []string{"trd", "ptsd"}, Route: "iv", Status: "active", Start: "2026-01-05"})
	var held []*Session
	for i := range 8 {
		start := time.Date(2026, 1, 6+i, 10, 0, 0, 0, time.UTC).Format(time.RFC3339)
		end := time.Date(2026, 1, 6+i, 11, 0, 0, 0, time.UTC).Format(time.RFC3339)
		s := &Session{Header: Header{Kind: KindSession, ID: fmt.Sprintf("s%d", i)}, Course: "co", Type: "dosing", Status: "held", PlannedStart: start, ActualStart: start, ActualEnd: end, Practitioners: []string{"pres", "rn"}}
		b.add(s)
		held = append(held, s)
	}
	return b, held
}

var zones = []*time.Location{time.UTC, time.FixedZone("", -5*3600), time.FixedZone("", 5*3600+1800)}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// someOf returns a random subset of xs in random order, nil if empty.
func someOf(rng *rand.Rand, xs []string) []string {
	var out []string
	for _, i := range rng.Perm(len(xs)) {
		if rng.IntN(3) == 0 {
			out = append(out, xs[i])
		}
	}
	return out
}

func randFloat(rng *rand.Rand, lo, hi float64) *float64 {
	if rng.IntN(3) == 0 {
		return nil
	}
	var x float64
	switch rng.IntN(3) {
	case 0:
		x = float64(int(lo) + rng.IntN(int(hi-lo)+1)) // as practices type them
	case 1:
		x = float64(int(lo*10)+rng.IntN(int((hi-lo)*10)+1)) / 10
	default:
		x = lo + rng.Float64()*(hi-lo) // any float64: the decimal text must round-trip exactly
	}
	return &x
}

// randObservation is a random valid observation record with at least one
// thing to map.
func randObservation(rng *rand.Rand, n int, sessions []*Session) *Observation {
	s := pick(rng, sessions)
	t, _ := time.Parse(time.RFC3339, s.ActualStart)
	o := &Observation{
		Header:    Header{Kind: KindObservation, ID: fmt.Sprintf("o%d", n)},
		Session:   s.ID,
		Time:      t.Add(time.Duration(rng.IntN(7200)) * time.Second).In(pick(rng, zones)).Format(time.RFC3339),
		Performer: pick(rng, []string{"", "pres", "rn"}),
		Phase:     pick(rng, []string{"", "before", "during", "discharge"}),
	}
	for {
		v := &Vitals{
			Systolic: randFloat(rng, 80, 200), Diastolic: randFloat(rng, 40, 130), HeartRate: randFloat(rng, 40, 160),
			SpO2: randFloat(rng, 80, 100), RespiratoryRate: randFloat(rng, 8, 30), WeightKg: randFloat(rng, 40, 160), TemperatureC: randFloat(rng, 35, 40),
		}
		if *v != (Vitals{}) {
			o.Vitals = v
		}
		if rng.IntN(2) == 0 {
			d := rng.IntN(11)
			o.Dissociation = &d
		}
		if rng.IntN(2) == 0 {
			sd := rng.IntN(6)
			o.Sedation = &sd
		}
		o.SideEffects = someOf(rng, []string{"nausea", "dizziness", "dissociation_confusion", "bp_elevation", "emotional_flooding"})
		o.RedFlags = someOf(rng, []string{"mania", "confusion", "dependence"})
		if o.Vitals != nil || o.Dissociation != nil || o.Sedation != nil || o.SideEffects != nil || o.RedFlags != nil {
			break
		}
	}
	if rng.IntN(3) == 0 {
		o.Comment = fmt.Sprintf("comment %d <&> \"ü\"", rng.IntN(1000))
	}
	return o
}

// reversibleKept reports whether FromFHIR may keep a resource the gateway
// made: the kinds it does not reverse, and derived BP flags.
func reversibleKept(k Kept) bool {
	switch k.Resource.GetString("resourceType") {
	case "Observation", "MedicationAdministration", "CarePlan":
		return false
	case "Flag":
		return k.Message != "" && k.Resource.Get("code") != nil && localCode(k.Resource.Get("code"), CSRedFlag) == ""
	}
	return true
}

func checkKept(t *testing.T, in Inbound) {
	t.Helper()
	for _, k := range in.Kept {
		if !reversibleKept(k) {
			t.Fatalf("kept a reversible %s: %s", k.Resource.GetString("resourceType"), k.Message)
		}
	}
}

// TestRoundTripObservations: KAP -> FHIR -> KAP returns every random
// observation record unchanged (vitals, dissociation, side effects, red
// flags, phase, comment, performer, time, session).
func TestRoundTripObservations(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 4))
	b, held := roundTripBook(rng)
	m := testMapper()
	for n := range 3000 {
		o := randObservation(rng, n, held)
		res, _, err := m.ToFHIR(b, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		in := m.FromFHIR(b, res)
		checkKept(t, in)
		if len(in.Records) != 1 || !reflect.DeepEqual(in.Records[0], o) {
			t.Fatalf("round trip of %s:\n got %s\nwant %s", o.ID, dump(in.Records), dump([]Record{o}))
		}
	}
}

// TestRoundTripDoses: a session's dose mapped to a MedicationAdministration
// comes back as the dose of that session. The monitored minutes are the
// Encounter's length, not the administration's, so the practice's
// previous version of the session holds them.
func TestRoundTripDoses(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	b, held := roundTripBook(rng)
	m := testMapper()
	for n := range 3000 {
		s := *pick(rng, held)
		d := &Dose{
			Drug: pick(rng, []string{"ketamine", "esketamine"}), Route: pick(rng, []string{"iv", "im", "lozenge", "spravato"}),
			Mg: *randFloatAlways(rng, 5, 150), MgPerKg: randFloat(rng, 0.1, 2),
			Lot: pick(rng, []string{"", "L-1", fmt.Sprintf("LOT%d", n)}), AdministeredBy: pick(rng, []string{"", "pres", "rn"}),
			MonitoredMin: pick(rng, []int{0, 45, 120}),
		}
		if d.Drug == "ketamine" && (d.Route == "iv" || d.Route == "im") {
			d.Product = pick(rng, append([]string{""}, ProductCodes...))
		}
		s.Dose = d
		res, _, err := m.ToFHIR(b, &s)
		if err != nil {
			t.Fatal(err)
		}
		stale := newMemBook()
		for _, r := range b.records {
			if r.RecordHeader().Kind == KindSession && r.RecordHeader().ID == s.ID {
				old := s
				old.Dose = &Dose{Drug: "ketamine", Mg: 1, Route: "iv", MonitoredMin: d.MonitoredMin}
				stale.add(&old)
				continue
			}
			stale.add(r)
		}
		in := m.FromFHIR(stale, res)
		checkKept(t, in)
		if len(in.Records) != 1 || !reflect.DeepEqual(in.Records[0], &s) {
			t.Fatalf("round trip of a dose:\n got %s\nwant %s", dump(in.Records), dump([]Record{&s}))
		}
	}
}

func randFloatAlways(rng *rand.Rand, lo, hi float64) *float64 {
	for {
		if x := randFloat(rng, lo, hi); x != nil {
			return x
		}
	}
}

// TestRoundTripCourseStatus: every course status survives the CarePlan,
// and an EHR's status change updates the practice's course.
func TestRoundTripCourseStatus(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	b, _ := roundTripBook(rng)
	m := testMapper()
	c0, _ := b.Course("co")
	for range 1000 {
		c := *c0
		c.Status = pick(rng, []string{"draft", "active", "on_hold", "completed", "revoked"})
		res, _, err := m.ToFHIR(b, &c)
		if err != nil {
			t.Fatal(err)
		}
		in := m.FromFHIR(b, res)
		checkKept(t, in)
		if len(in.Records) != 1 || !reflect.DeepEqual(in.Records[0], &c) {
			t.Fatalf("round trip of course status %s: got %s", c.Status, dump(in.Records))
		}
	}
}

func dump(rs []Record) string {
	s := ""
	for _, r := range rs {
		s += fmt.Sprintf("%+v ", r)
		if o, ok := r.(*Observation); ok && o.Vitals != nil {
			s += fmt.Sprintf("vitals %+v ", *o.Vitals)
		}
	}
	return s
}

// EHR-made resources: a heart rate in the session's encounter becomes an
// observation record; what the gateway cannot map is kept with a reason.
func TestFromFHIRForeign(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b, held := roundTripBook(rng)
	m := testMapper()
	enc := "Encounter/" + ResourceID(m.Practice, KindSession, held[2].ID, "Encounter")
	parse := func(s string) *fhir.Value {
		v, _, err := fhir.ParseResource([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	hr := parse(`{"resourceType":"Observation","id":"ehr1","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/x"},"encounter":{"reference":"` + enc + `"},"effectiveDateTime":"2026-01-08T10:20:00Z","valueQuantity":{"value":88,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`)
	spo2 := parse(`{"resourceType":"Observation","id":"ehr2","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2708-6"}]},"encounter":{"reference":"` + enc + `"},"effectiveDateTime":"2026-01-08T10:20:00Z","valueQuantity":{"value":97,"system":"http://unitsofmeasure.org","code":"%"}}`)
	lbs := parse(`{"resourceType":"Observation","id":"ehr3","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"encounter":{"reference":"` + enc + `"},"effectiveDateTime":"2026-01-08T10:20:00Z","valueQuantity":{"value":150,"system":"http://unitsofmeasure.org","code":"[lb_av]"}}`)
	prelim := parse(`{"resourceType":"Observation","id":"ehr4","status":"preliminary","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]}}`)
	lab := parse(`{"resourceType":"Observation","id":"ehr5","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},"encounter":{"reference":"` + enc + `"},"effectiveDateTime":"2026-01-08T10:20:00Z"}`)
	otherEnc := parse(`{"resourceType":"Observation","id":"ehr6","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"encounter":{"reference":"Encounter/elsewhere"},"effectiveDateTime":"2026-01-08T10:20:00Z","valueQuantity":{"value":70,"system":"http://unitsofmeasure.org","code":"/min"}}`)
	mania := parse(`{"resourceType":"Flag","id":"f1","status":"active","code":{"coding":[{"system":"` + CSRedFlag + `","code":"mania"}]},"subject":{"reference":"Patient/x"},"encounter":{"reference":"` + enc + `"},"period":{"start":"2026-01-08T10:20:00Z"}}`)
	dog := parse(`{"resourceType":"Flag","id":"f2","status":"active","code":{"text":"big dog"},"subject":{"reference":"Patient/x"}}`)
	allergy := parse(`{"resourceType":"AllergyIntolerance","id":"a1","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},"patient":{"reference":"Patient/x"}}`)
	hold := parse(`{"resourceType":"CarePlan","id":"` + ResourceID(m.Practice, KindCourse, "co", "CarePlan") + `","status":"on-hold","intent":"plan","subject":{"reference":"Patient/x"}}`)

	in := m.FromFHIR(b, []*fhir.Value{hr, spo2, lbs, prelim, lab, otherEnc, mania, dog, allergy, hold})
	if len(in.Records) != 2 {
		t.Fatalf("records: %s", dump(in.Records))
	}
	o, ok := in.Records[0].(*Observation)
	if !ok || o.Session != held[2].ID || o.Vitals == nil || o.Vitals.HeartRate == nil || *o.Vitals.HeartRate != 88 || o.Vitals.SpO2 == nil || *o.Vitals.SpO2 != 97 || o.Vitals.WeightKg != nil || !reflect.DeepEqual(o.RedFlags, []string{"mania"}) {
		t.Errorf("EHR observation: %s", dump(in.Records[:1]))
	}
	if c, ok := in.Records[1].(*Course); !ok || c.Status != "on_hold" || c.ID != "co" {
		t.Errorf("course: %s", dump(in.Records[1:]))
	}
	if len(in.Warnings) != 1 {
		t.Errorf("warnings: %v", in.Warnings)
	}
	keptIDs := map[string]string{}
	for _, k := range in.Kept {
		keptIDs[k.Resource.GetString("id")] = k.Message
	}
	for _, id := range []string{"ehr3", "ehr4", "ehr5", "ehr6", "f2", "a1"} {
		if keptIDs[id] == "" {
			t.Errorf("%s was neither mapped nor kept", id)
		}
	}
	if len(in.Kept) != 6 {
		t.Errorf("kept %v", keptIDs)
	}
	// Re-polling the same resources converges on the same record id.
	again := m.FromFHIR(b, []*fhir.Value{hr})
	if again.Records[0].RecordHeader().ID != o.ID {
		t.Error("the EHR observation's record id is not stable")
	}
}

// TestInboundProductCodes: issue 12 item 7. An administration an EHR
// sends back coded with an injectable ketamine product (RxNorm 238083) or
// Spravato's branded code alone is the dose of its session, not kept
// aside as unknown.
func TestInboundProductCodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	b, held := roundTripBook(rng)
	m := testMapper()
	for _, tc := range []struct{ drug, route, code, want string }{
		{"ketamine", "iv", "238083", "ketamine"},
		{"esketamine", "spravato", "2201625", "esketamine"},
	} {
		s := *held[0]
		s.Dose = &Dose{Drug: tc.drug, Mg: 56, Route: tc.route, MonitoredMin: 120}
		res, _, err := m.ToFHIR(b, &s)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.GetString("resourceType") != "MedicationAdministration" {
				continue
			}
			// The EHR keeps only the product code.
			r.Set("medicationCodeableConcept", mustParse(t, `{"coding":[{"system":"`+SysRxNorm+`","code":"`+tc.code+`"}]}`))
		}
		in := m.FromFHIR(b, res)
		for _, k := range in.Kept {
			if k.Resource.GetString("resourceType") == "MedicationAdministration" {
				t.Errorf("%s: kept aside: %v", tc.code, k.Problem)
			}
		}
		if len(in.Records) != 1 || in.Records[0].(*Session).Dose == nil || in.Records[0].(*Session).Dose.Drug != tc.want {
			t.Errorf("%s: records %s", tc.code, dump(in.Records))
		} else if p := in.Records[0].(*Session).Dose.Product; tc.drug == "ketamine" && p != tc.code {
			t.Errorf("%s: product %q, want the code kept", tc.code, p)
		}
	}
}

func mustParse(t *testing.T, s string) *fhir.Value {
	t.Helper()
	v, err := fhir.ParseJSON([]byte(s), fhir.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
