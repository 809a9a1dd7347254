package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// Practice records on PostgreSQL; see records_sqlite.go for the SQLite
// side and records.go for what the two share.

func scanPGRecord(row pgx.Row) (recordstore.Row, error) {
	var f recordFields
	var updated time.Time
	if err := row.Scan(f.dest(&updated)...); err != nil {
		return recordstore.Row{}, err
	}
	f.r.Updated = updated.UTC()
	return f.finish()
}

func scanPGRecords(rows pgx.Rows, err error) ([]recordstore.Row, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanRows(rows, func() (recordstore.Row, error) { return scanPGRecord(rows) })
}

const (
	pgGetRecord = `SELECT ` + recordCols + ` FROM practice_records WHERE tenant = $1 AND kind = $2 AND id = $3`
	pgWaiting   = `SELECT ` + recordColsR + ` FROM practice_pending p JOIN practice_records r
		ON r.tenant = p.tenant AND r.kind = p.kind AND r.id = p.id
		WHERE p.tenant = $1 AND p.ref = $2 AND r.state = 'pending' ORDER BY r.kind, r.id`
	pgChildren = `SELECT ` + recordCols + ` FROM practice_records WHERE tenant = $1 AND kind = $2 AND parent = $3 ORDER BY id`
)

type pgRowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func pgGetRecordRow(ctx context.Context, q pgRowQuerier, tenant string, kind string, id string) (recordstore.Row, bool, error) {
	r, err := scanPGRecord(q.QueryRow(ctx, pgGetRecord, tenant, kind, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return recordstore.Row{}, false, nil
	}
	if err != nil {
		return recordstore.Row{}, false, fmt.Errorf("sqlstore: get record %s/%s: %w", kind, id, err)
	}
	return r, true, nil
}

// GetRecord reads a record row outside any transaction.
func (s *pgStore) GetRecord(ctx context.Context, tenant string, kind string, id string) (recordstore.Row, bool, error) {
	return pgGetRecordRow(ctx, s.pool, tenant, kind, id)
}

// ListRecords lists record rows by kind and state ("" matches any).
func (s *pgStore) ListRecords(ctx context.Context, tenant string, kind string, state string) ([]recordstore.Row, error) {
	rows, err := scanPGRecords(s.pool.Query(ctx, `SELECT `+recordCols+` FROM practice_records
		WHERE tenant = $1 AND ($2 = '' OR kind = $2) AND ($3 = '' OR state = $3) ORDER BY kind, id`,
		tenant, kind, state))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list records: %w", err)
	}
	return rows, nil
}

// GetIdempotency returns the stored answer for key, unless older than
// recordstore.IdempotencyTTL.
func (s *pgStore) GetIdempotency(ctx context.Context, tenant, key string) (recordstore.IdempotencyRow, bool, error) {
	r := recordstore.IdempotencyRow{Tenant: tenant, Key: key}
	err := s.pool.QueryRow(ctx, `SELECT request_hash, status, response, created FROM idempotency_keys
		WHERE tenant = $1 AND key = $2 AND created >= $3`, tenant, key, s.opts.now().Add(-recordstore.IdempotencyTTL)).
		Scan(&r.RequestHash, &r.Status, &r.Response, &r.Created)
	if errors.Is(err, pgx.ErrNoRows) {
		return recordstore.IdempotencyRow{}, false, nil
	}
	if err != nil {
		return recordstore.IdempotencyRow{}, false, fmt.Errorf("sqlstore: get idempotency key: %w", err)
	}
	r.Created = r.Created.UTC()
	return r, true, nil
}

func (t *pgTx) GetRecord(ctx context.Context, tenant string, kind string, id string) (recordstore.Row, bool, error) {
	if err := t.check(); err != nil {
		return recordstore.Row{}, false, err
	}
	return pgGetRecordRow(ctx, t.tx, tenant, kind, id)
}

func (t *pgTx) PutRecord(ctx context.Context, r recordstore.Row) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := checkRecordRow(r); err != nil {
		return err
	}
	updated := r.Updated
	if updated.IsZero() {
		updated = t.s.opts.now()
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO practice_records (`+recordCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (tenant, kind, id) DO UPDATE SET parent = excluded.parent, body = excluded.body,
		hash = excluded.hash, state = excluded.state, pending = excluded.pending,
		resources = excluded.resources, reasons = excluded.reasons, updated = excluded.updated`,
		r.Tenant, r.Kind, r.ID, r.Parent, nonNil(r.Body), r.Hash, r.State,
		encodeList(r.Pending), encodeList(r.Resources), encodeList(r.Reasons), timeMicros(updated))
	b.Queue(`DELETE FROM practice_pending WHERE tenant = $1 AND kind = $2 AND id = $3`, r.Tenant, r.Kind, r.ID)
	if r.State == recordstore.StatePending {
		for _, ref := range r.Pending {
			b.Queue(`INSERT INTO practice_pending (tenant, ref, kind, id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
				r.Tenant, ref, r.Kind, r.ID)
		}
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("sqlstore: put record %s/%s: %w", r.Kind, r.ID, err)
	}
	return nil
}

func (t *pgTx) WaitingOn(ctx context.Context, tenant, ref string) ([]recordstore.Row, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	rows, err := scanPGRecords(t.tx.Query(ctx, pgWaiting, tenant, ref))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: records waiting on %s: %w", ref, err)
	}
	return rows, nil
}

func (t *pgTx) ChildRecords(ctx context.Context, tenant string, kind string, parent string) ([]recordstore.Row, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	rows, err := scanPGRecords(t.tx.Query(ctx, pgChildren, tenant, kind, parent))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s records of %s: %w", kind, parent, err)
	}
	return rows, nil
}

// LockRecords takes a transaction advisory lock per tenant: practice
// records of one tenant are applied one transaction at a time, so a
// record and the one it waits for cannot commit side by side unseen.
func (t *pgTx) LockRecords(ctx context.Context, tenant string) error {
	if err := t.check(); err != nil {
		return err
	}
	if _, err := t.tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey("practice-records", tenant)); err != nil {
		return fmt.Errorf("sqlstore: lock practice records: %w", err)
	}
	return nil
}

// PutIdempotency stores an answer and purges answers past their 24 hours.
func (t *pgTx) PutIdempotency(ctx context.Context, r recordstore.IdempotencyRow) error {
	if err := t.check(); err != nil {
		return err
	}
	if r.Tenant == "" || r.Key == "" {
		return errors.New("sqlstore: put idempotency key: tenant and key are required")
	}
	now := t.s.opts.now()
	created := r.Created
	if created.IsZero() {
		created = now
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM idempotency_keys WHERE created < $1`, now.Add(-recordstore.IdempotencyTTL))
	b.Queue(`INSERT INTO idempotency_keys (tenant, key, request_hash, status, response, created) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (tenant, key) DO UPDATE SET request_hash = excluded.request_hash, status = excluded.status,
		response = excluded.response, created = excluded.created`,
		r.Tenant, r.Key, r.RequestHash, r.Status, nonNil(r.Response), timeMicros(created))
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("sqlstore: put idempotency key: %w", err)
	}
	return nil
}
