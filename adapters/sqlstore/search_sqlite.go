package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Search on SQLite. The writer goroutine gives every Put the next seq (kept
// in sqliteStore.seq, reloaded from the database at the start of each
// batch, so it is also right after another process wrote the file); a
// batch commits all its seqs at once, so the largest committed seq is a
// consistent snapshot and readers need no transaction to stay on it.

type sqliteSearchStmts struct {
	maxSeq              *sql.Stmt
	insertRes, closeRes *sql.Stmt
	insertIdx           [numTables]*sql.Stmt // one row
	insertIdxN          [numTables]*sql.Stmt // idxChunk rows
	vreadWriter         *sql.Stmt
	readerMaxSeq        *sql.Stmt
	prepared            []*sql.Stmt

	// cache holds the read pool's prepared search statements by SQL text:
	// a query shape recurs with other values, and SQLite's parse and plan
	// cost as much as running a selective search.
	cacheMu sync.Mutex
	cache   map[string]*sql.Stmt
}

// maxCachedStmts bounds the statement cache; shapes beyond it are
// prepared per call.
const maxCachedStmts = 512

// readQuery runs q on the read pool through a cached prepared statement,
// materialized so that ctx can stop it (interrupt_sqlite.go).
func (s *sqliteStore) readQuery(ctx context.Context, q string, args ...any) (rows, error) {
	ws := &s.ws
	ws.cacheMu.Lock()
	st := ws.cache[q]
	ws.cacheMu.Unlock()
	if st == nil {
		var err error
		if st, err = s.rdb.PrepareContext(ctx, materialized(q)); err != nil {
			return nil, err
		}
		ws.cacheMu.Lock()
		switch old := ws.cache[q]; {
		case old != nil: // prepared concurrently
			st.Close()
			st = old
		case len(ws.cache) < maxCachedStmts:
			if ws.cache == nil {
				ws.cache = map[string]*sql.Stmt{}
			}
			ws.cache[q] = st
		default:
			ws.cacheMu.Unlock()
			st.Close() // the cache is full: run this shape unprepared
			rs, err := s.rdb.QueryContext(ctx, materialized(q), args...)
			if err != nil {
				return nil, err
			}
			return sqlRows{rs}, nil
		}
		ws.cacheMu.Unlock()
	}
	rs, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rs}, nil
}

// closeCache closes the cached statements (at Close).
func (ws *sqliteSearchStmts) closeCache() []error {
	ws.cacheMu.Lock()
	defer ws.cacheMu.Unlock()
	var errs []error
	for _, st := range ws.cache {
		errs = append(errs, st.Close())
	}
	ws.cache = nil
	return errs
}

func (s *sqliteStore) prepareSearch(ctx context.Context) error {
	ws := &s.ws
	prep := func(c interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	}, q string) (*sql.Stmt, error) {
		st, err := c.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: prepare %q: %w", q, err)
		}
		ws.prepared = append(ws.prepared, st)
		return st, nil
	}
	var err error
	if ws.maxSeq, err = prep(s.wconn, "SELECT coalesce(max(seq), 0) FROM resource_versions"); err != nil {
		return err
	}
	if ws.insertRes, err = prep(s.wconn, `INSERT INTO search_res (tenant, type, id, version_id, last_updated, vkey, from_seq, to_seq, sensitivity)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 9223372036854775807, ?7)`); err != nil {
		return err
	}
	if ws.closeRes, err = prep(s.wconn, `UPDATE search_res SET to_seq = ?
		WHERE tenant = ? AND type = ? AND id = ? AND to_seq = 9223372036854775807`); err != nil {
		return err
	}
	for t := range numTables {
		if ws.insertIdx[t], err = prep(s.wconn, insertIdxSQL(t, 1)); err != nil {
			return err
		}
		if ws.insertIdxN[t], err = prep(s.wconn, insertIdxSQL(t, idxChunk)); err != nil {
			return err
		}
	}
	if ws.vreadWriter, err = prep(s.wconn, sqlVRead); err != nil {
		return err
	}
	return nil
}

func (s *sqliteStore) prepareSearchReader(ctx context.Context) error {
	st, err := s.rdb.PrepareContext(ctx, "SELECT coalesce(max(seq), 0) FROM resource_versions")
	if err != nil {
		return fmt.Errorf("sqlstore: prepare snapshot: %w", err)
	}
	s.ws.readerMaxSeq = st
	s.ws.prepared = append(s.ws.prepared, st)
	return nil
}

// loadSeq runs at the start of each batch, inside its transaction.
func (s *sqliteStore) loadSeq() error {
	if err := s.ws.maxSeq.QueryRowContext(context.Background()).Scan(&s.seq); err != nil {
		return fmt.Errorf("sqlstore: read seq: %w", err)
	}
	return nil
}

// putIndex closes the version of k current so far (when one existed) and
// indexes v (unless it is a deletion) under seq, which is also its vkey.
func (tx *sqliteTx) putIndex(k fhir.Key, v fhir.Version, lu time.Time, existed bool, seq int64, idx fhir.Index) error {
	bg, ws := context.Background(), &tx.s.ws
	if existed {
		if _, err := ws.closeRes.ExecContext(bg, seq, k.Tenant, k.Type, k.ID); err != nil {
			return err
		}
	}
	if v.Deleted {
		return nil
	}
	if _, err := ws.insertRes.ExecContext(bg, k.Tenant, k.Type, k.ID, v.VersionID, lu.UnixMicro(), seq, v.Sensitivity); err != nil {
		return err
	}
	// Buffered until the batch ends (indexbuf_sqlite.go), which also drops
	// repeated values.
	eachIndexRow(idx.Entries, []any{k.Tenant, k.Type, seq}, func(t int, row []any) {
		tx.s.idx.rows[t] = append(tx.s.idx.rows[t], row)
	})
	return nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

func (s *sqliteStore) engine() *engine {
	return &engine{
		query: s.readQuery,
		fetch: func(ctx context.Context, tenant string, keys []verKey) ([]fhir.Version, error) {
			return sqliteFetch(ctx, s.r.vread, tenant, keys)
		},
		now:   s.opts.now,
		probe: true,
	}
}

func sqliteFetch(ctx context.Context, st *sql.Stmt, tenant string, keys []verKey) ([]fhir.Version, error) {
	out := make([]fhir.Version, 0, len(keys))
	for _, k := range keys {
		key := fhir.Key{Tenant: tenant, Type: k.typ, ID: k.id}
		v, err := scanSQLiteVersion(key, st.QueryRowContext(ctx, tenant, k.typ, k.id, k.vid))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Search runs q for tenant: at the current snapshot (cur == nil) or
// continuing cur on its snapshot. See search.Result for what it returns.
func (s *sqliteStore) Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error) {
	var seq int64
	if cur != nil {
		seq = cur.Snapshot
	} else if err := s.ws.readerMaxSeq.QueryRowContext(ctx).Scan(&seq); err != nil {
		return search.Result{Total: -1}, fmt.Errorf("sqlstore: search snapshot: %w", err)
	}
	res, err := s.engine().search(ctx, tenant, q, snap{seq: seq}, cur)
	res.Snapshot = seq
	if res.Next != nil {
		res.Next.Snapshot = seq
	}
	return res, err
}

// HistoryPage returns one page of type history (q.Type set) or system
// history, newest first, on the snapshot of its first page.
func (s *sqliteStore) HistoryPage(ctx context.Context, tenant string, q search.HistoryQuery) (search.HistoryResult, error) {
	res := search.HistoryResult{Total: -1}
	var seq int64
	var after []string
	if q.Cursor != nil {
		seq, after = q.Cursor.Snapshot, q.Cursor.After
		if after == nil {
			after = []string{}
		}
	} else if err := s.ws.readerMaxSeq.QueryRowContext(ctx).Scan(&seq); err != nil {
		return res, fmt.Errorf("sqlstore: history snapshot: %w", err)
	}
	vs, next, err := s.engine().history(ctx, tenant, q, snap{seq: seq}, after)
	if err != nil {
		return res, err
	}
	res.Versions, res.Snapshot = vs, seq
	if next != nil {
		res.Next = &search.Cursor{Snapshot: seq, After: next}
	}
	return res, nil
}

// Search inside the transaction: what it sees now, including the writes
// of its own batch (used by conditional create and update).
func (tx *sqliteTx) Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error) {
	if err := tx.check(ctx); err != nil {
		return search.Result{Total: -1}, err
	}
	if cur != nil {
		return search.Result{Total: -1}, unsupported("paging inside a transaction")
	}
	w := tx.s
	if w.idx.earlier() {
		tx.flushFirst = true
		return search.Result{Total: -1}, errFlushFirst
	}
	if err := w.flushIndex(true); err != nil {
		return search.Result{Total: -1}, err
	}
	e := &engine{
		query: func(ctx context.Context, q string, args ...any) (rows, error) {
			// The caller's ctx, unlike every write on this connection: an
			// interrupted read-only statement does not roll back the
			// batch (interrupt_sqlite.go).
			rs, err := w.wconn.QueryContext(ctx, materialized(q), args...)
			if err != nil {
				return nil, err
			}
			return sqlRows{rs}, nil
		},
		fetch: func(ctx context.Context, tenant string, keys []verKey) ([]fhir.Version, error) {
			return sqliteFetch(ctx, w.ws.vreadWriter, tenant, keys)
		},
		now:   w.opts.now,
		probe: true,
	}
	return e.search(ctx, tenant, q, snap{tx: true}, nil)
}
