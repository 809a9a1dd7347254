package ig

// The artifacts are generated from the tables in internal/profilegen, the
// hand-written differentials in differential/ and the R4 core package, and
// committed; builds never read the shared folder.
//go:generate go run ../internal/profilegen -core ../../../shared/fhir-r4/core -uscore ../../../shared/fhir-r4/us-core-3.1.0 -differential differential -out artifacts -external external
