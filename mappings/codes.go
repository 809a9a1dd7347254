package mappings

import "fmt"

// External code systems (their canonical URIs).
const (
	SysLOINC       = "http://loinc.org"
	SysSNOMED      = "http://snomed.info/sct"
	SysRxNorm      = "http://www.nlm.nih.gov/research/umls/rxnorm"
	SysUCUM        = "http://unitsofmeasure.org"
	SysObsCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	SysCarePlanCat = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
	SysCondCat     = "http://terminology.hl7.org/CodeSystem/condition-category"
	SysCondClin    = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	SysCondVer     = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	SysFlagCat     = "http://terminology.hl7.org/CodeSystem/flag-category"
	SysConsentScop = "http://terminology.hl7.org/CodeSystem/consentscope"
	SysPartType    = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	SysV20360      = "http://terminology.hl7.org/CodeSystem/v2-0360"
	SysV20203      = "http://terminology.hl7.org/CodeSystem/v2-0203"
	SysBCP47       = "urn:ietf:bcp:47"
	// SysFlagPriority is the code system of the R4 flag-priority
	// extension (ExtFlagPriority): PN, PL, PM, PH.
	SysFlagPriority   = "http://terminology.hl7.org/CodeSystem/flag-priority-code"
	SysInterpretation = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	// ExtFlagPriority is the core R4 extension giving a Flag its priority.
	ExtFlagPriority = "http://hl7.org/fhir/StructureDefinition/flag-priority"
)

// Project-local concepts this package needs beyond canonical.go. They live
// under the same base so the conformance artifacts can publish them; the
// extension URLs are StructureDefinitions the project must serve.
const (
	CSPractitionerRole = CanonicalBase + "/CodeSystem/kap-practitioner-role" // prescriber, therapist, administrator
	CSConsentScope     = CanonicalBase + "/CodeSystem/kap-consent-scope"     // process-notes, treatment-record
	CSNoteType         = CanonicalBase + "/CodeSystem/kap-document-type"     // process-note

	// ExtDosePerKg carries the weight-based dose (mg/kg): R4 Dosage has
	// no element for it and practices prescribe by it.
	ExtDosePerKg = CanonicalBase + "/StructureDefinition/kap-dose-per-kg"
	// ExtSessionPhase places a session observation (before, during,
	// discharge): the Spravato REMS form asks for BP at those points.
	ExtSessionPhase = CanonicalBase + "/StructureDefinition/kap-session-phase"
	// ExtPronouns carries the client's stated pronouns as text: R4
	// Patient has no element and the R5 extension is complex.
	ExtPronouns = CanonicalBase + "/StructureDefinition/kap-pronouns"
	// ExtPlannedCount carries a course's planned number of sessions of a
	// type on the CarePlan activity that stands for them.
	ExtPlannedCount = CanonicalBase + "/StructureDefinition/kap-planned-count"
)

// USCoreBase is where US Core 3.1.1 StructureDefinitions live.
const USCoreBase = "http://hl7.org/fhir/us/core/StructureDefinition/"

// The profiles mapped resources claim. The project's own are published by
// the conformance artifacts; the vital-sign ones are the R4 core profiles
// (what US Core 3.1.1 asks of vital signs), and the resources of a type US
// Core 3.1.1 profiles claim that profile too (mappings/ig/README.md).
const (
	ProfileCarePlan           = CanonicalBase + "/StructureDefinition/kap-careplan"
	ProfileSessionObservation = CanonicalBase + "/StructureDefinition/kap-session-observation"
	ProfileScreeningQR        = CanonicalBase + "/StructureDefinition/kap-screening-response"
	ProfileVitalSigns         = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
	ProfileBP                 = "http://hl7.org/fhir/StructureDefinition/bp"
	ProfileHeartRate          = "http://hl7.org/fhir/StructureDefinition/heartrate"
	ProfileOxygenSat          = "http://hl7.org/fhir/StructureDefinition/oxygensat"
	ProfileRespRate           = "http://hl7.org/fhir/StructureDefinition/resprate"
	ProfileBodyWeight         = "http://hl7.org/fhir/StructureDefinition/bodyweight"
	ProfileBodyTemp           = "http://hl7.org/fhir/StructureDefinition/bodytemp"
	ProfileUSCorePulseOx      = USCoreBase + "us-core-pulse-oximetry"

	// US Core 3.1.1 profiles of the other resource types the mappings
	// make; each claim is proved by TestUSCore against the full
	// definition, and the server validates it on write.
	ProfileUSCorePatient          = USCoreBase + "us-core-patient"
	ProfileUSCorePractitioner     = USCoreBase + "us-core-practitioner"
	ProfileUSCorePractitionerRole = USCoreBase + "us-core-practitionerrole"
	ProfileUSCoreCondition        = USCoreBase + "us-core-condition"
	ProfileUSCoreCarePlan         = USCoreBase + "us-core-careplan"
	ProfileUSCoreCareTeam         = USCoreBase + "us-core-careteam"
	ProfileUSCoreGoal             = USCoreBase + "us-core-goal"
	ProfileUSCoreEncounter        = USCoreBase + "us-core-encounter"
	ProfileUSCoreProvenance       = USCoreBase + "us-core-provenance"
	ProfileUSCoreDocumentRef      = USCoreBase + "us-core-documentreference"
	ProfileUSCoreMedicationReq    = USCoreBase + "us-core-medicationrequest"
)

// Status is how sure the project is of a code (kap-domain.md).
type Status string

// Code statuses. Local codes are the project's own CodeSystems.
const (
	Verified   Status = "V"     // seen in an HL7 / FHIR-spec / NLM / FDA artifact
	Verified2  Status = "V2"    // several independent public files agree
	Unverified Status = "U"     // unverified: kept here, in one place, so it can be corrected once
	Local      Status = "local" // the project's own code
)

// Code is one code the mappings emit or read.
type Code struct {
	Concept string // the key the mappings use
	System  string
	Code    string
	Display string // only where the display is certain; "" otherwise
	Status  Status
}

// Codes is the one table of every code the mappings use. The unverified
// (U) ones are: RxNorm 6130 ketamine ingredient, SNOMED 82423001 chronic
// pain, the C-SSRS triage rule (local codes), the v2-0360 credential codes
// and the default BP thresholds (see LimitTable); they are used
// because no better source was found, and fromfhir accepts them only from
// here.
var Codes = []Code{
	// Instruments (kap-domain.md section 2).
	{"phq9.panel", SysLOINC, "44249-1", "", Verified},
	{"phq9.total", SysLOINC, "44261-6", "", Verified},
	{"phq9.1", SysLOINC, "44250-9", "", Verified},
	{"phq9.2", SysLOINC, "44255-8", "", Verified},
	{"phq9.3", SysLOINC, "44259-0", "", Verified},
	{"phq9.4", SysLOINC, "44254-1", "", Verified},
	{"phq9.5", SysLOINC, "44251-7", "", Verified},
	{"phq9.6", SysLOINC, "44258-2", "", Verified},
	{"phq9.7", SysLOINC, "44252-5", "", Verified},
	{"phq9.8", SysLOINC, "44253-3", "", Verified},
	{"phq9.9", SysLOINC, "44260-8", "", Verified},
	{"phq9.difficulty", SysLOINC, "69722-7", "", Verified},
	{"answer.0", SysLOINC, "LA6568-5", "Not at all", Verified},
	{"answer.1", SysLOINC, "LA6569-3", "Several days", Verified},
	{"answer.2", SysLOINC, "LA6570-1", "More than half the days", Verified},
	{"answer.3", SysLOINC, "LA6571-9", "Nearly every day", Verified},
	{"gad7.panel", SysLOINC, "69737-5", "", Verified},
	{"gad7.total", SysLOINC, "70274-6", "", Verified},
	{"gad7.1", SysLOINC, "69725-0", "", Verified},
	{"gad7.2", SysLOINC, "68509-9", "", Verified},
	{"gad7.3", SysLOINC, "69733-4", "", Verified},
	{"gad7.4", SysLOINC, "69734-2", "", Verified},
	{"gad7.5", SysLOINC, "69735-9", "", Verified},
	{"gad7.6", SysLOINC, "69689-8", "", Verified},
	{"gad7.7", SysLOINC, "69736-7", "", Verified},
	{"pcl5.panel", SysLOINC, "101697-1", "", Verified2},
	{"pcl5.total", SysLOINC, "101698-9", "", Verified2},
	{"cssrs.panel", SysLOINC, "93373-9", "", Verified2},
	{"cssrs.1", SysLOINC, "93246-7", "", Verified2},
	{"cssrs.2", SysLOINC, "93247-5", "", Verified2},
	{"cssrs.3", SysLOINC, "93248-3", "", Verified2},
	{"cssrs.4", SysLOINC, "93249-1", "", Verified2},
	{"cssrs.5", SysLOINC, "93250-9", "", Verified2},
	{"cssrs.6", SysLOINC, "93267-3", "", Verified2},
	{"cssrs.7", SysLOINC, "93269-9", "", Verified2},
	{"yes", SysLOINC, "LA33-6", "Yes", Verified2},
	{"no", SysLOINC, "LA32-8", "No", Verified2},
	{"auditc.panel", SysLOINC, "72109-2", "", Verified2},
	{"auditc.total", SysLOINC, "75626-2", "", Verified2},
	{"dast10.panel", SysLOINC, "82666-9", "", Verified2},
	{"dast10.total", SysLOINC, "82667-7", "", Verified2},
	// C-SSRS has no total: its triage is a local observation (rule U).
	{"cssrs.triage", CSObservation, "cssrs-triage", "C-SSRS screener triage", Local},
	// LOINC "Suicide risk level": the HL7 US Behavioral Health Profiles
	// IG's C-SSRS example answers it; the triage Observation carries it
	// beside the local code (its value stays local: the LOINC answer list
	// for moderate and high was not verified).
	{"cssrs.risk-level", SysLOINC, "93374-7", "Suicide risk level", Verified2},
	// PHQ-9 difficulty answers, LOINC answer list LL359-1 (two independent
	// public artifacts agree; LA6575-0 is "Very", LA6574-3 "Extremely").
	{"difficulty.0", SysLOINC, "LA6572-7", "Not difficult at all", Verified2},
	{"difficulty.1", SysLOINC, "LA6573-5", "Somewhat difficult", Verified2},
	{"difficulty.2", SysLOINC, "LA6575-0", "Very difficult", Verified2},
	{"difficulty.3", SysLOINC, "LA6574-3", "Extremely difficult", Verified2},

	// Vital signs (section 3; displays as in the R4 vital-signs examples).
	{"vitals.bp", SysLOINC, "85354-9", "Blood pressure panel with all children optional", Verified},
	{"vitals.systolic", SysLOINC, "8480-6", "Systolic blood pressure", Verified},
	{"vitals.diastolic", SysLOINC, "8462-4", "Diastolic blood pressure", Verified},
	{"vitals.hr", SysLOINC, "8867-4", "Heart rate", Verified},
	{"vitals.rr", SysLOINC, "9279-1", "Respiratory rate", Verified},
	{"vitals.spo2", SysLOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", Verified},
	{"vitals.spo2.base", SysLOINC, "2708-6", "Oxygen saturation in Arterial blood", Verified},
	{"vitals.temp", SysLOINC, "8310-5", "Body temperature", Verified},
	{"vitals.weight", SysLOINC, "29463-7", "Body weight", Verified},
	{"category.vital-signs", SysObsCategory, "vital-signs", "Vital Signs", Verified},
	{"category.survey", SysObsCategory, "survey", "Survey", Verified},
	{"category.exam", SysObsCategory, "exam", "Exam", Verified},

	// Drugs, routes, conditions (section 4).
	{"drug.esketamine", SysRxNorm, "2201623", "", Verified},
	// unverified: the ingredient code; the injectable SCDs 238082-4 exist
	// but which strength a practice used is not in the record.
	{"drug.ketamine", SysRxNorm, "6130", "", Unverified},
	// Product-level codes an EHR may send back (kap-domain.md section 4:
	// the codes are verified, which strength each is is not): accepted
	// inbound as ketamine; Spravato's branded dose form group is sent
	// beside the esketamine SCDF.
	{"drug.ketamine.238082", SysRxNorm, "238082", "", Verified},
	{"drug.ketamine.238083", SysRxNorm, "238083", "", Verified},
	{"drug.ketamine.238084", SysRxNorm, "238084", "", Verified},
	{"drug.esketamine.spravato", SysRxNorm, "2201625", "", Verified},
	{"route.iv", SysSNOMED, "47625008", "", Verified2},
	{"route.im", SysSNOMED, "78421000", "", Verified2},
	{"route.lozenge", SysSNOMED, "37839007", "", Verified2},  // sublingual
	{"route.spravato", SysSNOMED, "46713006", "", Verified2}, // nasal
	{"condition.mdd", SysSNOMED, "370143000", "", Verified2},
	{"condition.trd", CSCondition, "treatment-resistant-depression", "Treatment-resistant depression", Local},
	{"condition.ptsd", SysSNOMED, "47505003", "", Verified2},
	{"condition.gad", SysSNOMED, "21897009", "", Verified2},
	{"condition.ocd", SysSNOMED, "191736004", "", Verified2},
	{"condition.suicidal_ideation", SysSNOMED, "6471006", "", Verified2},
	{"condition.chronic_pain", SysSNOMED, "82423001", "", Unverified}, // unverified
	{"careplan.assess-plan", SysCarePlanCat, "assess-plan", "", Verified},
	{"careplan.kap", CSCarePlanCategory, "kap-course", "Ketamine-assisted psychotherapy course", Local},

	// HL7 terminology used structurally (FHIR-spec artifacts).
	{"condition.problem-list-item", SysCondCat, "problem-list-item", "", Verified},
	{"condition.active", SysCondClin, "active", "", Verified},
	{"condition.resolved", SysCondClin, "resolved", "", Verified},
	{"condition.confirmed", SysCondVer, "confirmed", "", Verified},
	{"encounter.AMB", SysActCode, "AMB", "ambulatory", Verified},
	{"flag.clinical", SysFlagCat, "clinical", "", Verified},
	{"docref.clinical-note", "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "clinical-note", "Clinical Note", Verified},
	{"flag.safety", SysFlagCat, "safety", "", Verified},
	{"flag.priority.PH", SysFlagPriority, "PH", "High priority", Verified},
	{"flag.priority.PM", SysFlagPriority, "PM", "Medium priority", Verified},
	{"flag.priority.PL", SysFlagPriority, "PL", "Low priority", Verified},
	{"interp.H", SysInterpretation, "H", "High", Verified},
	{"interp.HH", SysInterpretation, "HH", "Critical high", Verified},
	{"interp.L", SysInterpretation, "L", "Low", Verified},
	{"interp.LL", SysInterpretation, "LL", "Critical low", Verified},
	{"consent.patient-privacy", SysConsentScop, "patient-privacy", "", Verified},
	{"consent.category", SysLOINC, "59284-0", "", Verified}, // as in the R4 Consent examples
	{"consent.OPTIN", SysActCode, "OPTIN", "", Verified},
	{"consent.OPTOUT", SysActCode, "OPTOUT", "", Verified},
	{"participation.IRCP", SysPartType, "IRCP", "", Verified},
	{"participation.DEV", SysPartType, "DEV", "", Verified},
	{"identifier.MR", SysV20203, "MR", "", Verified},
	{"identifier.NPI", SysV20203, "NPI", "", Verified},
	// unverified: v2-0360 degree codes; other credentials are text only.
	{"credential.MD", SysV20360, "MD", "", Unverified},
	{"credential.DO", SysV20360, "DO", "", Unverified},
	{"credential.NP", SysV20360, "NP", "", Unverified},
	{"credential.PA", SysV20360, "PA", "", Unverified},
	{"credential.RN", SysV20360, "RN", "", Unverified},

	// Security labels (section 6).
	{"sec.R", SysConfidentiality, "R", "restricted", Verified},
	{"sec.V", SysConfidentiality, "V", "very restricted", Verified},
	{"sec.PSY", SysActCode, "PSY", "", Verified},
	{"sec.PSYTHPN", SysActCode, "PSYTHPN", "", Verified},
	{"sec.ETH", SysActCode, "ETH", "", Verified},

	// UCUM units.
	{"ucum.mmHg", SysUCUM, "mm[Hg]", "mmHg", Verified},
	{"ucum.min-1", SysUCUM, "/min", "/min", Verified},
	{"ucum.%", SysUCUM, "%", "%", Verified},
	{"ucum.kg", SysUCUM, "kg", "kg", Verified},
	{"ucum.Cel", SysUCUM, "Cel", "Cel", Verified},
	{"ucum.mg", SysUCUM, "mg", "mg", Verified},
	{"ucum.mg/min", SysUCUM, "mg/min", "mg/min", Verified},
	{"ucum.mg/kg", SysUCUM, "mg/kg", "mg/kg", Verified},
	{"ucum.min", SysUCUM, "min", "min", Verified},
}

var codeIndex = func() map[string]Code {
	m := make(map[string]Code, len(Codes))
	for _, c := range Codes {
		if _, dup := m[c.Concept]; dup {
			panic("mappings: duplicate code concept " + c.Concept)
		}
		m[c.Concept] = c
	}
	return m
}()

// codeOf returns the table entry for a concept. A missing concept is a
// programming error in this package, caught by the tests.
func codeOf(concept string) Code {
	c, ok := codeIndex[concept]
	if !ok {
		panic(fmt.Sprintf("mappings: no code for concept %q", concept))
	}
	return c
}

// conceptOf finds the concept of a received coding (FHIR -> KAP), or "".
func conceptOf(system, code string) string {
	for _, c := range Codes {
		if c.System == system && c.Code == code {
			return c.Concept
		}
	}
	return ""
}
