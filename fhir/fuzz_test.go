package fhir_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirtest"
)

// FuzzParseResource: no input makes the parser or the validator panic, and
// whatever parses re-encodes to JSON that parses to the same encoding.
func FuzzParseResource(f *testing.F) {
	files, _ := filepath.Glob("../testdata/fhir-r4-examples/*.json")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil && len(data) < 64<<10 {
			f.Add(data)
		}
	}
	for _, c := range fhirtest.InvalidResources() {
		if len(c.Body) < 64<<10 {
			f.Add(c.Body)
		}
	}
	small := fhir.Limits{MaxBytes: 1 << 20, MaxDepth: 20, MaxStringBytes: 1 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = fhir.ParseResource(data)
		v, err := fhir.ParseJSON(data, small)
		if err != nil {
			if fhir.StatusOf(err) == 500 {
				t.Fatalf("parse error without a FHIR status: %v", err)
			}
			return
		}
		_ = fhir.Validate(v)
		enc := v.Encode()
		v2, err := fhir.ParseJSON(enc, small)
		if err != nil {
			t.Fatalf("re-encoded JSON does not parse: %v\n%s", err, enc)
		}
		if enc2 := v2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip differs:\n%s\n%s", enc, enc2)
		}
	})
}
