package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Search on PostgreSQL. Rows carry the writer's transaction id (xid8) in
// from_seq and the superseding writer's in to_seq, and a search pins a
// pg_snapshot at its first page (see the migration). The snapshot text
// travels in the cursor as the last After element: cursors are opaque to
// the server, and Cursor.Snapshot (an int64) holds only the snapshot's
// xmin, which is too coarse on its own (it would hide transactions that
// committed before the first page but after an older, still running one
// started).

// queueIndex adds to b the statements that close k's current version
// (when one existed) and index v (unless it is a deletion). The index rows
// take the vkey the search_res insert just drew (currval is per session,
// and a batch runs on one connection in order).
func queueIndex(b *pgx.Batch, k fhir.Key, v fhir.Version, lu time.Time, existed bool, idx fhir.Index) {
	if existed {
		b.Queue(`UPDATE search_res SET to_seq = pg_current_xact_id() WHERE tenant = $1 AND type = $2 AND id = $3 AND to_seq IS NULL`,
			k.Tenant, k.Type, k.ID)
	}
	if v.Deleted {
		return
	}
	b.Queue(`INSERT INTO search_res (tenant, type, id, version_id, last_updated, sensitivity) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.Tenant, k.Type, k.ID, v.VersionID, lu.UnixMicro(), v.Sensitivity)
	queueIndexRows(b, k, "currval('search_vkey')", nil, idx.Entries)
}

// queueIndexRows adds to b an INSERT per table of the rows of entries,
// under the vkey vkeyExpr gives (an SQL expression; its parameters, from
// $3, are vkeyArgs).
func queueIndexRows(b *pgx.Batch, k fhir.Key, vkeyExpr string, vkeyArgs []any, entries []fhir.IndexEntry) {
	rowsByTable := indexRows(entries)
	for t := range numTables {
		rs := rowsByTable[t]
		if len(rs) == 0 {
			continue
		}
		it := indexTables[t]
		args := append([]any{k.Tenant, k.Type}, vkeyArgs...)
		casts := make([]string, len(it.cols))
		for c, kind := range it.kinds {
			switch kind {
			case kText:
				a := make([]string, len(rs))
				for i, r := range rs {
					a[i] = r[c].(string)
				}
				args = append(args, a)
				casts[c] = fmt.Sprintf("$%d::text[]", len(args))
			case kInt:
				a := make([]int64, len(rs))
				for i, r := range rs {
					a[i] = r[c].(int64)
				}
				args = append(args, a)
				casts[c] = fmt.Sprintf("$%d::bigint[]", len(args))
			case kReal:
				a := make([]float64, len(rs))
				for i, r := range rs {
					a[i] = r[c].(float64)
				}
				args = append(args, a)
				casts[c] = fmt.Sprintf("$%d::float8[]", len(args))
			}
		}
		b.Queue(fmt.Sprintf("INSERT INTO %s (tenant, type, vkey, %s) SELECT $1, $2, %s, u.* FROM unnest(%s) AS u",
			it.name, strings.Join(it.cols, ", "), vkeyExpr, strings.Join(casts, ", ")), args...)
	}
}

type pgQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func pgEngine(q pgQuerier, now func() time.Time) *engine {
	return &engine{
		pg: true,
		query: func(ctx context.Context, sql string, args ...any) (rows, error) {
			return q.Query(ctx, sql, args...)
		},
		fetch: func(ctx context.Context, tenant string, keys []verKey) ([]fhir.Version, error) {
			types, ids, vids := make([]string, len(keys)), make([]string, len(keys)), make([]int64, len(keys))
			for i, k := range keys {
				types[i], ids[i], vids[i] = k.typ, k.id, k.vid
			}
			rs, err := q.Query(ctx, `SELECT v.type, v.id, v.version_id, v.last_updated, v.deleted, v.body, v.sensitivity
				FROM unnest($2::text[], $3::text[], $4::bigint[]) AS k(type, id, vid)
				JOIN resource_versions v ON v.tenant = $1 AND v.type = k.type AND v.id = k.id AND v.version_id = k.vid`,
				tenant, types, ids, vids)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rs, func(r pgx.CollectableRow) (fhir.Version, error) {
				v := fhir.Version{Key: fhir.Key{Tenant: tenant}}
				err := r.Scan(&v.Type, &v.ID, &v.VersionID, &v.LastUpdated, &v.Deleted, &v.JSON, &v.Sensitivity)
				v.LastUpdated = v.LastUpdated.UTC()
				v.JSON = emptyToNil(v.JSON)
				return v, err
			})
		},
		now: now,
	}
}

// pgSnapshot returns the current snapshot and its xmin.
func (s *pgStore) pgSnapshot(ctx context.Context) (string, int64, error) {
	var text string
	if err := s.pool.QueryRow(ctx, "SELECT pg_current_snapshot()::text").Scan(&text); err != nil {
		return "", 0, fmt.Errorf("sqlstore: snapshot: %w", err)
	}
	xmin, _, _ := strings.Cut(text, ":")
	n, err := strconv.ParseInt(xmin, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("sqlstore: snapshot %q: %w", text, err)
	}
	return text, n, nil
}

// splitCursor takes the snapshot text off the end of a cursor's After.
func splitCursor(c *search.Cursor) (string, []string, error) {
	if len(c.After) == 0 {
		return "", nil, errBadCursor
	}
	n := len(c.After) - 1
	return c.After[n], c.After[:n:n], nil
}

// Search runs q for tenant: at a new snapshot (cur == nil) or continuing
// cur on its snapshot.
func (s *pgStore) Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error) {
	var text string
	var xmin int64
	var err error
	var inner *search.Cursor
	if cur != nil {
		c := *cur
		if text, c.After, err = splitCursor(cur); err != nil {
			return search.Result{Total: -1}, err
		}
		xmin, inner = cur.Snapshot, &c
	} else if text, xmin, err = s.pgSnapshot(ctx); err != nil {
		return search.Result{Total: -1}, err
	}
	res, err := pgEngine(s.pool, s.opts.now).search(ctx, tenant, q, snap{pg: text}, inner)
	res.Snapshot = xmin
	if res.Next != nil {
		res.Next.Snapshot = xmin
		res.Next.After = append(res.Next.After, text)
	}
	return res, err
}

// HistoryPage returns one page of type history (q.Type set) or system
// history, newest first (by writing transaction), on the snapshot of its
// first page.
func (s *pgStore) HistoryPage(ctx context.Context, tenant string, q search.HistoryQuery) (search.HistoryResult, error) {
	res := search.HistoryResult{Total: -1}
	var text string
	var xmin int64
	var after []string
	var err error
	if q.Cursor != nil {
		if text, after, err = splitCursor(q.Cursor); err != nil {
			return res, err
		}
		xmin = q.Cursor.Snapshot
	} else if text, xmin, err = s.pgSnapshot(ctx); err != nil {
		return res, err
	}
	vs, next, err := pgEngine(s.pool, s.opts.now).history(ctx, tenant, q, snap{pg: text}, after)
	if err != nil {
		return res, err
	}
	res.Versions, res.Snapshot = vs, xmin
	if next != nil {
		res.Next = &search.Cursor{Snapshot: xmin, After: append(next, text)}
	}
	return res, nil
}

// Search inside the transaction: what it sees now (READ COMMITTED: all
// committed rows and its own writes).
func (t *pgTx) Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error) {
	if err := t.check(); err != nil {
		return search.Result{Total: -1}, err
	}
	if cur != nil {
		return search.Result{Total: -1}, unsupported("paging inside a transaction")
	}
	return pgEngine(t.tx, t.s.opts.now).search(ctx, tenant, q, snap{tx: true}, nil)
}
