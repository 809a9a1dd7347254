package fhir_test

// The invariants are evaluated by package fhirpath, which registers itself
// with this package when linked (as every server links it).
import _ "github.com/kapbridge/kapbridge/fhir/fhirpath"
