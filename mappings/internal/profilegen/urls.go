package main

// The canonical URLs, as mappings/canonical.go defines them. They are
// repeated here rather than imported so the generator builds while the
// mappings package is being changed; package ig's tests check
// that every artifact URL equals the mappings constant.
const (
	canonicalBase      = "http://kapbridge.org/fhir"
	csSessionType      = canonicalBase + "/CodeSystem/kap-session-type"
	csClearanceOutcome = canonicalBase + "/CodeSystem/kap-clearance-outcome"
	csClearanceItem    = canonicalBase + "/CodeSystem/kap-clearance-item"
	csRedFlag          = canonicalBase + "/CodeSystem/kap-red-flag"
	csSideEffect       = canonicalBase + "/CodeSystem/kap-side-effect"
	csInstrument       = canonicalBase + "/CodeSystem/kap-instrument"
	csCondition        = canonicalBase + "/CodeSystem/kap-condition"
	csObservation      = canonicalBase + "/CodeSystem/kap-observation"
	csCarePlanCategory = canonicalBase + "/CodeSystem/kap-careplan-category"
	csTag              = canonicalBase + "/CodeSystem/kap-tag"

	// Those mappings/codes.go adds for the mappings' own needs.
	csPractitionerRole = canonicalBase + "/CodeSystem/kap-practitioner-role"
	csConsentScope     = canonicalBase + "/CodeSystem/kap-consent-scope"
	csDocumentType     = canonicalBase + "/CodeSystem/kap-document-type"
	// The codes of the kap-session-phase extension's valueCode.
	csSessionPhase = canonicalBase + "/CodeSystem/kap-session-phase"
	// The codes of mappings/CHECKS.md: what a finding's Flag says broke.
	csCheck = canonicalBase + "/CodeSystem/kap-check"
)
