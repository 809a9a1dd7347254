package ig_test

import (
	_ "github.com/kapbridge/kapbridge/fhir/fhirpath"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings/ig"
)

// BenchmarkProfilesLoad: what ig.Profiles costs once per process (serve's
// start): decompressing the published definitions and compiling them
// with the project's own.
func BenchmarkProfilesLoad(b *testing.B) {
	for b.Loop() {
		ext, err := ig.External()
		if err != nil {
			b.Fatal(err)
		}
		own, err := fhir.NewProfiles(ig.Resources()...)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := own.WithReferenced(ext...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVitalSignValidate: what a write of a mapped vital sign costs in
// validation: base R4 (every invariant) and then the profiles it claims
// (vitalsigns and heartrate; bp), as the server checks them through
// ig.Profiles. BENCHMARKS.md compares it with the cut-down profiles
// embedded before issue 13's remaining gaps.
func BenchmarkVitalSignValidate(b *testing.B) {
	p, err := ig.Profiles()
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, body string }{{"heartrate", heartRate}, {"bp", bloodPressure}} {
		v, _, err := fhir.ParseResource([]byte(tc.body))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name+"/base", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if issues := fhir.Validate(v); len(issues) > 0 {
					b.Fatal(issues)
				}
			}
		})
		b.Run(tc.name+"/profiles", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if fhir.HasErrors(p.Validate(v)) {
					b.Fatal(p.Validate(v))
				}
			}
		})
	}
}
