package mappings

// CanonicalBase is the one base of every canonical URL the project
// publishes (profiles, CodeSystems, ValueSets, Questionnaires). No public
// FHIR implementation guide covers KAP, so these are the project's own.
const CanonicalBase = "http://kapbridge.org/fhir"

// The project's own code systems (kap-domain.md: no standard code exists).
const (
	CSSessionType       = CanonicalBase + "/CodeSystem/kap-session-type"      // consultation, preparation, dosing, integration, maintenance
	CSClearanceOutcome  = CanonicalBase + "/CodeSystem/kap-clearance-outcome" // cleared, not-cleared, deferred
	CSClearanceItem     = CanonicalBase + "/CodeSystem/kap-clearance-item"    // cardiovascular, psychotic-disorder, bipolar-i, substance-misuse, pregnancy, contraindicated-medications
	CSRedFlag           = CanonicalBase + "/CodeSystem/kap-red-flag"          // mania, confusion, dependence
	CSSideEffect        = CanonicalBase + "/CodeSystem/kap-side-effect"       // nausea, dizziness, dissociation-confusion, bp-elevation, emotional-flooding
	CSInstrument        = CanonicalBase + "/CodeSystem/kap-instrument"        // instruments and items without LOINC codes (PCL-5 items, MADRS ...)
	CSCondition         = CanonicalBase + "/CodeSystem/kap-condition"         // treatment-resistant-depression
	CSObservation       = CanonicalBase + "/CodeSystem/kap-observation"       // dissociation rating, C-SSRS triage ...
	CSCarePlanCategory  = CanonicalBase + "/CodeSystem/kap-careplan-category" // kap-course
	CSCheck             = CanonicalBase + "/CodeSystem/kap-check"             // the codes of CHECKS.md (CheckCodes): what a finding Flag says broke
	NSPracticeRecordIDs = CanonicalBase + "/NamingSystem/practice"            // + "/{practice}/{kind}": identifier systems of practice ids
)

// Security labels (kap-domain.md section 6).
const (
	SysConfidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	SysActCode         = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
)
