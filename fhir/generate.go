package fhir

// The R4 definitions table is generated from the official core package
// and embedded (see spec.go); builds never read the shared folder.
//go:generate go run ./internal/specgen -core ../../shared/fhir-r4/core -out r4spec.json.gz
