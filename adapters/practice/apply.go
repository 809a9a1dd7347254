// Package practice connects a therapy practice's records to the gateway:
// the Applier maps one practice record and writes it, with the FHIR
// versions made from it, in one store transaction; readers turn import
// files (JSON, NDJSON, CSV) into records; the import command and the REST
// ingestion API both go through the Applier.
package practice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// RecordRow is a stored practice record; RecordTx and RecordStore are what
// Apply needs of a store transaction besides fhir.Tx and of the store
// (package recordstore is the contract the SQL store implements).
type (
	RecordRow   = recordstore.Row
	RecordTx    = recordstore.Tx
	RecordStore = recordstore.Store
)

// Applier applies practice records to a store. It is safe for concurrent
// use.
type Applier struct {
	Store  fhir.Store
	Mapper *mappings.Mapper
	Writer write.Writer
	Tenant string // "" = fhir.DefaultTenant
	Checks mappings.CheckConfig
	// DryRun maps, checks and validates but rolls every transaction back.
	// Record rows the run would have written are remembered in memory, so
	// later records of the same run resolve against earlier ones.
	DryRun bool

	cache   decodedCache
	dryMu   sync.Mutex
	dryRows map[string]RecordRow
}

// ResourceRef names one FHIR resource version.
type ResourceRef struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Version int64  `json:"version"`
}

func (r ResourceRef) String() string {
	return r.Type + "/" + r.ID + "/" + strconv.FormatInt(r.Version, 10)
}

// ParseResourceRef parses "Type/id/version".
func ParseResourceRef(s string) (ResourceRef, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return ResourceRef{}, fmt.Errorf("practice: resource reference %q: want Type/id/version", s)
	}
	v, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return ResourceRef{}, fmt.Errorf("practice: resource reference %q: %w", s, err)
	}
	return ResourceRef{Type: parts[0], ID: parts[1], Version: v}, nil
}

// Statuses of a Result.
const (
	StatusCreated   = "created"   // first mapped
	StatusUpdated   = "updated"   // mapped again with a changed record or changed resources
	StatusUnchanged = "unchanged" // the same record again: nothing written
	StatusPending   = "pending"   // stored, waiting for the records in Pending
	StatusRejected  = "rejected"  // not stored; Errors say why
)

// Result is what became of one record.
type Result struct {
	Kind      mappings.Kind `json:"kind"`
	ID        string        `json:"id"`
	Status    string        `json:"status"`
	Resources []ResourceRef `json:"resources,omitempty"`
	Warnings  []string      `json:"warnings,omitempty"`
	Errors    []string      `json:"errors,omitempty"`
	Pending   []string      `json:"pending,omitempty"` // "kind/id" not yet known
	// Related are the other records this one made the applier map in the
	// same transaction: records that were waiting for it, the course whose
	// CarePlan lists a session, a session's observations and notes.
	Related []Result `json:"related,omitempty"`
}

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("practice: dry run")

func (a *Applier) tenant() string {
	if a.Tenant == "" {
		return fhir.DefaultTenant
	}
	return a.Tenant
}

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
		return Result{}, errors.New("practice: apply: nil record")
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return Result{}, fmt.Errorf("practice: apply: encode record: %w", err)
	}
	h := rec.RecordHeader()
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])

	var res Result
	err = a.Store.Update(ctx, func(tx fhir.Tx) error {
		rtx, ok := tx.(RecordTx)
		if !ok {
			return fmt.Errorf("practice: the store's transactions (%T) cannot hold practice records", tx)
		}
		// Update may run fn more than once: start from nothing each time.
		st := &applyState{a: a, ctx: ctx, tx: tx, rtx: rtx, tenant: a.tenant(), rows: map[string]*loaded{}, done: map[string]bool{}}
		if a.DryRun {
			st.dry = map[string]RecordRow{}
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
				a.dryRows = map[string]RecordRow{}
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
		return Result{}, fmt.Errorf("practice: apply %s %q: %w", h.Kind, h.ID, err)
	}
	return res, nil
}

// Pending returns the records waiting for others.
func (a *Applier) Pending(ctx context.Context) ([]RecordRow, error) {
	rs, ok := a.Store.(RecordStore)
	if !ok {
		return nil, fmt.Errorf("practice: the store (%T) cannot hold practice records", a.Store)
	}
	rows, err := rs.ListRecords(ctx, a.tenant(), "", recordstore.StatePending)
	if err != nil {
		return nil, fmt.Errorf("practice: list pending records: %w", err)
	}
	if a.DryRun {
		// A dry run stored nothing: its pending rows are in memory.
		a.dryMu.Lock()
		seen := map[string]bool{}
		var out []RecordRow
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
		slices.SortFunc(out, func(x, y RecordRow) int { return strings.Compare(ref(x.Kind, x.ID), ref(y.Kind, y.ID)) })
		rows = out
	}
	return rows, nil
}

func ref[K ~string](kind K, id string) string { return string(kind) + "/" + id }

// loaded is a stored row and its decoded record.
type loaded struct {
	row RecordRow
	rec mappings.Record
}

// applyState is one Apply transaction.
type applyState struct {
	a      *Applier
	ctx    context.Context
	tx     fhir.Tx
	rtx    RecordTx
	tenant string
	rows   map[string]*loaded // "kind/id" -> row; nil entry: not stored
	dry    map[string]RecordRow
	done   map[string]bool // records mapped in this transaction (no loops)
	dirty  []string        // courses whose sessions changed
	err    error           // first storage error seen by the Lookup
}

// get returns the stored row of kind/id (as this transaction sees it).
func (st *applyState) get(kind mappings.Kind, id string) (*loaded, error) {
	k := ref(kind, id)
	if l, ok := st.rows[k]; ok {
		return l, nil
	}
	var row RecordRow
	found := false
	if r, ok := st.dryRow(k); ok {
		row, found = r, true
	} else {
		var err error
		row, found, err = st.rtx.GetRecord(st.ctx, st.tenant, string(kind), id)
		if err != nil {
			return nil, err
		}
	}
	if !found {
		st.rows[k] = nil
		return nil, nil
	}
	rec, err := st.a.cache.decode(row)
	if err != nil {
		return nil, err
	}
	l := &loaded{row: row, rec: rec}
	st.rows[k] = l
	return l, nil
}

// dryRow returns a row a dry run would have written.
func (st *applyState) dryRow(k string) (RecordRow, bool) {
	if st.dry == nil {
		return RecordRow{}, false
	}
	if r, ok := st.dry[k]; ok {
		return r, true
	}
	st.a.dryMu.Lock()
	defer st.a.dryMu.Unlock()
	r, ok := st.a.dryRows[k]
	return r, ok
}

// mapped returns the record of kind/id if it is mapped.
func (st *applyState) mapped(kind mappings.Kind, id string) (mappings.Record, bool) {
	if id == "" {
		return nil, false
	}
	l, err := st.get(kind, id)
	if err != nil {
		if st.err == nil {
			st.err = err
		}
		return nil, false
	}
	if l == nil || l.row.State != recordstore.StateMapped {
		return nil, false
	}
	return l.rec, true
}

func (st *applyState) put(row RecordRow) error {
	k := ref(row.Kind, row.ID)
	rec, err := st.a.cache.decode(row)
	if err != nil {
		return err
	}
	st.rows[k] = &loaded{row: row, rec: rec}
	if st.dry != nil {
		st.dry[k] = row
		return nil
	}
	return st.rtx.PutRecord(st.ctx, row)
}

// children returns the mapped records of kind under parent.
func (st *applyState) children(kind mappings.Kind, parent string) ([]mappings.Record, error) {
	var rows []RecordRow
	{
		var err error
		rows, err = st.rtx.ChildRecords(st.ctx, st.tenant, string(kind), parent)
		if err != nil {
			return nil, err
		}
	}
	if st.dry != nil {
		rows = st.mergeDry(rows, func(r RecordRow) bool { return r.Kind == string(kind) && r.Parent == parent })
	}
	var out []mappings.Record
	for _, r := range rows {
		// What this transaction already changed wins over the query.
		l, err := st.get(mappings.Kind(r.Kind), r.ID)
		if err != nil {
			return nil, err
		}
		if l != nil && l.row.State == recordstore.StateMapped && l.row.Parent == parent {
			out = append(out, l.rec)
		}
	}
	return out, nil
}

// mergeDry adds the dry run's rows matching keep to rows (replacing the
// stored ones of the same kind and id).
func (st *applyState) mergeDry(rows []RecordRow, keep func(RecordRow) bool) []RecordRow {
	byKey := map[string]int{}
	for i, r := range rows {
		byKey[ref(r.Kind, r.ID)] = i
	}
	add := func(r RecordRow) {
		if i, ok := byKey[ref(r.Kind, r.ID)]; ok {
			rows[i] = r
			return
		}
		if keep(r) {
			byKey[ref(r.Kind, r.ID)] = len(rows)
			rows = append(rows, r)
		}
	}
	st.a.dryMu.Lock()
	for _, r := range st.a.dryRows {
		add(r)
	}
	st.a.dryMu.Unlock()
	for _, r := range st.dry {
		add(r)
	}
	out := rows[:0]
	for _, r := range rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func (st *applyState) waitingOn(k string) ([]RecordRow, error) {
	rows, err := st.rtx.WaitingOn(st.ctx, st.tenant, k)
	if err != nil {
		return nil, err
	}
	if st.dry != nil {
		rows = st.mergeDry(rows, func(r RecordRow) bool {
			return r.State == recordstore.StatePending && slices.Contains(r.Pending, k)
		})
	}
	slices.SortFunc(rows, func(x, y RecordRow) int { return strings.Compare(ref(x.Kind, x.ID), ref(y.Kind, y.ID)) })
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
	rec, err = st.a.cache.decode(RecordRow{Kind: string(h.Kind), ID: h.ID, Body: body, Hash: hash})
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
	for _, f := range mappings.Check(book, rec, st.a.Checks) {
		switch {
		case f.Code == "ref.pending":
			// Reported as Pending instead.
		case f.Code == "dosing.no_clearance" && len(missing) == 0 && !force:
			// A clearance screening may still be on its way (records
			// arrive in any order): wait for one rather than reject.
			if s, ok := rec.(*mappings.Session); ok {
				if c, ok := st.mapped(mappings.KindCourse, s.Course); ok {
					missing = append(missing, clearanceRef(c.(*mappings.Course).Client))
					res.Warnings = append(res.Warnings, findingText(f))
					continue
				}
			}
			res.Errors = append(res.Errors, findingText(f))
		case f.Severity == mappings.SeverityError:
			res.Errors = append(res.Errors, findingText(f))
		default:
			res.Warnings = append(res.Warnings, findingText(f))
		}
	}
	if st.err != nil {
		return Result{}, st.err
	}
	row := RecordRow{Tenant: st.tenant, Kind: string(h.Kind), ID: h.ID, Parent: rec.Parent().ID, Body: body, Hash: hash, Updated: time.Now().UTC()}
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

	resources, warns, err := st.a.Mapper.ToFHIR(st.lookup(), rec)
	if st.err != nil {
		return Result{}, st.err
	}
	for _, w := range warns {
		res.Warnings = append(res.Warnings, w.String())
	}
	if err != nil {
		res.Errors = append(res.Errors, "mapping: "+err.Error())
		return st.reject(res, row, old)
	}
	for _, v := range resources {
		if msg := validate(v); msg != "" {
			res.Errors = append(res.Errors, msg)
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
func (st *applyState) reject(res Result, row RecordRow, old *loaded) (Result, error) {
	res.Status = StatusRejected
	if old != nil && old.row.State == recordstore.StatePending && old.row.Hash == row.Hash {
		row.State = recordstore.StateRejected
		row.Reasons = res.Errors
		row.Resources = old.row.Resources
		if err := st.put(row); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

func findingText(f mappings.Finding) string {
	s := f.Code
	if f.Field != "" {
		s += " " + f.Field
	}
	return s + ": " + f.Message
}

// clearanceRef is the pseudo-reference a dosing session waits on while
// its client has no cleared screening.
func clearanceRef(client string) string { return "clearance/" + client }

// validate runs the base R4 validation and the claimed profiles; a
// failure is a mapping bug, reported as the record's error so it is seen.
func validate(v *fhir.Value) string {
	name := v.GetString("resourceType") + "/" + v.GetString("id")
	if issues := fhir.Validate(v); fhir.HasErrors(issues) {
		return "mapped " + name + " is not valid FHIR R4 (a gateway bug): " + fhir.ProfileError(issues).Error()
	}
	if issues := fhir.ValidateWithProfiles(v); fhir.HasErrors(issues) {
		return "mapped " + name + " does not meet its profile (a gateway bug): " + fhir.ProfileError(issues).Error()
	}
	return ""
}

// write writes the resources that changed and deletes the ones the
// previous mapping made that this one no longer does (a held session
// cancelled loses its Encounter). The Provenance is written only when
// something else changed: its recorded time differs on every mapping, and
// a re-import must create no versions.
func (st *applyState) write(resources []*fhir.Value, oldRes []string) ([]ResourceRef, bool, error) {
	type pend struct {
		v   *fhir.Value
		k   fhir.Key
		cur fhir.Version
	}
	var prov []pend
	var refs []ResourceRef
	changed := false
	made := map[string]bool{}
	for _, v := range resources {
		k := fhir.Key{Tenant: st.tenant, Type: v.GetString("resourceType"), ID: v.GetString("id")}
		made[k.Type+"/"+k.ID] = true
		cur, err := st.tx.Read(st.ctx, k)
		if err != nil && !errors.Is(err, fhir.ErrNotFound) {
			return nil, false, err
		}
		if err != nil {
			cur = fhir.Version{Key: k}
		}
		if k.Type == "Provenance" {
			prov = append(prov, pend{v, k, cur})
			continue
		}
		if write.Unchanged(cur, v) {
			refs = append(refs, ResourceRef{k.Type, k.ID, cur.VersionID})
			continue
		}
		changed = true
		nv, err := st.putVersion(k, cur, v)
		if err != nil {
			return nil, false, err
		}
		refs = append(refs, ResourceRef{k.Type, k.ID, nv})
	}
	for _, s := range oldRes {
		r, err := ParseResourceRef(s)
		if err != nil || made[r.Type+"/"+r.ID] {
			continue
		}
		k := fhir.Key{Tenant: st.tenant, Type: r.Type, ID: r.ID}
		cur, err := st.tx.Read(st.ctx, k)
		if errors.Is(err, fhir.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if cur.Deleted {
			continue
		}
		changed = true
		if st.dry == nil {
			if err := st.tx.Put(st.ctx, fhir.Version{Key: k, VersionID: cur.VersionID + 1, Deleted: true}, fhir.Index{}); err != nil {
				return nil, false, err
			}
		}
	}
	for _, p := range prov {
		if !changed && p.cur.VersionID > 0 && !p.cur.Deleted {
			refs = append(refs, ResourceRef{p.k.Type, p.k.ID, p.cur.VersionID})
			continue
		}
		changed = true
		nv, err := st.putVersion(p.k, p.cur, p.v)
		if err != nil {
			return nil, false, err
		}
		refs = append(refs, ResourceRef{p.k.Type, p.k.ID, nv})
	}
	return refs, changed, nil
}

func (st *applyState) putVersion(k fhir.Key, cur fhir.Version, v *fhir.Value) (int64, error) {
	if st.dry != nil {
		return cur.VersionID + 1, nil
	}
	if cur.Deleted {
		// A deleted resource comes back as the version after the deletion.
		cur.JSON = nil
	}
	nv, err := st.a.Writer.Put(st.ctx, st.tx, k, cur, v)
	if err != nil {
		return 0, err
	}
	return nv.VersionID, nil
}

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
	if sc, ok := rec.(*mappings.Screening); ok && sc.Clearance != nil && sc.Clearance.Decision == "cleared" {
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
	case *mappings.Session:
		c, ok := st.mapped(mappings.KindCourse, r.Course)
		if !ok {
			break
		}
		client := c.(*mappings.Course).Client
		if _, err := addKids(mappings.KindScreening, client); err != nil {
			return nil, err
		}
		if r.Dose == nil || r.Dose.MgPerKg == nil {
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

// lookup resolves the mappings' references from the stored records.
func (st *applyState) lookup() mappings.Lookup { return txLookup{st} }

type txLookup struct{ st *applyState }

func lookupAs[T any](st *applyState, kind mappings.Kind, id string) (*T, bool) {
	r, ok := st.mapped(kind, id)
	if !ok {
		return nil, false
	}
	p, ok := any(r).(*T)
	return p, ok
}

func (l txLookup) Client(id string) (*mappings.Client, bool) {
	return lookupAs[mappings.Client](l.st, mappings.KindClient, id)
}

func (l txLookup) Practitioner(id string) (*mappings.Practitioner, bool) {
	return lookupAs[mappings.Practitioner](l.st, mappings.KindPractitioner, id)
}

func (l txLookup) Course(id string) (*mappings.Course, bool) {
	return lookupAs[mappings.Course](l.st, mappings.KindCourse, id)
}

func (l txLookup) Session(id string) (*mappings.Session, bool) {
	return lookupAs[mappings.Session](l.st, mappings.KindSession, id)
}

func (l txLookup) SessionsOf(course string) []*mappings.Session {
	kids, err := l.st.children(mappings.KindSession, course)
	if err != nil {
		if l.st.err == nil {
			l.st.err = err
		}
		return nil
	}
	out := make([]*mappings.Session, 0, len(kids))
	for _, k := range kids {
		if s, ok := k.(*mappings.Session); ok {
			out = append(out, s)
		}
	}
	return out
}

// decodedCache keeps decoded records by hash: looking up a session's
// course and client for every observation would otherwise decode the same
// JSON thousands of times. Entries are immutable (keyed by content), so
// sharing them between transactions is safe.
type decodedCache struct {
	mu sync.Mutex
	m  map[string]mappings.Record
}

const decodedCacheMax = 4096

func (c *decodedCache) decode(row RecordRow) (mappings.Record, error) {
	key := string(row.Kind) + "\x00" + row.Hash
	c.mu.Lock()
	r, ok := c.m[key]
	c.mu.Unlock()
	if ok && row.Hash != "" {
		return r, nil
	}
	r, err := decodeStored(mappings.Kind(row.Kind), row.Body)
	if err != nil {
		return nil, fmt.Errorf("stored record %s/%s: %w", row.Kind, row.ID, err)
	}
	if row.Hash == "" {
		return r, nil
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= decodedCacheMax {
		c.m = map[string]mappings.Record{} // crude but bounded
	}
	c.m[key] = r
	c.mu.Unlock()
	return r, nil
}

// decodeStored decodes a canonical body the gateway wrote itself (already
// checked by mappings.Decode when it arrived), so plain encoding/json
// suffices.
func decodeStored(kind mappings.Kind, body []byte) (mappings.Record, error) {
	r, ok := mappings.NewRecord(kind)
	if !ok {
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	if err := json.Unmarshal(body, r); err != nil {
		return nil, err
	}
	return r, nil
}
