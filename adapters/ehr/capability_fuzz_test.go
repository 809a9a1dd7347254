package ehr

import (
	"errors"
	"testing"
)

// FuzzReadCapabilities: a statement is either read or refused with one of
// the package's errors, never a panic; what is read only holds
// interactions of the right level.
func FuzzReadCapabilities(f *testing.F) {
	f.Add(ehrFixture(f, epicFile))
	f.Add(ehrFixture(f, oracleFile))
	f.Add(ehrFixture(f, minimalFile))
	for _, s := range []string{
		`{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1","rest":[{"mode":"server","interaction":[{"code":"batch"}],
		  "resource":[{"type":"Observation","interaction":[{"code":"create"},{"code":"nope"}],"versioning":"versioned-update",
		  "searchParam":[{"name":"identifier","type":"token"}],"operation":[{"name":"$validate"}]}],
		  "security":{"service":[{"coding":[{"code":"SMART-on-FHIR"}]}],"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris","extension":[{"url":"token","valueUri":"https://x/token"}]}]}}]}`,
		`{"resourceType":"CapabilityStatement","rest":[{"mode":"server","resource":[{"type":7}]}]}`,
		`{"resourceType":"CapabilityStatement","fhirVersion":"3.0.2"}`,
		`{"resourceType":"CapabilityStatement","rest":null}`,
		`[]`, `null`, `{}`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadCapabilities(data)
		if err != nil {
			if c != nil {
				t.Fatal("a refused statement returned capabilities")
			}
			if !errors.Is(err, ErrNotCapabilityStatement) && !errors.Is(err, ErrNotR4) {
				t.Fatalf("error outside the package's: %v", err)
			}
			return
		}
		for _, in := range c.SystemInteractions {
			if !in.System() {
				t.Fatalf("system interaction %q", in)
			}
		}
		for typ, r := range c.Resources {
			if r.Type != typ {
				t.Fatalf("resource %q filed under %q", r.Type, typ)
			}
			for _, in := range r.Interactions {
				if !in.typeLevel() {
					t.Fatalf("%s: interaction %q", typ, in)
				}
			}
		}
		// Whatever was read, planning and filtering on it must not panic.
		_ = c.Allows("Observation", InteractionCreate)
		_ = c.Searchable("Observation", "identifier")
	})
}
