package search

import (
	"net/url"
	"testing"
)

func BenchmarkExtractObservation(b *testing.B) {
	v := loadExample(b, "Observation-example.json")
	Extract(v, testBase) // load the registry outside the timing
	b.ReportAllocs()
	for b.Loop() {
		Extract(v, testBase)
	}
}

func BenchmarkExtractBloodPressure(b *testing.B) {
	v := loadExample(b, "Observation-blood-pressure.json")
	Extract(v, testBase)
	b.ReportAllocs()
	for b.Loop() {
		Extract(v, testBase)
	}
}

func BenchmarkExtractPatient(b *testing.B) {
	v := loadExample(b, "Patient-example.json")
	Extract(v, testBase)
	b.ReportAllocs()
	for b.Loop() {
		Extract(v, testBase)
	}
}

func BenchmarkParseQuery(b *testing.B) {
	vals, _ := url.ParseQuery("subject=Patient/123&code=http://loinc.org|8480-6&date=ge2024-01-01&_count=50&_sort=-date")
	ParseQuery("Observation", vals, testBase, true)
	b.ReportAllocs()
	for b.Loop() {
		ParseQuery("Observation", vals, testBase, true)
	}
}
