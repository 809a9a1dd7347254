package fhir

import (
	"strings"
	"testing"
)

// renderSteps writes steps back as a discriminator path.
func renderSteps(steps []dstep) string {
	parts := make([]string, len(steps))
	for i, st := range steps {
		switch st.kind {
		case 'n':
			parts[i] = st.arg
		case 'r':
			parts[i] = "resolve()"
		case 'e':
			parts[i] = "extension('" + st.arg + "')"
		case 't':
			parts[i] = "ofType(" + st.arg + ")"
		}
	}
	if len(parts) == 0 {
		return "$this"
	}
	return strings.Join(parts, ".")
}

// FuzzParseDiscriminator: no path makes the parser panic, and what
// parses renders back to a path that parses to the same steps.
func FuzzParseDiscriminator(f *testing.F) {
	for _, s := range []string{"$this", "code.coding.code", "resolve().code", "extension('http://x.org/a.b').value",
		"value.ofType(Quantity)", "ofType(FHIR.Quantity).code", "code.where(x)", "extension(url)", "a..b", "code((", "extension('a)b')"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		steps, err := parseDiscriminator(path)
		if err != nil {
			return
		}
		again, err := parseDiscriminator(renderSteps(steps))
		if err != nil {
			t.Fatalf("%q parsed to %v, whose rendering %q does not parse: %v", path, steps, renderSteps(steps), err)
		}
		if renderSteps(again) != renderSteps(steps) || len(again) != len(steps) {
			t.Fatalf("%q: %v, then %v", path, steps, again)
		}
	})
}
