package sqlstore

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Search execution shared by both backends: the SQL is built by builder;
// an engine runs it through a query function of the backend (a read pool,
// the SQLite writer connection, a PostgreSQL transaction).

const (
	defaultPageSize = 50
	maxPageSize     = 1000
	// maxIncludeDepth bounds :iterate (the first level plus this many more).
	maxIncludeDepth = 4
	// driverProbeLimit: a token clause with fewer index rows than this
	// drives an SQLite search (see engine.pickDriver).
	driverProbeLimit = 1000
)

// rows is what both drivers' result sets offer.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

type queryFunc func(ctx context.Context, sql string, args ...any) (rows, error)

// verKey names one stored version.
type verKey struct {
	typ, id string
	vid     int64
}

type engine struct {
	pg    bool
	query queryFunc
	// fetch returns the stored versions named by keys (any order).
	fetch func(ctx context.Context, tenant string, keys []verKey) ([]fhir.Version, error)
	now   func() time.Time
	// probe: SQLite may pick a selective clause to drive the search.
	probe bool
}

func (e *engine) newBuilder(s snap) *builder { return newBuilder(e.pg, s, e.now()) }

// collect runs a query and calls scan for each row.
func (e *engine) collect(ctx context.Context, sql string, args []any, scan func(r rows) error) error {
	rs, err := e.query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		if err := scan(rs); err != nil {
			return err
		}
	}
	return rs.Err()
}

func pageSize(n int) int {
	switch {
	case n <= 0:
		return defaultPageSize
	case n > maxPageSize:
		return maxPageSize
	}
	return n
}

// search runs q at s (first page) or continues at cur.
func (e *engine) search(ctx context.Context, tenant string, q *search.Query, s snap, cur *search.Cursor) (search.Result, error) {
	res := search.Result{Total: -1}
	if q == nil || q.Type == "" {
		return res, unsupported("query without a resource type")
	}
	s.hide = q.Hide
	b := e.newBuilder(s)
	b.tenArg, b.typArg = b.arg(tenant), b.arg(q.Type)

	var where []string
	where = append(where, "r.tenant = "+b.tenArg, "r.type = "+b.typArg, b.vis("r"))
	driver := -1
	if e.probe {
		var err error
		if driver, err = e.pickDriver(ctx, tenant, q, s); err != nil {
			return res, err
		}
	}
	for i := range q.Clauses {
		var cond string
		var err error
		if i == driver {
			cond, err = b.driverClause(&q.Clauses[i], "r")
		} else {
			cond, err = b.clause(&q.Clauses[i], "r")
		}
		if err != nil {
			return res, err
		}
		where = append(where, cond)
	}
	if q.Compartment != nil {
		where = append(where, b.compartment(q.Compartment, "r", e.probe && driver < 0))
	}

	if q.Total == "accurate" || q.Summary == "count" {
		// The arguments so far are exactly those of the conditions; the
		// sort keys, keyset and limit add theirs after this.
		var n int64
		err := e.collect(ctx, "SELECT count(*) FROM search_res r WHERE "+strings.Join(where, " AND "), b.args, func(r rows) error {
			return r.Scan(&n)
		})
		if err != nil {
			return res, fmt.Errorf("sqlstore: search count: %w", err)
		}
		res.Total = int(n)
		if q.Summary == "count" {
			return res, nil
		}
	}

	keys := make([]sortKey, 0, len(q.Sort))
	for _, k := range q.Sort {
		if k.Param == nil || k.Param.Code == "_id" {
			// id is the final tie-breaker anyway; a descending id needs
			// its own key.
			if !k.Desc {
				break
			}
		}
		sk, err := b.sortExpr(k, "r")
		if err != nil {
			return res, err
		}
		keys = append(keys, sk)
		if k.Param == nil || k.Param.Code == "_id" {
			break // later keys cannot change the order
		}
	}
	limit := pageSize(q.Count)

	var after []any
	if cur != nil {
		vals := cur.After
		if len(vals) != len(keys) {
			return res, fmt.Errorf("%w: %d sort values for %d sort keys", errBadCursor, len(vals), len(keys))
		}
		after = make([]any, len(keys))
		for i, v := range vals {
			a, err := decodeSortValue(v, keys[i].kind)
			if err != nil {
				return res, fmt.Errorf("%w: %w", errBadCursor, err)
			}
			after[i] = a
		}
	}

	var sql strings.Builder
	cols := make([]string, len(keys))
	for i := range keys {
		cols[i] = "k" + strconv.Itoa(i+1)
	}
	if len(keys) == 0 {
		// The default order is the key order of search_res, so SQLite
		// stops after limit+1 rows without sorting.
		if cur != nil {
			where = append(where, "r.id > "+b.arg(cur.AfterID))
		}
		fmt.Fprintf(&sql, "SELECT r.id, r.version_id FROM search_res r WHERE %s ORDER BY r.id LIMIT %s",
			strings.Join(where, " AND "), b.arg(limit+1))
	} else {
		sql.WriteString("SELECT id, version_id")
		for _, c := range cols {
			sql.WriteString(", " + c)
		}
		sql.WriteString(" FROM (SELECT r.id AS id, r.version_id AS version_id")
		for i, k := range keys {
			fmt.Fprintf(&sql, ", %s AS %s", k.expr, cols[i])
		}
		fmt.Fprintf(&sql, " FROM search_res r WHERE %s) s", strings.Join(where, " AND "))
		if cur != nil {
			sql.WriteString(" WHERE " + b.keyset(keys, cols, after, cur.AfterID))
		}
		sql.WriteString(" ORDER BY ")
		for i, k := range keys {
			dir := ""
			if k.desc {
				dir = " DESC"
			}
			fmt.Fprintf(&sql, "(%s IS NULL), %s%s, ", cols[i], cols[i], dir)
		}
		fmt.Fprintf(&sql, "id LIMIT %s", b.arg(limit+1))
	}

	type hit struct {
		id   string
		vid  int64
		vals []any
	}
	var hits []hit
	err := e.collect(ctx, sql.String(), b.args, func(r rows) error {
		h := hit{vals: make([]any, len(keys))}
		dest := []any{&h.id, &h.vid}
		for i := range h.vals {
			dest = append(dest, &h.vals[i])
		}
		if err := r.Scan(dest...); err != nil {
			return err
		}
		hits = append(hits, h)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("sqlstore: search: %w", err)
	}
	if len(hits) > limit {
		hits = hits[:limit]
		last := hits[limit-1]
		next := &search.Cursor{AfterID: last.id, After: make([]string, len(keys))}
		for i, v := range last.vals {
			next.After[i] = encodeSortValue(v)
		}
		res.Next = next
	}
	vkeys := make([]verKey, len(hits))
	for i, h := range hits {
		vkeys[i] = verKey{typ: q.Type, id: h.id, vid: h.vid}
	}
	if res.Matches, err = e.fetchOrdered(ctx, tenant, vkeys); err != nil {
		return res, err
	}
	if len(q.Include)+len(q.RevInclude) > 0 && len(res.Matches) > 0 {
		if res.Included, err = e.includes(ctx, tenant, q, s, res.Matches); err != nil {
			return res, err
		}
	}
	return res, nil
}

// fetchOrdered fetches versions and returns them in the order of keys.
func (e *engine) fetchOrdered(ctx context.Context, tenant string, keys []verKey) ([]fhir.Version, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	vs, err := e.fetch(ctx, tenant, keys)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: search: fetch: %w", err)
	}
	byKey := make(map[verKey]fhir.Version, len(vs))
	for _, v := range vs {
		byKey[verKey{v.Type, v.ID, v.VersionID}] = v
	}
	out := make([]fhir.Version, 0, len(keys))
	for _, k := range keys {
		if v, ok := byKey[k]; ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// driverChain returns the inner clause of a one-link chain on a reference
// parameter to a named type, or nil: the chains pickDriver may probe.
func driverChain(c *search.Clause) *search.Clause {
	if c.Chain == nil || c.Chain.Type == "" || c.Param == nil || c.Param.Type != search.Reference {
		return nil
	}
	return &c.Chain.Clause
}

// pickDriver returns the index of a clause selective enough to run first
// in SQLite, or -1. SQLite plans an EXISTS as a per-row test, so without a
// driver a search walks every resource of the type in id order: fast when
// matches are dense (it stops after a page), slow when they are rare. A
// reference to one resource is rare by nature; a token is probed: if it
// has few index rows, it drives.
func (e *engine) pickDriver(ctx context.Context, tenant string, q *search.Query, s snap) (int, error) {
	for i := range q.Clauses {
		c := &q.Clauses[i]
		if c.Param == nil || c.Chain != nil || c.Has != nil || c.Param.Type != search.Reference || len(c.Values) == 0 {
			continue
		}
		if c.Modifier != "" && !isTypeName(c.Modifier) {
			continue
		}
		return i, nil
	}
	if q.Compartment != nil {
		return -1, nil // the compartment drives
	}
	best, bestN := -1, int64(driverProbeLimit)
	for i := range q.Clauses {
		c := &q.Clauses[i]
		probeType := q.Type
		if ch := driverChain(c); ch != nil {
			// A chain to an exact token (subject:Patient.identifier=s|v):
			// probed, and run from the inside out, as the token would be.
			probeType, c = c.Chain.Type, ch
		}
		if c.Param == nil || c.Chain != nil || c.Has != nil || c.Param.Type != search.Token || c.Modifier != "" ||
			len(c.Values) == 0 || c.Param.Code == "_id" {
			continue
		}
		exact := true
		for _, v := range c.Values {
			if v.Code == "" {
				exact = false
			}
		}
		if !exact {
			continue
		}
		b := e.newBuilder(s)
		b.tenArg, b.typArg = b.arg(tenant), b.arg(probeType)
		sub, err := b.indexed(c, func(x string) string {
			return fmt.Sprintf("%s.tenant = %s AND %s.type = %s", x, b.tenArg, x, b.typArg)
		}, "SELECT 1")
		if err != nil {
			return -1, err
		}
		var n int64
		err = e.collect(ctx, fmt.Sprintf("SELECT count(*) FROM (%s LIMIT %d)", sub, driverProbeLimit), b.args, func(r rows) error {
			return r.Scan(&n)
		})
		if err != nil {
			return -1, fmt.Errorf("sqlstore: search: probe: %w", err)
		}
		if n < bestN {
			best, bestN = i, n
		}
	}
	return best, nil
}

// includes resolves _include and _revinclude for the matches, one level,
// then :iterate ones on what was included, a few levels deep. Resources
// already among the matches or included are not repeated.
func (e *engine) includes(ctx context.Context, tenant string, q *search.Query, s snap, matches []fhir.Version) ([]fhir.Version, error) {
	seen := map[[2]string]bool{}
	for _, m := range matches {
		seen[[2]string{m.Type, m.ID}] = true
	}
	var out []fhir.Version
	frontier := matches
	for depth := 0; depth < maxIncludeDepth && len(frontier) > 0; depth++ {
		if err := ctx.Err(); err != nil {
			return nil, err // each level is more queries: stop between them
		}
		byType := map[string][]string{}
		for _, v := range frontier {
			byType[v.Type] = append(byType[v.Type], v.ID)
		}
		var found []verKey
		for _, inc := range q.Include {
			if depth > 0 && !inc.Iterate {
				continue
			}
			ids := byType[inc.SourceType]
			if len(ids) == 0 {
				continue
			}
			ks, err := e.forward(ctx, tenant, s, inc, ids)
			if err != nil {
				return nil, err
			}
			found = append(found, ks...)
		}
		for _, inc := range q.RevInclude {
			if depth > 0 && !inc.Iterate {
				continue
			}
			for typ, ids := range byType {
				if inc.TargetType != "" && inc.TargetType != typ {
					continue
				}
				ks, err := e.reverse(ctx, tenant, s, inc, typ, ids)
				if err != nil {
					return nil, err
				}
				found = append(found, ks...)
			}
		}
		var fresh []verKey
		for _, k := range found {
			if !seen[[2]string{k.typ, k.id}] {
				seen[[2]string{k.typ, k.id}] = true
				fresh = append(fresh, k)
			}
		}
		sort.Slice(fresh, func(i, j int) bool {
			if fresh[i].typ != fresh[j].typ {
				return fresh[i].typ < fresh[j].typ
			}
			return fresh[i].id < fresh[j].id
		})
		vs, err := e.fetchOrdered(ctx, tenant, fresh)
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
		frontier = vs
	}
	return out, nil
}

func (b *builder) inList(vals []string) string {
	ps := make([]string, len(vals))
	for i, v := range vals {
		ps[i] = b.arg(v)
	}
	return strings.Join(ps, ", ")
}

// forward: the current resources that the sources' inc.Param references.
func (e *engine) forward(ctx context.Context, tenant string, s snap, inc search.Include, ids []string) ([]verKey, error) {
	b := e.newBuilder(s)
	on := ""
	if inc.Param != nil {
		on += " AND " + b.paramIs("x", inc.Param)
	}
	if inc.TargetType != "" {
		on += " AND x.ref_type = " + b.arg(inc.TargetType)
	}
	sql := fmt.Sprintf(`SELECT DISTINCT r.type, r.id, r.version_id FROM search_res s
		JOIN search_ref x ON x.vkey = s.vkey%s
		JOIN search_res r ON r.tenant = s.tenant AND r.type = x.ref_type AND r.id = x.ref_id AND %s
		WHERE s.tenant = %s AND s.type = %s AND s.id IN (%s) AND %s`,
		on, b.vis("r"), b.arg(tenant), b.arg(inc.SourceType), b.inList(ids), b.vis("s"))
	var out []verKey
	err := e.collect(ctx, sql, b.args, func(r rows) error {
		var k verKey
		if err := r.Scan(&k.typ, &k.id, &k.vid); err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: _include: %w", err)
	}
	return out, nil
}

// reverse: the current resources of inc.SourceType whose inc.Param
// references one of typ/ids, in their versions current at s.
func (e *engine) reverse(ctx context.Context, tenant string, s snap, inc search.Include, typ string, ids []string) ([]verKey, error) {
	b := e.newBuilder(s)
	sql := fmt.Sprintf(`SELECT DISTINCT r.type, r.id, r.version_id FROM search_ref x JOIN search_res r ON r.vkey = x.vkey AND %s
		WHERE x.tenant = %s AND x.ref_id IN (%s) AND x.ref_type = %s`,
		b.vis("r"), b.arg(tenant), b.inList(ids), b.arg(typ))
	if inc.SourceType != "" && inc.SourceType != "*" {
		sql += " AND x.type = " + b.arg(inc.SourceType)
	}
	if inc.Param != nil {
		sql += " AND " + b.paramIs("x", inc.Param)
	}
	var out []verKey
	err := e.collect(ctx, sql, b.args, func(r rows) error {
		var k verKey
		if err := r.Scan(&k.typ, &k.id, &k.vid); err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: _revinclude: %w", err)
	}
	return out, nil
}

// errBadCursor reports a cursor this store did not make (or made for
// another query): the client's fault, so a 400.
var errBadCursor = fhir.Errorf(fhir.IssueInvalid, "", "the paging cursor does not fit this search")

// history returns one page of type or system history at s, newest first,
// continuing after the cursor values after (nil: first page), and the
// cursor values of the next page (nil: last page). SQLite orders by seq
// (one per version); PostgreSQL by the writer's transaction id, then type,
// id and version, since one transaction may write several versions.
func (e *engine) history(ctx context.Context, tenant string, q search.HistoryQuery, s snap, after []string) ([]fhir.Version, []string, error) {
	b := e.newBuilder(s)
	where := []string{"v.tenant = " + b.arg(tenant)}
	if q.Hide != 0 {
		// A hidden version has no history entry of any kind (a deletion
		// carries the sensitivity of what it deleted), and neither has any
		// version of a resource whose newest version is hidden: reading
		// it answers as if it never existed, so its history must too.
		where = append(where, fmt.Sprintf(`(v.sensitivity & %[1]d) = 0 AND NOT EXISTS (SELECT 1 FROM resource_heads h
			WHERE h.tenant = v.tenant AND h.type = v.type AND h.id = v.id AND (h.sensitivity & %[1]d) <> 0)`, q.Hide))
	}
	if q.Type != "" {
		where = append(where, "v.type = "+b.arg(q.Type))
	}
	var seqSel, order string
	var at, since any
	if e.pg {
		at, since = time.UnixMicro(q.At).UTC(), time.UnixMicro(q.Since).UTC()
		where = append(where, fmt.Sprintf("pg_visible_in_snapshot(v.seq, %s::text::pg_snapshot)", b.arg(s.pg)))
		seqSel, order = "v.seq::text", "v.seq DESC, v.type DESC, v.id DESC, v.version_id DESC"
		if after != nil {
			if len(after) != 4 {
				return nil, nil, errBadCursor
			}
			vid, err := strconv.ParseInt(after[3], 10, 64)
			if err != nil {
				return nil, nil, errBadCursor
			}
			where = append(where, fmt.Sprintf("(v.seq, v.type, v.id, v.version_id) < (%s::text::xid8, %s, %s, %s)",
				b.arg(after[0]), b.arg(after[1]), b.arg(after[2]), b.arg(vid)))
		}
	} else {
		at, since = q.At, q.Since
		where = append(where, "v.seq <= "+b.arg(s.seq))
		seqSel, order = "v.seq", "v.seq DESC"
		if after != nil {
			if len(after) != 1 {
				return nil, nil, errBadCursor
			}
			n, err := strconv.ParseInt(after[0], 10, 64)
			if err != nil {
				return nil, nil, errBadCursor
			}
			where = append(where, "v.seq < "+b.arg(n))
		}
	}
	if q.Since != 0 {
		where = append(where, "v.last_updated >= "+b.arg(since))
	}
	if q.At != 0 {
		// Current at At: written by then, and not yet replaced by then.
		a := b.arg(at)
		var nvis string
		if e.pg {
			nvis = fmt.Sprintf("pg_visible_in_snapshot(n.seq, %s::text::pg_snapshot)", b.arg(s.pg))
		} else {
			nvis = "n.seq <= " + b.arg(s.seq)
		}
		where = append(where, fmt.Sprintf(`v.last_updated <= %[1]s AND NOT EXISTS (SELECT 1 FROM resource_versions n
			WHERE n.tenant = v.tenant AND n.type = v.type AND n.id = v.id AND n.version_id = v.version_id + 1
			AND n.last_updated <= %[1]s AND %[2]s)`, a, nvis))
	}
	limit := pageSize(q.Count)
	sql := fmt.Sprintf("SELECT v.type, v.id, v.version_id, v.last_updated, v.deleted, v.body, v.sensitivity, v.method, %s FROM resource_versions v WHERE %s ORDER BY %s LIMIT %s",
		seqSel, strings.Join(where, " AND "), order, b.arg(limit+1))
	var vs []fhir.Version
	var seqs []string
	err := e.collect(ctx, sql, b.args, func(r rows) error {
		v := fhir.Version{Key: fhir.Key{Tenant: tenant}}
		var seq any
		var lu any
		if err := r.Scan(&v.Type, &v.ID, &v.VersionID, &lu, &v.Deleted, &v.JSON, &v.Sensitivity, &v.Method, &seq); err != nil {
			return err
		}
		switch lu := lu.(type) {
		case int64:
			v.LastUpdated = time.UnixMicro(lu).UTC()
		case time.Time:
			v.LastUpdated = lu.UTC()
		}
		v.JSON = emptyToNil(v.JSON)
		vs = append(vs, v)
		seqs = append(seqs, fmt.Sprint(seq))
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sqlstore: history: %w", err)
	}
	if len(vs) <= limit {
		return vs, nil, nil
	}
	vs = vs[:limit]
	last := vs[limit-1]
	if e.pg {
		return vs, []string{seqs[limit-1], last.Type, last.ID, strconv.FormatInt(last.VersionID, 10)}, nil
	}
	return vs, []string{seqs[limit-1]}, nil
}
