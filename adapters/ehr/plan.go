package ehr

import (
	"slices"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/consent"
)

// Artifact is a kind of KAP work the mappings make and the sync sends to
// prescriber EHRs: the unit a WritePlan decides for.
type Artifact string

// The artifacts, as the mappings make them (mappings.Mapper.ToFHIR).
const (
	ArtifactCourse             Artifact = "course"
	ArtifactIndication         Artifact = "indication"
	ArtifactGoal               Artifact = "goal"
	ArtifactCareTeam           Artifact = "care-team"
	ArtifactScreening          Artifact = "screening"
	ArtifactScore              Artifact = "score"
	ArtifactVitals             Artifact = "vital-signs"
	ArtifactSessionObservation Artifact = "session-observation"
	ArtifactDose               Artifact = "dose"
	ArtifactPrescription       Artifact = "prescription"
	ArtifactSafetySignal       Artifact = "safety-signal"
	ArtifactSession            Artifact = "session"
	ArtifactProvenance         Artifact = "provenance"
	ArtifactConsent            Artifact = "consent"
	ArtifactProcessNote        Artifact = "process-note"
	ArtifactClient             Artifact = "client"
	ArtifactPractitioner       Artifact = "practitioner"
	ArtifactQuestionnaire      Artifact = "questionnaire"
)

// ArtifactInfo describes an artifact: the resource type the mappings make
// for it and what it carries.
type ArtifactInfo struct {
	Artifact Artifact
	Resource string
	What     string
}

// Artifacts lists every artifact, in the order a plan lists them.
var Artifacts = []ArtifactInfo{
	{ArtifactCourse, "CarePlan", "the course: status, sessions planned and held"},
	{ArtifactIndication, "Condition", "what the course treats"},
	{ArtifactGoal, "Goal", "treatment goals and intentions"},
	{ArtifactCareTeam, "CareTeam", "prescriber, therapist, administrators of the course"},
	{ArtifactScreening, "QuestionnaireResponse", "screening answers: clearance, PHQ-9, GAD-7, PCL-5, C-SSRS ..."},
	{ArtifactScore, "Observation", "instrument scores and the clearance decision (category survey)"},
	{ArtifactVitals, "Observation", "blood pressure, heart rate, SpO2 ... (category vital-signs)"},
	{ArtifactSessionObservation, "Observation", "dissociation, side effects, red flags of a session"},
	{ArtifactDose, "MedicationAdministration", "a dose given in a dosing session"},
	{ArtifactPrescription, "MedicationRequest", "the course's ketamine or Spravato prescription, which each dose names"},
	{ArtifactSafetySignal, "Flag", "contraindications, PHQ-9 item 9, C-SSRS risk, BP above threshold, red flags"},
	{ArtifactSession, "Encounter", "a session held"},
	{ArtifactProvenance, "Provenance", "the practice record each resource was made from"},
	{ArtifactConsent, "Consent", "the client's privacy consents"},
	{ArtifactProcessNote, "DocumentReference", "therapist process notes (psychotherapy notes, V + PSYTHPN)"},
	{ArtifactClient, "Patient", "the client"},
	{ArtifactPractitioner, "Practitioner", "prescribers, therapists, administrators (and their roles)"},
	{ArtifactQuestionnaire, "Questionnaire", "the screening instruments (kapbridge's canonical Questionnaires)"},
}

// ArtifactOf returns the artifact a mapped resource belongs to, and false
// for a resource the mappings do not make.
func ArtifactOf(res *fhir.Value) (Artifact, bool) {
	switch res.GetString("resourceType") {
	case "CarePlan":
		return ArtifactCourse, true
	case "Condition":
		return ArtifactIndication, true
	case "Goal":
		return ArtifactGoal, true
	case "CareTeam":
		return ArtifactCareTeam, true
	case "QuestionnaireResponse":
		return ArtifactScreening, true
	case "Observation":
		switch {
		case hasCoding(res.Get("category"), "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs"):
			return ArtifactVitals, true
		case hasCoding(res.Get("category"), "http://terminology.hl7.org/CodeSystem/observation-category", "survey"):
			return ArtifactScore, true
		}
		return ArtifactSessionObservation, true
	case "MedicationAdministration":
		return ArtifactDose, true
	case "MedicationRequest":
		return ArtifactPrescription, true
	case "Flag":
		// A Flag on the practice (an overdue record whose patient is not
		// known yet, mappings.Mapper.OverdueFlag) is the practice's to act
		// on: an EHR files alerts under a patient.
		if consent.PatientOf(res) == "" {
			return "", false
		}
		return ArtifactSafetySignal, true
	case "Encounter":
		return ArtifactSession, true
	case "Provenance":
		return ArtifactProvenance, true
	case "Consent":
		return ArtifactConsent, true
	case "DocumentReference":
		// The mappings make DocumentReferences of process notes only,
		// labelled PSYTHPN; any other is no KAP artifact.
		if fhir.SensitivityOf(res)&fhir.PsychotherapyNote != 0 {
			return ArtifactProcessNote, true
		}
	case "Patient":
		return ArtifactClient, true
	case "Practitioner", "PractitionerRole":
		return ArtifactPractitioner, true
	case "Questionnaire":
		return ArtifactQuestionnaire, true
	}
	return "", false
}

// hasCoding reports whether a CodeableConcept, or an array of them, has
// the coding system|code.
func hasCoding(cc *fhir.Value, system, code string) bool {
	if cc == nil {
		return false
	}
	if cc.Kind == fhir.KindArray {
		return slices.ContainsFunc(cc.Array, func(c *fhir.Value) bool { return hasCoding(c, system, code) })
	}
	codings := cc.Get("coding")
	if codings == nil {
		return false
	}
	return slices.ContainsFunc(codings.Array, func(c *fhir.Value) bool {
		return c.GetString("system") == system && c.GetString("code") == code
	})
}

// PlanOutcome is what a plan decides for an artifact.
type PlanOutcome int

const (
	// OutcomeSent: the artifact goes, by its Route.
	OutcomeSent PlanOutcome = iota
	// OutcomeCannotGo: nothing this EHR accepts can carry it; Reason says
	// why.
	OutcomeCannotGo
	// OutcomeNotSent: kapbridge never writes it, by design (the client is
	// linked, not written); Reason says how it is handled.
	OutcomeNotSent
)

// Builder names the pure function that makes a part from the artifact's
// resource; "" is the resource as mapped.
type Builder string

// The representation builders (plan_represent.go).
const (
	BuildAsMapped                      Builder = ""
	BuildCarePlanDocument              Builder = "CarePlanDocument"
	BuildQuestionnaireResponseDocument Builder = "QuestionnaireResponseDocument"
	BuildDoseObservation               Builder = "DoseObservation"
	BuildFlagCommunication             Builder = "FlagCommunication"
)

// Find is how a writer looks on the EHR for what it wrote before, so that
// a create whose answer was lost is not made twice.
type Find string

const (
	// FindNone: no search can find it; the link table (the remote id
	// recorded at the create) is the only record.
	FindNone Find = ""
	// FindIdentifier: Type?identifier=system|value.
	FindIdentifier Find = "identifier"
	// FindPatient: identifier is not searchable; the patient's resources
	// of the type (Type?patient=id) are listed and the practice identifier
	// matched among them.
	FindPatient Find = "patient"
	// FindTarget: Provenance has no identifier; Provenance?target= lists
	// those of the resource, matched by the entity they name.
	FindTarget Find = "target"
)

// UpdateBy is how a change reaches a resource already written.
type UpdateBy string

const (
	UpdateNone  UpdateBy = ""      // no update declared: later changes are not sent
	UpdatePut   UpdateBy = "put"   // PUT Type/id with the whole resource
	UpdatePatch UpdateBy = "patch" // PATCH Type/id (a patch format the EHR declares)
)

// WriteMethod is how one resource type is written on an EHR. At most one
// of Conditional, PutByID and Create is set; the zero value writes nothing.
type WriteMethod struct {
	Type string
	// Conditional: PUT Type?identifier=system|value creates or updates in
	// one request (conditional update declared).
	Conditional bool
	// PutByID: PUT Type/{id} with kapbridge's id creates or updates
	// (update with updateCreate declared; the mappings' ids are
	// deterministic, so a repeated write converges).
	PutByID bool
	// Create: POST Type, after Find found nothing.
	Create bool
	Find   Find
	Update UpdateBy
	// IfMatch: updates carry If-Match with the version last written
	// (versioned-update declared); a 412 means re-read and re-plan.
	IfMatch bool
}

// Part is one resource a route writes, or relies on.
type Part struct {
	Type   string  // the resource type written on the EHR
	Build  Builder // how it is made from the artifact's resource
	What   string  // for people: what the part carries
	Method WriteMethod
	// Via, when set, names the artifacts whose own entries write this
	// part (a screening's score Observations, the Observation that raised
	// a safety signal, the course document that names the goals): the
	// route relies on it and does not write it twice.
	Via []Artifact
}

// Route is how an artifact lands on an EHR.
type Route struct {
	Parts []Part
	// Notes say what the route loses or needs.
	Notes []string
}

// PlanEntry is the plan for one artifact.
type PlanEntry struct {
	Artifact Artifact
	Resource string // the resource type the mappings make
	Outcome  PlanOutcome
	Route    Route  // when OutcomeSent
	Reason   string // when OutcomeCannotGo or OutcomeNotSent
	// ConsentRequired: the privacy gate lets it go only with a Consent
	// permitting it to this recipient (process notes); every write passes
	// the privacy gate, this says the default is never.
	ConsentRequired bool
}

// Transport is how requests are grouped.
type Transport string

const (
	// TransportTransaction: one all-or-nothing Bundle per change.
	TransportTransaction Transport = "transaction"
	// TransportBatch: Bundles of independent entries: the finds in one
	// batch, then the writes in another.
	TransportBatch Transport = "batch"
	// TransportSingle: one request per interaction.
	TransportSingle Transport = "single"
)

// WritePlan is, for one EHR, how each KAP artifact lands there: decided
// from the EHR's CapabilityStatement alone (PlanWrites), used by the
// outbox worker for every write to that EHR, and printed by
// `kapbridge ehr plan NAME` (WriteTable).
type WritePlan struct {
	EHR       string // whose statement: Capabilities.Name
	BaseURL   string
	Transport Transport
	Entries   []PlanEntry // one per artifact, in the order of Artifacts
	// Warnings are the statement's reading warnings.
	Warnings []string
	// Deletes and Keeps are the types written here whose deletion at the
	// practice is sent (delete declared) and is not (plan_delete.go).
	Deletes, Keeps []string
}

// Entry returns the plan for artifact a.
func (p *WritePlan) Entry(a Artifact) PlanEntry {
	for _, e := range p.Entries {
		if e.Artifact == a {
			return e
		}
	}
	return PlanEntry{Artifact: a, Outcome: OutcomeCannotGo, Reason: "not in the plan"}
}

// PlanWrites decides the write plan for the EHR c describes; a nil c
// declares nothing, so nothing can go.
func PlanWrites(c *Capabilities) *WritePlan {
	if c == nil {
		c = &Capabilities{Name: "an EHR that declares nothing"}
	}
	p := &WritePlan{EHR: c.Name, BaseURL: c.BaseURL, Transport: transportOf(c), Warnings: c.Warnings}
	pl := &planner{c: c, done: map[Artifact]PlanEntry{}}
	for _, a := range Artifacts {
		p.Entries = append(p.Entries, pl.entry(a.Artifact))
	}
	p.Deletes, p.Keeps = deletable(c, p.Entries)
	return p
}

func transportOf(c *Capabilities) Transport {
	switch {
	case c.Allows("", InteractionTransaction):
		return TransportTransaction
	case c.Allows("", InteractionBatch):
		return TransportBatch
	}
	return TransportSingle
}

type planner struct {
	c    *Capabilities
	done map[Artifact]PlanEntry // artifacts planned so far
}

// entry plans artifact a once; an artifact's route may depend on
// another's (a screening relies on its scores going).
func (pl *planner) entry(a Artifact) PlanEntry {
	if e, ok := pl.done[a]; ok {
		return e
	}
	for _, info := range Artifacts {
		if info.Artifact == a {
			e := pl.plan(info)
			e.Artifact, e.Resource = a, info.Resource
			pl.done[a] = e
			return e
		}
	}
	return PlanEntry{Artifact: a, Outcome: OutcomeCannotGo, Reason: "not a KAP artifact"}
}

// sent reports whether artifact a goes as itself or by a builder of its
// own (not only through another artifact), and by which type.
func (pl *planner) sent(a Artifact) (string, bool) {
	e := pl.entry(a)
	if e.Outcome != OutcomeSent || len(e.Route.Parts) == 0 || len(e.Route.Parts[0].Via) > 0 {
		return "", false
	}
	return e.Route.Parts[0].Type, true
}

// writable returns how typ is written here, or why a new one cannot be.
func (pl *planner) writable(typ string) (WriteMethod, string, bool) {
	c := pl.c
	r := c.Resource(typ)
	m := WriteMethod{Type: typ}
	if r.Has(InteractionUpdate) {
		m.Update = UpdatePut
	} else if r.Has(InteractionPatch) {
		m.Update = UpdatePatch
	}
	m.IfMatch = m.Update != UpdateNone && c.IfMatch(typ)
	hasIdentifier := typ != "Provenance" // R4 Provenance has no identifier element
	switch {
	case hasIdentifier && c.ConditionalUpdate(typ):
		m.Conditional = true
		m.IfMatch = false // the criteria, not a version, pick the target
		return m, "", true
	case c.UpdateCreates(typ):
		m.PutByID = true
		return m, "", true
	case r.Has(InteractionCreate):
		m.Create = true
		switch {
		case hasIdentifier && c.Searchable(typ, "identifier"):
			m.Find = FindIdentifier
		case hasIdentifier && (c.Searchable(typ, "patient") || c.Searchable(typ, "subject")):
			m.Find = FindPatient
		case !hasIdentifier && c.Searchable(typ, "target"):
			m.Find = FindTarget
		}
		return m, "", true
	case r.Has(InteractionUpdate):
		return m, typ + ": update only, and updateCreate is not declared: the EHR updates those it holds but takes no new one", false
	case r == nil:
		return m, typ + ": not listed", false
	case len(r.Interactions) == 0:
		return m, typ + ": no interaction declared", false
	}
	return m, typ + ": " + declared(r) + " only", false
}

func declared(r *ResourceCapability) string {
	s := make([]string, len(r.Interactions))
	for i, in := range r.Interactions {
		s[i] = string(in)
	}
	return strings.Join(s, ", ")
}

// methodNotes are the caveats of a write method.
func methodNotes(m WriteMethod) []string {
	var notes []string
	if m.Create && m.Find == FindNone {
		notes = append(notes, m.Type+": no search finds an earlier write (neither identifier nor patient is searchable): the link table is the only record, and a create whose answer was lost is not sent again but held for review")
	}
	if m.Update == UpdateNone {
		notes = append(notes, m.Type+": no update declared: once written, later changes are not sent")
	}
	return notes
}

func sentRoute(parts ...Part) PlanEntry {
	e := PlanEntry{Outcome: OutcomeSent, Route: Route{Parts: parts}}
	for _, p := range parts {
		if len(p.Via) == 0 {
			e.Route.Notes = append(e.Route.Notes, methodNotes(p.Method)...)
		}
	}
	return e
}

func (e PlanEntry) note(s ...string) PlanEntry {
	e.Route.Notes = append(e.Route.Notes, s...)
	return e
}

func cannotGo(reason string) PlanEntry {
	return PlanEntry{Outcome: OutcomeCannotGo, Reason: reason}
}

func (pl *planner) plan(a ArtifactInfo) PlanEntry {
	switch a.Artifact {
	case ArtifactCourse:
		cp, whyCP, ok := pl.writable("CarePlan")
		if ok {
			return sentRoute(Part{Type: "CarePlan", Method: cp})
		}
		if dr, whyDR, ok := pl.writable("DocumentReference"); ok {
			return sentRoute(Part{Type: "DocumentReference", Build: BuildCarePlanDocument,
				What: "the course as a readable XHTML summary + the CarePlan JSON", Method: dr}).note(whyCP)
		} else {
			return cannotGo("neither CarePlan nor DocumentReference can be written here (" + whyCP + "; " + whyDR + ")")
		}

	case ArtifactIndication, ArtifactGoal, ArtifactCareTeam:
		m, why, ok := pl.writable(a.Resource)
		if ok {
			return sentRoute(Part{Type: a.Resource, Method: m})
		}
		if typ, ok := pl.sent(ArtifactCourse); ok && typ == "DocumentReference" {
			return sentRoute(Part{Type: "DocumentReference", Via: []Artifact{ArtifactCourse},
				What: "named in the course's summary document"}).note(why)
		}
		return cannotGo(why + "; the course does not go as a document that could name it")

	case ArtifactScreening:
		qr, whyQR, ok := pl.writable("QuestionnaireResponse")
		if ok {
			return sentRoute(Part{Type: "QuestionnaireResponse", Method: qr})
		}
		scores := Part{Type: "Observation", Via: []Artifact{ArtifactScore}, What: "its scores, as Observations"}
		_, scoresGo := pl.sent(ArtifactScore)
		if dr, whyDR, ok := pl.writable("DocumentReference"); ok {
			e := sentRoute(Part{Type: "DocumentReference", Build: BuildQuestionnaireResponseDocument,
				What: "the answers as a readable XHTML document + the QuestionnaireResponse JSON", Method: dr})
			if scoresGo {
				e.Route.Parts = append(e.Route.Parts, scores)
			}
			return e.note(whyQR)
		} else if scoresGo {
			return sentRoute(scores).note(whyQR, whyDR, "the answers themselves do not go, only the scores")
		} else {
			return cannotGo("neither QuestionnaireResponse, DocumentReference nor Observation can be written here (" + whyQR + "; " + whyDR + ")")
		}

	case ArtifactScore, ArtifactVitals, ArtifactSessionObservation:
		m, why, ok := pl.writable("Observation")
		if ok {
			return sentRoute(Part{Type: "Observation", Method: m})
		}
		return cannotGo(why)

	case ArtifactDose:
		ma, whyMA, ok := pl.writable("MedicationAdministration")
		if ok {
			return sentRoute(Part{Type: "MedicationAdministration", Method: ma})
		}
		if obs, whyObs, ok := pl.writable("Observation"); ok {
			return sentRoute(Part{Type: "Observation", Build: BuildDoseObservation,
				What: "an Observation recording the dose: drug, amount, route, lot, time", Method: obs}).note(whyMA)
		} else {
			return cannotGo("neither MedicationAdministration nor Observation can be written here (" + whyMA + "; " + whyObs + ")")
		}

	case ArtifactPrescription:
		m, why, ok := pl.writable("MedicationRequest")
		if ok {
			return sentRoute(Part{Type: "MedicationRequest", Method: m})
		}
		// The order is the prescriber's own, made in this EHR; what the
		// practice holds is its copy, so nothing is lost by not sending it.
		return cannotGo(why + ": the prescription is the prescriber's order in their own EHR; each dose that goes names drug, amount and route, and its reference to the MedicationRequest is left out")

	case ArtifactSafetySignal:
		flag, whyFlag, ok := pl.writable("Flag")
		if ok {
			return sentRoute(Part{Type: "Flag", Method: flag})
		}
		com, whyCom, ok := pl.writable("Communication")
		if !ok {
			return cannotGo("neither Flag nor Communication can be written here (" + whyFlag + "; " + whyCom +
				"): no alert can reach the prescriber through this EHR; the Observations that raised the signals go on their own where Observations go")
		}
		e := sentRoute(Part{Type: "Communication", Build: BuildFlagCommunication,
			What: "an alert to the prescriber (category alert, priority urgent) naming the rule and the value", Method: com})
		if _, ok := pl.sent(ArtifactScore); ok {
			e.Route.Parts = append(e.Route.Parts, Part{Type: "Observation",
				Via:  []Artifact{ArtifactScore, ArtifactVitals, ArtifactSessionObservation},
				What: "the Observation that raised it"})
		} else {
			e = e.note("the Observations that raised the signals cannot go here")
		}
		return e.note(whyFlag)

	case ArtifactSession:
		m, why, ok := pl.writable("Encounter")
		if ok {
			return sentRoute(Part{Type: "Encounter", Method: m})
		}
		return cannotGo(why + ": a session's times still travel in its Observations and dose; references to the Encounter are left out of what goes")

	case ArtifactProvenance:
		m, why, ok := pl.writable("Provenance")
		if ok {
			return sentRoute(Part{Type: "Provenance", Method: m})
		}
		return cannotGo(why + ": each resource written names kapbridge as its source in meta.source; the Provenance stays on kapbridge's FHIR API")

	case ArtifactConsent:
		m, why, ok := pl.writable("Consent")
		if ok {
			return sentRoute(Part{Type: "Consent", Method: m})
		}
		return cannotGo(why + ": kapbridge's privacy gate applies it before every write; it stays on kapbridge")

	case ArtifactProcessNote:
		m, why, ok := pl.writable("DocumentReference")
		if !ok {
			return cannotGo(why)
		}
		e := sentRoute(Part{Type: "DocumentReference", What: "the note as mapped, only with a Consent permitting it to this recipient", Method: m}).
			note("privacy gate: never without a Consent that permits process notes to this recipient (45 CFR 164.508(a)(2))")
		e.ConsentRequired = true
		return e

	case ArtifactClient:
		how := []string{}
		if pl.c.Searchable("Patient", "identifier") {
			how = append(how, "by identifier (the configured MRN system)")
		}
		if pl.c.Operation("Patient", "match") {
			how = append(how, "by Patient/$match")
		}
		reason := "never written: linked to the EHR's own Patient"
		if len(how) == 0 {
			reason += "; this EHR offers neither identifier search nor $match, so every link is confirmed by hand (kapbridge ehr link)"
		} else {
			reason += " " + strings.Join(how, " or ") + "; an ambiguous or missing match waits for kapbridge ehr link"
		}
		return PlanEntry{Outcome: OutcomeNotSent, Reason: reason}

	case ArtifactPractitioner:
		return PlanEntry{Outcome: OutcomeNotSent, Reason: "never written: prescribers and staff are the EHR's own users; references to them must be resolved to the EHR's Practitioners or carried as display text"}

	case ArtifactQuestionnaire:
		return PlanEntry{Outcome: OutcomeNotSent, Reason: "never written: kapbridge's canonical Questionnaires, served by its FHIR API at the URLs QuestionnaireResponse.questionnaire names"}
	}
	return cannotGo("no plan for this artifact")
}
