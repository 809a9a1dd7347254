package mappings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RecordError is why a text is not a valid record: every problem found
// in it (each of code CodeInvalidRecord), so a practice can fix them all
// in one round instead of one per attempt.
type RecordError struct {
	// Record is the record's kind and id as sent: the kind empty when it
	// is missing or unknown, the id possibly invalid or empty.
	Record   Ref
	Problems []Problem
}

// InvalidRecord returns a RecordError of one problem with the record as a
// whole (a reader's: too long, not UTF-8, not JSON).
func InvalidRecord(format string, args ...any) *RecordError {
	return &RecordError{Problems: []Problem{invalidField("", fmt.Sprintf(format, args...))}}
}

// invalidField is a problem of a record that does not decode.
func invalidField(field, msg string) Problem {
	return Problem{Code: CodeInvalidRecord, Severity: SeverityError, Field: field, Message: msg}
}

// At sets the line where the record starts on e and its problems, and
// returns e.
func (e *RecordError) At(line int) *RecordError {
	for i := range e.Problems {
		e.Problems[i].Line = line
	}
	return e
}

func (e *RecordError) Error() string {
	var b strings.Builder
	b.WriteString("invalid record")
	if e.Record.Kind != "" {
		b.WriteString(" ")
		b.WriteString(string(e.Record.Kind))
	}
	if e.Record.ID != "" {
		fmt.Fprintf(&b, " %q", e.Record.ID)
	}
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// named sets the record on e's problems once its kind and id are known,
// and returns e.
func (e *RecordError) named() *RecordError {
	for i := range e.Problems {
		e.Problems[i].Record = e.Record
	}
	return e
}

// The closed vocabularies of the record format. Keys are "kind.path" with
// array indices left out; the JSON Schema's enums must equal these (see
// schema_test.go), and the project's CodeSystems carry the same concepts.
var recordEnums = map[string][]string{
	"client.sex":                       {"female", "male", "other", "unknown"},
	"practitioner.role":                {"prescriber", "therapist", "administrator"},
	"practitioner.credential":          {"MD", "DO", "NP", "PA", "RN", "CRNA", "LCSW", "LCPC", "LMFT", "psychologist"},
	"course.indications":               {"mdd", "trd", "ptsd", "gad", "ocd", "suicidal_ideation", "chronic_pain"},
	"course.route":                     Routes,
	"course.status":                    {"draft", "active", "on_hold", "completed", "revoked"},
	"session.type":                     SessionTypes,
	"session.status":                   {"planned", "held", "cancelled", "no_show"},
	"session.dose.drug":                {"ketamine", "esketamine"},
	"session.concomitant":              ConcomitantClasses,
	"session.dose.route":               Routes,
	"session.dose.product":             ProductCodes,
	"screening.clearance.decision":     {"cleared", "not_cleared", "deferred"},
	"screening.instruments.instrument": Instruments,
	"screening.pregnancy_test.result":  {"positive", "negative"},
	"screening.instruments.sex":        {"female", "male"},
	"observation.phase":                {"before", "during", "discharge"},
	"observation.side_effects":         {"nausea", "dizziness", "dissociation_confusion", "bp_elevation", "emotional_flooding"},
	"observation.red_flags":            {"mania", "confusion", "dependence"},
	"consent.scope":                    {"process_notes", "treatment_record"},
	"consent.decision":                 {"permit", "deny"},
}

// Routes, SessionTypes and Instruments are vocabularies other code
// switches on.
var (
	Routes       = []string{"iv", "im", "lozenge", "spravato"}
	SessionTypes = []string{"consultation", "preparation", "dosing", "integration", "maintenance"}
	Instruments  = []string{"phq9", "gad7", "pcl5", "cssrs", "auditc", "dast10"}
	// ProductCodes are the product-level RxNorm codes a dose may name
	// (Dose.Product): kap-domain.md section 4 lists the ketamine HCl
	// injectable products 238082, 238083 and 238084 as verified codes, but
	// not which strength each is (its "strength mapping U"), so the
	// practice names the code its stock carries and no strength is
	// displayed. kap-domain.md has no product-level (SCD/SBD) code for
	// esketamine: only the dose form groups 2201623 (SCDF) and 2201625
	// (Spravato SBDF), which every Spravato dose carries already. No code
	// is added here that the reference does not list.
	ProductCodes = []string{"238082", "238083", "238084"}
	// ConcomitantClasses are the medication classes a session records
	// (Session.Concomitant).
	ConcomitantClasses = []string{"benzodiazepine", "sedative_hypnotic", "psychostimulant", "maoi", "opioid", "lamotrigine"}
)

// Formats of string fields, keyed like recordEnums. Every field that
// names another record is an id, so a reference that could never resolve
// is caught at the door.
const (
	fmtID       = "id"
	fmtDate     = "date"      // YYYY-MM-DD
	fmtDateTime = "date-time" // RFC 3339
	fmtDateOr   = "date-or-date-time"
	fmtNPI      = "npi"
)

var recordFormats = map[string]string{
	"id":                            fmtID,
	"updated":                       fmtDateTime,
	"client.birth_date":             fmtDate,
	"practitioner.npi":              fmtNPI,
	"course.client":                 fmtID,
	"course.prescriber":             fmtID,
	"course.therapist":              fmtID,
	"course.team":                   fmtID,
	"course.start":                  fmtDate,
	"course.end":                    fmtDate,
	"session.course":                fmtID,
	"session.planned_start":         fmtDateTime,
	"session.planned_end":           fmtDateTime,
	"session.actual_start":          fmtDateTime,
	"session.actual_end":            fmtDateTime,
	"session.practitioners":         fmtID,
	"session.dose.administered_by":  fmtID,
	"session.dose.given_at":         fmtDateTime,
	"screening.client":              fmtID,
	"screening.course":              fmtID,
	"screening.date":                fmtDateOr,
	"screening.performed_by":        fmtID,
	"screening.pregnancy_test.date": fmtDateOr,
	"observation.session":           fmtID,
	"observation.time":              fmtDateTime,
	"observation.performer":         fmtID,
	"note.session":                  fmtID,
	"note.author":                   fmtID,
	"note.date":                     fmtDateOr,
	"consent.client":                fmtID,
	"consent.recipient":             fmtID,
	"consent.start":                 fmtDate,
	"consent.end":                   fmtDate,
	"consent.signed":                fmtDate,
}

// numRange bounds a number field. Decode rejects only what can never be
// right (negative counts, a rating off its scale); implausible but
// possible values are Check's business, where they are findings.
type numRange struct {
	Min float64
	Max *float64 // nil: unbounded
}

func upTo(n float64) *float64 { return &n }

var recordRanges = map[string]numRange{
	"course.planned.preparation":          {Min: 0},
	"course.planned.dosing":               {Min: 0},
	"course.planned.integration":          {Min: 0},
	"course.maintenance_weeks":            {Min: 0},
	"session.dose.mg":                     {Min: 0},
	"session.dose.mg_per_kg":              {Min: 0},
	"session.dose.monitored_minutes":      {Min: 0},
	"session.dose.infusion_minutes":       {Min: 0},
	"screening.instruments.total":         {Min: 0},
	"screening.instruments.difficulty":    {Min: 0, Max: upTo(3)},
	"observation.dissociation":            {Min: 0, Max: upTo(10)},
	"observation.sedation":                {Min: 0, Max: upTo(5)},
	"observation.vitals.systolic":         {Min: 0},
	"observation.vitals.diastolic":        {Min: 0},
	"observation.vitals.heart_rate":       {Min: 0},
	"observation.vitals.spo2":             {Min: 0, Max: upTo(100)},
	"observation.vitals.respiratory_rate": {Min: 0},
	"observation.vitals.weight_kg":        {Min: 0},
	"observation.vitals.temperature_c":    {Min: 0},
}

// idPattern is the practice id syntax. The mappings derive FHIR ids from
// practice ids (deterministic UUIDs), so practice ids need not be FHIR
// ids; the pattern keeps them short and safe in URLs, identifier values,
// file names and CSV.
var idPattern = regexp.MustCompile(idPatternText)

const (
	idPatternText   = `^[A-Za-z0-9._-]{1,64}$`
	datePatternText = `^[0-9]{4}-[0-9]{2}-[0-9]{2}$`
	npiPatternText  = `^[0-9]{10}$`
)

// recordTypes maps each kind to its struct.
var recordTypes = map[Kind]reflect.Type{
	KindClient:       reflect.TypeFor[Client](),
	KindPractitioner: reflect.TypeFor[Practitioner](),
	KindCourse:       reflect.TypeFor[Course](),
	KindSession:      reflect.TypeFor[Session](),
	KindScreening:    reflect.TypeFor[Screening](),
	KindObservation:  reflect.TypeFor[Observation](),
	KindNote:         reflect.TypeFor[Note](),
	KindConsent:      reflect.TypeFor[Consent](),
}

// recordKinds is recordTypes the other way round.
var recordKinds = func() map[reflect.Type]Kind {
	m := make(map[reflect.Type]Kind, len(recordTypes))
	for k, t := range recordTypes {
		m[t] = k
	}
	return m
}()

// RecordType returns the struct type of kind's records (Session for
// KindSession), false for an unknown kind.
func RecordType(kind Kind) (reflect.Type, bool) {
	t, ok := recordTypes[kind]
	return t, ok
}

// NewRecord returns a pointer to a new, empty record of kind (a *Session
// for KindSession), false for an unknown kind.
func NewRecord(kind Kind) (Record, bool) {
	t, ok := recordTypes[kind]
	if !ok {
		return nil, false
	}
	return reflect.New(t).Interface().(Record), true
}

// maxDepth bounds nesting: the deepest legal record is four levels deep,
// so anything far beyond is garbage or an attack on the stack.
const maxDepth = 16

// Decode decodes one JSON record strictly. It returns a pointer to the
// kind's struct (*Client, *Practitioner, *Course, *Session, *Screening,
// *Observation, *Note, *Consent) or a *RecordError listing every problem:
// syntax, unknown kind, unknown fields (case-sensitive, unlike
// encoding/json), duplicate fields, wrong types, nulls, missing required
// fields (a field whose json tag lacks omitempty), enum values, id, date
// and NPI formats, negative counts, and trailing data.
func Decode(data []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tree, err := parseValue(dec, 0)
	if err != nil {
		return nil, InvalidRecord("invalid JSON: %s", err)
	}
	obj, ok := tree.(*object)
	if !ok {
		return nil, InvalidRecord("a record must be a JSON object, not %s", jsonTypeName(tree))
	}
	re := &RecordError{}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		// One record per call: a second value is a framing mistake the
		// caller should hear about, not data to drop.
		re.Problems = append(re.Problems, invalidField("", fmt.Sprintf("trailing data after the record at byte %d", dec.InputOffset())))
	}
	if id, ok := obj.vals["id"].(string); ok {
		re.Record.ID = id
	}
	kv, present := obj.vals["kind"]
	ks, isString := kv.(string)
	switch {
	case !present:
		re.Problems = append(re.Problems, invalidField("kind", "required: one of "+kindList()))
		return nil, re.named()
	case !isString:
		re.Problems = append(re.Problems, invalidField("kind", "must be a string: one of "+kindList()))
		return nil, re.named()
	}
	t, known := recordTypes[Kind(ks)]
	if !known {
		re.Problems = append(re.Problems, invalidField("kind", fmt.Sprintf("unknown kind %q: one of %s", ks, kindList())))
		return nil, re.named()
	}
	re.Record.Kind = Kind(ks)
	w := walker{kind: re.Record.Kind}
	w.object(obj, t, "", "", 0)
	if re.Problems = append(re.Problems, w.problems...); len(re.Problems) > 0 {
		return nil, re.named()
	}
	// The walk has vouched for every field; the strict decode is the
	// guard that the walk and encoding/json agree.
	rec := reflect.New(t)
	sd := json.NewDecoder(bytes.NewReader(data))
	sd.DisallowUnknownFields()
	if err := sd.Decode(rec.Interface()); err != nil {
		re.Problems = append(re.Problems, invalidField("", err.Error()))
		return nil, re.named()
	}
	return rec.Interface().(Record), nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// object is a JSON object that remembers its key order, so problems are
// reported in the order the practice wrote the fields.
type object struct {
	keys []string
	vals map[string]any
	dups []string
}

// parseValue reads one JSON value as *object, []any, json.Number, string,
// bool or nil.
func parseValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("unexpected end of input")
		}
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			o := &object{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is not a string at byte %d", dec.InputOffset())
				}
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				if _, seen := o.vals[k]; seen {
					o.dups = append(o.dups, k)
					continue
				}
				o.keys = append(o.keys, k)
				o.vals[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return o, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return a, nil
		}
		return nil, fmt.Errorf("unexpected %q at byte %d", tok, dec.InputOffset())
	default:
		return tok, nil
	}
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case *object:
		return "an object"
	case []any:
		return "an array"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// walker checks a parsed record against its struct and the tables above,
// collecting every problem.
type walker struct {
	kind     Kind
	problems []Problem
}

func (w *walker) add(field, format string, args ...any) {
	w.problems = append(w.problems, invalidField(field, fmt.Sprintf(format, args...)))
}

// jsonField is one struct field as the record format sees it.
type jsonField struct {
	Name     string
	Type     reflect.Type
	Required bool // no omitempty: the field must be present
}

// structFields is a struct's jsonFields and an index by name, cached
// per type: reflection on every record would dominate decoding.
type structFields struct {
	list   []jsonField
	byName map[string]jsonField
}

var fieldCache sync.Map // reflect.Type -> *structFields

func cachedFields(t reflect.Type) *structFields {
	if v, ok := fieldCache.Load(t); ok {
		return v.(*structFields)
	}
	sf := &structFields{list: jsonFields(t), byName: map[string]jsonField{}}
	for _, f := range sf.list {
		sf.byName[f.Name] = f
	}
	v, _ := fieldCache.LoadOrStore(t, sf)
	return v.(*structFields)
}

// jsonFields lists t's fields by json name, flattening embedded structs
// (Header) the way encoding/json does.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{Name: name, Type: f.Type, Required: !slices.Contains(strings.Split(opts, ","), "omitempty")})
	}
	return out
}

var timeType = reflect.TypeFor[time.Time]()

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// key is the table key for a field: kind + spec path, except the header
// fields, which every kind shares.
func (w *walker) key(spec string) string {
	if spec == "id" || spec == "updated" || spec == "kind" {
		return spec
	}
	return string(w.kind) + "." + spec
}

func (w *walker) object(o *object, t reflect.Type, path, spec string, depth int) {
	sf := cachedFields(t)
	fields, byName := sf.list, sf.byName
	for _, d := range o.dups {
		w.add(join(path, d), "duplicate field")
	}
	for _, k := range o.keys {
		if strings.IndexByte(k, 0) >= 0 {
			w.add(path, "field name %q holds U+0000 (NUL), which a record cannot contain", k)
			continue
		}
		f, ok := byName[k]
		if !ok {
			names := make([]string, len(fields))
			for i, f := range fields {
				names[i] = f.Name
			}
			w.add(join(path, k), "unknown field; allowed: %s", strings.Join(names, ", "))
			continue
		}
		w.value(o.vals[k], f, join(path, k), join(spec, k), depth+1)
	}
	for _, f := range fields {
		if _, ok := o.vals[f.Name]; !ok && f.Required {
			w.add(join(path, f.Name), "required")
		}
	}
}

func (w *walker) value(v any, f jsonField, path, spec string, depth int) {
	t := f.Type
	if v == nil {
		if f.Required {
			w.add(path, "must not be null")
		} else {
			w.add(path, "must not be null (leave the field out instead)")
		}
		return
	}
	if s, ok := v.(string); ok && strings.IndexByte(s, 0) >= 0 {
		// No store keeps it alike: PostgreSQL text cannot hold U+0000,
		// so the record would map on SQLite and fail on PostgreSQL.
		w.add(path, "holds U+0000 (NUL), which a record cannot contain")
		return
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	key := w.key(spec)
	switch {
	case t == timeType:
		s, ok := v.(string)
		if !ok {
			w.add(path, "must be an RFC 3339 date-time string, not %s", jsonTypeName(v))
			return
		}
		w.format(path, key, s)
	case t.Kind() == reflect.Struct:
		o, ok := v.(*object)
		if !ok {
			w.add(path, "must be an object, not %s", jsonTypeName(v))
			return
		}
		w.object(o, t, path, spec, depth)
	case t.Kind() == reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			w.add(path, "must be an array, not %s", jsonTypeName(v))
			return
		}
		if f.Required && len(a) == 0 {
			w.add(path, "must not be empty")
		}
		el := jsonField{Name: f.Name, Type: t.Elem(), Required: true}
		for i, e := range a {
			w.value(e, el, fmt.Sprintf("%s[%d]", path, i), spec, depth+1)
		}
	case t.Kind() == reflect.String:
		s, ok := v.(string)
		if !ok {
			w.add(path, "must be a string, not %s", jsonTypeName(v))
			return
		}
		if spec == "kind" {
			return // checked before the walk
		}
		if f.Required && s == "" {
			w.add(path, "must not be empty")
			return
		}
		if allowed := recordEnums[key]; allowed != nil && !slices.Contains(allowed, s) {
			w.add(path, "%q is not allowed: one of %s", s, strings.Join(allowed, ", "))
			return
		}
		w.format(path, key, s)
	case t.Kind() == reflect.Bool:
		if _, ok := v.(bool); !ok {
			w.add(path, "must be true or false, not %s", jsonTypeName(v))
		}
	case t.Kind() == reflect.Int:
		n, ok := v.(json.Number)
		if !ok {
			w.add(path, "must be an integer, not %s", jsonTypeName(v))
			return
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			w.add(path, "must be an integer, not %s", n)
			return
		}
		w.bounds(path, key, float64(i), string(n))
	case t.Kind() == reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			w.add(path, "must be a number, not %s", jsonTypeName(v))
			return
		}
		x, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			w.add(path, "number %s is out of range", n)
			return
		}
		w.bounds(path, key, x, string(n))
	default:
		// A field type the record format does not use: a programming
		// error in record.go, reported rather than panicking.
		w.add(path, "unsupported field type %s", t)
	}
}

func (w *walker) bounds(path, key string, x float64, text string) {
	r, ok := recordRanges[key]
	if !ok {
		return
	}
	if x < r.Min {
		w.add(path, "must not be negative (got %s)", text)
		return
	}
	if r.Max != nil && x > *r.Max {
		w.add(path, "must be between %g and %g (got %s)", r.Min, *r.Max, text)
	}
}

func (w *walker) format(path, key, s string) {
	switch recordFormats[key] {
	case fmtID:
		if !idPattern.MatchString(s) {
			w.add(path, "%q is not a valid id: 1-64 characters from A-Z a-z 0-9 . _ -", s)
		}
	case fmtDate:
		if !isRecordDate(s) {
			w.add(path, "%q is not a date: want YYYY-MM-DD", s)
		}
	case fmtDateTime:
		if !isRecordDateTime(s) {
			w.add(path, "%q is not a date-time: want RFC 3339, e.g. 2026-01-15T10:00:00-05:00", s)
		}
	case fmtDateOr:
		if !isRecordDate(s) && !isRecordDateTime(s) {
			w.add(path, "%q is neither a date (YYYY-MM-DD) nor an RFC 3339 date-time", s)
		}
	case fmtNPI:
		if msg := checkNPI(s); msg != "" {
			w.add(path, "%s", msg)
		}
	}
}

func isRecordDate(s string) bool {
	if len(s) != 10 {
		return false
	}
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// isRecordDateTime accepts RFC 3339 with a zone (Z or an offset) and an
// upper-case T, as Go's time.RFC3339 does: a time without a zone is
// ambiguous across a practice and an EHR in different zones.
func isRecordDateTime(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// checkNPI returns "" for a valid National Provider Identifier: 10
// digits whose last is the Luhn check digit computed over "80840" and
// the first nine (the card-issuer prefix CMS assigned to NPIs).
func checkNPI(s string) string {
	if len(s) != 10 || strings.Trim(s, "0123456789") != "" {
		return fmt.Sprintf("%q is not an NPI: want 10 digits", s)
	}
	if luhnValid("80840" + s) {
		return ""
	}
	return fmt.Sprintf("%q is not an NPI: the check digit (Luhn over 80840 + NPI) is wrong", s)
}

// luhnValid reports whether the digit string passes the Luhn mod-10 check.
func luhnValid(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
