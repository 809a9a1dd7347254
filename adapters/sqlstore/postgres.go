package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// The PostgreSQL backend: a pgx pool, READ COMMITTED transactions in which
// writers of one resource serialize on its head row (FOR UPDATE) and
// identifier lookups on a transaction-scoped advisory lock; whatever still
// collides is rolled back and retried by Update.

// pgMigrateLock is the session advisory lock held while migrating, so
// replicas starting together apply each migration once.
var pgMigrateLock = lockKey("kapbridge/sqlstore", "migrate")

type pgStore struct {
	opts   options
	pool   *pgxpool.Pool
	closed atomic.Bool
}

const (
	pgNewest = `SELECT version_id, last_updated, deleted, body, sensitivity, method FROM resource_versions
		WHERE tenant = $1 AND type = $2 AND id = $3 ORDER BY version_id DESC LIMIT 1`
	pgVRead = `SELECT version_id, last_updated, deleted, body, sensitivity, method FROM resource_versions
		WHERE tenant = $1 AND type = $2 AND id = $3 AND version_id = $4`
	pgHistory = `SELECT version_id, last_updated, deleted, body, sensitivity, method FROM resource_versions
		WHERE tenant = $1 AND type = $2 AND id = $3 ORDER BY version_id DESC LIMIT $4`
	pgOutbox = `SELECT seq, tenant, topic, key, payload, created FROM outbox
		WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3`
	pgLockHead = `SELECT version_id, sensitivity FROM resource_heads WHERE tenant = $1 AND type = $2 AND id = $3 FOR UPDATE`
)

// OpenPostgres connects to the PostgreSQL database named by dsn (a URL or
// key=value string as pgx accepts, e.g. with search_path=... to pick a
// schema) and migrates it. Unless dsn sets pool_max_conns, the pool holds
// up to max(8, 4*GOMAXPROCS) connections: writers spend most of their time
// waiting on commit, so a few more than cores keeps the server busy.
func OpenPostgres(ctx context.Context, dsn string, opts ...Option) (search.Store, error) {
	o := buildOptions(opts)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: parse PostgreSQL dsn: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = int32(max(8, 4*runtime.GOMAXPROCS(0)))
	}
	configurePostgres(cfg, o)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: connect PostgreSQL: %w", err)
	}
	s := &pgStore{opts: o, pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *pgStore) migrate(ctx context.Context) error {
	ms, err := loadMigrations("postgres")
	if err != nil {
		return err
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: connect PostgreSQL: %w", err)
	}
	defer c.Release()
	// A migration (and the wait for another replica's) may take longer
	// than the statement timeout meant for requests.
	if _, err := c.Exec(ctx, "SET statement_timeout = 0"); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer c.Exec(context.WithoutCancel(ctx), "RESET statement_timeout")
	if _, err := c.Exec(ctx, "SELECT pg_advisory_lock($1)", pgMigrateLock); err != nil {
		return fmt.Errorf("sqlstore: migrate: lock: %w", err)
	}
	defer c.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", pgMigrateLock)

	if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("sqlstore: create schema_migrations: %w", err)
	}
	rows, err := c.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	done := map[int]bool{}
	for _, v := range applied {
		done[int(v)] = true
	}
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			// No arguments: pgx sends it with the simple protocol, which
			// allows several statements in one string.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlstore: migrate %s: %w", m.name, err)
		}
	}
	return nil
}

func scanPGVersion(k fhir.Key, row pgx.Row) (fhir.Version, error) {
	v := fhir.Version{Key: k}
	if err := row.Scan(&v.VersionID, &v.LastUpdated, &v.Deleted, &v.JSON, &v.Sensitivity, &v.Method); err != nil {
		return fhir.Version{}, err
	}
	v.LastUpdated = v.LastUpdated.UTC()
	v.JSON = emptyToNil(v.JSON)
	return v, nil
}

// pgReadErr maps no row to ErrNotFound and wraps anything else.
func pgReadErr(k fhir.Key, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return notFound(k)
	default:
		return fmt.Errorf("sqlstore: read %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
	}
}

// pgLimit turns limit <= 0 into NULL, which PostgreSQL reads as no limit.
func pgLimit(limit int) any {
	if limit <= 0 {
		return nil
	}
	return int64(limit)
}

func (s *pgStore) Read(ctx context.Context, k fhir.Key) (fhir.Version, error) {
	v, err := scanPGVersion(k, s.pool.QueryRow(ctx, pgNewest, k.Tenant, k.Type, k.ID))
	return v, pgReadErr(k, err)
}

func (s *pgStore) VRead(ctx context.Context, k fhir.Key, vid int64) (fhir.Version, error) {
	v, err := scanPGVersion(k, s.pool.QueryRow(ctx, pgVRead, k.Tenant, k.Type, k.ID, vid))
	if errors.Is(err, pgx.ErrNoRows) {
		return fhir.Version{}, fmt.Errorf("sqlstore: %s/%s/%s/_history/%d: %w", k.Tenant, k.Type, k.ID, vid, fhir.ErrNotFound)
	}
	return v, pgReadErr(k, err)
}

func (s *pgStore) History(ctx context.Context, k fhir.Key, limit int) ([]fhir.Version, error) {
	rows, err := s.pool.Query(ctx, pgHistory, k.Tenant, k.Type, k.ID, pgLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: history %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
	}
	vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fhir.Version, error) { return scanPGVersion(k, r) })
	if err != nil {
		return nil, fmt.Errorf("sqlstore: history %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
	}
	if len(vs) == 0 {
		return nil, notFound(k)
	}
	return vs, nil
}

// Outbox pages by seq. Caveat: a bigserial value is taken at Enqueue, not
// at commit, so a message can become visible after one with a higher seq
// (its transaction committed later); a consumer that keeps only the highest
// seq it saw may skip it. SQLite has one writer, so there seq order is commit
// order. A leasing consumer (mark delivered, re-scan undelivered) is immune.
func (s *pgStore) Outbox(ctx context.Context, tenant string, after int64, limit int) ([]fhir.OutboxMessage, error) {
	rows, err := s.pool.Query(ctx, pgOutbox, tenant, after, pgLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: outbox: %w", err)
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fhir.OutboxMessage, error) {
		var m fhir.OutboxMessage
		err := r.Scan(&m.Seq, &m.Tenant, &m.Topic, &m.Key, &m.Payload, &m.Created)
		m.Created = m.Created.UTC()
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: outbox: %w", err)
	}
	return ms, nil
}

// Update runs fn in a READ COMMITTED transaction, retrying with a short
// jittered backoff when it loses a race: ErrVersionConflict, or a unique
// violation (two creators of one new resource), serialization failure or
// deadlock reported by PostgreSQL.
func (s *pgStore) Update(ctx context.Context, fn func(fhir.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	for attempt := 1; ; attempt++ {
		err := s.attempt(ctx, fn)
		if err == nil || !pgRetryable(err) {
			return err
		}
		if attempt == maxAttempts {
			return exhausted(err)
		}
		if berr := backoff(ctx, attempt); berr != nil {
			return fmt.Errorf("sqlstore: retry abandoned: %w", errors.Join(berr, err))
		}
	}
}

func (s *pgStore) attempt(ctx context.Context, fn func(fhir.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: begin: %w", err)
	}
	ptx := &pgTx{s: s, tx: tx}
	ferr := callFn(fn, ptx)
	ptx.done.Store(true)
	if ferr != nil {
		// Roll back even if ctx has ended, so the connection goes back
		// to the pool clean.
		tx.Rollback(context.WithoutCancel(ctx))
		return ferr
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	return nil
}

func pgRetryable(err error) bool {
	if errors.Is(err, fhir.ErrVersionConflict) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505", // unique_violation: a concurrent creator won
			"40001", // serialization_failure
			"40P01": // deadlock_detected
			return true
		}
	}
	return false
}

func (s *pgStore) Close() error {
	s.closed.Store(true)
	s.pool.Close() // idempotent
	return nil
}

type pgTx struct {
	s    *pgStore
	tx   pgx.Tx
	done atomic.Bool
}

func (t *pgTx) check() error {
	if t.done.Load() {
		return errTxDone
	}
	return nil
}

// Read locks the head row first, then reads the newest version with a
// fresh snapshot (READ COMMITTED takes one per statement), so it sees the
// version committed by whoever held the lock before. Both statements go in
// one round trip.
func (t *pgTx) Read(ctx context.Context, k fhir.Key) (fhir.Version, error) {
	if err := t.check(); err != nil {
		return fhir.Version{}, err
	}
	b := &pgx.Batch{}
	b.Queue(pgLockHead, k.Tenant, k.Type, k.ID)
	b.Queue(pgNewest, k.Tenant, k.Type, k.ID)
	br := t.tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return fhir.Version{}, pgReadErr(k, err)
	}
	v, err := scanPGVersion(k, br.QueryRow())
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return v, pgReadErr(k, err)
}

// LookupIdentifier takes a transaction advisory lock on the identifier
// before looking, so a concurrent check-then-create of the same identifier
// waits for this transaction to end and then sees what it created.
func (t *pgTx) LookupIdentifier(ctx context.Context, tenant, typ string, ident fhir.Identifier) ([]string, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock($1)", lockKey("identifier", tenant, typ, ident.System, ident.Value))
	b.Queue(`SELECT id FROM resource_identifiers WHERE tenant = $1 AND type = $2 AND system = $3 AND value = $4 ORDER BY id`,
		tenant, typ, ident.System, ident.Value)
	br := t.tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("sqlstore: lookup identifier: lock: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("sqlstore: lookup identifier: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("sqlstore: lookup identifier: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("sqlstore: lookup identifier: %w", err)
	}
	return ids, nil
}

func (t *pgTx) Put(ctx context.Context, v fhir.Version, idx fhir.Index) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := checkKey(v.Key); err != nil {
		return err
	}
	k := v.Key
	wrap := func(err error) error { return fmt.Errorf("sqlstore: put %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err) }
	var cur int64
	var curSens fhir.Sensitivity
	if err := t.tx.QueryRow(ctx, pgLockHead, k.Tenant, k.Type, k.ID).Scan(&cur, &curSens); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return wrap(err)
	}
	if v.VersionID != cur+1 {
		return conflict(k, v.VersionID, cur+1)
	}
	v.Sensitivity = sensitivityOf(v, curSens)
	lu := v.LastUpdated
	if lu.IsZero() {
		lu = t.s.opts.now()
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO resource_versions (tenant, type, id, version_id, last_updated, deleted, body, sensitivity, method)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, k.Tenant, k.Type, k.ID, v.VersionID, timeMicros(lu), v.Deleted, nonNil(v.JSON), v.Sensitivity, v.Method)
	b.Queue(`INSERT INTO resource_heads (tenant, type, id, version_id, deleted, sensitivity) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (tenant, type, id) DO UPDATE SET version_id = excluded.version_id, deleted = excluded.deleted, sensitivity = excluded.sensitivity`,
		k.Tenant, k.Type, k.ID, v.VersionID, v.Deleted, v.Sensitivity)
	if cur > 0 {
		b.Queue(`DELETE FROM resource_identifiers WHERE tenant = $1 AND type = $2 AND id = $3`, k.Tenant, k.Type, k.ID)
	}
	if !v.Deleted && len(idx.Identifiers) > 0 {
		systems := make([]string, len(idx.Identifiers))
		values := make([]string, len(idx.Identifiers))
		for i, id := range idx.Identifiers {
			systems[i], values[i] = id.System, id.Value
		}
		b.Queue(`INSERT INTO resource_identifiers (tenant, type, id, system, value)
			SELECT $1, $2, $3, s, v FROM unnest($4::text[], $5::text[]) AS u(s, v)
			ON CONFLICT DO NOTHING`, k.Tenant, k.Type, k.ID, systems, values)
	}
	queueIndex(b, k, v, lu, cur > 0, idx)
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return wrap(err)
	}
	return nil
}

// LockCriteria takes a transaction advisory lock on the tenant and type.
// READ COMMITTED gives each statement a fresh snapshot, so the search that
// follows the lock sees whatever the previous holder committed.
func (t *pgTx) LockCriteria(ctx context.Context, tenant, typ string) error {
	if err := t.check(); err != nil {
		return err
	}
	if _, err := t.tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey("criteria", tenant, typ)); err != nil {
		return fmt.Errorf("sqlstore: lock conditional criteria: %w", err)
	}
	return nil
}

func (t *pgTx) Enqueue(ctx context.Context, m fhir.OutboxMessage) error {
	if err := t.check(); err != nil {
		return err
	}
	if m.Tenant == "" {
		return errors.New("sqlstore: enqueue: empty tenant")
	}
	created := m.Created
	if created.IsZero() {
		created = t.s.opts.now()
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO outbox (tenant, topic, key, payload, created) VALUES ($1, $2, $3, $4, $5)`,
		m.Tenant, m.Topic, m.Key, nonNil(m.Payload), timeMicros(created)); err != nil {
		return fmt.Errorf("sqlstore: enqueue: %w", err)
	}
	return nil
}

// compile-time checks
var (
	_ fhir.Store = (*pgStore)(nil)
	_ fhir.Tx    = (*pgTx)(nil)
	_ fhir.Store = (*sqliteStore)(nil)
	_ fhir.Tx    = (*sqliteTx)(nil)
)
