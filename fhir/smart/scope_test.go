package smart

import (
	"strings"
	"testing"
)

// scopeCases seed FuzzParseScopes too.
var scopeCases = []struct {
	in      string
	want    string // normalized; ignored when wantErr is set
	wantErr string
}{
	{"system/Observation.read", "system/Observation.rs", ""},
	{"system/Observation.write", "system/Observation.cud", ""},
	{"system/Observation.*", "system/Observation.cruds", ""},
	{"system/Observation.rs", "system/Observation.rs", ""},
	{"system/*.cruds", "system/*.cruds", ""},
	{"system/*.read", "system/*.rs", ""},
	{"patient/Observation.c user/Patient.r", "patient/Observation.c user/Patient.r", ""},
	{"system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
		"system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", ""},
	{"openid fhirUser launch/patient offline_access system/Patient.rs", "system/Patient.rs openid fhirUser launch/patient offline_access", ""},
	{"system/Observation.read system/Observation.rs", "system/Observation.rs", ""},
	{"  system/Observation.rs   system/Patient.s ", "system/Observation.rs system/Patient.s", ""},
	{"", "", ""},
	{"epic.scanning.dmsusername", "epic.scanning.dmsusername", ""},

	{"system/Observation.sr", "", "order c, r, u, d, s"},
	{"system/Observation.rr", "", "order c, r, u, d, s"},
	{"system/Observation.rx", "", "is not one of c, r, u, d, s"},
	{"system/Observation.", "", "no permissions"},
	{"system/Observation", "", "no permissions"},
	{"system/Observaton.rs", "", "not an R4 resource type"},
	{"system/Resource.rs", "", "not an R4 resource type"},
	{"system/HumanName.rs", "", "not an R4 resource type"},
	{"system/Observation.read?category=x", "", "v1 scope"},
	{"system/Observation.rs?", "", "empty query"},
	{"system/Observation.rs?a=%zz", "", "malformed query"},
	{"system/.rs", "", "not an R4 resource type"},
	{"system/Observation.Read", "", "is not one of"},
	{"system/Observation.rs\tsystem/Patient.rs", "", "not allowed"},
	{`openid "x"`, "", "not allowed"},
}

func TestParseScopes(t *testing.T) {
	for _, tc := range scopeCases {
		got, err := ParseScopes(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseScopes(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseScopes(%q): %v", tc.in, err)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("ParseScopes(%q) = %q, want %q", tc.in, got.String(), tc.want)
		}
	}
	if _, err := ParseScopes(strings.Repeat("system/Observation.rs ", MaxScopeLength/20)); err == nil {
		t.Error("a scope over MaxScopeLength was parsed")
	}
}

func TestScopesPermits(t *testing.T) {
	must := func(s string) Scopes {
		sc, err := ParseScopes(s)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	for _, tc := range []struct {
		scopes string
		typ    string
		in     Interaction
		want   bool
	}{
		{"system/Observation.read", "Observation", InteractionRead, true},
		{"system/Observation.read", "Observation", InteractionVRead, true},
		{"system/Observation.read", "Observation", InteractionHistoryInstance, true},
		{"system/Observation.read", "Observation", InteractionSearchType, true},
		{"system/Observation.read", "Observation", InteractionCreate, false},
		{"system/Observation.read", "Patient", InteractionRead, false},
		{"system/Observation.r", "Observation", InteractionSearchType, false},
		{"system/Observation.s", "Observation", InteractionRead, false},
		{"system/Observation.s", "Observation", InteractionHistoryType, true},
		{"system/Observation.write", "Observation", InteractionCreate, true},
		{"system/Observation.write", "Observation", InteractionUpdate, true},
		{"system/Observation.write", "Observation", InteractionPatch, true},
		{"system/Observation.write", "Observation", InteractionDelete, true},
		{"system/Observation.write", "Observation", InteractionRead, false},
		{"system/Observation.cu", "Observation", InteractionDelete, false},
		{"system/*.rs", "Condition", InteractionRead, true},
		{"system/*.rs", "", InteractionSearchSystem, true},
		{"system/Observation.rs", "", InteractionSearchSystem, false},
		{"system/*.cruds", "Patient", InteractionDelete, true},
		{"patient/*.cruds", "Patient", InteractionRead, false},
		{"user/Observation.rs", "Observation", InteractionRead, false},
		{"system/Observation.rs?category=laboratory", "Observation", InteractionRead, false},
		{"openid fhirUser", "Observation", InteractionRead, false},
		{"system/*.cruds", "Observation", Interaction("operation"), false},
	} {
		if got := must(tc.scopes).Permits(tc.typ, tc.in); got != tc.want {
			t.Errorf("%q Permits(%q, %s) = %v, want %v", tc.scopes, tc.typ, tc.in, got, tc.want)
		}
	}
}

func TestScopesWithin(t *testing.T) {
	must := func(s string) Scopes {
		sc, err := ParseScopes(s)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	for _, tc := range []struct{ requested, allowed, want string }{
		{"system/Observation.cruds", "system/Observation.rs", "system/Observation.rs"},
		{"system/Observation.write", "system/*.read", ""},
		{"system/*.rs", "system/Observation.rs", ""},
		{"system/Observation.rs system/Patient.rs", "system/*.r", "system/Observation.r system/Patient.r"},
		{"system/Observation.rs?category=lab", "system/Observation.rs", "system/Observation.rs?category=lab"},
		{"system/Observation.rs", "system/Observation.rs?category=lab", ""},
		{"system/Observation.rs?category=lab", "system/Observation.r?category=lab", "system/Observation.r?category=lab"},
		{"patient/Observation.rs", "system/*.cruds", ""},
		{"openid system/Patient.s", "openid system/Patient.rs", "system/Patient.s openid"},
		{"launch", "openid", ""},
	} {
		if got := must(tc.requested).Within(must(tc.allowed)).String(); got != tc.want {
			t.Errorf("%q within %q = %q, want %q", tc.requested, tc.allowed, got, tc.want)
		}
	}
}
