package memstore

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

const (
	defaultPageSize = 50
	maxPageSize     = 1000
	// maxIncludeDepth bounds :iterate (the first level plus this many
	// more), as in sqlstore.
	maxIncludeDepth = 4
	// inTx is the snapshot of a search inside a transaction: everything,
	// the transaction's own writes included.
	inTx = math.MaxInt64
)

func pageSize(n int) int {
	switch {
	case n <= 0:
		return defaultPageSize
	case n > maxPageSize:
		return maxPageSize
	}
	return n
}

// badCursor reports a cursor this store did not make (or made for another
// query): the client's fault, so a 400.
func badCursor(format string, a ...any) error {
	return fhir.Errorf(fhir.IssueInvalid, "", "the paging cursor does not fit this search").Wrap(fmt.Errorf(format, a...))
}

// view is the store as one search reads it: one tenant at one snapshot,
// without the resources the caller may not see. Every resource a search
// touches (matches, chain targets, _has sources, includes) is one that
// visible returns, so a hidden resource cannot influence a result in any
// way (sqlstore's vis). Callers hold the store's read lock.
type view struct {
	t    *tenant // nil: the tenant has nothing
	snap int64
	hide fhir.Sensitivity
	has  map[*hasNode]map[refKey]struct{}
}

// visible returns r's version current at the snapshot if it is live and
// not hidden, else nil.
func (w *view) visible(r *resource) *version {
	v := r.asOf(w.snap)
	if v == nil || v.Deleted || v.Sensitivity&w.hide != 0 {
		return nil
	}
	return v
}

func (w *view) typ(name string) *typeData {
	if w.t == nil {
		return nil
	}
	return w.t.types[name]
}

// lookup returns the visible version of typ/id, or nil.
func (w *view) lookup(typ, id string) *version {
	td := w.typ(typ)
	if td == nil {
		return nil
	}
	r := td.byID[id]
	if r == nil {
		return nil
	}
	return w.visible(r)
}

// hasTargets returns the resources that the n.typ resources satisfying
// n.inner point at through n.sel, computed once per view.
func (w *view) hasTargets(n *hasNode) map[refKey]struct{} {
	if m, ok := w.has[n]; ok {
		return m
	}
	m := map[refKey]struct{}{}
	if td := w.typ(n.typ); td != nil {
		for r := range td.ids.after("") {
			v := w.visible(r)
			if v == nil || !n.inner(w, v) {
				continue
			}
			v.any(&n.sel, func(x *row) bool {
				m[refKey{x.RefType, x.RefID}] = struct{}{}
				return false
			})
		}
	}
	if w.has == nil {
		w.has = map[*hasNode]map[refKey]struct{}{}
	}
	w.has[n] = m
	return m
}

// snapshotOf checks a cursor's snapshot: one this store has committed, so
// a forged cursor cannot read a running transaction's writes.
func (s *Store) snapshotOf(cur *search.Cursor) (int64, error) {
	if cur == nil {
		return s.committed, nil
	}
	if cur.Snapshot < 0 || cur.Snapshot > s.committed {
		return 0, badCursor("snapshot %d is not one of this store's (newest %d)", cur.Snapshot, s.committed)
	}
	return cur.Snapshot, nil
}

// Search runs q for tenant: at the newest committed state (cur == nil)
// or continuing cur on the snapshot of its first page. See search.Result
// for what it returns; errors wrapping ErrUnsupported are *fhir.Error of
// type not-supported.
func (s *Store) Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error) {
	if err := ctx.Err(); err != nil {
		return search.Result{Total: -1}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return search.Result{Total: -1}, ErrClosed
	}
	snap, err := s.snapshotOf(cur)
	if err != nil {
		return search.Result{Total: -1}, err
	}
	res, err := s.search(tenant, q, snap, cur)
	res.Snapshot = snap
	if res.Next != nil {
		res.Next.Snapshot = snap
	}
	return res, err
}

// Search inside the transaction: what it sees now, its own writes
// included (conditional create and update). Paging is not supported
// there, as on the SQL stores.
func (tx *memTx) Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error) {
	if err := tx.check(ctx); err != nil {
		return search.Result{Total: -1}, err
	}
	if cur != nil {
		return search.Result{Total: -1}, unsupported("paging inside a transaction")
	}
	tx.s.mu.RLock()
	defer tx.s.mu.RUnlock()
	return tx.s.search(tenant, q, inTx, nil)
}

// search runs q at snap (first page) or continues at cur. The caller holds
// the read lock.
func (s *Store) search(tenant string, q *search.Query, snap int64, cur *search.Cursor) (search.Result, error) {
	res := search.Result{Total: -1}
	if q == nil || q.Type == "" {
		return res, unsupported("query without a resource type")
	}
	c := compiler{now: s.now()}
	preds := make([]pred, 0, len(q.Clauses)+1)
	for i := range q.Clauses {
		p, err := c.clause(&q.Clauses[i])
		if err != nil {
			return res, err
		}
		preds = append(preds, p)
	}
	if q.Compartment != nil {
		preds = append(preds, c.compartment(q.Compartment))
	}
	w := &view{t: s.tenants[tenant], snap: snap, hide: q.Hide}
	var ids *idList
	if td := w.typ(q.Type); td != nil {
		ids = &td.ids
	} else {
		ids = &idList{}
	}
	// match returns r's visible version if it matches q.
	match := func(r *resource) *version {
		v := w.visible(r)
		if v == nil {
			return nil
		}
		for _, p := range preds {
			if !p(w, v) {
				return nil
			}
		}
		return v
	}
	counted := q.Total == "accurate" || q.Summary == "count"
	if q.Summary == "count" {
		n := 0
		for r := range ids.after("") {
			if match(r) != nil {
				n++
			}
		}
		res.Total = n
		return res, nil
	}

	keys, err := sortKeys(q)
	if err != nil {
		return res, err
	}
	limit := pageSize(q.Count)
	var after []sortVal
	if cur != nil {
		if after, err = decodeAfter(cur.After, keys); err != nil {
			return res, err
		}
	}

	type hit struct {
		v    *version
		vals []sortVal
	}
	var page []hit // up to limit+1, in order
	if len(keys) == 0 {
		// The default order is by id, the order of ids: a page is the
		// next limit+1 matches after the cursor's id.
		afterID := ""
		if cur != nil {
			afterID = cur.AfterID
		}
		start := afterID // nothing to count before the cursor unless counting
		if counted {
			start = ""
		}
		n := 0
		for r := range ids.after(start) {
			v := match(r)
			if v == nil {
				continue
			}
			n++
			if (cur == nil || r.key.ID > afterID) && len(page) <= limit {
				page = append(page, hit{v: v})
			}
			if len(page) > limit && !counted {
				break
			}
		}
		if counted {
			res.Total = n
		}
	} else {
		var hits []hit
		for r := range ids.after("") {
			if v := match(r); v != nil {
				vals := make([]sortVal, len(keys))
				for j, k := range keys {
					vals[j] = k.val(v)
				}
				hits = append(hits, hit{v, vals})
			}
		}
		slices.SortFunc(hits, func(a, b hit) int { return compareHits(keys, a.vals, a.v.ID, b.vals, b.v.ID) })
		from := 0
		if cur != nil {
			from = sort.Search(len(hits), func(i int) bool {
				return compareHits(keys, hits[i].vals, hits[i].v.ID, after, cur.AfterID) > 0
			})
		}
		page = hits[from:min(len(hits), from+limit+1)]
		if counted {
			res.Total = len(hits)
		}
	}
	if len(page) > limit {
		page = page[:limit]
		last := page[limit-1]
		next := &search.Cursor{AfterID: last.v.ID, After: make([]string, len(keys))}
		for i, k := range keys {
			next.After[i] = encodeSortValue(k.kind, last.vals[i])
		}
		res.Next = next
	}
	matches := make([]*version, len(page))
	for i, h := range page {
		matches[i] = h.v
	}
	if len(matches) > 0 {
		res.Matches = make([]fhir.Version, len(matches))
		for i, v := range matches {
			res.Matches[i] = v.out()
		}
		if len(q.Include)+len(q.RevInclude) > 0 {
			res.Included = w.includes(q, matches)
		}
	}
	return res, nil
}

// compareHits orders by the sort keys, missing values last in either
// direction, then by id.
func compareHits(keys []sortKey, a []sortVal, aID string, b []sortVal, bID string) int {
	for i, k := range keys {
		switch x, y := a[i], b[i]; {
		case x.null && y.null:
			continue
		case x.null:
			return 1
		case y.null:
			return -1
		default:
			c := compareVal(k.kind, x, y)
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
	}
	return strings.Compare(aID, bID)
}

// Cursor values: a kind letter and the value, "n" for a missing one (the
// sqlstore form, so cursors look alike).
func encodeSortValue(kind byte, v sortVal) string {
	switch {
	case v.null:
		return "n"
	case kind == 'i':
		return "i" + strconv.FormatInt(v.i, 10)
	case kind == 'f':
		return "f" + strconv.FormatFloat(v.f, 'g', -1, 64)
	}
	return "s" + v.s
}

func decodeAfter(after []string, keys []sortKey) ([]sortVal, error) {
	if len(after) != len(keys) {
		return nil, badCursor("%d sort values for %d sort keys", len(after), len(keys))
	}
	out := make([]sortVal, len(keys))
	for i, s := range after {
		if s == "n" {
			out[i].null = true
			continue
		}
		if s == "" || s[0] != keys[i].kind {
			return nil, badCursor("sort value %q is not of kind %c", s, keys[i].kind)
		}
		var err error
		switch body := s[1:]; s[0] {
		case 'i':
			out[i].i, err = strconv.ParseInt(body, 10, 64)
		case 'f':
			out[i].f, err = strconv.ParseFloat(body, 64)
		default:
			out[i].s = body
		}
		if err != nil {
			return nil, badCursor("sort value %q: %w", s, err)
		}
	}
	return out, nil
}

// includes resolves _include and _revinclude for the matches, one level,
// then the :iterate ones on what was included, a few levels deep. A
// resource already among the matches or included is not repeated; each
// level is in type and id order.
func (w *view) includes(q *search.Query, matches []*version) []fhir.Version {
	seen := map[refKey]bool{}
	for _, m := range matches {
		seen[refKey{m.Type, m.ID}] = true
	}
	var out []fhir.Version
	frontier := matches
	for depth := 0; depth < maxIncludeDepth && len(frontier) > 0; depth++ {
		byType := map[string]map[string]bool{}
		for _, v := range frontier {
			if byType[v.Type] == nil {
				byType[v.Type] = map[string]bool{}
			}
			byType[v.Type][v.ID] = true
		}
		var found []*version
		for _, inc := range q.Include {
			if depth > 0 && !inc.Iterate || len(byType[inc.SourceType]) == 0 {
				continue
			}
			found = w.forward(found, inc, byType[inc.SourceType])
		}
		for _, inc := range q.RevInclude {
			if depth > 0 && !inc.Iterate {
				continue
			}
			for typ, ids := range byType {
				if inc.TargetType == "" || inc.TargetType == typ {
					found = w.reverse(found, inc, typ, ids)
				}
			}
		}
		var fresh []*version
		for _, v := range found {
			if k := (refKey{v.Type, v.ID}); !seen[k] {
				seen[k] = true
				fresh = append(fresh, v)
			}
		}
		slices.SortFunc(fresh, func(a, b *version) int {
			if c := strings.Compare(a.Type, b.Type); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		for _, v := range fresh {
			out = append(out, v.out())
		}
		frontier = fresh
	}
	return out
}

// refSel selects the reference rows an include follows: its parameter's,
// or for the wildcard every reference.
func refSel(v *version, p *search.Param, f func(*row) bool) bool {
	if p != nil {
		sel := selOf(p)
		return v.any(&sel, f)
	}
	for i := range v.rows {
		if r := &v.rows[i]; r.t == tRef && f(r) {
			return true
		}
	}
	return false
}

// forward appends the visible resources that the sources (inc.SourceType
// resources with the given ids) reference through inc.Param.
func (w *view) forward(found []*version, inc search.Include, ids map[string]bool) []*version {
	for id := range ids {
		src := w.lookup(inc.SourceType, id)
		if src == nil {
			continue
		}
		refSel(src, inc.Param, func(r *row) bool {
			if inc.TargetType != "" && r.RefType != inc.TargetType {
				return false
			}
			if t := w.lookup(r.RefType, r.RefID); t != nil {
				found = append(found, t)
			}
			return false
		})
	}
	return found
}

// reverse appends the visible inc.SourceType resources (any type for ""
// or "*") that reference one of typ/ids through inc.Param.
func (w *view) reverse(found []*version, inc search.Include, typ string, ids map[string]bool) []*version {
	if w.t == nil {
		return found
	}
	scan := func(td *typeData) {
		for r := range td.ids.after("") {
			v := w.visible(r)
			if v != nil && refSel(v, inc.Param, func(x *row) bool { return x.RefType == typ && ids[x.RefID] }) {
				found = append(found, v)
			}
		}
	}
	if inc.SourceType == "" || inc.SourceType == "*" {
		for _, td := range w.t.types {
			scan(td)
		}
	} else if td := w.t.types[inc.SourceType]; td != nil {
		scan(td)
	}
	return found
}

// HistoryPage returns one page of type history (q.Type set) or system
// history of tenant, newest first (commit order), on the snapshot of its
// first page.
func (s *Store) HistoryPage(ctx context.Context, tenant string, q search.HistoryQuery) (search.HistoryResult, error) {
	res := search.HistoryResult{Total: -1}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return res, ErrClosed
	}
	snap, err := s.snapshotOf(q.Cursor)
	if err != nil {
		return res, err
	}
	top := snap // the newest seq this page may show
	if q.Cursor != nil {
		if len(q.Cursor.After) != 1 {
			return res, badCursor("%d history positions", len(q.Cursor.After))
		}
		n, err := strconv.ParseInt(q.Cursor.After[0], 10, 64)
		if err != nil {
			return res, badCursor("history position %q: %w", q.Cursor.After[0], err)
		}
		top = min(top, n-1)
	}
	var log []*version
	if t := s.tenants[tenant]; t == nil {
	} else if q.Type == "" {
		log = t.log
	} else if td := t.types[q.Type]; td != nil {
		log = td.log
	}
	limit := pageSize(q.Count)
	var vs []*version
	for i := sort.Search(len(log), func(i int) bool { return log[i].seq > top }) - 1; i >= 0 && len(vs) <= limit; i-- {
		v := log[i]
		if q.Since != 0 && v.LastUpdated.UnixMicro() < q.Since ||
			q.At != 0 && !currentAt(v, q.At, snap) ||
			q.Hide != 0 && s.hiddenInHistory(v, q.Hide) {
			continue
		}
		vs = append(vs, v)
	}
	res.Snapshot = snap
	if len(vs) > limit {
		vs = vs[:limit]
		res.Next = &search.Cursor{Snapshot: snap, After: []string{strconv.FormatInt(vs[limit-1].seq, 10)}}
	}
	res.Versions = make([]fhir.Version, len(vs))
	for i, v := range vs {
		res.Versions[i] = v.out()
	}
	return res, nil
}

// currentAt reports whether v was the current version at the instant at
// (Unix microseconds): written by then and not yet replaced by then, as
// far as the snapshot knows.
func currentAt(v *version, at, snap int64) bool {
	if v.LastUpdated.UnixMicro() > at {
		return false
	}
	vs := v.res.versions
	if int(v.VersionID) < len(vs) {
		n := vs[v.VersionID]
		return n.seq > snap || n.LastUpdated.UnixMicro() > at
	}
	return true
}

// hiddenInHistory: a hidden version has no history entry of any kind (a
// deletion carries the sensitivity of what it deleted), and neither has
// any version of a resource whose newest committed version is hidden:
// reading it answers as if it never existed, so its history must too.
func (s *Store) hiddenInHistory(v *version, hide fhir.Sensitivity) bool {
	if v.Sensitivity&hide != 0 {
		return true
	}
	head := v.res.asOf(s.committed)
	return head != nil && head.Sensitivity&hide != 0
}

var _ interface {
	fhir.Store
	Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error)
	HistoryPage(ctx context.Context, tenant string, q search.HistoryQuery) (search.HistoryResult, error)
} = (*Store)(nil)

var _ interface {
	fhir.Tx
	Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error)
} = (*memTx)(nil)
