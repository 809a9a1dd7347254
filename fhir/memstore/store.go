package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// ErrClosed is returned by every method of a Store after Close.
var ErrClosed = errors.New("memstore: store is closed")

// maxAttempts bounds how often Update runs fn when it keeps returning
// ErrVersionConflict (the SQL stores' bound).
const maxAttempts = 20

// errTxDone reports use of a Tx after its fn returned.
var errTxDone = errors.New("memstore: transaction already finished")

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock that fills a zero Version.LastUpdated or
// OutboxMessage.Created and that date searches with the ap prefix measure
// from (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// Store is the in-memory fhir.Store. It also offers Search and HistoryPage
// (and Search on its Tx), as the SQL stores do. Make one with New.
type Store struct {
	now func() time.Time
	// writer is the single writer's token: Update holds it while fn runs
	// and until the transaction is committed or undone.
	writer chan struct{}

	// mu guards everything below: Puts, commits and undos change it under
	// the write lock, every read takes the read lock.
	mu        sync.RWMutex
	closed    bool
	seq       int64 // the last seq given to a Put, committed or not
	committed int64 // the newest committed seq: the snapshot readers take
	outboxSeq int64
	tenants   map[string]*tenant
}

// tenant is one tenant's data.
type tenant struct {
	types map[string]*typeData
	// log holds every version of the tenant in seq order (system history).
	log    []*version
	idents map[identKey]map[string]struct{} // the live resources carrying each identifier
	outbox []fhir.OutboxMessage             // committed, in Seq order
}

type identKey struct{ typ, system, value string }

// typeData is one resource type of one tenant.
type typeData struct {
	byID map[string]*resource
	ids  idList     // the values of byID in id order
	log  []*version // every version of the type in seq order (type history)
}

// resource is every version of one resource.
type resource struct {
	key      fhir.Key
	versions []*version // versions[i].VersionID == i+1
	idents   []fhir.Identifier
}

// version is one stored version. It never changes once stored.
type version struct {
	fhir.Version
	seq  int64
	res  *resource
	rows []row // its index values, sorted by Param; none for a deletion
}

// Store is a search.Store, and its transactions search their own view.
var (
	_ search.Store    = (*Store)(nil)
	_ search.Searcher = (*memTx)(nil)
)

// New returns an empty Store.
func New(opts ...Option) *Store {
	s := &Store{now: time.Now, writer: make(chan struct{}, 1), tenants: map[string]*tenant{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Close drops everything the store holds, after the running Update (if
// any) has finished. Every later call returns ErrClosed; Close itself
// returns nil however often it is called.
func (s *Store) Close() error {
	s.writer <- struct{}{}
	defer func() { <-s.writer }()
	s.mu.Lock()
	s.closed = true
	s.tenants = nil
	s.mu.Unlock()
	return nil
}

// timeMicros is what the SQL stores keep of a time: microseconds, in UTC.
func timeMicros(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

func notFound(k fhir.Key) error {
	return fmt.Errorf("memstore: %s/%s/%s: %w", k.Tenant, k.Type, k.ID, fhir.ErrNotFound)
}

// out is the Version handed to a caller: its own copy of the body, so no
// caller can change a stored version.
func (v *version) out() fhir.Version {
	o := v.Version
	o.JSON = bytes.Clone(v.JSON)
	return o
}

// resourceAt returns k's resource, or nil. Callers hold mu.
func (s *Store) resourceAt(k fhir.Key) *resource {
	t := s.tenants[k.Tenant]
	if t == nil {
		return nil
	}
	td := t.types[k.Type]
	if td == nil {
		return nil
	}
	return td.byID[k.ID]
}

// asOf returns the newest version of r with seq <= snap (deletions
// included), or nil.
func (r *resource) asOf(snap int64) *version {
	for i := len(r.versions) - 1; i >= 0; i-- {
		if v := r.versions[i]; v.seq <= snap {
			return v
		}
	}
	return nil
}

// readCommitted runs f with the read lock held and the committed snapshot.
func (s *Store) readCommitted(ctx context.Context, f func(snap int64) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return f(s.committed)
}

// Read returns the newest committed version of k.
func (s *Store) Read(ctx context.Context, k fhir.Key) (fhir.Version, error) {
	var out fhir.Version
	err := s.readCommitted(ctx, func(snap int64) error {
		if r := s.resourceAt(k); r != nil {
			if v := r.asOf(snap); v != nil {
				out = v.out()
				return nil
			}
		}
		return notFound(k)
	})
	return out, err
}

// VRead returns version vid of k, if committed.
func (s *Store) VRead(ctx context.Context, k fhir.Key, vid int64) (fhir.Version, error) {
	var out fhir.Version
	err := s.readCommitted(ctx, func(snap int64) error {
		if r := s.resourceAt(k); r != nil && vid >= 1 && vid <= int64(len(r.versions)) {
			if v := r.versions[vid-1]; v.seq <= snap {
				out = v.out()
				return nil
			}
		}
		return fmt.Errorf("memstore: %s/%s/%s/_history/%d: %w", k.Tenant, k.Type, k.ID, vid, fhir.ErrNotFound)
	})
	return out, err
}

// History returns the committed versions of k, newest first, at most
// limit (limit <= 0: all).
func (s *Store) History(ctx context.Context, k fhir.Key, limit int) ([]fhir.Version, error) {
	var out []fhir.Version
	err := s.readCommitted(ctx, func(snap int64) error {
		r := s.resourceAt(k)
		if r == nil {
			return notFound(k)
		}
		for i := len(r.versions) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
			if v := r.versions[i]; v.seq <= snap {
				out = append(out, v.out())
			}
		}
		if len(out) == 0 {
			return notFound(k)
		}
		return nil
	})
	return out, err
}

// Outbox returns up to limit (limit <= 0: all) committed messages of
// tenant with Seq > after, oldest first. Seq order is commit order.
func (s *Store) Outbox(ctx context.Context, tenant string, after int64, limit int) ([]fhir.OutboxMessage, error) {
	var out []fhir.OutboxMessage
	err := s.readCommitted(ctx, func(int64) error {
		t := s.tenants[tenant]
		if t == nil {
			return nil
		}
		i := sort.Search(len(t.outbox), func(i int) bool { return t.outbox[i].Seq > after })
		ms := t.outbox[i:]
		if limit > 0 && len(ms) > limit {
			ms = ms[:limit]
		}
		out = make([]fhir.OutboxMessage, len(ms))
		for j, m := range ms {
			m.Payload = bytes.Clone(m.Payload)
			out[j] = m
		}
		return nil
	})
	return out, err
}

// Update runs fn as one transaction on the single writer: committed
// whole if fn returns nil, undone whole otherwise (fn's error is returned
// unchanged). An ErrVersionConflict, which only fn itself can cause here,
// is retried up to maxAttempts times like on the SQL stores. fn must not
// call Update on the same store: it would wait for itself.
func (s *Store) Update(ctx context.Context, fn func(fhir.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writer }()
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err // fn has not run (again)
		}
		tx := &memTx{s: s}
		err := callFn(fn, tx)
		tx.done.Store(true)
		if err == nil {
			s.commit(tx)
			return nil
		}
		s.undo(tx)
		if !errors.Is(err, fhir.ErrVersionConflict) {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("memstore: giving up after %d attempts: %w", maxAttempts, err)
		}
	}
}

// callFn runs fn, turning a panic into an error (the writer token and the
// undo are the caller's deferred work, so the store stays usable).
func callFn(fn func(fhir.Tx) error, tx fhir.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("memstore: panic in Update fn: %v\n%s", r, debug.Stack())
		}
	}()
	return fn(tx)
}

// commit makes the transaction's versions visible and appends its outbox
// messages.
func (s *Store) commit(tx *memTx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx.mu.Lock()
	defer tx.mu.Unlock()
	for _, m := range tx.outbox {
		t := s.tenant(m.Tenant)
		s.outboxSeq++
		m.Seq = s.outboxSeq
		t.outbox = append(t.outbox, m)
	}
	s.committed = s.seq
}

// undo takes back every Put of tx, newest first.
func (s *Store) undo(tx *memTx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx.mu.Lock()
	defer tx.mu.Unlock()
	for i := len(tx.undo) - 1; i >= 0; i-- {
		u := tx.undo[i]
		r := u.res
		r.versions[len(r.versions)-1] = nil
		r.versions = r.versions[:len(r.versions)-1]
		u.t.log[len(u.t.log)-1] = nil
		u.t.log = u.t.log[:len(u.t.log)-1]
		u.td.log[len(u.td.log)-1] = nil
		u.td.log = u.td.log[:len(u.td.log)-1]
		u.t.setIdents(r, u.prevIdents)
		if u.created {
			delete(u.td.byID, r.key.ID)
			u.td.ids.remove(r.key.ID)
		}
		// Nor does a type or tenant that only this transaction wrote.
		if len(u.td.log) == 0 {
			delete(u.t.types, r.key.Type)
		}
		if len(u.t.types) == 0 && len(u.t.outbox) == 0 {
			delete(s.tenants, r.key.Tenant)
		}
	}
	s.seq = s.committed
}

// tenant returns tenant name's data, creating it. Callers hold mu for
// writing.
func (s *Store) tenant(name string) *tenant {
	t := s.tenants[name]
	if t == nil {
		t = &tenant{types: map[string]*typeData{}, idents: map[identKey]map[string]struct{}{}}
		s.tenants[name] = t
	}
	return t
}

func (t *tenant) typ(name string) *typeData {
	td := t.types[name]
	if td == nil {
		td = &typeData{byID: map[string]*resource{}}
		t.types[name] = td
	}
	return td
}

// setIdents makes idents the identifiers r is found by.
func (t *tenant) setIdents(r *resource, idents []fhir.Identifier) {
	for _, id := range r.idents {
		k := identKey{r.key.Type, id.System, id.Value}
		delete(t.idents[k], r.key.ID)
		if len(t.idents[k]) == 0 {
			delete(t.idents, k)
		}
	}
	for _, id := range idents {
		k := identKey{r.key.Type, id.System, id.Value}
		ids := t.idents[k]
		if ids == nil {
			ids = map[string]struct{}{}
			t.idents[k] = ids
		}
		ids[r.key.ID] = struct{}{}
	}
	r.idents = idents
}

// memTx is the Tx given to fn. It is safe for concurrent use, though fn
// has no reason to share it.
type memTx struct {
	s    *Store
	done atomic.Bool

	mu     sync.Mutex // guards undo and outbox
	undo   []undoPut
	outbox []fhir.OutboxMessage
}

// undoPut is how to take one Put back.
type undoPut struct {
	t          *tenant
	td         *typeData
	res        *resource
	created    bool
	prevIdents []fhir.Identifier
}

func (tx *memTx) check(ctx context.Context) error {
	if tx.done.Load() {
		return errTxDone
	}
	return ctx.Err()
}

// Read returns the newest version of k, the transaction's own writes
// included.
func (tx *memTx) Read(ctx context.Context, k fhir.Key) (fhir.Version, error) {
	if err := tx.check(ctx); err != nil {
		return fhir.Version{}, err
	}
	tx.s.mu.RLock()
	defer tx.s.mu.RUnlock()
	if r := tx.s.resourceAt(k); r != nil && len(r.versions) > 0 {
		return r.versions[len(r.versions)-1].out(), nil
	}
	return fhir.Version{}, notFound(k)
}

// LookupIdentifier returns the ids, sorted, of the live typ resources of
// tenant that carry ident, the transaction's own writes included. The
// single writer serializes lookups with everything else.
func (tx *memTx) LookupIdentifier(ctx context.Context, tenant, typ string, ident fhir.Identifier) ([]string, error) {
	if err := tx.check(ctx); err != nil {
		return nil, err
	}
	tx.s.mu.RLock()
	defer tx.s.mu.RUnlock()
	t := tx.s.tenants[tenant]
	if t == nil {
		return nil, nil
	}
	var ids []string
	for id := range t.idents[identKey{typ, ident.System, ident.Value}] {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Put stores v as the next version of v.Key (see fhir.Tx.Put): it records
// v's Sensitivity itself, replaces the resource's identifiers and index
// values with idx (a deletion clears them), and keeps copies of v.JSON and
// idx, so the caller may reuse its buffers.
func (tx *memTx) Put(ctx context.Context, v fhir.Version, idx fhir.Index) error {
	if err := tx.check(ctx); err != nil {
		return err
	}
	k := v.Key
	if k.Tenant == "" || k.Type == "" || k.ID == "" {
		return fmt.Errorf("memstore: incomplete key %q/%q/%q", k.Tenant, k.Type, k.ID)
	}
	// Prepared before taking the lock: parsing a label and copying a body
	// need none.
	nv := &version{Version: fhir.Version{Key: k, VersionID: v.VersionID, Deleted: v.Deleted, Method: v.Method}}
	if len(v.JSON) > 0 {
		nv.JSON = bytes.Clone(v.JSON)
	}
	nv.LastUpdated = v.LastUpdated
	if nv.LastUpdated.IsZero() {
		nv.LastUpdated = tx.s.now()
	}
	nv.LastUpdated = timeMicros(nv.LastUpdated)
	var idents []fhir.Identifier
	if !v.Deleted {
		nv.Sensitivity = fhir.SensitivityOfJSON(nv.JSON)
		nv.rows = indexRows(idx.Entries)
		for _, id := range idx.Identifiers {
			if !slices.Contains(idents, id) {
				idents = append(idents, id)
			}
		}
	}

	s := tx.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if tx.done.Load() {
		// Checked again under the lock, which commit and undo take only
		// after fn returned: a Put racing with the end of its transaction
		// is either part of it or refused, never left over.
		return errTxDone
	}
	r := s.resourceAt(k)
	var cur int64
	if r != nil {
		cur = int64(len(r.versions))
	}
	if v.VersionID != cur+1 {
		// Before anything is created: a refused Put leaves no trace.
		return fmt.Errorf("memstore: %s/%s/%s: version %d given, next is %d: %w",
			k.Tenant, k.Type, k.ID, v.VersionID, cur+1, fhir.ErrVersionConflict)
	}
	t := s.tenant(k.Tenant)
	td := t.typ(k.Type)
	u := undoPut{t: t, td: td, res: r, created: r == nil}
	if r == nil {
		r = &resource{key: k}
		u.res = r
		td.byID[k.ID] = r
		td.ids.insert(r)
	} else if v.Deleted {
		// A deleted note stays a note.
		nv.Sensitivity = r.versions[len(r.versions)-1].Sensitivity
	}
	u.prevIdents = r.idents
	s.seq++
	nv.seq, nv.res = s.seq, r
	r.versions = append(r.versions, nv)
	t.log = append(t.log, nv)
	td.log = append(td.log, nv)
	t.setIdents(r, idents)
	tx.mu.Lock()
	tx.undo = append(tx.undo, u)
	tx.mu.Unlock()
	return nil
}

// Enqueue adds m to the outbox when the transaction commits.
func (tx *memTx) Enqueue(ctx context.Context, m fhir.OutboxMessage) error {
	if err := tx.check(ctx); err != nil {
		return err
	}
	if m.Tenant == "" {
		return errors.New("memstore: enqueue: empty tenant")
	}
	if m.Created.IsZero() {
		m.Created = tx.s.now()
	}
	m.Created = timeMicros(m.Created)
	m.Payload = bytes.Clone(m.Payload)
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	m.Seq = 0
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.done.Load() {
		return errTxDone // see Put
	}
	tx.outbox = append(tx.outbox, m)
	return nil
}

// LockCriteria does nothing: the single writer runs one transaction at a
// time, and a search inside it sees the transaction's own writes.
func (tx *memTx) LockCriteria(ctx context.Context, tenant, typ string) error { return tx.check(ctx) }

// indexRows keeps what a search can use of entries (as sqlstore's index
// tables do), copied and sorted by parameter.
func indexRows(entries []fhir.IndexEntry) []row {
	keep := func(e *fhir.IndexEntry) table {
		if e.Param == "_id" || e.Param == "_lastUpdated" {
			return tNone // answered from the version itself
		}
		if e.Type == "reference" && e.Text == "identifier" {
			return tNone // a Reference.identifier, for :identifier, which is not supported
		}
		if tb := tableOf(e.Type); tb != tComposite || len(e.Parts) > 0 {
			return tb
		}
		return tNone
	}
	n := 0
	for i := range entries {
		if keep(&entries[i]) != tNone {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	// Sized exactly: a row is a few hundred bytes, the bulk of the
	// store's memory.
	rows := make([]row, 0, n)
	for i := range entries {
		if tb := keep(&entries[i]); tb != tNone {
			e := entries[i]
			e.Parts = slices.Clone(e.Parts)
			rows = append(rows, row{IndexEntry: e, t: tb})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int { return strings.Compare(a.Param, b.Param) })
	return rows
}
