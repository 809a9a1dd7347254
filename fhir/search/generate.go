package search

// The parameter table is generated from the official R4 definitions and
// embedded (see registry.go); builds never read the shared folder.
//go:generate go run ./internal/paramgen -core ../../../shared/fhir-r4/core -out params.json.gz
