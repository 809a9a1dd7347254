// Package fhirtest holds the shared test suites kapbridge's FHIR parts
// must pass: every store backend the store and search suites
// (RunStoreSuite, RunSearchSuite), every gateway the FHIR REST API suite
// over HTTP at a base URL (RunAPISuite, the seed of a conformance kit) and
// the conformance-resource suite (RunConformanceSuite); and the tables and
// helpers they share (InvalidResources, ExamplesDir, SharedDir).
package fhirtest
