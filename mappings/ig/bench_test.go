package ig_test

import (
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
