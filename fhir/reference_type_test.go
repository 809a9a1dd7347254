package fhir

import (
	"strings"
	"testing"
)

// TestReferenceTypeSegments: referenceType reads the type from the end
// of the reference without splitting it; the answers are those of
// splitting on "/" (the code before), on every shape of reference.
func TestReferenceTypeSegments(t *testing.T) {
	split := func(v *validator, ref string) string {
		parts := strings.Split(ref, "/")
		n := len(parts)
		if n >= 4 && parts[n-2] == "_history" {
			parts = parts[:n-2]
			n -= 2
		}
		if n < 2 {
			return ""
		}
		if t := parts[n-2]; v.isResourceType(t) {
			return t
		}
		return ""
	}
	v := &validator{spec: r4()}
	segs := []string{"Patient", "Observation", "_history", "1", "x", "", "http:", "fhir", "Bundle"}
	var refs []string
	var gen func(prefix string, depth int)
	gen = func(prefix string, depth int) {
		refs = append(refs, prefix)
		if depth == 0 {
			return
		}
		for _, s := range segs {
			if prefix == "" {
				gen(s, depth-1)
			} else {
				gen(prefix+"/"+s, depth-1)
			}
		}
	}
	gen("", 5)
	refs = append(refs, "http://example.org/fhir/Patient/1/_history/2", "Patient/1/_history", "/Patient/1", "Patient/", "a/b/c/d/e/f/Patient/1")
	found := 0
	for _, ref := range refs {
		if ref == "" || strings.HasPrefix(ref, "urn:") || ref[0] == '#' || strings.IndexByte(ref, '?') >= 0 {
			continue
		}
		got, want := v.referenceType(ref), split(v, ref)
		if got != want {
			t.Errorf("%q: %q, splitting gives %q", ref, got, want)
		}
		if got != "" {
			found++
		}
	}
	if found < 1000 {
		t.Errorf("only %d of %d references name a type", found, len(refs))
	}
}
