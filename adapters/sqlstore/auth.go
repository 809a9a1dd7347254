package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/auth"
)

// The gateway's own authorization (issue 14): clients, signing keys and
// used assertion ids, in plain tables (migration 0006). On SQLite every
// write goes through the single writer (Update), like every other write.

var (
	_ auth.Store           = (*sqliteStore)(nil)
	_ auth.Store           = (*pgStore)(nil)
	_ auth.GenerationStore = (*sqliteStore)(nil)
	_ auth.GenerationStore = (*pgStore)(nil)
)

const authClientCols = `id, tenant, jwks, jwks_url, scopes, disabled, recipient, created`

// ---- SQLite ----

func (s *sqliteStore) AuthClient(ctx context.Context, id string) (auth.ClientRow, error) {
	c, err := scanSQLiteClient(s.rdb.QueryRowContext(ctx, `SELECT `+authClientCols+` FROM auth_clients WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return auth.ClientRow{}, fmt.Errorf("sqlstore: client %q: %w", id, auth.ErrNoClient)
	}
	if err != nil {
		return auth.ClientRow{}, fmt.Errorf("sqlstore: read client: %w", err)
	}
	return c, nil
}

// AuthGeneration implements auth.GenerationStore: the number every change
// to auth_clients counts up (migration 0010's triggers).
//
// ctx is not passed to the driver: a context that can end makes it start a
// goroutine per query to interrupt it, a fifth of this read's cost, and a
// read of one row in WAL mode never waits for a lock.
func (s *sqliteStore) AuthGeneration(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var g int64
	if err := s.r.authGen.QueryRowContext(context.Background()).Scan(&g); err != nil {
		return 0, fmt.Errorf("sqlstore: read the clients' generation: %w", err)
	}
	return g, nil
}

func scanSQLiteClient(row scanner) (auth.ClientRow, error) {
	var c auth.ClientRow
	var disabled, created int64
	if err := row.Scan(&c.ID, &c.Tenant, &c.JWKS, &c.JWKSURL, &c.Scopes, &disabled, &c.Recipient, &created); err != nil {
		return c, err
	}
	c.Disabled, c.Created = disabled != 0, time.UnixMicro(created).UTC()
	return c, nil
}

func (s *sqliteStore) AuthClients(ctx context.Context) ([]auth.ClientRow, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+authClientCols+` FROM auth_clients ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list clients: %w", err)
	}
	defer rows.Close()
	var out []auth.ClientRow
	for rows.Next() {
		c, err := scanSQLiteClient(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: list clients: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// sqliteExec runs one statement on the writer, in its own transaction.
func (s *sqliteStore) sqliteExec(ctx context.Context, check func(sql.Result) error, q string, args ...any) error {
	return s.Update(ctx, func(tx fhir.Tx) error {
		t := tx.(*sqliteTx)
		if err := t.check(ctx); err != nil {
			return err
		}
		res, err := t.s.wconn.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if check != nil {
			return check(res)
		}
		return nil
	})
}

func (s *sqliteStore) PutAuthClient(ctx context.Context, c auth.ClientRow) error {
	if c.Created.IsZero() {
		c.Created = s.opts.now()
	}
	err := s.sqliteExec(ctx, nil, `INSERT INTO auth_clients (`+authClientCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, jwks = excluded.jwks, jwks_url = excluded.jwks_url,
		scopes = excluded.scopes, disabled = excluded.disabled, recipient = excluded.recipient`,
		c.ID, c.Tenant, c.JWKS, c.JWKSURL, c.Scopes, boolInt(c.Disabled), c.Recipient, c.Created.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlstore: put client: %w", err)
	}
	return nil
}

func (s *sqliteStore) AuthKeys(ctx context.Context) ([]auth.KeyRow, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT kid, alg, pem, created, retired FROM auth_keys ORDER BY created DESC, kid`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list keys: %w", err)
	}
	defer rows.Close()
	var out []auth.KeyRow
	for rows.Next() {
		var k auth.KeyRow
		var created, retired int64
		if err := rows.Scan(&k.KID, &k.Alg, &k.PEM, &created, &retired); err != nil {
			return nil, fmt.Errorf("sqlstore: list keys: %w", err)
		}
		k.Created = time.UnixMicro(created).UTC()
		if retired != 0 {
			k.Retired = time.UnixMicro(retired).UTC()
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *sqliteStore) PutAuthKey(ctx context.Context, k auth.KeyRow) error {
	if k.Created.IsZero() {
		k.Created = s.opts.now()
	}
	var retired int64
	if !k.Retired.IsZero() {
		retired = k.Retired.UnixMicro()
	}
	err := s.sqliteExec(ctx, nil, `INSERT INTO auth_keys (kid, alg, pem, created, retired) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (kid) DO UPDATE SET retired = excluded.retired`, k.KID, k.Alg, k.PEM, k.Created.UnixMicro(), retired)
	if err != nil {
		return fmt.Errorf("sqlstore: put key: %w", err)
	}
	return nil
}

func (s *sqliteStore) RememberJTI(ctx context.Context, id string, until time.Time) error {
	now := s.opts.now().UnixMicro()
	err := s.sqliteExec(ctx, func(res sql.Result) error {
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return auth.ErrJTIUsed
		}
		return nil
	}, `INSERT INTO auth_jti (id, until) VALUES (?, ?)
		ON CONFLICT (id) DO UPDATE SET until = excluded.until WHERE auth_jti.until <= ?`, id, until.UnixMicro(), now)
	if errors.Is(err, auth.ErrJTIUsed) {
		return err
	}
	if err != nil {
		return fmt.Errorf("sqlstore: remember jti: %w", err)
	}
	// Forget what has expired, now and then (cheap: by index).
	if now%64 == 0 {
		_ = s.sqliteExec(ctx, nil, `DELETE FROM auth_jti WHERE until <= ?`, now)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ---- PostgreSQL ----

func (s *pgStore) AuthClient(ctx context.Context, id string) (auth.ClientRow, error) {
	var c auth.ClientRow
	err := s.pool.QueryRow(ctx, `SELECT `+authClientCols+` FROM auth_clients WHERE id = $1`, id).
		Scan(&c.ID, &c.Tenant, &c.JWKS, &c.JWKSURL, &c.Scopes, &c.Disabled, &c.Recipient, &c.Created)
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.ClientRow{}, fmt.Errorf("sqlstore: client %q: %w", id, auth.ErrNoClient)
	}
	if err != nil {
		return auth.ClientRow{}, fmt.Errorf("sqlstore: read client: %w", err)
	}
	c.Created = c.Created.UTC()
	return c, nil
}

// AuthGeneration implements auth.GenerationStore (migration 0010).
func (s *pgStore) AuthGeneration(ctx context.Context) (int64, error) {
	var g int64
	if err := s.pool.QueryRow(ctx, sqlAuthGeneration).Scan(&g); err != nil {
		return 0, fmt.Errorf("sqlstore: read the clients' generation: %w", err)
	}
	return g, nil
}

const sqlAuthGeneration = `SELECT gen FROM auth_generation WHERE id = 1`

func (s *pgStore) AuthClients(ctx context.Context) ([]auth.ClientRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+authClientCols+` FROM auth_clients ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list clients: %w", err)
	}
	defer rows.Close()
	var out []auth.ClientRow
	for rows.Next() {
		var c auth.ClientRow
		if err := rows.Scan(&c.ID, &c.Tenant, &c.JWKS, &c.JWKSURL, &c.Scopes, &c.Disabled, &c.Recipient, &c.Created); err != nil {
			return nil, fmt.Errorf("sqlstore: list clients: %w", err)
		}
		c.Created = c.Created.UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *pgStore) PutAuthClient(ctx context.Context, c auth.ClientRow) error {
	if c.Created.IsZero() {
		c.Created = s.opts.now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO auth_clients (`+authClientCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, jwks = excluded.jwks, jwks_url = excluded.jwks_url,
		scopes = excluded.scopes, disabled = excluded.disabled, recipient = excluded.recipient`,
		c.ID, c.Tenant, c.JWKS, c.JWKSURL, c.Scopes, c.Disabled, c.Recipient, timeMicros(c.Created))
	if err != nil {
		return fmt.Errorf("sqlstore: put client: %w", err)
	}
	return nil
}

func (s *pgStore) AuthKeys(ctx context.Context) ([]auth.KeyRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT kid, alg, pem, created, retired FROM auth_keys ORDER BY created DESC, kid`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list keys: %w", err)
	}
	defer rows.Close()
	var out []auth.KeyRow
	for rows.Next() {
		var k auth.KeyRow
		var retired *time.Time
		if err := rows.Scan(&k.KID, &k.Alg, &k.PEM, &k.Created, &retired); err != nil {
			return nil, fmt.Errorf("sqlstore: list keys: %w", err)
		}
		k.Created = k.Created.UTC()
		if retired != nil {
			k.Retired = retired.UTC()
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *pgStore) PutAuthKey(ctx context.Context, k auth.KeyRow) error {
	if k.Created.IsZero() {
		k.Created = s.opts.now()
	}
	var retired *time.Time
	if !k.Retired.IsZero() {
		t := timeMicros(k.Retired)
		retired = &t
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO auth_keys (kid, alg, pem, created, retired) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (kid) DO UPDATE SET retired = excluded.retired`, k.KID, k.Alg, k.PEM, timeMicros(k.Created), retired)
	if err != nil {
		return fmt.Errorf("sqlstore: put key: %w", err)
	}
	return nil
}

func (s *pgStore) RememberJTI(ctx context.Context, id string, until time.Time) error {
	now := timeMicros(s.opts.now())
	tag, err := s.pool.Exec(ctx, `INSERT INTO auth_jti (id, until) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET until = excluded.until WHERE auth_jti.until <= $3`, []byte(id), timeMicros(until), now)
	if err != nil {
		return fmt.Errorf("sqlstore: remember jti: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return auth.ErrJTIUsed
	}
	if now.UnixMicro()%64 == 0 {
		_, _ = s.pool.Exec(ctx, `DELETE FROM auth_jti WHERE until <= $1`, now)
	}
	return nil
}
