package fhir_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
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
	// U+0000, arrays and documents over the limits (limits_test.go).
	f.Add([]byte(`{"resourceType":"Patient","name":[{"family":"a\u0000b","fa\u0000mily":"x"}]}`))
	f.Add(identifiers(65, `{"value":"1"}`))
	f.Add(identifiers(40, `{"system":"urn:x","value":"1","use":"usual"}`))
	small := fhir.Limits{MaxBytes: 1 << 20, MaxDepth: 20, MaxStringBytes: 1 << 10, MaxArrayElements: 64, MaxNodes: 128}
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, _, err := fhir.ParseResource(data); err == nil && hasNUL(v) {
			t.Fatalf("a resource holding U+0000 validated: %q", data)
		}
		v, err := fhir.ParseJSON(data, small)
		if err != nil {
			if fhir.StatusOf(err) == 500 {
				t.Fatalf("parse error without a FHIR status: %v", err)
			}
			return
		}
		if n, longest := size(v); n > small.MaxNodes || longest > small.MaxArrayElements {
			t.Fatalf("parsed %d values, an array of %d, over %+v", n, longest, small)
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

// size counts v's values and its longest array.
func size(v *fhir.Value) (n, longest int) {
	n = 1
	for _, x := range v.Array {
		m, l := size(x)
		n, longest = n+m, max(longest, l)
	}
	longest = max(longest, len(v.Array))
	for _, m := range v.Members {
		k, l := size(m.Value)
		n, longest = n+k, max(longest, l)
	}
	return n, longest
}

// hasNUL reports whether a string or member name under v holds U+0000.
func hasNUL(v *fhir.Value) bool {
	if strings.IndexByte(v.Str, 0) >= 0 {
		return true
	}
	for _, x := range v.Array {
		if hasNUL(x) {
			return true
		}
	}
	for _, m := range v.Members {
		if strings.IndexByte(m.Key, 0) >= 0 || hasNUL(m.Value) {
			return true
		}
	}
	return false
}
