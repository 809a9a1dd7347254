package search

// Every program that serves or stores FHIR through this package links the
// FHIRPath engine, which registers the R4 invariants with fhir.Validate
// (see fhir.RegisterInvariants): a server never checks structure only.
import _ "github.com/kapbridge/kapbridge/fhir/fhirpath"
