package fhir_test

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirtest"
)

const (
	usCore     = "http://hl7.org/fhir/us/core/StructureDefinition/"
	omb        = "urn:oid:2.16.840.1.113883.6.238"
	labCat     = `{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}`
	vitalCat   = `{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}`
	raceExt    = `{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[{"url":"ombCategory","valueCoding":{"system":"` + omb + `","code":"2106-3","display":"White"}},{"url":"text","valueString":"White"}]}`
	raceNoText = `{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[{"url":"ombCategory","valueCoding":{"system":"` + omb + `","code":"2106-3","display":"White"}}]}`
)

func usCorePatient(name, ext string) string {
	return `{"resourceType":"Patient","meta":{"profile":["` + usCore + `us-core-patient"]},` + ext +
		`"identifier":[{"system":"http://hospital.example.org","value":"1032702"}],"name":[` + name + `],"gender":"female"}`
}

func usCoreLab(category, value string) string {
	return `{"resourceType":"Observation","meta":{"profile":["` + usCore + `us-core-observation-lab"]},"status":"final",
	"category":[` + category + `],"code":{"coding":[{"system":"http://loinc.org","code":"2339-0","display":"Glucose"}]},
	"subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-01T10:00:00Z"` + value + `}`
}

func smoking(code string) string {
	return `{"resourceType":"Observation","meta":{"profile":["` + usCore + `us-core-smokingstatus"]},"status":"final",
	"code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},"subject":{"reference":"Patient/1"},"issued":"2024-01-01T10:00:00Z",
	"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"449868002"}]}}`
}

func pulseOx(codings string) string {
	return `{"resourceType":"Observation","meta":{"profile":["` + usCore + `us-core-pulse-oximetry"]},"status":"final","category":[` + vitalCat + `],
	"code":{"coding":[` + codings + `]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-01T10:00:00Z",
	"valueQuantity":{"value":97,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}}`
}

const (
	oxCoding    = `{"system":"http://loinc.org","code":"2708-6"}`
	pulseCoding = `{"system":"http://loinc.org","code":"59408-5"}`
)

// usCoreIG loads US Core 3.1.0 (the folder ../shared holds) with the R4
// vital-signs profiles it builds on.
func usCoreIG(t *testing.T) *fhir.Profiles {
	t.Helper()
	dir := fhirtest.SharedDir(t, "fhir-r4/us-core-3.1.0")
	core := fhirtest.SharedDir(t, "fhir-r4/core")
	var vs [][]byte
	for _, n := range []string{"vitalsigns", "oxygensat"} {
		data, err := os.ReadFile(filepath.Join(core, "StructureDefinition-"+n+".json"))
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, data)
	}
	base, err := fhir.NewProfiles(vs...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := base.WithIG(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUSCore: US Core 3.1.0 loads as an IG; resources meeting its
// profiles pass, and deliberately broken ones (a required slice missing, a
// wrong pattern, a broken invariant, a closed or nested rule) are refused
// naming where.
func TestUSCore(t *testing.T) {
	p := usCoreIG(t)
	for _, u := range []string{"us-core-patient", "us-core-observation-lab", "us-core-smokingstatus", "us-core-pulse-oximetry", "us-core-race"} {
		if !p.Known(usCore + u) {
			t.Errorf("%s not loaded", u)
		}
	}
	valid := map[string]string{
		"patient":               usCorePatient(`{"family":"Shaw","given":["Amy"]}`, ""),
		"patient with race":     usCorePatient(`{"family":"Shaw"}`, `"extension":[`+raceExt+`],`),
		"lab":                   usCoreLab(labCat, `,"valueQuantity":{"value":6.3,"unit":"mmol/l","system":"http://unitsofmeasure.org","code":"mmol/L"}`),
		"lab, two categories":   usCoreLab(vitalCat+","+labCat, `,"valueString":"high"`),
		"smoking status":        smoking("72166-2"),
		"pulse oximetry":        pulseOx(oxCoding + "," + pulseCoding),
		"pulse oximetry, extra": pulseOx(oxCoding + "," + pulseCoding + `,{"system":"http://example.org","code":"x"}`),
	}
	for name, body := range valid {
		issues := p.Validate(mustParse(t, body))
		if fhir.HasErrors(issues) {
			t.Errorf("%s: %v", name, issues)
		}
	}
	broken := []struct{ name, body, expr, want string }{
		{"missing required slice", usCoreLab(vitalCat, `,"valueString":"x"`), "Observation.category", "slice Laboratory"},
		{"missing required coding slice", pulseOx(pulseCoding), "Observation.code.coding", "slice OxygenSatCode"},
		{"wrong pattern", usCoreLab(strings.Replace(labCat, "observation-category", "observation-kind", 1), `,"valueString":"x"`), "Observation.category", "slice Laboratory"},
		{"broken invariant", usCorePatient(`{"text":"Amy Shaw"}`, ""), "Patient.name[0]", "us-core-8"},
		{"broken profile invariant at the root", `{"resourceType":"Device","meta":{"profile":["` + usCore + `us-core-implantable-device"]},
			"udiCarrier":[{"deviceIdentifier":"09504000059118"}],"type":{"coding":[{"system":"http://snomed.info/sct","code":"468063009"}]},"patient":{"reference":"Patient/1"}}`, "Device", "us-core-12"},
		{"missing required element", strings.Replace(usCorePatient(`{"family":"Shaw"}`, ""), `"gender":"female"`, `"active":true`, 1), "Patient.gender", "gender"},
		{"nested extension slice missing", usCorePatient(`{"family":"Shaw"}`, `"extension":[`+raceNoText+`],`), "Patient.extension[0].extension", "slice text"},
	}
	for _, tc := range broken {
		issues := p.Validate(mustParse(t, tc.body))
		found := false
		for _, is := range issues {
			if is.Severity == fhir.SeverityError && len(is.Expression) == 1 && is.Expression[0] == tc.expr && strings.Contains(is.Diagnostics, tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want an error at %s naming %q, got %v", tc.name, tc.expr, tc.want, issues)
		}
	}
	// An extensible binding: a code outside the value set is a warning,
	// not a refusal.
	issues := p.Validate(mustParse(t, smoking("8867-4")))
	warned := false
	for _, is := range issues {
		warned = warned || is.Severity == fhir.SeverityWarning && strings.Contains(is.Diagnostics, "extensible value set") && is.Expression[0] == "Observation.code"
	}
	if fhir.HasErrors(issues) || !warned {
		t.Errorf("smoking status with another code: want a warning for the extensible binding, got %v", issues)
	}
	if issues := p.Validate(mustParse(t, smoking("72166-2"))); len(withoutDom6(issues)) > 0 {
		t.Errorf("smoking status: %v", issues)
	}
}

// TestLoadIGPackage: the same IG as an npm package (.tgz, files under
// package/) loads as the folder does; what is not an IG is refused.
func TestLoadIGPackage(t *testing.T) {
	dir := fhirtest.SharedDir(t, "fhir-r4/us-core-3.1.0")
	tgz := filepath.Join(t.TempDir(), "hl7.fhir.us.core-3.1.0.tgz")
	f, err := os.Create(tgz)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: "package/" + filepath.Base(name), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	p, err := fhir.LoadIG(tgz)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Known(usCore+"us-core-patient") || !p.Known(usCore+"us-core-race") {
		t.Error("the package's profiles are not loaded")
	}
	issues := p.Validate(mustParse(t, usCorePatient(`{"text":"Amy"}`, "")))
	if !fhir.HasErrors(issues) {
		t.Errorf("us-core-8 not enforced from the package: %v", issues)
	}
	if _, err := fhir.LoadIG(t.TempDir()); err == nil {
		t.Error("an empty folder loads")
	}
	if _, err := fhir.LoadIG(filepath.Join(dir, "package.json")); err == nil {
		t.Error("a file that is no package loads")
	}
}
