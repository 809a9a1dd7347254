// Package mappings owns the KAP domain: the practice record format in
// which a therapy practice describes its ketamine-assisted psychotherapy
// work (clients, practitioners, courses, sessions, screenings, session
// observations, process notes, consents), its scoring and safety checks,
// and the pure mappings between those records and FHIR R4 resources, both
// ways. The project's own conformance artifacts (profiles, CodeSystems,
// ValueSets, Questionnaires) are the implementation guide's, in package
// mappings/ig.
//
// Mappings are pure functions returning (resources, warnings, error): what
// a mapping cannot carry is a warning the caller sees, never a silent drop.
// Whatever is wrong with practice input (a record that does not decode, a
// check's finding, a mapping's warning, a resource kept as FHIR) is a
// Problem: one type, with a code, a severity and where it is, rendered by
// each caller in its own form (Problem.String, Problem.Issue).
package mappings
