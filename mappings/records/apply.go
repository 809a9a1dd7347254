package records

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// Applier applies practice records to a store. It is safe for concurrent
// use.
type Applier struct {
	// Store holds the FHIR versions and, beside them, the record rows: it
	// must implement recordstore.Store (both sqlstore backends do),
	// checked once, on first use (Check).
	Store  fhir.Store
	Mapper *mappings.Mapper
	Writer write.Writer
	Tenant string // "" = fhir.DefaultTenant
	Checks mappings.CheckConfig
	// DryRun maps, checks and validates but rolls every transaction back.
	// Record rows the run would have written are remembered in memory, so
	// later records of the same run resolve against earlier ones.
	DryRun bool

	once      sync.Once
	rows      recordstore.Store // Store as a record store, once checked
	rowsErr   error
	cache     decodedCache
	baselines baselineCache
	dryMu     sync.Mutex
	dryRows   map[string]recordstore.Row
}

// Statuses of a Result.
const (
	StatusCreated   = "created"   // first mapped
	StatusUpdated   = "updated"   // mapped again with a changed record or changed resources
	StatusUnchanged = "unchanged" // the same record again: nothing written
	StatusPending   = "pending"   // stored, waiting for the records in Pending
	StatusRejected  = "rejected"  // not stored; Errors say why
)

// Result is what became of one record. Its callers render it: the
// practice API as its JSON, the import as counts and its rejects file.
type Result struct {
	Kind      mappings.Kind
	ID        string
	Status    string
	Resources []ResourceRef
	// Errors say why a record was rejected (its checks' errors, a mapping
	// that failed, a mapped resource that is not valid); Warnings what
	// someone should look at (checks' warnings, what the mapping could not
	// carry). A rejected record that was waiting is stored with Errors'
	// text as its reasons.
	Errors   []mappings.Problem
	Warnings []mappings.Problem
	Pending  []string // "kind/id" not yet known
	// Related are the other records this one made the applier map in the
	// same transaction: records that were waiting for it, the course whose
	// CarePlan lists a session, a session's observations and notes.
	Related []Result
}

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("records: dry run")

// Apply maps and writes one decoded record in one store transaction: the
// record row, the FHIR versions and (later) outbox rows commit together,
// so a crash never leaves half a record. Applying the same record again
// writes nothing (status unchanged). A record naming records not yet
// known is stored as pending and mapped, in the transaction of the record
// that completes it, whatever the arrival order. A record with check
// errors (mappings.Check), a mapping error or a mapped resource that fails
// validation is rejected and nothing of it is written. The error is only
// for storage failures.
func (a *Applier) Apply(ctx context.Context, rec mappings.Record) (Result, error) {
	if rec == nil {
		return Result{}, errors.New("records: apply: nil record")
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return Result{}, fmt.Errorf("records: apply: encode record: %w", err)
	}
	h := rec.RecordHeader()
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])

	var res Result
	err = a.update(ctx, func(tx fhir.Tx, rtx recordstore.Tx) error {
		// Update may run fn more than once: start from nothing each time.
		st := &applyState{a: a, ctx: ctx, tx: tx, rtx: rtx, tenant: a.tenant(), rows: map[string]*loaded{}, done: map[string]bool{}}
		if a.DryRun {
			st.dry = map[string]recordstore.Row{}
		}
		if err := rtx.LockRecords(ctx, st.tenant); err != nil {
			return err
		}
		var err error
		res, err = st.apply(rec, body, hash)
		if err != nil {
			return err
		}
		if a.DryRun {
			// Remember the rows before this transaction ends: the next
			// one (the store runs them one at a time for a tenant) must
			// see them, as it would see committed rows.
			a.dryMu.Lock()
			if a.dryRows == nil {
				a.dryRows = map[string]recordstore.Row{}
			}
			for k, r := range st.dry {
				a.dryRows[k] = r
			}
			a.dryMu.Unlock()
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		err = nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("records: apply %s %q: %w", h.Kind, h.ID, err)
	}
	return res, nil
}

// Pending returns the records waiting for others.
func (a *Applier) Pending(ctx context.Context) ([]recordstore.Row, error) {
	if err := a.Check(); err != nil {
		return nil, err
	}
	rows, err := a.rows.ListRecords(ctx, a.tenant(), "", recordstore.StatePending)
	if err != nil {
		return nil, fmt.Errorf("records: list pending records: %w", err)
	}
	if a.DryRun {
		// A dry run stored nothing: its pending rows are in memory.
		a.dryMu.Lock()
		seen := map[string]bool{}
		var out []recordstore.Row
		for _, r := range a.dryRows {
			seen[ref(r.Kind, r.ID)] = true
			if r.State == recordstore.StatePending {
				out = append(out, r)
			}
		}
		a.dryMu.Unlock()
		for _, r := range rows {
			if !seen[ref(r.Kind, r.ID)] {
				out = append(out, r)
			}
		}
		slices.SortFunc(out, func(x, y recordstore.Row) int { return strings.Compare(ref(x.Kind, x.ID), ref(y.Kind, y.ID)) })
		rows = out
	}
	return rows, nil
}

// apply handles the record the caller sent.
func (st *applyState) apply(rec mappings.Record, body []byte, hash string) (Result, error) {
	h := rec.RecordHeader()
	old, err := st.get(h.Kind, h.ID)
	if err != nil {
		return Result{}, err
	}
	if old != nil && old.row.Hash == hash && old.row.State != recordstore.StateRejected {
		// The same record again: nothing to do, whatever its state.
		r := Result{Kind: h.Kind, ID: h.ID, Status: StatusUnchanged}
		if old.row.State == recordstore.StatePending {
			r.Status = StatusPending
			r.Pending = old.row.Pending
		}
		for _, s := range old.row.Resources {
			if rr, err := ParseResourceRef(s); err == nil {
				r.Resources = append(r.Resources, rr)
			}
		}
		return r, nil
	}
	rec, err = st.a.cache.decode(recordstore.Row{Kind: string(h.Kind), ID: h.ID, Body: body, Hash: hash})
	if err != nil {
		return Result{}, err
	}
	res, err := st.process(rec, body, hash, old, false)
	if err != nil {
		return Result{}, err
	}
	remapped := map[string]bool{}
	for len(st.dirty) > 0 {
		id := st.dirty[0]
		st.dirty = st.dirty[1:]
		if remapped[id] {
			continue
		}
		remapped[id] = true
		l, err := st.get(mappings.KindCourse, id)
		if err != nil {
			return Result{}, err
		}
		if l == nil || l.row.State != recordstore.StateMapped {
			continue
		}
		r, err := st.process(l.rec, l.row.Body, l.row.Hash, l, true)
		if err != nil {
			return Result{}, err
		}
		if r.Status != StatusUnchanged {
			res.Related = append(res.Related, r)
		}
	}
	return res, nil
}

// process checks, maps, validates and writes one record, then maps what
// depends on it. force re-maps a record whose body did not change (a
// parent or child of a changed record).
func (st *applyState) process(rec mappings.Record, body []byte, hash string, old *loaded, force bool) (Result, error) {
	h := rec.RecordHeader()
	key := ref(h.Kind, h.ID)
	st.done[key] = true
	res := Result{Kind: h.Kind, ID: h.ID}
	wasMapped := old != nil && old.row.State == recordstore.StateMapped

	missing, err := st.missing(rec)
	if err != nil {
		return Result{}, err
	}
	book, err := st.checkBook(rec)
	if err != nil {
		return Result{}, err
	}
	findings := mappings.Check(book, rec, st.a.Checks)
	for _, f := range findings {
		switch {
		case f.Code == "ref.pending":
			// Reported as Pending instead.
		case f.Code == "dosing.no_clearance" && len(missing) == 0 && !force:
			// A clearance screening may still be on its way (records
			// arrive in any order): wait for one rather than reject. A
			// screening with any decision ends the wait (dependents); a
			// decision that does not clear is then an alert, and the dose
			// is mapped and flagged.
			if s, ok := rec.(*mappings.Session); ok {
				if c, ok := st.mapped(mappings.KindCourse, s.Course); ok {
					missing = append(missing, clearanceRef(c.(*mappings.Course).Client))
					f.Severity = mappings.SeverityWarning // it waits: not an error yet
					res.Warnings = append(res.Warnings, f)
					continue
				}
			}
			res.Errors = append(res.Errors, f)
		case f.Severity == mappings.SeverityError:
			res.Errors = append(res.Errors, f)
		default:
			// Warnings and alerts: the record stands; alerts and some
			// warnings become Flags (mappings.FindingFlag).
			res.Warnings = append(res.Warnings, f)
		}
	}
	if st.err != nil {
		return Result{}, st.err
	}
	row := recordstore.Row{Tenant: st.tenant, Kind: string(h.Kind), ID: h.ID, Parent: rec.Parent().ID, Body: body, Hash: hash, Updated: time.Now().UTC()}
	if len(res.Errors) > 0 {
		return st.reject(res, row, old)
	}
	if len(missing) > 0 {
		row.State = recordstore.StatePending
		row.Pending = missing
		if old != nil {
			row.Resources = old.row.Resources
		}
		if err := st.put(row); err != nil {
			return Result{}, err
		}
		res.Status, res.Pending = StatusPending, missing
		return res, nil
	}

	resources, warns, err := st.a.Mapper.ToFHIRChecked(st.lookup(), rec, findings)
	if st.err != nil {
		return Result{}, st.err
	}
	res.Warnings = append(res.Warnings, warns...)
	if err != nil {
		res.Errors = append(res.Errors, mappings.Problem{Code: mappings.CodeMappingFailed, Severity: mappings.SeverityError,
			Record: mappings.Ref{Kind: h.Kind, ID: h.ID}, Message: "mapping: " + err.Error()})
		return st.reject(res, row, old)
	}
	for _, v := range resources {
		if msg := validate(v); msg != "" {
			res.Errors = append(res.Errors, mappings.Problem{Code: mappings.CodeInvalidResource, Severity: mappings.SeverityError,
				Record: mappings.Ref{Kind: h.Kind, ID: h.ID}, Message: msg})
		}
	}
	if len(res.Errors) > 0 {
		return st.reject(res, row, old)
	}
	var oldRes []string
	if old != nil {
		oldRes = old.row.Resources
	}
	refs, changed, err := st.write(resources, oldRes)
	if err != nil {
		return Result{}, err
	}
	res.Resources = refs
	row.State = recordstore.StateMapped
	if o, ok := rec.(*mappings.Observation); ok {
		st.noteObservation(o, true)
	}
	for _, r := range refs {
		row.Resources = append(row.Resources, r.String())
	}
	if old == nil || old.row.Hash != hash || !wasMapped || changed || !slices.Equal(old.row.Resources, row.Resources) {
		if err := st.put(row); err != nil {
			return Result{}, err
		}
	}
	switch {
	case !wasMapped:
		res.Status = StatusCreated
	case changed || old.row.Hash != hash:
		res.Status = StatusUpdated
	default:
		res.Status = StatusUnchanged
	}
	if res.Status == StatusUnchanged && force {
		return res, nil
	}
	res.Related, err = st.dependents(rec, !wasMapped)
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// reject reports a record with errors. A record the caller sent is not
// stored (its earlier version, if any, stays); a pending record that was
// waiting and now fails is marked rejected so it is no longer listed as
// pending and its reasons can be read back.
func (st *applyState) reject(res Result, row recordstore.Row, old *loaded) (Result, error) {
	res.Status = StatusRejected
	if old != nil && old.row.State == recordstore.StatePending && old.row.Hash == row.Hash {
		row.State = recordstore.StateRejected
		row.Reasons = mappings.Texts(res.Errors)
		row.Resources = old.row.Resources
		if err := st.put(row); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// clearanceRef is the pseudo-reference a dosing session waits on while
// its client has no cleared screening.
func clearanceRef(client string) string { return "clearance/" + client }

// dependents maps what depends on a record that was just mapped: records
// waiting for it, a session's course (its CarePlan lists the sessions), a
// session's observations and notes (they point at its Encounter only if
// it was held).
func (st *applyState) dependents(rec mappings.Record, first bool) ([]Result, error) {
	h := rec.RecordHeader()
	var out []Result
	remap := func(kind mappings.Kind, id string) error {
		if st.done[ref(kind, id)] {
			return nil
		}
		l, err := st.get(kind, id)
		if err != nil || l == nil || l.row.State != recordstore.StateMapped {
			return err
		}
		r, err := st.process(l.rec, l.row.Body, l.row.Hash, l, true)
		if err != nil {
			return err
		}
		if r.Status != StatusUnchanged {
			out = append(out, r)
		}
		return nil
	}
	waiting := []string{ref(h.Kind, h.ID)}
	sc, clearance := rec.(*mappings.Screening)
	clearance = clearance && (sc.Clearance != nil || sc.PregnancyTest != nil)
	if clearance {
		// Any clearance decision ends a dose's wait: a cleared one maps
		// it, another maps it with a dosing.not_cleared alert (a dose that
		// happened is never held back).
		waiting = append(waiting, clearanceRef(sc.Client))
	}
	for _, w := range waiting {
		rows, err := st.waitingOn(w)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			k := ref(row.Kind, row.ID)
			if st.done[k] {
				continue
			}
			l, err := st.get(mappings.Kind(row.Kind), row.ID)
			if err != nil {
				return nil, err
			}
			if l == nil || l.row.State != recordstore.StatePending {
				continue
			}
			r, err := st.process(l.rec, l.row.Body, l.row.Hash, l, false)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	if sc, ok := rec.(*mappings.Screening); ok && len(sc.Instruments) > 0 {
		// A baseline arriving after a follow-up changes the follow-up's
		// response and remission: judge the client's other screenings
		// again.
		others, err := st.children(mappings.KindScreening, sc.Client)
		if err != nil {
			return nil, err
		}
		for _, o := range others {
			if o.RecordHeader().ID != sc.ID && len(o.(*mappings.Screening).Instruments) > 0 {
				if err := remap(mappings.KindScreening, o.RecordHeader().ID); err != nil {
					return nil, err
				}
			}
		}
	}
	if clearance {
		// A clearance decision or pregnancy test may change the findings
		// (and Flags) of doses already mapped: a later not_cleared revokes,
		// an earlier cleared one arriving late restores.
		courses, err := st.children(mappings.KindCourse, sc.Client)
		if err != nil {
			return nil, err
		}
		for _, co := range courses {
			sessions, err := st.children(mappings.KindSession, co.RecordHeader().ID)
			if err != nil {
				return nil, err
			}
			for _, s := range sessions {
				if s := s.(*mappings.Session); s.Dose != nil || s.Type == "dosing" || s.Type == "maintenance" {
					if err := remap(mappings.KindSession, s.ID); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	if o, ok := rec.(*mappings.Observation); ok && o.Phase == "before" {
		// A pre-dose reading is the baseline its session's later readings
		// are judged by: whatever order they arrived in, judge them again.
		kids, err := st.children(mappings.KindObservation, o.Session)
		if err != nil {
			return nil, err
		}
		for _, k := range kids {
			if k := k.(*mappings.Observation); k.Phase == "during" || k.Phase == "discharge" {
				if err := remap(mappings.KindObservation, k.ID); err != nil {
					return nil, err
				}
			}
		}
	}
	if s, ok := rec.(*mappings.Session); ok {
		// The schedule rules judge a session by its course's others (the
		// interval between doses, preparation before the first dose):
		// whatever order they arrived in, judge the course's doses again.
		kids, err := st.children(mappings.KindSession, s.Course)
		if err != nil {
			return nil, err
		}
		for _, k := range kids {
			if k := k.(*mappings.Session); k.Dose != nil || k.Type == "dosing" || k.Type == "maintenance" {
				if err := remap(mappings.KindSession, k.ID); err != nil {
					return nil, err
				}
			}
		}
	}
	if s, ok := rec.(*mappings.Session); ok {
		// The course is re-mapped once, at the end of the transaction:
		// several of its sessions may resolve in this one, and the course
		// itself may be what they were waiting for.
		st.dirty = append(st.dirty, s.Course)
		if !first {
			for _, kind := range []mappings.Kind{mappings.KindObservation, mappings.KindNote} {
				kids, err := st.children(kind, s.ID)
				if err != nil {
					return nil, err
				}
				for _, k := range kids {
					if err := remap(kind, k.RecordHeader().ID); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return out, nil
}

// missing lists the references that are not mapped yet, as "kind/id".
func (st *applyState) missing(rec mappings.Record) ([]string, error) {
	var out []string
	for _, r := range rec.References() {
		if _, ok := st.mapped(r.Kind, r.ID); !ok {
			if st.err != nil {
				return nil, st.err
			}
			k := r.String()
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out, nil
}

// checkBook collects the records Check consults for rec: what it names,
// a course's sessions, the client's screenings (clearance before a dose)
// and, for a dose in mg/kg, the client's weights.
func (st *applyState) checkBook(rec mappings.Record) (*mappings.Book, error) {
	b := mappings.NewBook()
	for _, r := range rec.References() {
		if x, ok := st.mapped(r.Kind, r.ID); ok {
			b.Add(x)
		}
	}
	addKids := func(kind mappings.Kind, parent string) ([]mappings.Record, error) {
		kids, err := st.children(kind, parent)
		for _, k := range kids {
			b.Add(k)
		}
		return kids, err
	}
	switch r := rec.(type) {
	case *mappings.Course:
		if _, err := addKids(mappings.KindSession, r.ID); err != nil {
			return nil, err
		}
	case *mappings.Observation:
		// A reading during or at the end of a session is judged by its
		// rise from the session's pre-dose baseline.
		if r.Phase == "during" || r.Phase == "discharge" {
			bs, err := st.baselines(r.Session)
			if err != nil {
				return nil, err
			}
			for _, o := range bs {
				if o.ID != r.ID {
					b.Add(o)
				}
			}
		}
	case *mappings.Session:
		c, ok := st.mapped(mappings.KindCourse, r.Course)
		if !ok {
			break
		}
		client := c.(*mappings.Course).Client
		if _, err := addKids(mappings.KindScreening, client); err != nil {
			return nil, err
		}
		// The course's other sessions: the schedule (interval between
		// doses, preparation before the first).
		if _, err := addKids(mappings.KindSession, r.Course); err != nil {
			return nil, err
		}
		if r.Dose == nil {
			break
		}
		courses, err := addKids(mappings.KindCourse, client)
		if err != nil {
			return nil, err
		}
		for _, co := range courses {
			sessions, err := addKids(mappings.KindSession, co.RecordHeader().ID)
			if err != nil {
				return nil, err
			}
			for _, s := range sessions {
				if _, err := addKids(mappings.KindObservation, s.RecordHeader().ID); err != nil {
					return nil, err
				}
			}
		}
	}
	b.Add(rec)
	return b, st.err
}
