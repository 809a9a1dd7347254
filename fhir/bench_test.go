package fhir_test

import (
	"os"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

func readExample(b *testing.B, name string) []byte {
	data, err := os.ReadFile("../testdata/fhir-r4-examples/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkValidateObservation is parse + validate of a typical 2 KB
// Observation; the budget is 50 µs/op.
func BenchmarkValidateObservation(b *testing.B) {
	for _, name := range []string{"Observation-example.json", "Observation-vitals-panel.json", "Observation-blood-pressure.json"} {
		data := readExample(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := fhir.ParseResource(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseJSON(b *testing.B) {
	for _, name := range []string{"Observation-example.json", "Bundle-bundle-transaction.json"} {
		data := readExample(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fhir.ParseJSON(data, fhir.DefaultLimits); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	data := readExample(b, "Observation-example.json")
	root, err := fhir.ParseJSON(data, fhir.DefaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if is := fhir.Validate(root); is != nil {
			b.Fatal(is)
		}
	}
}
