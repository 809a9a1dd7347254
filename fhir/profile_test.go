package fhir_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirtest"
)

// A hand-written profile whose snapshot exercises every kind of rule
// profile validation checks, and the terminology and profiles it refers
// to. Only the elements the tests need are in the snapshot: the validator
// checks what a snapshot says and nothing it leaves out.
const (
	testBase    = "http://example.org/fhir/"
	testObsURL  = testBase + "StructureDefinition/test-obs"
	testCodesVS = testBase + "ValueSet/test-codes"

	testObsSD = `{"resourceType":"StructureDefinition","url":"` + testObsURL + `","name":"TestObs","status":"draft",
	"kind":"resource","abstract":false,"type":"Observation","derivation":"constraint",
	"baseDefinition":"http://hl7.org/fhir/StructureDefinition/Observation","snapshot":{"element":[
	{"id":"Observation","path":"Observation","min":0,"max":"*"},
	{"id":"Observation.status","path":"Observation.status","min":1,"max":"1","type":[{"code":"code"}],"fixedCode":"final"},
	{"id":"Observation.category","path":"Observation.category","min":1,"max":"2","type":[{"code":"CodeableConcept"}],
	 "patternCodeableConcept":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}},
	{"id":"Observation.code","path":"Observation.code","min":1,"max":"1","type":[{"code":"CodeableConcept"}],
	 "binding":{"strength":"required","valueSet":"` + testCodesVS + `|1.0"}},
	{"id":"Observation.subject","path":"Observation.subject","min":1,"max":"1","type":[{"code":"Reference","targetProfile":["http://hl7.org/fhir/StructureDefinition/Patient"]}]},
	{"id":"Observation.effective[x]","path":"Observation.effective[x]","min":1,"max":"1","type":[{"code":"dateTime"},{"code":"Period"}]},
	{"id":"Observation.performer","path":"Observation.performer","min":0,"max":"*","type":[{"code":"Reference","targetProfile":["` + testBase + `StructureDefinition/test-practitioner"]}]},
	{"id":"Observation.hasMember","path":"Observation.hasMember","min":0,"max":"1","type":[{"code":"Reference"}]},
	{"id":"Observation.component","path":"Observation.component","min":0,"max":"*"},
	{"id":"Observation.component.code","path":"Observation.component.code","min":1,"max":"1","type":[{"code":"CodeableConcept"}],
	 "binding":{"strength":"required","valueSet":"` + testCodesVS + `"}},
	{"id":"Observation.component.code.coding","path":"Observation.component.code.coding","min":1,"max":"*","type":[{"code":"Coding"}]},
	{"id":"Observation.component.value[x]","path":"Observation.component.value[x]","min":1,"max":"1",
	 "type":[{"code":"Quantity","profile":["` + testBase + `StructureDefinition/test-quantity"]},{"code":"string"}]},
	{"id":"Observation.component.interpretation","path":"Observation.component.interpretation","min":0,"max":"0"},
	{"id":"Observation.component.dataAbsentReason","path":"Observation.component.dataAbsentReason","min":0,"max":"1",
	 "type":[{"code":"CodeableConcept"}],"binding":{"strength":"required","valueSet":"` + testBase + `ValueSet/not-registered"}}
	]}}`

	testQuantitySD = `{"resourceType":"StructureDefinition","url":"` + testBase + `StructureDefinition/test-quantity","name":"TestQuantity","status":"draft",
	"kind":"complex-type","abstract":false,"type":"Quantity","derivation":"constraint","snapshot":{"element":[
	{"id":"Quantity","path":"Quantity","min":0,"max":"*"},
	{"id":"Quantity.system","path":"Quantity.system","min":1,"max":"1","fixedUri":"http://unitsofmeasure.org"},
	{"id":"Quantity.code","path":"Quantity.code","min":1,"max":"1"}]}}`

	testPractitionerSD = `{"resourceType":"StructureDefinition","url":"` + testBase + `StructureDefinition/test-practitioner","name":"TestPractitioner","status":"draft",
	"kind":"resource","abstract":false,"type":"Practitioner","derivation":"constraint","snapshot":{"element":[
	{"id":"Practitioner","path":"Practitioner","min":0,"max":"*"}]}}`

	testCS = `{"resourceType":"CodeSystem","url":"` + testBase + `CodeSystem/test","status":"draft","content":"complete",
	"concept":[{"code":"a","concept":[{"code":"a1"}]},{"code":"b"},{"code":"retired"}]}`
	testVS = `{"resourceType":"ValueSet","url":"` + testCodesVS + `","status":"draft","compose":{
	"include":[{"system":"` + testBase + `CodeSystem/test"},{"system":"http://loinc.org","concept":[{"code":"8867-4"}]}],
	"exclude":[{"system":"` + testBase + `CodeSystem/test","concept":[{"code":"retired"}]}]}}`

	testValidObs = `{"resourceType":"Observation","meta":{"profile":["` + testObsURL + `|1.0"]},"status":"final",
	"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}],"text":"vitals"}],
	"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
	"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-01-05T10:00:00Z",
	"performer":[{"reference":"Practitioner/x"},{"reference":"#pr"}],
	"component":[{"code":{"coding":[{"system":"` + testBase + `CodeSystem/test","code":"a1"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
	 {"code":{"coding":[{"system":"x","code":"y"},{"system":"` + testBase + `CodeSystem/test","code":"b"}]},"valueString":"ok"}],
	"contained":[{"resourceType":"Practitioner","id":"pr"}]}`
)

// sdDoc completes a hand-written StructureDefinition as the invariants
// of R4 ask (sdf-3, sdf-4, sdf-8b): a baseDefinition, and a definition
// and base on each snapshot element. The tests' snapshots stay short.
func sdDoc(s string) []byte {
	sd, err := fhir.ParseJSON([]byte(s), fhir.DefaultLimits)
	if err != nil {
		panic(err)
	}
	if sd.Get("baseDefinition") == nil {
		sd.Set("baseDefinition", fhir.String("http://hl7.org/fhir/StructureDefinition/"+sd.GetString("type")))
	}
	if snap := sd.Get("snapshot").Get("element"); snap != nil {
		for _, e := range snap.Array {
			if e.Get("definition") == nil {
				e.Set("definition", fhir.String("test element"))
			}
			if e.Get("min") == nil {
				e.Set("min", fhir.Number(0))
			}
			if e.Get("max") == nil {
				e.Set("max", fhir.String("*"))
			}
			if e.Get("base") == nil {
				base := fhir.Object()
				base.Set("path", fhir.String(e.GetString("path")))
				base.Set("min", fhir.Number(0))
				base.Set("max", fhir.String("*"))
				e.Set("base", base)
			}
		}
	}
	return sd.Encode()
}

// testProfiles holds the test's profiles and terminology.
func testProfiles(t testing.TB) *fhir.Profiles {
	t.Helper()
	p, err := fhir.NewProfiles([]byte(testCS), []byte(testVS), sdDoc(testQuantitySD), sdDoc(testPractitionerSD), sdDoc(testObsSD))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustParse(t testing.TB, body string) *fhir.Value {
	t.Helper()
	v, _, err := fhir.ParseResource([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func profileIssues(t testing.TB, p *fhir.Profiles, body string) []fhir.Issue {
	t.Helper()
	v, _, err := fhir.ParseResource([]byte(body))
	if err != nil {
		t.Fatalf("base validation: %v\n%s", err, body)
	}
	return withoutDom6(p.Validate(v))
}

// withoutDom6 leaves out the dom-6 warning (a resource should have a
// narrative), which the tests' short resources all earn.
func withoutDom6(issues []fhir.Issue) []fhir.Issue {
	var out []fhir.Issue
	for _, is := range issues {
		if !strings.HasPrefix(is.Diagnostics, "dom-6:") {
			out = append(out, is)
		}
	}
	return out
}

func TestProfilesValidateAccepts(t *testing.T) {
	p := testProfiles(t)
	accept := map[string]string{
		"valid":                       testValidObs,
		"effective as a Period":       strings.Replace(testValidObs, `"effectiveDateTime":"2026-01-05T10:00:00Z"`, `"effectivePeriod":{"start":"2026-01-05"}`, 1),
		"status only as an extension": strings.Replace(testValidObs, `"status":"final",`, `"status":"final","_status":{"id":"s"},`, 1),
		"unregistered binding":        strings.Replace(testValidObs, `"valueString":"ok"}`, `"valueString":"ok","dataAbsentReason":{"text":"whatever"}}`, 1),
		"second category":             strings.Replace(testValidObs, `"text":"vitals"}]`, `"text":"vitals"},{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}]`, 1),
		"reference type unknown":      strings.Replace(testValidObs, `"Patient/p1"`, `"urn:uuid:0b5e6e1c-1c1c-4c1c-8c1c-1c1c1c1c1c1c"`, 1),
	}
	for name, body := range accept {
		if issues := profileIssues(t, p, body); len(issues) > 0 {
			t.Errorf("%s: %v", name, issues)
		}
	}
}

func TestProfilesValidateRefuses(t *testing.T) {
	p := testProfiles(t)
	tests := []struct {
		name, from, to string
		code           fhir.IssueType
		expr           string
	}{
		{"fixed code", `"status":"final"`, `"status":"preliminary"`, fhir.IssueValue, "Observation.status"},
		{"pattern", `"code":"vital-signs","display":"Vital Signs"`, `"code":"exam"`, fhir.IssueValue, "Observation.category[0]"},
		{"too many categories", `"text":"vitals"}]`, `"text":"vitals"},{"text":"b"},{"text":"c"}]`, fhir.IssueStructure, "Observation.category"},
		{"binding: code not in value set", `"code":"8867-4"`, `"code":"8480-6"`, fhir.IssueCodeInvalid, "Observation.code"},
		{"binding: excluded code", `"code":"a1"`, `"code":"retired"`, fhir.IssueCodeInvalid, "Observation.component[0].code"},
		{"binding: text only", `"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]}`, `"code":{"text":"heart rate"}`, fhir.IssueCodeInvalid, "Observation.code"},
		{"missing subject", `"subject":{"reference":"Patient/p1"},`, ``, fhir.IssueRequired, "Observation.subject"},
		{"reference target", `"Patient/p1"`, `"Group/g1"`, fhir.IssueInvalid, "Observation.subject"},
		{"reference target by type", `"subject":{"reference":"Patient/p1"}`, `"subject":{"type":"Device","identifier":{"value":"d"}}`, fhir.IssueInvalid, "Observation.subject"},
		{"target of a registered profile", `{"reference":"Practitioner/x"}`, `{"reference":"Organization/o"}`, fhir.IssueInvalid, "Observation.performer[0]"},
		{"contained target", `"resourceType":"Practitioner","id":"pr"`, `"resourceType":"Organization","id":"pr","name":"o"`, fhir.IssueInvalid, "Observation.performer[1]"},
		{"missing choice", `"effectiveDateTime":"2026-01-05T10:00:00Z",`, ``, fhir.IssueRequired, "Observation.effective[x]"},
		{"choice type not allowed", `"effectiveDateTime"`, `"effectiveInstant"`, fhir.IssueStructure, "Observation.effectiveInstant"},
		{"max 1", `"component":[`, `"hasMember":[{"reference":"Observation/a"},{"reference":"Observation/b"}],"component":[`, fhir.IssueStructure, "Observation.hasMember"},
		{"max 0 nested", `"valueString":"ok"}`, `"valueString":"ok","interpretation":[{"text":"H"}]}`, fhir.IssueStructure, "Observation.component[1].interpretation"},
		{"nested min", `{"system":"x","code":"y"},`, ``, fhir.IssueRequired, ""}, // placeholder replaced below
		{"nested required choice", `,"valueString":"ok"`, ``, fhir.IssueRequired, "Observation.component[1].value[x]"},
		{"type profile", `"system":"http://unitsofmeasure.org","code":"mm[Hg]"`, `"unit":"mmHg"`, fhir.IssueRequired, "Observation.component[0].valueQuantity.system"},
		{"type profile fixed", `"system":"http://unitsofmeasure.org",`, `"system":"http://example.org/units",`, fhir.IssueValue, "Observation.component[0].valueQuantity.system"},
	}
	tests[15] = struct {
		name, from, to string
		code           fhir.IssueType
		expr           string
	}{"nested min", `"code":{"coding":[{"system":"x","code":"y"},{"system":"` + testBase + `CodeSystem/test","code":"b"}]},`, `"code":{"text":"t"},`, fhir.IssueRequired, "Observation.component[1].code.coding"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(testValidObs, tc.from) {
				t.Fatalf("test body lacks %s", tc.from)
			}
			issues := profileIssues(t, p, strings.Replace(testValidObs, tc.from, tc.to, 1))
			for _, is := range issues {
				if is.Code == tc.code && len(is.Expression) == 1 && is.Expression[0] == tc.expr && is.Severity == fhir.SeverityError {
					return
				}
			}
			t.Errorf("want a %s error at %s; got %v", tc.code, tc.expr, issues)
		})
	}
}

func TestProfilesValidateUnknown(t *testing.T) {
	p := testProfiles(t)
	body := `{"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/Observation","http://example.org/unknown"]},"status":"final","code":{"text":"x"}}`
	issues := profileIssues(t, p, body)
	if len(issues) != 1 || issues[0].Severity != fhir.SeverityWarning || fhir.HasErrors(issues) {
		t.Fatalf("want one warning for the unknown profile, got %v", issues)
	}
	if !strings.Contains(issues[0].Diagnostics, "http://example.org/unknown") {
		t.Errorf("diagnostics %q", issues[0].Diagnostics)
	}
	if !p.Known(testObsURL + "|2") {
		t.Error("Known ignores the version")
	}
	var none *fhir.Profiles
	if issues := withoutDom6(none.Validate(mustParse(t, testValidObs))); len(issues) != 1 || issues[0].Severity != fhir.SeverityWarning || none.Known(testObsURL) {
		t.Errorf("the nil Profiles holds nothing: %v", issues)
	}
}

func TestValidateProfile(t *testing.T) {
	p := testProfiles(t)
	sd, _, err := fhir.ParseResource(sdDoc(testObsSD))
	if err != nil {
		t.Fatal(err)
	}
	patient, _, _ := fhir.ParseResource([]byte(`{"resourceType":"Patient"}`))
	if issues := p.ValidateProfile(patient, sd); len(issues) != 1 || issues[0].Code != fhir.IssueInvalid {
		t.Errorf("a Patient against an Observation profile: %v", issues)
	}
	noSnap, _, _ := fhir.ParseResource([]byte(`{"resourceType":"StructureDefinition","url":"http://x","name":"X","status":"draft","kind":"resource","abstract":false,"type":"Patient"}`))
	if issues := p.ValidateProfile(patient, noSnap); !fhir.HasErrors(issues) {
		t.Errorf("a profile without a snapshot: %v", issues)
	}
	obs, _, _ := fhir.ParseResource([]byte(strings.Replace(testValidObs, `"status":"final"`, `"status":"amended"`, 1)))
	if issues := p.ValidateProfile(obs, sd); len(issues) != 1 {
		t.Errorf("unregistered use: %v", issues)
	}
	pe := fhir.ProfileError(p.ValidateProfile(obs, sd))
	if fhir.StatusOf(pe) != 422 || pe.Issues[0].Code != fhir.IssueValue {
		t.Errorf("ProfileError: %d %v", fhir.StatusOf(pe), pe)
	}
}

func TestRegisterRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":     `{`,
		"no url":       `{"resourceType":"ValueSet","status":"draft"}`,
		"no snapshot":  `{"resourceType":"StructureDefinition","url":"http://x","name":"X","status":"draft","kind":"resource","abstract":false,"type":"Patient"}`,
		"wrong root":   `{"resourceType":"StructureDefinition","url":"http://x","name":"X","status":"draft","kind":"resource","abstract":false,"type":"Patient","snapshot":{"element":[{"id":"Observation","path":"Observation"}]}}`,
		"negative max": `{"resourceType":"StructureDefinition","url":"http://x","name":"X","status":"draft","kind":"resource","abstract":false,"type":"Patient","snapshot":{"element":[{"id":"Patient","path":"Patient"},{"id":"Patient.name","path":"Patient.name","max":"-1"}]}}`,
		"invalid R4":   `{"resourceType":"CodeSystem","url":"http://x","status":"nope","content":"complete"}`,
	} {
		if _, err := fhir.NewProfiles([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Other types are left out, as the server's conformance resources
	// (Questionnaires among them) are given whole.
	p, err := fhir.NewProfiles([]byte(`{"resourceType":"Questionnaire","status":"draft"}`))
	if err != nil || p.Known("") {
		t.Errorf("a Questionnaire: %v", err)
	}
}

// FuzzProfilesValidate: no resource makes profile validation panic,
// and every issue it reports has a severity, a code and an expression
// under the resource's type.
func FuzzProfilesValidate(f *testing.F) {
	p := testProfiles(f)
	f.Add([]byte(testValidObs))
	f.Add([]byte(strings.Replace(testValidObs, `"effectiveDateTime"`, `"effectiveInstant"`, 1)))
	f.Add([]byte(`{"resourceType":"Observation","meta":{"profile":["` + testObsURL + `"]},"status":"final","code":{"text":"x"},"_effectiveDateTime":{"id":"a"}}`))
	f.Add([]byte(`{"resourceType":"Patient","meta":{"profile":["` + testObsURL + `"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := fhir.ParseJSON(data, fhir.Limits{MaxBytes: 1 << 20, MaxDepth: 30})
		if err != nil {
			return
		}
		rt := v.GetString("resourceType")
		for _, is := range p.Validate(v) {
			if is.Severity == "" || is.Code == "" {
				t.Fatalf("issue without severity or code: %+v", is)
			}
			for _, e := range is.Expression {
				if rt != "" && !strings.HasPrefix(e, rt) {
					t.Fatalf("expression %q outside %s", e, rt)
				}
			}
		}
		sd, err := fhir.ParseJSON(data, fhir.Limits{MaxBytes: 1 << 20, MaxDepth: 30})
		if err == nil {
			_ = p.ValidateProfile(v, sd)
		}
	})
}

// BenchmarkProfilesValidate: the cost a profile adds to each write of
// a resource that claims it (base validation not included).
func BenchmarkProfilesValidate(b *testing.B) {
	p := testProfiles(b)
	v, _, err := fhir.ParseResource([]byte(testValidObs))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if issues := p.Validate(v); len(issues) > 0 {
			b.Fatal(issues)
		}
	}
}

const testExtSD = `{"resourceType":"StructureDefinition","url":"` + testBase + `StructureDefinition/test-phase","name":"TestPhase","status":"draft",
	"kind":"complex-type","abstract":false,"type":"Extension","derivation":"constraint","context":[{"type":"element","expression":"Element"}],
	"snapshot":{"element":[
	{"id":"Extension","path":"Extension","min":0,"max":"1"},
	{"id":"Extension.extension","path":"Extension.extension","min":0,"max":"0"},
	{"id":"Extension.url","path":"Extension.url","min":1,"max":"1","fixedUri":"` + testBase + `StructureDefinition/test-phase"},
	{"id":"Extension.value[x]","path":"Extension.value[x]","min":1,"max":"1","type":[{"code":"code"}],
	 "binding":{"strength":"required","valueSet":"` + testCodesVS + `"}}]}}`

// Registered extension definitions are checked wherever their url
// appears, without a meta.profile claim.
func TestValidateExtensions(t *testing.T) {
	p, err := testProfiles(t).With(sdDoc(testExtSD))
	if err != nil {
		t.Fatal(err)
	}
	ext := func(value string) string {
		return `{"url":"` + testBase + `StructureDefinition/test-phase"` + value + `}`
	}
	ok := []string{
		`{"resourceType":"Patient","extension":[` + ext(`,"valueCode":"a1"`) + `]}`,
		`{"resourceType":"Patient","extension":[{"url":"http://example.org/other","valueString":"x"}]}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[{"code":{"text":"c"},"extension":[` + ext(`,"valueCode":"b"`) + `]}]}`,
	}
	for _, body := range ok {
		if issues := profileIssues(t, p, body); len(issues) > 0 {
			t.Errorf("%s: %v", body, issues)
		}
	}
	bad := []struct{ body, code, expr string }{
		{`{"resourceType":"Patient","extension":[` + ext(`,"valueString":"a1"`) + `]}`, "structure", "Patient.extension[0].valueString"},
		{`{"resourceType":"Patient","extension":[{"url":"http://example.org/other","valueString":"x"},` + ext(`,"extension":[{"url":"x","valueCode":"a"}]`) + `]}`, "required", "Patient.extension[1].value[x]"},
		{`{"resourceType":"Patient","extension":[{"url":"http://example.org/other","valueString":"x"},` + ext(`,"extension":[{"url":"x","valueCode":"a"}]`) + `]}`, "structure", "Patient.extension[1].extension"},
		{`{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[{"code":{"text":"c"},"extension":[` + ext(`,"valueCode":"zzz"`) + `]}]}`, "code-invalid", "Observation.component[0].extension[0].valueCode"},
		{`{"resourceType":"Patient","birthDate":"2000-01-01","_birthDate":{"extension":[` + ext(`,"valueCode":"zzz"`) + `]}}`, "code-invalid", "Patient._birthDate.extension[0].valueCode"},
	}
	for _, tc := range bad {
		issues := profileIssues(t, p, tc.body)
		found := false
		for _, is := range issues {
			if string(is.Code) == tc.code && len(is.Expression) == 1 && is.Expression[0] == tc.expr {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want %s at %s, got %v", tc.body, tc.code, tc.expr, issues)
		}
	}
}

// A type slice of a choice ("value[x]:valueQuantity") constrains that
// type when it is used; other slices are not checked.
func TestValidateTypeSlice(t *testing.T) {
	var p *fhir.Profiles // the profile refers to nothing it would have to hold
	sd, _, err := fhir.ParseResource(sdDoc(`{"resourceType":"StructureDefinition","url":"` + testBase + `StructureDefinition/test-hr","name":"TestHR","status":"draft",
	"kind":"resource","abstract":false,"type":"Observation","derivation":"constraint","snapshot":{"element":[
	{"id":"Observation","path":"Observation","min":0,"max":"*"},
	{"id":"Observation.code.coding:HR","path":"Observation.code.coding","sliceName":"HR","min":1,"max":"1"},
	{"id":"Observation.code.coding:HR.code","path":"Observation.code.coding.code","min":1,"max":"1","fixedCode":"8867-4"},
	{"id":"Observation.value[x]","path":"Observation.value[x]","min":0,"max":"1","type":[{"code":"Quantity"},{"code":"string"}]},
	{"id":"Observation.value[x]:valueQuantity","path":"Observation.value[x]","sliceName":"valueQuantity","min":0,"max":"1","type":[{"code":"Quantity"}]},
	{"id":"Observation.value[x]:valueQuantity.code","path":"Observation.value[x].code","min":1,"max":"1","fixedCode":"/min"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]string{
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1,"system":"http://unitsofmeasure.org","code":"/min"}}`: "",
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"x"}`:                                                              "",
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1,"system":"http://unitsofmeasure.org","code":"/s"}}`:   "Observation.valueQuantity.code",
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1}}`:                                                    "Observation.valueQuantity.code",
	} {
		v, _, err := fhir.ParseResource([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		issues := p.ValidateProfile(v, sd)
		switch {
		case want == "" && len(issues) > 0:
			t.Errorf("%s: %v", body, issues)
		case want != "" && (len(issues) != 1 || issues[0].Expression[0] != want):
			t.Errorf("%s: want one issue at %s, got %v", body, want, issues)
		}
	}
}

// A reference's targetProfile is judged by the target, not by a claim:
// the official Observation-vitals-panel (its hasMember may be any
// vitalsigns Observation) validates against the R4 vital-signs profiles,
// and a contained member that does not meet vitalsigns is refused.
func TestTargetProfile(t *testing.T) {
	core := fhirtest.SharedDir(t, "fhir-r4/core")
	var docs [][]byte
	for _, n := range []string{"vitalsigns", "vitalspanel", "bp", "heartrate", "resprate", "bodytemp"} {
		data, err := os.ReadFile(filepath.Join(core, "StructureDefinition-"+n+".json"))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, data)
	}
	p, err := fhir.NewProfiles(docs...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Observation-vitals-panel.json", "Observation-blood-pressure.json", "Observation-heart-rate.json"} {
		data, err := os.ReadFile("../testdata/fhir-r4-examples/" + name)
		if err != nil {
			t.Fatal(err)
		}
		v := mustParse(t, string(data))
		if issues := p.Validate(v); fhir.HasErrors(issues) {
			t.Errorf("%s: %v", name, issues)
		}
	}
	panel := func(member string) string {
		return `{"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalspanel"]},"status":"final",
		"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
		"code":{"coding":[{"system":"http://loinc.org","code":"85353-1"}]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-01",
		"hasMember":[{"reference":"#m"}],"contained":[` + member + `]}`
	}
	good := `{"resourceType":"Observation","id":"m","status":"final",
		"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
		"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-01",
		"valueQuantity":{"value":60,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	if issues := p.Validate(mustParse(t, panel(good))); fhir.HasErrors(issues) {
		t.Errorf("a contained member meeting vitalsigns, not claiming it: %v", issues)
	}
	bad := strings.Replace(good, `"subject":{"reference":"Patient/1"},`, "", 1)
	issues := p.Validate(mustParse(t, panel(bad)))
	if !fhir.HasErrors(issues) || !hasExpression(issues, "Observation.hasMember[0]") {
		t.Errorf("a contained member without the subject vitalsigns asks for: want refused at hasMember[0], got %v", issues)
	}
}
