// Package fhir owns the FHIR R4 core of kapbridge: the strict JSON parser and
// validator generated from the official R4 definitions, the ordered JSON
// tree that keeps a resource exactly as it was received, the one error type
// that becomes an OperationOutcome, the Store interface every storage
// backend implements, and profile validation against the Profiles (a
// value: compiled profiles, ValueSets and CodeSystems) its user holds.
//
// It imports no other kapbridge package.
package fhir
