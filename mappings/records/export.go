package records

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// Export: a course back as practice records, so a practice reads what
// prescribers changed in their EHRs. The stored records are the base;
// the course's current FHIR resources are read from the store, those the
// gateway did not write itself (another version, or a resource of its
// own) go through mappings.FromFHIR, and what comes back merges in:
//
//   - a CarePlan whose status changed: the course's status;
//   - a completed MedicationAdministration for a held session: that
//     session's dose (drug, mg, mg/kg, route, administered by; the
//     monitored minutes stay the practice's);
//   - vital-sign, dissociation, side-effect and red-flag Observations and
//     red-flag Flags: an EHR's own become new observation records (id
//     "ehr-" + a hash, stable across exports); an EHR's edit of one of
//     the gateway's Observations overlays that record field by field
//     (vitals, dissociation; side effects and red flags are added).
//
// Everything else (resources FromFHIR keeps, with a reason) is listed in
// the summary, not exported. Notes are exported: they are the practice's
// own records.

// ErrCourseNotFound: export was asked for a course the store does not
// hold.
var ErrCourseNotFound = errors.New("records: course not found")

// Exporter writes courses back as practice records.
type Exporter struct {
	// Store must keep practice records too (recordstore.Store); it
	// searches, to find the course's FHIR resources.
	Store  search.Store
	Mapper *mappings.Mapper
	Tenant string // "" means fhir.DefaultTenant
}

// ExportSummary says what an export wrote and merged.
type ExportSummary struct {
	Records map[mappings.Kind]int
	// Merged describes each change taken from the FHIR resources.
	Merged []string
	// Kept lists FHIR resources of the course's client that carry nothing
	// a practice record can hold, with the reason (Kept.String names both).
	Kept []mappings.Kept
}

// Export writes course id and everything that hangs under it as NDJSON
// to w, in dependency order (client, practitioners, course, sessions,
// screenings, observations, notes, consents), so re-applying the output
// in order leaves nothing pending.
func (e *Exporter) Export(ctx context.Context, courseID string, w io.Writer) (ExportSummary, error) {
	sum := ExportSummary{Records: map[mappings.Kind]int{}}
	st, err := rowStore(e.Store)
	if err != nil {
		return sum, err
	}
	tenant := cmp.Or(e.Tenant, fhir.DefaultTenant)
	book, rows, err := e.loadCourse(ctx, st, tenant, courseID)
	if err != nil {
		return sum, err
	}
	changed, err := e.changedResources(ctx, tenant, book, rows, courseID)
	if err != nil {
		return sum, err
	}
	in := e.Mapper.FromFHIR(book, changed)
	sum.Kept = in.Kept
	for _, wn := range in.Warnings {
		sum.Merged = append(sum.Merged, wn.String())
	}
	for _, r := range in.Records {
		sum.Merged = append(sum.Merged, mergeInto(book, r)...)
	}

	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, rec := range exportOrder(book) {
		if err := enc.Encode(rec); err != nil {
			return sum, fmt.Errorf("write the export: %w", err)
		}
		sum.Records[rec.RecordHeader().Kind]++
	}
	return sum, nil
}

// loadCourse reads the course's records into a Book, returning their rows
// (which name the resource versions the gateway wrote) too.
func (e *Exporter) loadCourse(ctx context.Context, st recordstore.Store, tenant, courseID string) (*mappings.Book, []recordstore.Row, error) {
	book := mappings.NewBook()
	var rows []recordstore.Row
	add := func(row recordstore.Row) error {
		rec, err := mappings.Decode(row.Body)
		if err != nil {
			return fmt.Errorf("stored %s %q does not decode: %w", row.Kind, row.ID, err)
		}
		book.Add(rec)
		rows = append(rows, row)
		return nil
	}
	get := func(kind mappings.Kind, id string) error {
		if id == "" {
			return nil
		}
		if _, have := book.Get(kind, id); have {
			return nil
		}
		row, ok, err := st.GetRecord(ctx, tenant, string(kind), id)
		if err != nil || !ok {
			return err // a reference not (yet) held is simply not exported
		}
		return add(row)
	}
	list := func(kind mappings.Kind, keep func(recordstore.Row) bool) error {
		all, err := st.ListRecords(ctx, tenant, string(kind), "")
		if err != nil {
			return err
		}
		for _, row := range all {
			if keep(row) {
				if err := add(row); err != nil {
					return err
				}
			}
		}
		return nil
	}

	row, ok, err := st.GetRecord(ctx, tenant, string(mappings.KindCourse), courseID)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrCourseNotFound, courseID)
	}
	if err := add(row); err != nil {
		return nil, nil, err
	}
	course, _ := book.Course(courseID)
	if err := get(mappings.KindClient, course.Client); err != nil {
		return nil, nil, err
	}
	sessions := map[string]bool{}
	if err := list(mappings.KindSession, func(r recordstore.Row) bool {
		if r.Parent == courseID {
			sessions[r.ID] = true
			return true
		}
		return false
	}); err != nil {
		return nil, nil, err
	}
	// A screening belongs to the course when it names it, or names no
	// course at all (the consultation's baseline, taken before the course
	// existed).
	if err := list(mappings.KindScreening, func(r recordstore.Row) bool {
		if r.Parent != course.Client {
			return false
		}
		var c struct {
			Course string `json:"course"`
		}
		_ = json.Unmarshal(r.Body, &c)
		return c.Course == "" || c.Course == courseID
	}); err != nil {
		return nil, nil, err
	}
	for _, kind := range []mappings.Kind{mappings.KindObservation, mappings.KindNote} {
		if err := list(kind, func(r recordstore.Row) bool { return sessions[r.Parent] }); err != nil {
			return nil, nil, err
		}
	}
	if err := list(mappings.KindConsent, func(r recordstore.Row) bool { return r.Parent == course.Client }); err != nil {
		return nil, nil, err
	}
	for _, id := range practitionersOf(book) {
		if err := get(mappings.KindPractitioner, id); err != nil {
			return nil, nil, err
		}
	}
	return book, rows, nil
}

// practitionersOf lists every practitioner the book's records name.
func practitionersOf(b *mappings.Book) []string {
	var ids []string
	for _, kind := range mappings.Kinds {
		for _, r := range b.All(kind) {
			for _, ref := range r.References() {
				if ref.Kind == mappings.KindPractitioner {
					ids = append(ids, ref.ID)
				}
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// fromFHIRTypes are the resource types FromFHIR reads.
var fromFHIRTypes = []string{"CarePlan", "MedicationAdministration", "Observation", "Flag"}

// changedResources returns the current resources of the course's client
// that FromFHIR reads and that the gateway did not write as they are: a
// version no record row names, whose content also differs from what the
// records map to now (a row's list can trail a re-mapping, e.g. the
// CarePlan re-mapped when a session arrives).
func (e *Exporter) changedResources(ctx context.Context, tenant string, book *mappings.Book, rows []recordstore.Row, courseID string) ([]*fhir.Value, error) {
	ss := e.Store
	course, _ := book.Course(courseID)
	if _, ok := book.Client(course.Client); !ok {
		return nil, nil // no client record: no Patient, nothing an EHR could have written to
	}
	own := map[string]bool{}
	for _, r := range rows {
		for _, ref := range r.Resources {
			own[ref] = true
		}
	}
	var mapped map[string]*fhir.Value // lazily: only when some version is not own
	patient := mappings.ResourceID(e.Mapper.Practice, mappings.KindClient, course.Client, "Patient")
	var out []*fhir.Value
	for _, typ := range fromFHIRTypes {
		q := &search.Query{Type: typ, Count: 1000, Compartment: &search.Compartment{Type: "Patient", ID: patient, Params: search.CompartmentParams("Patient", typ)}}
		var cur *search.Cursor
		for {
			res, err := ss.Search(ctx, tenant, q, cur)
			if err != nil {
				return nil, fmt.Errorf("search %s of Patient/%s: %w", typ, patient, err)
			}
			for _, v := range res.Matches {
				if own[v.Type+"/"+v.ID+"/"+strconv.FormatInt(v.VersionID, 10)] {
					continue
				}
				if mapped == nil {
					mapped = mapAll(e.Mapper, book)
				}
				res, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
				if err != nil {
					return nil, fmt.Errorf("stored %s/%s/_history/%d: %w", v.Type, v.ID, v.VersionID, err)
				}
				if m := mapped[v.Type+"/"+v.ID]; m != nil && write.Unchanged(v, m) {
					continue
				}
				out = append(out, res)
			}
			if res.Next == nil {
				break
			}
			cur = res.Next
		}
	}
	return out, nil
}

// mapAll maps every record of the book, by resource "Type/id". Records
// that do not map (e.g. still pending) contribute nothing.
func mapAll(m *mappings.Mapper, b *mappings.Book) map[string]*fhir.Value {
	out := map[string]*fhir.Value{}
	for _, kind := range mappings.Kinds {
		for _, r := range b.All(kind) {
			res, _, err := m.ToFHIR(b, r)
			if err != nil {
				continue
			}
			for _, v := range res {
				out[v.GetString("resourceType")+"/"+v.GetString("id")] = v
			}
		}
	}
	return out
}

// mergeInto puts one record FromFHIR made into the book and describes
// the change. A session or course from FromFHIR is already the stored one
// with the change applied; an observation of a stored id carries only
// what the changed resources say, so it overlays the stored record.
func mergeInto(b *mappings.Book, r mappings.Record) []string {
	h := r.RecordHeader()
	o, isObs := r.(*mappings.Observation)
	if isObs {
		if old, ok := b.Get(mappings.KindObservation, h.ID); ok {
			merged, notes := overlayObservation(old.(*mappings.Observation), o)
			b.Add(merged)
			return notes
		}
		b.Add(r)
		return []string{fmt.Sprintf("observation %s: new, from the EHR (session %s, %s)", h.ID, o.Session, o.Time)}
	}
	old, had := b.Get(h.Kind, h.ID)
	b.Add(r)
	if s, ok := r.(*mappings.Session); ok && had {
		if os := old.(*mappings.Session); !sameDose(os.Dose, s.Dose) {
			return []string{fmt.Sprintf("session %s: dose from the EHR's MedicationAdministration", h.ID)}
		}
	}
	return nil
}

func sameDose(a, b *mappings.Dose) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// overlayObservation applies what an EHR's edit says over the stored
// record: the fields it carries replace, lists grow.
func overlayObservation(old, in *mappings.Observation) (*mappings.Observation, []string) {
	c := *old
	var notes []string
	note := func(field string) {
		notes = append(notes, fmt.Sprintf("observation %s: %s from the EHR", old.ID, field))
	}
	if in.Vitals != nil {
		v := mappings.Vitals{}
		if old.Vitals != nil {
			v = *old.Vitals
		}
		for _, f := range []struct {
			name     string
			dst, src **float64
		}{
			{"systolic", &v.Systolic, &in.Vitals.Systolic}, {"diastolic", &v.Diastolic, &in.Vitals.Diastolic},
			{"heart_rate", &v.HeartRate, &in.Vitals.HeartRate}, {"spo2", &v.SpO2, &in.Vitals.SpO2},
			{"respiratory_rate", &v.RespiratoryRate, &in.Vitals.RespiratoryRate}, {"weight_kg", &v.WeightKg, &in.Vitals.WeightKg},
			{"temperature_c", &v.TemperatureC, &in.Vitals.TemperatureC},
		} {
			if *f.src != nil && (*f.dst == nil || **f.dst != **f.src) {
				*f.dst = *f.src
				note("vitals." + f.name)
			}
		}
		c.Vitals = &v
	}
	if in.Dissociation != nil && (old.Dissociation == nil || *old.Dissociation != *in.Dissociation) {
		c.Dissociation = in.Dissociation
		note("dissociation")
	}
	if in.Sedation != nil && (old.Sedation == nil || *old.Sedation != *in.Sedation) {
		c.Sedation = in.Sedation
		note("sedation")
	}
	for _, s := range in.SideEffects {
		if !slices.Contains(c.SideEffects, s) {
			c.SideEffects = append(slices.Clone(c.SideEffects), s)
			note("side effect " + s)
		}
	}
	for _, s := range in.RedFlags {
		if !slices.Contains(c.RedFlags, s) {
			c.RedFlags = append(slices.Clone(c.RedFlags), s)
			note("red flag " + s)
		}
	}
	return &c, notes
}

// exportOrder lists the book's records in dependency order, each kind in
// a stable order a person can follow (sessions, observations, screenings
// and notes by time).
func exportOrder(b *mappings.Book) []mappings.Record {
	var out []mappings.Record
	for _, kind := range mappings.Kinds {
		recs := slices.Clone(b.All(kind))
		slices.SortFunc(recs, func(x, y mappings.Record) int {
			return cmp.Or(cmp.Compare(sortTime(x), sortTime(y)), cmp.Compare(x.RecordHeader().ID, y.RecordHeader().ID))
		})
		out = append(out, recs...)
	}
	return out
}

func sortTime(r mappings.Record) string {
	switch r := r.(type) {
	case *mappings.Session:
		return r.PlannedStart
	case *mappings.Screening:
		return r.Date
	case *mappings.Observation:
		return r.Time
	case *mappings.Note:
		return r.Date
	}
	return ""
}
