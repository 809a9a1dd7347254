package mappings

import "time"

// The practice record format. Every record has a kind and a
// practice-assigned id, unique per kind within a practice; records refer
// to each other by those ids, may arrive in any order and may be updated
// later (the same kind and id again). Field names are snake_case because
// practice systems export CSV whose headers look like that. Unknown fields
// are errors (see Decode), never silently dropped.

// Kind names a record kind.
type Kind string

// The record kinds.
const (
	KindClient       Kind = "client"
	KindPractitioner Kind = "practitioner"
	KindCourse       Kind = "course"
	KindSession      Kind = "session"
	KindScreening    Kind = "screening"
	KindObservation  Kind = "observation"
	KindNote         Kind = "note"
	KindConsent      Kind = "consent"
)

// Kinds lists every record kind, in dependency order (a record may refer
// only to kinds before it, except consent, which names a recipient
// practitioner).
var Kinds = []Kind{KindClient, KindPractitioner, KindCourse, KindSession, KindScreening, KindObservation, KindNote, KindConsent}

// Header is what every record carries.
type Header struct {
	Kind Kind   `json:"kind"`
	ID   string `json:"id"`
	// Updated is when the practice system last changed the record
	// (optional; informational).
	Updated *time.Time `json:"updated,omitempty"`
}

// Name is a person's name.
type Name struct {
	Family string   `json:"family"`
	Given  []string `json:"given,omitempty"`
	Prefix string   `json:"prefix,omitempty"`
	Suffix string   `json:"suffix,omitempty"`
}

// Client is the person receiving KAP.
type Client struct {
	Header
	Name       Name   `json:"name"`
	BirthDate  string `json:"birth_date"`         // YYYY-MM-DD
	Sex        string `json:"sex,omitempty"`      // female, male, other, unknown
	Phone      string `json:"phone,omitempty"`    //
	Email      string `json:"email,omitempty"`    //
	MRN        string `json:"mrn,omitempty"`      // the practice's chart number, if any
	Pronouns   string `json:"pronouns,omitempty"` //
	Language   string `json:"language,omitempty"` // BCP-47, e.g. en-US
	Postal     string `json:"postal_code,omitempty"`
	SUDProgram bool   `json:"sud_program,omitempty"` // care under a 42 CFR Part 2 program (SUD indication)
}

// Practitioner is a prescriber, therapist or administrator.
type Practitioner struct {
	Header
	Name       Name   `json:"name"`
	Role       string `json:"role"`       // prescriber, therapist, administrator
	Credential string `json:"credential"` // MD, DO, NP, PA, RN, CRNA, LCSW, LCPC, LMFT, psychologist
	NPI        string `json:"npi,omitempty"`
	Email      string `json:"email,omitempty"`
	Phone      string `json:"phone,omitempty"`
}

// PlannedCounts is how many sessions of each type a course plans.
type PlannedCounts struct {
	Preparation int `json:"preparation"`
	Dosing      int `json:"dosing"`
	Integration int `json:"integration"`
}

// Course is one KAP course: consultation, preparation, dosing with
// integration between, maintenance.
type Course struct {
	Header
	Client      string        `json:"client"`
	Prescriber  string        `json:"prescriber"`
	Therapist   string        `json:"therapist"`
	Team        []string      `json:"team,omitempty"`              // further practitioner ids
	Indications []string      `json:"indications"`                 // mdd, trd, ptsd, gad, ocd, suicidal_ideation, chronic_pain
	Route       string        `json:"route"`                       // iv, im, lozenge, spravato
	Planned     PlannedCounts `json:"planned"`                     //
	Goals       []string      `json:"goals,omitempty"`             // treatment goals, as the client states them
	Intentions  []string      `json:"intentions,omitempty"`        // set during preparation
	Status      string        `json:"status"`                      // draft, active, on_hold, completed, revoked
	Start       string        `json:"start"`                       // YYYY-MM-DD
	End         string        `json:"end,omitempty"`               // YYYY-MM-DD
	Maintenance int           `json:"maintenance_weeks,omitempty"` // maintenance interval, 4-12 weeks; 0: none
}

// Dose is the medicine given in a dosing or maintenance session.
type Dose struct {
	Drug           string   `json:"drug"`                      // ketamine, esketamine
	Mg             float64  `json:"mg"`                        //
	MgPerKg        *float64 `json:"mg_per_kg,omitempty"`       //
	Route          string   `json:"route"`                     // iv, im, lozenge, spravato
	Lot            string   `json:"lot,omitempty"`             //
	AdministeredBy string   `json:"administered_by,omitempty"` // practitioner id
	MonitoredMin   int      `json:"monitored_minutes,omitempty"`
	// GivenAt is when the dose was given (an infusion: when it started),
	// RFC 3339: the MedicationAdministration's effective time. Without it
	// the session's start stands in, with a warning.
	GivenAt string `json:"given_at,omitempty"`
	// InfusionMinutes is an IV infusion's length: the administration's
	// period and its rate (mg/min).
	InfusionMinutes int `json:"infusion_minutes,omitempty"`
	// Product is the RxNorm code of the product given, when the practice
	// knows it (ProductCodes): the MedicationAdministration codes it
	// beside the ingredient.
	Product string `json:"product,omitempty"`
}

// Session is one appointment of a course.
type Session struct {
	Header
	Course        string   `json:"course"`
	Type          string   `json:"type"`                    // consultation, preparation, dosing, integration, maintenance
	Status        string   `json:"status"`                  // planned, held, cancelled, no_show
	PlannedStart  string   `json:"planned_start"`           // RFC 3339
	PlannedEnd    string   `json:"planned_end,omitempty"`   //
	ActualStart   string   `json:"actual_start,omitempty"`  //
	ActualEnd     string   `json:"actual_end,omitempty"`    //
	Practitioners []string `json:"practitioners,omitempty"` // who took part
	Dose          *Dose    `json:"dose,omitempty"`          // dosing and maintenance only
	// Concomitant are the medication classes the client took that the
	// Spravato REMS patient monitoring form asks about, recorded per
	// session: benzodiazepine, sedative_hypnotic (non-benzodiazepine),
	// psychostimulant, maoi, opioid, and lamotrigine (which blunts
	// ketamine's effect).
	Concomitant []string `json:"concomitant,omitempty"`
}

// Clearance is the medical-clearance part of a screening: true means the
// finding is present (a risk).
type Clearance struct {
	Cardiovascular      *bool `json:"cardiovascular"`
	PsychoticDisorder   *bool `json:"psychotic_disorder"`
	BipolarI            *bool `json:"bipolar_i"`
	SubstanceMisuse     *bool `json:"substance_misuse"`
	Pregnancy           *bool `json:"pregnancy"`
	ContraindicatedMeds *bool `json:"contraindicated_medications"`
	// Medications are the client's current medications, whether or not
	// contraindicated (ContraindicatedMeds says whether any is).
	Medications []string `json:"medications,omitempty"`
	Decision    string   `json:"decision"` // cleared, not_cleared, deferred
	// OverrideReason is the prescriber's reason for clearing a client
	// despite a contraindication item answered yes (or a positive
	// pregnancy test): without it such a "cleared" decision is an error
	// (CHECKS.md clearance.contraindication). It is mapped and flagged to
	// the prescriber's EHR.
	OverrideReason string `json:"override_reason,omitempty"`
}

// PregnancyTest is a pregnancy test result a screening carries.
type PregnancyTest struct {
	Date   string `json:"date"`   // RFC 3339 or YYYY-MM-DD
	Result string `json:"result"` // positive, negative
}

// InstrumentResult is one instrument's answers in a screening.
type InstrumentResult struct {
	Instrument string `json:"instrument"` // phq9, gad7, pcl5, cssrs, auditc, dast10
	// Items are the item answers in instrument order, 1-based in messages.
	// PHQ-9 9 items 0-3; GAD-7 7 items 0-3; PCL-5 20 items 0-4; AUDIT-C 3
	// items 0-4. C-SSRS and DAST-10 are yes/no: 1 = yes, 0 = no, as
	// answered (DAST-10 item 3, "able to stop", is reverse-scored by Score,
	// not by the practice). C-SSRS screener carries 7 items: Q1 wish dead
	// (LOINC 93246-7), Q2 thoughts (93247-5), Q3 method (93248-3), Q4
	// intent (93249-1), Q5 plan + intent (93250-9), Q6 behaviour ever
	// (93267-3), Q6b behaviour within the past 3 months (93269-9; yes only
	// if Q6 is yes).
	Items []int `json:"items"`
	// Total, if supplied, must equal the total computed from Items.
	Total *int `json:"total,omitempty"`
	// Sex is used by AUDIT-C, whose positive cut-off differs (female, male).
	Sex string `json:"sex,omitempty"`
	// Difficulty is PHQ-9's functional question (0-3), optional.
	Difficulty *int `json:"difficulty,omitempty"`
}

// Screening is a consultation's medical clearance and baseline scores, or
// a later re-assessment.
type Screening struct {
	Header
	Client      string     `json:"client"`
	Course      string     `json:"course,omitempty"`
	Date        string     `json:"date"` // RFC 3339 or YYYY-MM-DD
	PerformedBy string     `json:"performed_by"`
	Clearance   *Clearance `json:"clearance,omitempty"`
	// PregnancyTest, where it applies, is checked before every later dose
	// (CHECKS.md dosing.pregnancy_test).
	PregnancyTest *PregnancyTest     `json:"pregnancy_test,omitempty"`
	Instruments   []InstrumentResult `json:"instruments,omitempty"`
}

// Vitals are the vital signs of one measurement.
type Vitals struct {
	Systolic        *float64 `json:"systolic,omitempty"`  // mm[Hg]
	Diastolic       *float64 `json:"diastolic,omitempty"` // mm[Hg]
	HeartRate       *float64 `json:"heart_rate,omitempty"`
	SpO2            *float64 `json:"spo2,omitempty"` // %
	RespiratoryRate *float64 `json:"respiratory_rate,omitempty"`
	WeightKg        *float64 `json:"weight_kg,omitempty"`
	TemperatureC    *float64 `json:"temperature_c,omitempty"`
}

// Observation is what was observed at one time in a session.
type Observation struct {
	Header
	Session   string `json:"session"`
	Time      string `json:"time"` // RFC 3339
	Performer string `json:"performer,omitempty"`
	// Phase places a vitals reading: before, during (e.g. 40 min), discharge.
	Phase        string  `json:"phase,omitempty"`
	Vitals       *Vitals `json:"vitals,omitempty"`
	Dissociation *int    `json:"dissociation,omitempty"` // 0-10 clinician rating
	// Sedation is the MOAA/S rating (Modified Observer's Assessment of
	// Alertness/Sedation): 5 responds readily to the name spoken in a
	// normal tone (alert), 4 lethargic response, 3 responds only to the
	// name called loudly or repeatedly, 2 only to prodding or shaking, 1
	// only to a painful stimulus, 0 no response. kap-domain.md names no
	// sedation scale (the Spravato REMS form asks whether sedation
	// resolved); MOAA/S is the project's choice, see CHECKS.md.
	Sedation    *int     `json:"sedation,omitempty"`
	SideEffects []string `json:"side_effects,omitempty"` // nausea, dizziness, dissociation_confusion, bp_elevation, emotional_flooding
	RedFlags    []string `json:"red_flags,omitempty"`    // mania, confusion, dependence
	Comment     string   `json:"comment,omitempty"`
}

// Note is a therapist's process note (a psychotherapy note under 45 CFR
// 164.501): it never leaves the practice without an authorization.
type Note struct {
	Header
	Session string `json:"session"`
	Author  string `json:"author"`
	Date    string `json:"date"`
	Text    string `json:"text"`
}

// Consent records what of a client's record may be shared with whom.
type Consent struct {
	Header
	Client    string `json:"client"`
	Recipient string `json:"recipient"` // practitioner id
	Scope     string `json:"scope"`     // process_notes, treatment_record
	Decision  string `json:"decision"`  // permit, deny
	Start     string `json:"start"`     // YYYY-MM-DD
	End       string `json:"end,omitempty"`
	Signed    string `json:"signed,omitempty"` // date the client signed
}

// Record is any one record; RecordHeader identifies it. Decode returns
// pointers (*Client, *Practitioner, *Course, *Session, *Screening,
// *Observation, *Note, *Consent); code that switches on a Record's type
// should switch on those. Every kind says itself where it hangs and what
// it names, so code that stores or resolves records needs no switch over
// the kinds.
type Record interface {
	RecordHeader() Header
	// Parent is the record this one hangs under: a course's client, a
	// session's course, a screening's or consent's client, an
	// observation's or note's session. Clients and practitioners hang
	// under nothing: the zero Ref.
	Parent() Ref
	// References lists every record this one names, in the order of its
	// fields, leaving out fields not given. A record is complete (it can
	// map) only once all of them are known.
	References() []Ref
}

// Ref names one record: how records refer to each other.
type Ref struct {
	Kind Kind
	ID   string
}

// String is "kind/id", the form in which a record's missing references
// are stored and shown.
func (r Ref) String() string { return string(r.Kind) + "/" + r.ID }

// RecordHeader returns the header (every record kind embeds Header).
func (h Header) RecordHeader() Header { return h }

// refs appends a Ref of kind for each id given (empty ids are fields not
// given).
func refs(out []Ref, kind Kind, ids ...string) []Ref {
	for _, id := range ids {
		if id != "" {
			out = append(out, Ref{kind, id})
		}
	}
	return out
}

// Parent: a client hangs under nothing.
func (Client) Parent() Ref { return Ref{} }

// References: a client names no record.
func (Client) References() []Ref { return nil }

// Parent: a practitioner hangs under nothing.
func (Practitioner) Parent() Ref { return Ref{} }

// References: a practitioner names no record.
func (Practitioner) References() []Ref { return nil }

// Parent is the course's client.
func (c Course) Parent() Ref { return Ref{KindClient, c.Client} }

// References are the client, prescriber, therapist and team.
func (c Course) References() []Ref {
	out := refs(nil, KindClient, c.Client)
	out = refs(out, KindPractitioner, c.Prescriber, c.Therapist)
	return refs(out, KindPractitioner, c.Team...)
}

// Parent is the session's course.
func (s Session) Parent() Ref { return Ref{KindCourse, s.Course} }

// References are the course, the practitioners and who gave the dose.
func (s Session) References() []Ref {
	out := refs(nil, KindCourse, s.Course)
	out = refs(out, KindPractitioner, s.Practitioners...)
	if s.Dose != nil {
		out = refs(out, KindPractitioner, s.Dose.AdministeredBy)
	}
	return out
}

// Parent is the screening's client.
func (s Screening) Parent() Ref { return Ref{KindClient, s.Client} }

// References are the client, the course (if named) and who screened.
func (s Screening) References() []Ref {
	out := refs(nil, KindClient, s.Client)
	out = refs(out, KindCourse, s.Course)
	return refs(out, KindPractitioner, s.PerformedBy)
}

// Parent is the observation's session.
func (o Observation) Parent() Ref { return Ref{KindSession, o.Session} }

// References are the session and the performer.
func (o Observation) References() []Ref {
	return refs(refs(nil, KindSession, o.Session), KindPractitioner, o.Performer)
}

// Parent is the note's session.
func (n Note) Parent() Ref { return Ref{KindSession, n.Session} }

// References are the session and the author.
func (n Note) References() []Ref {
	return refs(refs(nil, KindSession, n.Session), KindPractitioner, n.Author)
}

// Parent is the consent's client.
func (c Consent) Parent() Ref { return Ref{KindClient, c.Client} }

// References are the client and the recipient.
func (c Consent) References() []Ref {
	return refs(refs(nil, KindClient, c.Client), KindPractitioner, c.Recipient)
}
