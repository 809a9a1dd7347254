package mappings

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// Errors of the mappings; test with errors.Is.
var (
	// ErrUnresolved: a record refers to a record the Lookup does not hold
	// yet (records arrive in any order); map it again once it arrives.
	ErrUnresolved = errors.New("mappings: referenced record not found")
	// ErrInvalidRecord: a field value the mapping cannot express in FHIR
	// (an unknown status, an unparseable date).
	ErrInvalidRecord = errors.New("mappings: invalid record")
)

// Lookup resolves the records a mapping needs besides the one it maps:
// the client (its security labels depend on a Part 2 program), the course
// of a session, the sessions of a course (the CarePlan lists them). The
// records' Book satisfies it.
type Lookup interface {
	Client(id string) (*Client, bool)
	Practitioner(id string) (*Practitioner, bool)
	Course(id string) (*Course, bool)
	Session(id string) (*Session, bool)
	// SessionsOf returns the sessions of a course, in any order.
	SessionsOf(course string) []*Session
}

var _ Lookup = (*Book)(nil)

// Mapper maps practice records of one practice to FHIR R4 and back. Its
// methods are pure: no I/O; the same records, Lookup and Now give the same
// resources.
type Mapper struct {
	// Practice is the practice's namespace (e.g. "acme-kap"): part of
	// every id and identifier system.
	Practice string
	// Now stamps Provenance.recorded; nil means time.Now.
	Now func() time.Time
	// Limits interpret vital signs (Observation.interpretation H, HH, L,
	// LL); zero fields mean LimitTable's defaults. Check takes the same
	// Limits (CheckConfig.Limits), so an interpretation and a finding
	// agree.
	Limits Limits
	// NoPrescriptions leaves out the course's prescription: by default it
	// is a MedicationRequest, which each dose's MedicationAdministration
	// names (request), as a prescriber's EHR expects (issue 12 item 7).
	NoPrescriptions bool
}

func (m *Mapper) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

// ToFHIR maps one record to its resources, a Provenance last. Records may
// be passed by pointer or by value. A course's CarePlan lists the course's
// sessions, so a caller that maps a session maps its course again too.
//
//	client        Patient
//	practitioner  Practitioner, PractitionerRole
//	course        CarePlan (profile kap-careplan, with a generated narrative),
//	              Condition per indication, Goal per goal and intention,
//	              CareTeam, MedicationRequest (the course's prescription)
//	session       held: Encounter, and MedicationAdministration for a dose
//	              (effective[x] when given, request the prescription);
//	              planned, cancelled, no-show: nothing (CarePlan activities)
//	screening     QuestionnaireResponse for the clearance and per instrument
//	              (profile kap-screening-response), an Observation of the
//	              clearance decision and per instrument result, a Flag per
//	              positive clearance item,
//	              PHQ-9 item 9 > 0 and C-SSRS moderate or high
//	observation   vital-sign Observations (R4 vital-signs profiles),
//	              dissociation, side-effect and red-flag Observations
//	              (profile kap-session-observation), Flag per red flag;
//	              vitals carry interpretation H, HH, L, LL under Limits
//	note          DocumentReference labelled V + PSYTHPN (see Exportable)
//	consent       Consent
//
// Resources of a type US Core 3.1.1 profiles claim that profile (Patient
// only with a gender, PractitionerRole only with a phone or email), vital
// signs the R4 core vital-signs profiles and SpO2 US Core pulse oximetry.
//
// Every resource carries the practice identifier and the security labels
// of kap-domain.md section 6; ids are ResourceID(practice, kind, id,
// resource type, ...), so mapping a record again gives the same ids. What
// the mapping could not carry, or carried with a default, comes back as
// warnings (problems of code CodeNotCarried), never as a silent drop.
// ToFHIRChecked adds the Flags of the record's findings (Check).
func (m *Mapper) ToFHIR(b Lookup, r Record) ([]*fhir.Value, []Problem, error) {
	return m.toFHIR(b, r, nil)
}

func (m *Mapper) toFHIR(b Lookup, r Record, findings []Problem) ([]*fhir.Value, []Problem, error) {
	rp := recordPointer(r)
	k := kindOf(rp)
	mp := mapping{arena: sized(k), m: m, b: b}
	defer mp.remember(k)
	var err error
	switch rp := rp.(type) {
	case *Client:
		err = mp.client(rp)
	case *Practitioner:
		err = mp.practitioner(rp)
	case *Course:
		err = mp.course(rp)
	case *Session:
		err = mp.session(rp)
	case *Screening:
		err = mp.screening(rp)
	case *Observation:
		err = mp.observation(rp)
	case *Note:
		err = mp.note(rp)
	case *Consent:
		err = mp.consent(rp)
	default:
		return nil, nil, fmt.Errorf("%w: unknown record type %T", ErrInvalidRecord, r)
	}
	h := r.RecordHeader()
	for i := range mp.warnings {
		mp.warnings[i].Record = Ref{h.Kind, h.ID}
	}
	if err != nil {
		return nil, mp.warnings, err
	}
	mp.findingFlags(r, findings)
	for i := range mp.warnings {
		mp.warnings[i].Record = Ref{h.Kind, h.ID}
	}
	if len(mp.out) > 0 {
		mp.provenance(h)
	}
	return mp.out, mp.warnings, nil
}

// kindOf is the kind of a record pointer by its Go type ("" if none).
func kindOf(rp any) Kind {
	switch rp.(type) {
	case *Client:
		return KindClient
	case *Practitioner:
		return KindPractitioner
	case *Course:
		return KindCourse
	case *Session:
		return KindSession
	case *Screening:
		return KindScreening
	case *Observation:
		return KindObservation
	case *Note:
		return KindNote
	case *Consent:
		return KindConsent
	}
	return ""
}

// mapping is the state of one ToFHIR call.
type mapping struct {
	arena
	m        *Mapper
	b        Lookup
	out      []*fhir.Value
	warnings []Problem
	refs     []string // "Type/id" of each of out
	kind     Kind
	id       string
	idSystem string      // the identifier system of kind, once made
	labels   *fhir.Value // meta.security of every resource of this record
}

func (mp *mapping) warn(field, format string, args ...any) {
	mp.warnings = append(mp.warnings, Problem{Code: CodeNotCarried, Severity: SeverityWarning, Field: field, Message: fmt.Sprintf(format, args...)})
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidRecord, field, fmt.Sprintf(format, args...))
}

func unresolved(field string, kind Kind, id string) error {
	return fmt.Errorf("%w: %s: %s %q", ErrUnresolved, field, kind, id)
}

// rid is the id of a resource made from a record of this practice. By
// convention the first suffix is always the resource type (so one record's
// resources never share an id), then what tells several of a type apart.
func (mp *mapping) rid(kind Kind, id string, suffix ...string) string {
	return ResourceID(mp.m.Practice, kind, id, suffix...)
}

func (mp *mapping) patientRef(client string) *fhir.Value {
	return mp.refTo("Patient", KindClient, client)
}

// refTo is the reference to the resource of type typ made from the record
// kind/id, with further suffixes: ResourceID's, made at once.
func (mp *mapping) refTo(typ string, kind Kind, id string, suffix ...string) *fhir.Value {
	return mp.obj(mem("reference", mp.str(typedRef(typ, mp.m.Practice, kind, id, []string{typ}, suffix))))
}

func (mp *mapping) practitionerRef(id string) *fhir.Value {
	if id == "" {
		return nil
	}
	return mp.refTo("Practitioner", KindPractitioner, id)
}

// securityLabels are kap-domain.md section 6: KAP content is restricted
// mental-health information (R + PSY); a Part 2 program adds ETH; a
// process note is very restricted (V + PSYTHPN) and never exported
// without a Consent (see Exportable).
func (a *arena) securityLabels(c *Client, processNote bool) *fhir.Value {
	var buf [3]*fhir.Value
	ls := buf[:0]
	if processNote {
		ls = append(ls, a.coding("sec.V"), a.coding("sec.PSYTHPN"))
	} else {
		ls = append(ls, a.coding("sec.R"), a.coding("sec.PSY"))
	}
	if c != nil && c.SUDProgram {
		ls = append(ls, a.coding("sec.ETH"))
	}
	return a.arr(ls...)
}

// begin sets what every resource of the record shares. The kind comes
// from the record's Go type, not its header, which a record built in code
// may leave empty.
func (mp *mapping) begin(kind Kind, h Header, c *Client, processNote bool) {
	mp.kind, mp.id, mp.idSystem = kind, h.ID, ""
	mp.labels = mp.securityLabels(c, processNote)
}

// identifier is the practice identifier of a resource made from the
// record: the record's own id for its main resource, the id plus the
// suffix for the others, so each resource's identifier is unique (the sync
// searches EHRs by identifier).
func (mp *mapping) identifier(suffix ...string) *fhir.Value {
	v := mp.id
	if len(suffix) > 0 {
		var buf [128]byte
		b := append(buf[:0], mp.id...)
		for _, s := range suffix {
			b = append(b, '/')
			b = append(b, s...)
		}
		v = string(b)
	}
	if mp.idSystem == "" {
		mp.idSystem = NSPracticeRecordIDs + "/" + mp.m.Practice + "/" + string(mp.kind)
	}
	return mp.obj(mem("system", mp.str(mp.idSystem)), mem("value", mp.str(v)))
}

// emit builds a resource: resourceType, id, meta (profiles, the record's
// security labels), identifier (an array unless single), then the body.
func (mp *mapping) emit(rt string, suffix []string, profiles []string, singleIdentifier bool, body ...fhir.Member) *fhir.Value {
	// The reference to the resource, "rt/id", and its id share one string.
	ref := typedRef(rt, mp.m.Practice, mp.kind, mp.id, []string{rt}, suffix)
	var buf [24]fhir.Member
	ms := append(buf[:0], mem("resourceType", mp.str(rt)), mem("id", mp.str(ref[len(rt)+1:])))
	var prof *fhir.Value
	if len(profiles) > 0 {
		prof = mp.strs(profiles)
	}
	ms = append(ms, mem("meta", mp.obj(mem("profile", prof), mem("security", mp.clone(mp.labels)))))
	if rt != "Provenance" {
		id := mp.identifier(suffix...)
		if !singleIdentifier {
			id = mp.arr(id)
		}
		ms = append(ms, mem("identifier", id))
	}
	ms = append(ms, body...)
	v := mp.obj(ms...)
	if mp.out == nil {
		// Most records make fewer than 8 resources: 2 allocations, not 8.
		mp.out, mp.refs = make([]*fhir.Value, 0, 8), make([]string, 0, 8)
	}
	mp.out = append(mp.out, v)
	mp.refs = append(mp.refs, ref)
	return v
}

// firstLast moves the last resource emitted to the front (a record's main
// resource, made last because it names the others).
func (mp *mapping) firstLast() {
	n := len(mp.out) - 1
	mp.out = append(mp.out[n:], mp.out[:n]...)
	mp.refs = append(mp.refs[n:], mp.refs[:n]...)
}

// provenance names the practice system as the source of every resource
// made from the record.
func (mp *mapping) provenance(h Header) {
	targets := mp.pointers(len(mp.out))
	for _, ref := range mp.refs {
		targets = append(targets, mp.obj(mem("reference", mp.str(ref))))
	}
	device := mp.obj(
		mem("type", mp.str("Device")),
		mem("identifier", mp.obj(mem("system", mp.str(NSPracticeRecordIDs)), mem("value", mp.str(mp.m.Practice)))),
		mem("display", mp.str("practice system "+mp.m.Practice)))
	source := mp.obj(
		mem("identifier", mp.identifier()),
		mem("display", mp.str(string(mp.kind)+" "+mp.id)))
	mp.emit("Provenance", nil, []string{ProfileUSCoreProvenance}, false,
		mem("target", mp.arr(targets...)),
		mem("recorded", mp.str(mp.m.now().UTC().Format(time.RFC3339))),
		mem("agent", mp.arr(mp.obj(mem("type", mp.concept("", mp.coding("participation.DEV"))), mem("who", device)))),
		mem("entity", mp.arr(mp.obj(mem("role", mp.str("source")), mem("what", source)))))
}

// Dates. Records carry YYYY-MM-DD or RFC 3339; both are FHIR dateTimes
// as written, so they pass through unchanged once checked.

// Year 0000 parses in Go but is no FHIR date (the R4 date regex starts
// at 0001).
func isDay(s string) bool {
	if len(s) != 10 {
		return false // a timestamp: not worth a parse error's allocations
	}
	_, err := time.Parse("2006-01-02", s)
	return err == nil && !strings.HasPrefix(s, "0000")
}

// isRFC3339 wants the exact shape FHIR dateTime allows with a time
// (two-digit fields, seconds, a zone): time.Parse alone also takes "T9:00".
func isRFC3339(s string) bool {
	if len(s) < 20 || !digitsAt(s, 0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18) ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return false
	}
	_, err := time.Parse(time.RFC3339, s)
	return err == nil && !strings.HasPrefix(s, "0000")
}

func digitsAt(s string, at ...int) bool {
	for _, i := range at {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// dateTime checks an optional date or timestamp field.
func (mp *mapping) fhirDateTime(field, s string) (*fhir.Value, error) {
	if s == "" {
		return nil, nil
	}
	if !isDay(s) && !isRFC3339(s) {
		return nil, invalid(field, "%q is neither YYYY-MM-DD nor RFC 3339", s)
	}
	return mp.str(s), nil
}

func (mp *mapping) fhirDate(field, s string) (*fhir.Value, error) {
	if s == "" {
		return nil, nil
	}
	if !isDay(s) {
		return nil, invalid(field, "%q is not YYYY-MM-DD", s)
	}
	return mp.str(s), nil
}

// client -> Patient.
func (mp *mapping) client(c *Client) error {
	mp.begin(KindClient, c.Header, c, false)
	bd, err := mp.fhirDate("client.birth_date", c.BirthDate)
	if err != nil {
		return err
	}
	var gender *fhir.Value
	switch c.Sex {
	case "":
	case "female", "male", "other", "unknown":
		gender = mp.str(c.Sex)
	default:
		mp.warn("client.sex", "%q is not female, male, other or unknown: not carried", c.Sex)
	}
	var mrn *fhir.Value
	if c.MRN != "" {
		mrn = mp.obj(
			mem("type", mp.concept("", mp.coding("identifier.MR"))),
			mem("system", mp.str(NSPracticeRecordIDs+"/"+mp.m.Practice+"/mrn")),
			mem("value", mp.str(c.MRN)))
	}
	var telecom []*fhir.Value
	if c.Phone != "" {
		telecom = append(telecom, mp.obj(mem("system", mp.str("phone")), mem("value", mp.str(c.Phone))))
	}
	if c.Email != "" {
		telecom = append(telecom, mp.obj(mem("system", mp.str("email")), mem("value", mp.str(c.Email))))
	}
	var lang *fhir.Value
	if c.Language != "" && !isLanguageTag(c.Language) {
		mp.warn("client.language", "%q is not a BCP-47 tag: not carried", c.Language)
	} else if c.Language != "" {
		lang = mp.arr(mp.obj(mem("language", mp.concept("", mp.obj(mem("system", mp.str(SysBCP47)), mem("code", mp.str(c.Language))))), mem("preferred", mp.boolean(true))))
	}
	var ext *fhir.Value
	if c.Pronouns != "" {
		ext = mp.arr(mp.extension(ExtPronouns, mem("valueString", mp.str(c.Pronouns))))
	}
	// US Core patient wants gender 1..1: a client whose sex is not
	// recorded makes a Patient that meets base R4 only, and claims so.
	var profiles []string
	if gender != nil {
		profiles = []string{ProfileUSCorePatient}
	}
	p := mp.emit("Patient", nil, profiles, false,
		mem("extension", ext),
		mem("active", mp.boolean(true)),
		mem("name", mp.arr(mp.humanName(c.Name))),
		mem("telecom", mp.arr(telecom...)),
		mem("gender", gender),
		mem("birthDate", bd),
		mem("address", mp.arr(mp.obj(mem("postalCode", mp.str(c.Postal))))),
		mem("communication", lang))
	if mrn != nil {
		// The chart number is a second identifier of the same Patient.
		p.Get("identifier").Array = append(p.Get("identifier").Array, mrn)
	}
	return nil
}

// isLanguageTag checks the shape of a BCP-47 tag (en, en-US, zh-Hant-TW).
func isLanguageTag(s string) bool {
	for i, part := range strings.Split(s, "-") {
		if len(part) == 0 || len(part) > 8 || (i == 0 && len(part) < 2) {
			return false
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
				return false
			}
		}
	}
	return true
}

func (a *arena) humanName(n Name) *fhir.Value {
	var prefix, suffix *fhir.Value
	if n.Prefix != "" {
		prefix = a.arr(a.str(n.Prefix))
	}
	if n.Suffix != "" {
		suffix = a.arr(a.str(n.Suffix))
	}
	return a.obj(mem("family", a.str(n.Family)), mem("given", a.strs(n.Given)), mem("prefix", prefix), mem("suffix", suffix))
}

// practitioner -> Practitioner + PractitionerRole.
func (mp *mapping) practitioner(p *Practitioner) error {
	mp.begin(KindPractitioner, p.Header, nil, false)
	// A practitioner is no client's record: R alone would do, but the
	// role (a KAP prescriber, a therapist) is itself mental-health context.
	var npi *fhir.Value
	if p.NPI != "" {
		npi = mp.obj(mem("type", mp.concept("", mp.coding("identifier.NPI"))), mem("system", mp.str("http://hl7.org/fhir/sid/us-npi")), mem("value", mp.str(p.NPI)))
	}
	var qual *fhir.Value
	if p.Credential != "" {
		var cod *fhir.Value
		if _, ok := codeIndex["credential."+p.Credential]; ok {
			cod = mp.coding("credential." + p.Credential)
		}
		qual = mp.arr(mp.obj(mem("code", mp.concept(p.Credential, cod))))
	}
	var telecom []*fhir.Value
	if p.Phone != "" {
		telecom = append(telecom, mp.obj(mem("system", mp.str("phone")), mem("value", mp.str(p.Phone))))
	}
	if p.Email != "" {
		telecom = append(telecom, mp.obj(mem("system", mp.str("email")), mem("value", mp.str(p.Email))))
	}
	pr := mp.emit("Practitioner", nil, []string{ProfileUSCorePractitioner}, false,
		mem("active", mp.boolean(true)),
		mem("name", mp.arr(mp.humanName(p.Name))),
		mem("telecom", mp.arr(telecom...)),
		mem("qualification", qual))
	if npi != nil {
		pr.Get("identifier").Array = append(pr.Get("identifier").Array, npi)
	}
	switch p.Role {
	case "prescriber", "therapist", "administrator":
	default:
		return invalid("practitioner.role", "%q is not prescriber, therapist or administrator", p.Role)
	}
	// US Core PractitionerRole's pd-1 wants contact information or an
	// Endpoint: the project's validator counts an empty "telecom or
	// endpoint" as holding, the HL7 validator does not, so a practitioner
	// without phone or email claims the profile nowhere.
	var roleProfiles []string
	if len(telecom) > 0 {
		roleProfiles = []string{ProfileUSCorePractitionerRole}
	}
	mp.emit("PractitionerRole", []string{"role"}, roleProfiles, false,
		mem("active", mp.boolean(true)),
		mem("practitioner", mp.ref("Practitioner", pr.GetString("id"))),
		// US Core PractitionerRole requires an organization: the practice,
		// by identifier (a logical reference; the gateway keeps no
		// Organization resource of the practice).
		mem("organization", mp.obj(mem("type", mp.str("Organization")),
			mem("identifier", mp.obj(mem("system", mp.str(NSPracticeRecordIDs)), mem("value", mp.str(mp.m.Practice)))),
			mem("display", mp.str("practice "+mp.m.Practice)))),
		mem("code", mp.arr(mp.concept(p.Role, mp.localCoding(CSPractitionerRole, p.Role, "")))),
		// US Core pd-1: a role SHALL have contact information.
		mem("telecom", mp.arr(mp.clones(telecom)...)))
	return nil
}

// consent -> Consent.
func (mp *mapping) consent(c *Consent) error {
	cl, ok := mp.b.Client(c.Client)
	if !ok {
		return unresolved("consent.client", KindClient, c.Client)
	}
	mp.begin(KindConsent, c.Header, cl, false)
	start, err := mp.fhirDate("consent.start", c.Start)
	if err != nil {
		return err
	}
	end, err := mp.fhirDate("consent.end", c.End)
	if err != nil {
		return err
	}
	signed, err := mp.fhirDateTime("consent.signed", c.Signed)
	if err != nil {
		return err
	}
	if signed == nil {
		signed = mp.clone(start)
	}
	var policy string
	switch c.Decision {
	case "permit":
		policy = "consent.OPTIN"
	case "deny":
		policy = "consent.OPTOUT"
	default:
		return invalid("consent.decision", "%q is not permit or deny", c.Decision)
	}
	// The provision's security label says what the consent covers: the
	// process notes (PSYTHPN) or the rest of the KAP record (PSY).
	var label, scope *fhir.Value
	switch c.Scope {
	case "process_notes":
		label = mp.coding("sec.PSYTHPN")
		scope = mp.localCoding(CSConsentScope, "process-notes", "")
	case "treatment_record":
		label = mp.coding("sec.PSY")
		scope = mp.localCoding(CSConsentScope, "treatment-record", "")
	default:
		return invalid("consent.scope", "%q is not process_notes or treatment_record", c.Scope)
	}
	if c.Recipient == "" {
		return invalid("consent.recipient", "missing")
	}
	mp.emit("Consent", nil, nil, false,
		mem("status", mp.str("active")),
		mem("scope", mp.concept("", mp.coding("consent.patient-privacy"))),
		mem("category", mp.arr(mp.concept("", mp.coding("consent.category")), mp.concept("", scope))),
		mem("patient", mp.patientRef(c.Client)),
		mem("dateTime", signed),
		mem("performer", mp.arr(mp.patientRef(c.Client))),
		mem("policyRule", mp.concept("", mp.coding(policy))),
		mem("provision", mp.obj(
			mem("type", mp.str(c.Decision)),
			mem("period", mp.obj(mem("start", start), mem("end", end))),
			mem("actor", mp.arr(mp.obj(mem("role", mp.concept("", mp.coding("participation.IRCP"))), mem("reference", mp.practitionerRef(c.Recipient))))),
			mem("securityLabel", mp.arr(label)))))
	return nil
}
