package mappings

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings/ig"
)

// usCorePackage is US Core 3.1.1 (folder us-core-3.1.0) in ../shared
// beside the repository: only tests read it.
const usCorePackage = "../../shared/fhir-r4/us-core-3.1.0"

// corePackage is the R4 core package beside the repository, for the
// vital-signs profiles' full definitions.
const corePackage = "../../shared/fhir-r4/core"

// usCoreFor names the US Core 3.1.1 profile a mapped resource can meet,
// by type ("" for types and Observations US Core 3.1.1 does not profile;
// notUSCore says why for each). US Core 3.1.1 vital signs other than
// pulse oximetry are the R4 core profiles (vitalFor).
func usCoreFor(v *fhir.Value) string {
	switch rt := v.GetString("resourceType"); rt {
	case "Patient", "Practitioner", "PractitionerRole", "Condition", "CarePlan", "CareTeam", "Goal", "Encounter", "Provenance", "DocumentReference", "MedicationRequest":
		return "us-core-" + strings.ToLower(rt)
	case "Observation":
		for _, c := range codingsOf(v) {
			if c == "59408-5" {
				return "us-core-pulse-oximetry"
			}
		}
	}
	return ""
}

// vitalFor names the R4 core vital-signs profile (besides vitalsigns
// itself) an Observation's LOINC code calls for; US Core 3.1.1 requires
// these of vital signs. Body height (8302-2) and BMI (39156-5) have no
// record field, so the mappings make none.
var vitalFor = map[string]string{
	"85354-9": "bp", "8867-4": "heartrate", "9279-1": "resprate", "2708-6": "oxygensat",
	"29463-7": "bodyweight", "8310-5": "bodytemp", "8302-2": "bodyheight", "39156-5": "bmi",
}

// categoryOf is the code of an Observation's first category coding.
func categoryOf(v *fhir.Value) string {
	cat := v.Get("category")
	if cat == nil || len(cat.Array) == 0 {
		return ""
	}
	cs := cat.Array[0].Get("coding")
	if cs == nil || len(cs.Array) == 0 {
		return ""
	}
	return cs.Array[0].GetString("code")
}

func codingsOf(v *fhir.Value) []string {
	var out []string
	if cs := v.Get("code").Get("coding"); cs != nil {
		for _, c := range cs.Array {
			out = append(out, c.GetString("code"))
		}
	}
	return out
}

// notUSCore lists, deliberately, the mapped resources that claim no US
// Core 3.1.1 profile, with the reason: a new kind of resource fails
// TestUSCore until it claims its profile or is added here.
func notUSCore(v *fhir.Value) string {
	switch rt := v.GetString("resourceType"); rt {
	case "PractitionerRole":
		return "no phone or email: US Core pd-1 (telecom or endpoint) is not met by an empty list, as the HL7 validator judges it"
	case "Flag", "MedicationAdministration", "QuestionnaireResponse", "Consent":
		return "US Core 3.1.1 has no " + rt + " profile"
	case "Observation":
		switch categoryOf(v) {
		case "survey":
			return "screening scores and the clearance decision: US Core 3.1.1 has no survey or assessment profile (us-core-observation-survey is US Core 5)"
		case "exam":
			return "dissociation rating, side effects, red flags: US Core 3.1.1 has no exam profile"
		case "vital-signs":
			return "US Core 3.1.1 vital signs are the R4 core profiles (claimed and checked here)"
		}
	}
	return ""
}

// TestUSCore: issue 12 items 7 and 8. Every resource the mappings make
// for the four example courses claims the US Core 3.1.1 profile of its
// type where one exists, each vital sign claims vitalsigns and the R4 core
// profile of its LOINC code, and every claim validates against the full
// definition with the project's validator (fhir.Profiles.ValidateProfile:
// cardinality, types, fixed and pattern values, bindings, references'
// targets, slicing, invariants; extensible bindings and warning
// invariants are warnings, which this test does not count:
// mappings/ig/README.md lists the ones at risk). Every claim is also held
// by ig.Profiles, so the server validates it on write.
func TestUSCore(t *testing.T) {
	for _, dir := range []string{usCorePackage, corePackage} {
		if _, err := os.Stat(dir); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI is set but %s is missing: %v", dir, err)
			}
			t.Skipf("%s is missing (../shared beside the repository; CI fails here instead)", dir)
		}
	}
	published, err := ig.Profiles()
	if err != nil {
		t.Fatal(err)
	}
	sds := map[string]*fhir.Value{}
	load := func(url string) *fhir.Value {
		if sd, ok := sds[url]; ok {
			return sd
		}
		dir, name := corePackage, strings.TrimPrefix(url, "http://hl7.org/fhir/StructureDefinition/")
		if strings.HasPrefix(url, USCoreBase) {
			dir, name = usCorePackage, strings.TrimPrefix(url, USCoreBase)
		}
		data, err := os.ReadFile(filepath.Join(dir, "StructureDefinition-"+name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		sd, err := fhir.ParseJSON(data, fhir.Limits{MaxBytes: 64 << 20, MaxArrayElements: -1, MaxNodes: -1})
		if err != nil {
			t.Fatal(err)
		}
		sds[url] = sd
		return sd
	}
	failures := map[string]map[string]bool{}
	checked := map[string]int{}
	deliberate := map[string]int{}
	m := testMapper()
	for _, name := range fullCourses {
		for _, v := range mapAll(t, m, loadCourse(t, name)) {
			where := v.GetString("resourceType") + "/" + v.GetString("id")
			claimed := map[string]bool{}
			if ps := v.Get("meta").Get("profile"); ps != nil {
				for _, p := range ps.Array {
					claimed[p.Str] = true
				}
			}
			want := map[string]bool{}
			if p := usCoreFor(v); p != "" && !(p == "us-core-practitionerrole" && v.Get("telecom") == nil && v.Get("endpoint") == nil) {
				want[USCoreBase+p] = true
			} else if why := notUSCore(v); why != "" {
				deliberate[why]++
			} else {
				t.Errorf("%s: no US Core 3.1.1 profile is named for it and notUSCore gives no reason", where)
			}
			if v.GetString("resourceType") == "Observation" && categoryOf(v) == "vital-signs" {
				want[ProfileVitalSigns] = true
				for _, c := range codingsOf(v) {
					if p, ok := vitalFor[c]; ok {
						want["http://hl7.org/fhir/StructureDefinition/"+p] = true
					}
				}
			}
			for p := range want {
				if !claimed[p] {
					t.Errorf("%s meets %s (validated below) but does not claim it", where, p)
				}
			}
			for p := range claimed {
				if !strings.HasPrefix(p, USCoreBase) && !strings.HasPrefix(p, "http://hl7.org/fhir/StructureDefinition/") {
					continue // the project's own, checked by TestCoursesValidate
				}
				if !published.Known(p) {
					t.Errorf("%s claims %s, which ig.Profiles does not hold: the server would not validate it", where, p)
				}
				if p == ProfileUSCorePractitionerRole && v.Get("telecom") == nil && v.Get("endpoint") == nil {
					t.Errorf("%s claims %s without telecom or endpoint (pd-1)", where, p)
				}
				checked[p]++
				for _, is := range published.ValidateProfile(v, load(p)) {
					if is.Severity != fhir.SeverityError && is.Severity != fhir.SeverityFatal {
						continue
					}
					if failures[p] == nil {
						failures[p] = map[string]bool{}
					}
					failures[p][is.Diagnostics] = true
				}
			}
		}
	}
	var names []string
	for p := range checked {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		t.Logf("%s: %d resources claim it", p, checked[p])
		for d := range failures[p] {
			t.Errorf("%s: %s", p, d)
		}
	}
	for why, n := range deliberate {
		t.Logf("deliberately no US Core profile (%d resources): %s", n, why)
	}
	if len(checked) < 19 {
		t.Errorf("only %d profiles claimed across the examples, want the 12 US Core and 7 R4 vital-signs ones: %v", len(checked), names)
	}
}

// TestUSCorePatientClaim: a Patient claims us-core-patient only when the
// client's sex is recorded (US Core wants gender 1..1); without it the
// Patient claims nothing rather than a profile it does not meet, which
// the server would refuse (422).
func TestUSCorePatientClaim(t *testing.T) {
	for _, tc := range []struct {
		js    string
		claim bool
	}{
		{`{"kind":"client","id":"c1","name":{"family":"Client"},"birth_date":"1980-01-01","sex":"female"}`, true},
		{`{"kind":"client","id":"c2","name":{"family":"Client"},"birth_date":"1980-01-01"}`, false},
	} {
		r, err := Decode([]byte(tc.js))
		if err != nil {
			t.Fatal(err)
		}
		b := newMemBook()
		b.add(r)
		res, _, err := testMapper().ToFHIR(b, r)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, v := range res {
			if v.GetString("resourceType") != "Patient" {
				continue
			}
			found = true
			claims := false
			if ps := v.Get("meta").Get("profile"); ps != nil {
				for _, p := range ps.Array {
					claims = claims || p.Str == ProfileUSCorePatient
				}
			}
			if claims != tc.claim {
				t.Errorf("%s: claims us-core-patient %v, want %v", tc.js, claims, tc.claim)
			}
		}
		if !found {
			t.Errorf("%s: no Patient", tc.js)
		}
	}
}
