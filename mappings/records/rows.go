package records

import (
	"context"
	"slices"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// The rows one Apply transaction reads and writes: what it has loaded,
// what a dry run would have written, a parent's children and the records
// waiting on a reference, and the mappings' Lookup over them.

// loaded is a stored row and its decoded record.
type loaded struct {
	row recordstore.Row
	rec mappings.Record
}

// applyState is one Apply transaction.
type applyState struct {
	a      *Applier
	ctx    context.Context
	tx     fhir.Tx
	rtx    recordstore.Tx
	tenant string
	rows   map[string]*loaded // "kind/id" -> row; nil entry: not stored
	dry    map[string]recordstore.Row
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
	var row recordstore.Row
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
func (st *applyState) dryRow(k string) (recordstore.Row, bool) {
	if st.dry == nil {
		return recordstore.Row{}, false
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

func (st *applyState) put(row recordstore.Row) error {
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
	var rows []recordstore.Row
	{
		var err error
		rows, err = st.rtx.ChildRecords(st.ctx, st.tenant, string(kind), parent)
		if err != nil {
			return nil, err
		}
	}
	if st.dry != nil {
		rows = st.mergeDry(rows, func(r recordstore.Row) bool { return r.Kind == string(kind) && r.Parent == parent })
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
func (st *applyState) mergeDry(rows []recordstore.Row, keep func(recordstore.Row) bool) []recordstore.Row {
	byKey := map[string]int{}
	for i, r := range rows {
		byKey[ref(r.Kind, r.ID)] = i
	}
	add := func(r recordstore.Row) {
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

func (st *applyState) waitingOn(k string) ([]recordstore.Row, error) {
	rows, err := st.rtx.WaitingOn(st.ctx, st.tenant, k)
	if err != nil {
		return nil, err
	}
	if st.dry != nil {
		rows = st.mergeDry(rows, func(r recordstore.Row) bool {
			return r.State == recordstore.StatePending && slices.Contains(r.Pending, k)
		})
	}
	slices.SortFunc(rows, func(x, y recordstore.Row) int { return strings.Compare(ref(x.Kind, x.ID), ref(y.Kind, y.ID)) })
	return rows, nil
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

// ScreeningsOf makes txLookup a mappings.ScreeningLookup: a follow-up
// PHQ-9 or GAD-7 is judged against the client's baseline.
func (l txLookup) ScreeningsOf(client string) []*mappings.Screening {
	kids, err := l.st.children(mappings.KindScreening, client)
	if err != nil {
		if l.st.err == nil {
			l.st.err = err
		}
		return nil
	}
	out := make([]*mappings.Screening, 0, len(kids))
	for _, k := range kids {
		if s, ok := k.(*mappings.Screening); ok {
			out = append(out, s)
		}
	}
	return out
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
