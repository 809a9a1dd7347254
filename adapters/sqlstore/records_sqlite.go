package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// sqliteRecordStmts are the writer connection's statements for practice
// records, prepared on first use (by the writer goroutine, the only user
// of the writer connection once the store is open).
type sqliteRecordStmts struct {
	ready                                     bool
	get, put, delPending, addPending, waiting *sql.Stmt
	children, putIdem, purgeIdem              *sql.Stmt
}

func (st *sqliteRecordStmts) all() []*sql.Stmt {
	return []*sql.Stmt{st.get, st.put, st.delPending, st.addPending, st.waiting, st.children, st.putIdem, st.purgeIdem}
}

func (st *sqliteRecordStmts) close() []error {
	var errs []error
	for _, s := range st.all() {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errs
}

func (s *sqliteStore) recordStmts() (*sqliteRecordStmts, error) {
	st := &s.rec
	if st.ready {
		return st, nil
	}
	ctx := context.Background()
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{
		{&st.get, `SELECT ` + recordCols + ` FROM practice_records WHERE tenant = ? AND kind = ? AND id = ?`},
		{&st.put, `INSERT INTO practice_records (` + recordCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant, kind, id) DO UPDATE SET parent = excluded.parent, body = excluded.body,
			hash = excluded.hash, state = excluded.state, pending = excluded.pending,
			resources = excluded.resources, reasons = excluded.reasons, updated = excluded.updated`},
		{&st.delPending, `DELETE FROM practice_pending WHERE tenant = ? AND kind = ? AND id = ?`},
		{&st.addPending, `INSERT OR IGNORE INTO practice_pending (tenant, ref, kind, id) VALUES (?, ?, ?, ?)`},
		// Driven by practice_pending's key, so the cost is the number of
		// waiters, not the number of records.
		{&st.waiting, `SELECT ` + recordColsR + ` FROM practice_pending p CROSS JOIN practice_records r
			ON r.tenant = p.tenant AND r.kind = p.kind AND r.id = p.id
			WHERE p.tenant = ? AND p.ref = ? AND r.state = 'pending' ORDER BY r.kind, r.id`},
		{&st.children, `SELECT ` + recordCols + ` FROM practice_records WHERE tenant = ? AND kind = ? AND parent = ? ORDER BY id`},
		{&st.putIdem, `INSERT INTO idempotency_keys (tenant, key, request_hash, status, response, created) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant, key) DO UPDATE SET request_hash = excluded.request_hash, status = excluded.status,
			response = excluded.response, created = excluded.created`},
		{&st.purgeIdem, `DELETE FROM idempotency_keys WHERE created < ?`},
	} {
		prepared, err := s.wconn.PrepareContext(ctx, p.q)
		if err != nil {
			st.close()
			*st = sqliteRecordStmts{}
			return nil, fmt.Errorf("sqlstore: prepare %q: %w", p.q, err)
		}
		*p.st = prepared
	}
	st.ready = true
	return st, nil
}

func scanSQLiteRecord(row scanner) (recordstore.Row, error) {
	var f recordFields
	var micros int64
	if err := row.Scan(f.dest(&micros)...); err != nil {
		return recordstore.Row{}, err
	}
	f.r.Updated = time.UnixMicro(micros).UTC()
	return f.finish()
}

func scanSQLiteRecords(rows *sql.Rows, err error) ([]recordstore.Row, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanRows(rows, func() (recordstore.Row, error) { return scanSQLiteRecord(rows) })
}

// GetRecord reads a record row outside any transaction.
func (s *sqliteStore) GetRecord(ctx context.Context, tenant string, kind string, id string) (recordstore.Row, bool, error) {
	r, err := scanSQLiteRecord(s.rdb.QueryRowContext(ctx, `SELECT `+recordCols+` FROM practice_records WHERE tenant = ? AND kind = ? AND id = ?`, tenant, kind, id))
	if errors.Is(err, sql.ErrNoRows) {
		return recordstore.Row{}, false, nil
	}
	if err != nil {
		return recordstore.Row{}, false, fmt.Errorf("sqlstore: get record %s/%s: %w", kind, id, err)
	}
	return r, true, nil
}

// ListRecords lists record rows by kind and state ("" matches any), in
// kind and id order.
func (s *sqliteStore) ListRecords(ctx context.Context, tenant string, kind string, state string) ([]recordstore.Row, error) {
	rows, err := scanSQLiteRecords(s.rdb.QueryContext(ctx, `SELECT `+recordCols+` FROM practice_records
		WHERE tenant = ? AND (? = '' OR kind = ?) AND (? = '' OR state = ?) ORDER BY kind, id`,
		tenant, kind, kind, state, state))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list records: %w", err)
	}
	return rows, nil
}

// GetIdempotency returns the stored answer for key, unless older than
// recordstore.IdempotencyTTL.
func (s *sqliteStore) GetIdempotency(ctx context.Context, tenant, key string) (recordstore.IdempotencyRow, bool, error) {
	r := recordstore.IdempotencyRow{Tenant: tenant, Key: key}
	var micros int64
	err := s.rdb.QueryRowContext(ctx, `SELECT request_hash, status, response, created FROM idempotency_keys
		WHERE tenant = ? AND key = ? AND created >= ?`, tenant, key, s.opts.now().Add(-recordstore.IdempotencyTTL).UnixMicro()).
		Scan(&r.RequestHash, &r.Status, &r.Response, &micros)
	if errors.Is(err, sql.ErrNoRows) {
		return recordstore.IdempotencyRow{}, false, nil
	}
	if err != nil {
		return recordstore.IdempotencyRow{}, false, fmt.Errorf("sqlstore: get idempotency key: %w", err)
	}
	r.Created = time.UnixMicro(micros).UTC()
	return r, true, nil
}

func (tx *sqliteTx) recordStmts(ctx context.Context) (*sqliteRecordStmts, error) {
	if err := tx.check(ctx); err != nil {
		return nil, err
	}
	return tx.s.recordStmts()
}

func (tx *sqliteTx) GetRecord(ctx context.Context, tenant string, kind string, id string) (recordstore.Row, bool, error) {
	st, err := tx.recordStmts(ctx)
	if err != nil {
		return recordstore.Row{}, false, err
	}
	r, err := scanSQLiteRecord(st.get.QueryRowContext(context.Background(), tenant, kind, id))
	if errors.Is(err, sql.ErrNoRows) {
		return recordstore.Row{}, false, nil
	}
	if err != nil {
		return recordstore.Row{}, false, fmt.Errorf("sqlstore: get record %s/%s: %w", kind, id, err)
	}
	return r, true, nil
}

func (tx *sqliteTx) PutRecord(ctx context.Context, r recordstore.Row) error {
	if err := checkRecordRow(r); err != nil {
		return err
	}
	st, err := tx.recordStmts(ctx)
	if err != nil {
		return err
	}
	bg := context.Background()
	updated := r.Updated
	if updated.IsZero() {
		updated = tx.s.opts.now()
	}
	wrap := func(err error) error { return fmt.Errorf("sqlstore: put record %s/%s: %w", r.Kind, r.ID, err) }
	if _, err := st.put.ExecContext(bg, r.Tenant, r.Kind, r.ID, r.Parent, nonNil(r.Body), r.Hash, r.State,
		encodeList(r.Pending), encodeList(r.Resources), encodeList(r.Reasons), updated.UnixMicro()); err != nil {
		return wrap(err)
	}
	if _, err := st.delPending.ExecContext(bg, r.Tenant, r.Kind, r.ID); err != nil {
		return wrap(err)
	}
	if r.State == recordstore.StatePending {
		for _, ref := range r.Pending {
			if _, err := st.addPending.ExecContext(bg, r.Tenant, ref, r.Kind, r.ID); err != nil {
				return wrap(err)
			}
		}
	}
	return nil
}

func (tx *sqliteTx) WaitingOn(ctx context.Context, tenant, ref string) ([]recordstore.Row, error) {
	st, err := tx.recordStmts(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := scanSQLiteRecords(st.waiting.QueryContext(context.Background(), tenant, ref))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: records waiting on %s: %w", ref, err)
	}
	return rows, nil
}

func (tx *sqliteTx) ChildRecords(ctx context.Context, tenant string, kind string, parent string) ([]recordstore.Row, error) {
	st, err := tx.recordStmts(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := scanSQLiteRecords(st.children.QueryContext(context.Background(), tenant, kind, parent))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s records of %s: %w", kind, parent, err)
	}
	return rows, nil
}

// LockRecords is a no-op: SQLite transactions already run one at a time
// on the writer goroutine.
func (tx *sqliteTx) LockRecords(ctx context.Context, tenant string) error { return tx.check(ctx) }

// PutIdempotency stores an answer, purging answers past their 24 hours
// while it is at it (a cheap indexed delete; no separate sweeper needed).
func (tx *sqliteTx) PutIdempotency(ctx context.Context, r recordstore.IdempotencyRow) error {
	if r.Tenant == "" || r.Key == "" {
		return errors.New("sqlstore: put idempotency key: tenant and key are required")
	}
	st, err := tx.recordStmts(ctx)
	if err != nil {
		return err
	}
	bg := context.Background()
	now := tx.s.opts.now()
	created := r.Created
	if created.IsZero() {
		created = now
	}
	if _, err := st.purgeIdem.ExecContext(bg, now.Add(-recordstore.IdempotencyTTL).UnixMicro()); err != nil {
		return fmt.Errorf("sqlstore: purge idempotency keys: %w", err)
	}
	if _, err := st.putIdem.ExecContext(bg, r.Tenant, r.Key, r.RequestHash, r.Status, nonNil(r.Response), created.UnixMicro()); err != nil {
		return fmt.Errorf("sqlstore: put idempotency key: %w", err)
	}
	return nil
}
