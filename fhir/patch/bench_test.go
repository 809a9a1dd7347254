package patch

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// BenchmarkPatch: parsing a patch and applying it to a typical
// Observation (the official example, 2 KB), the work a PATCH adds to an
// update; the result's validation is the update's own cost (BENCHMARKS.md,
// Parse + validate).
func BenchmarkPatch(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "fhir-r4-examples", "Observation-example.json"))
	if err != nil {
		b.Fatal(err)
	}
	obs, err := fhir.ParseJSON(data, fhir.DefaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	jp := []byte(`[{"op":"test","path":"/status","value":"final"},{"op":"replace","path":"/status","value":"amended"},
		{"op":"add","path":"/code/coding/-","value":{"system":"urn:x","code":"y"}},{"op":"remove","path":"/encounter"}]`)
	fp := parse(b, `{"resourceType":"Parameters","parameter":[
		{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.status"},{"name":"value","valueCode":"amended"}]},
		{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Observation.code"},{"name":"name","valueString":"coding"},
			{"name":"value","valueCoding":{"system":"urn:x","code":"y"}}]},
		{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Observation.encounter"}]}]}`)
	b.Run("JSONPatch", func(b *testing.B) {
		for b.Loop() {
			p, err := ParseJSONPatch(jp, fhir.DefaultLimits)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Apply(Clone(obs)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("FHIRPathPatch", func(b *testing.B) {
		for b.Loop() {
			p, err := ParseFHIRPathPatch(fp)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Apply(Clone(obs)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
