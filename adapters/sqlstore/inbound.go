package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore"
	"github.com/kapbridge/kapbridge/fhir"
)

// The inbound state of EHR sync (issue 11, migration 0007): both stores
// implement inboundstore.Store over plain rows. The writes are small
// upserts outside the FHIR transactions: what they record is taken again
// harmlessly if a crash comes between an apply and its mark (applying an
// unchanged record writes nothing).

var (
	_ inboundstore.Store = (*sqliteStore)(nil)
	_ inboundstore.Store = (*pgStore)(nil)
)

const (
	inboundConflictCols = `id, connection, tenant, remote, local, field, owner, practice, ehr, resolution, at`
	inboundUpsertCursor = `INSERT INTO ehr_inbound_cursors (connection, tenant, patient, type, since, polled) VALUES (%s)
		ON CONFLICT (connection, tenant, patient, type) DO UPDATE SET since = excluded.since, polled = excluded.polled`
	inboundUpsertTaken = `INSERT INTO ehr_inbound_taken (connection, type, remote_id, version_id, hash, outcome, at, reason) VALUES (%s)
		ON CONFLICT (connection, type, remote_id) DO UPDATE SET version_id = excluded.version_id, hash = excluded.hash,
		outcome = excluded.outcome, at = excluded.at, reason = excluded.reason`
	// inboundUnused: migration 0011 added reason.
	inboundUnused = `SELECT connection, type, remote_id, version_id, hash, outcome, at, reason FROM ehr_inbound_taken
		WHERE (%s = '' OR connection = %s) AND outcome IN ('kept', 'rejected') ORDER BY connection, type, remote_id`
	inboundInsertConflict = `INSERT INTO ehr_inbound_conflicts (connection, tenant, remote, local, field, owner, practice, ehr, resolution, at)
		VALUES (%s) ON CONFLICT (connection, tenant, remote, field) DO NOTHING`
)

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func scanConflict(row scanner) (inboundstore.Conflict, error) {
	var c inboundstore.Conflict
	var at int64
	err := row.Scan(&c.ID, &c.Connection, &c.Tenant, &c.Remote, &c.Local, &c.Field, &c.Owner, &c.Practice, &c.EHR, &c.Resolution, &at)
	c.At = fromMicros(at)
	return c, err
}

// SQLite: reads from the read pool, writes through Update (the single
// writer).

func (s *sqliteStore) InboundCursor(ctx context.Context, connection, tenant, patient, typ string) (inboundstore.Cursor, bool, error) {
	c := inboundstore.Cursor{Connection: connection, Tenant: tenant, Patient: patient, Type: typ}
	var since, polled int64
	err := s.rdb.QueryRowContext(ctx, `SELECT since, polled FROM ehr_inbound_cursors WHERE connection = ? AND tenant = ? AND patient = ? AND type = ?`,
		connection, tenant, patient, typ).Scan(&since, &polled)
	if errors.Is(err, sql.ErrNoRows) {
		return inboundstore.Cursor{}, false, nil
	}
	if err != nil {
		return inboundstore.Cursor{}, false, fmt.Errorf("sqlstore: inbound cursor: %w", err)
	}
	c.Since, c.Polled = fromMicros(since), fromMicros(polled)
	return c, true, nil
}

// sqliteOnWriter runs one statement on the writer connection, in a
// transaction of its own (Update batches it with others).
func (s *sqliteStore) sqliteOnWriter(ctx context.Context, fn func(c *sql.Conn) error) error {
	return s.Update(ctx, func(ftx fhir.Tx) error {
		tx := ftx.(*sqliteTx)
		if err := tx.check(ctx); err != nil {
			return err
		}
		return fn(tx.s.wconn)
	})
}

func (s *sqliteStore) PutInboundCursor(ctx context.Context, c inboundstore.Cursor) error {
	if err := inboundstore.Check(c); err != nil {
		return err
	}
	err := s.sqliteOnWriter(ctx, func(conn *sql.Conn) error {
		_, err := conn.ExecContext(context.Background(), fmt.Sprintf(inboundUpsertCursor, "?, ?, ?, ?, ?, ?"),
			c.Connection, c.Tenant, c.Patient, c.Type, micros(c.Since), micros(c.Polled))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: put inbound cursor: %w", err)
	}
	return nil
}

func (s *sqliteStore) InboundTaken(ctx context.Context, connection, typ, remoteID string) (inboundstore.Taken, bool, error) {
	t := inboundstore.Taken{Connection: connection, Type: typ, RemoteID: remoteID}
	var at int64
	err := s.rdb.QueryRowContext(ctx, `SELECT version_id, hash, outcome, at, reason FROM ehr_inbound_taken WHERE connection = ? AND type = ? AND remote_id = ?`,
		connection, typ, remoteID).Scan(&t.VersionID, &t.Hash, &t.Outcome, &at, &t.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return inboundstore.Taken{}, false, nil
	}
	if err != nil {
		return inboundstore.Taken{}, false, fmt.Errorf("sqlstore: inbound taken: %w", err)
	}
	t.At = fromMicros(at)
	return t, true, nil
}

func (s *sqliteStore) PutInboundTaken(ctx context.Context, t inboundstore.Taken) error {
	if err := inboundstore.Check(t); err != nil {
		return err
	}
	err := s.sqliteOnWriter(ctx, func(conn *sql.Conn) error {
		_, err := conn.ExecContext(context.Background(), fmt.Sprintf(inboundUpsertTaken, "?, ?, ?, ?, ?, ?, ?, ?"),
			t.Connection, t.Type, t.RemoteID, t.VersionID, t.Hash, t.Outcome, micros(t.At), t.Reason)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: put inbound taken: %w", err)
	}
	return nil
}

func (s *sqliteStore) AddInboundConflict(ctx context.Context, c inboundstore.Conflict) (inboundstore.Conflict, error) {
	if err := inboundstore.Check(c); err != nil {
		return inboundstore.Conflict{}, err
	}
	var out inboundstore.Conflict
	err := s.sqliteOnWriter(ctx, func(conn *sql.Conn) error {
		bg := context.Background()
		if _, err := conn.ExecContext(bg, fmt.Sprintf(inboundInsertConflict, "?, ?, ?, ?, ?, ?, ?, ?, ?, ?"),
			c.Connection, c.Tenant, c.Remote, c.Local, c.Field, c.Owner, c.Practice, c.EHR, c.Resolution, s.opts.now().UnixMicro()); err != nil {
			return err
		}
		var err error
		out, err = scanConflict(conn.QueryRowContext(bg, `SELECT `+inboundConflictCols+` FROM ehr_inbound_conflicts
			WHERE connection = ? AND tenant = ? AND remote = ? AND field = ?`, c.Connection, c.Tenant, c.Remote, c.Field))
		return err
	})
	if err != nil {
		return inboundstore.Conflict{}, fmt.Errorf("sqlstore: add inbound conflict: %w", err)
	}
	return out, nil
}

func (s *sqliteStore) InboundConflicts(ctx context.Context, connection string) ([]inboundstore.Conflict, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+inboundConflictCols+` FROM ehr_inbound_conflicts
		WHERE ? = '' OR connection = ? ORDER BY id`, connection, connection)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: inbound conflicts: %w", err)
	}
	defer rows.Close()
	var out []inboundstore.Conflict
	for rows.Next() {
		c, err := scanConflict(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: inbound conflicts: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: inbound conflicts: %w", err)
	}
	return out, nil
}

// PostgreSQL: every statement on the pool, each its own transaction.

func (s *pgStore) InboundCursor(ctx context.Context, connection, tenant, patient, typ string) (inboundstore.Cursor, bool, error) {
	c := inboundstore.Cursor{Connection: connection, Tenant: tenant, Patient: patient, Type: typ}
	var since, polled int64
	err := s.pool.QueryRow(ctx, `SELECT since, polled FROM ehr_inbound_cursors WHERE connection = $1 AND tenant = $2 AND patient = $3 AND type = $4`,
		connection, tenant, patient, typ).Scan(&since, &polled)
	if errors.Is(err, pgx.ErrNoRows) {
		return inboundstore.Cursor{}, false, nil
	}
	if err != nil {
		return inboundstore.Cursor{}, false, fmt.Errorf("sqlstore: inbound cursor: %w", err)
	}
	c.Since, c.Polled = fromMicros(since), fromMicros(polled)
	return c, true, nil
}

func (s *pgStore) PutInboundCursor(ctx context.Context, c inboundstore.Cursor) error {
	if err := inboundstore.Check(c); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, fmt.Sprintf(inboundUpsertCursor, "$1, $2, $3, $4, $5, $6"),
		c.Connection, c.Tenant, c.Patient, c.Type, micros(c.Since), micros(c.Polled)); err != nil {
		return fmt.Errorf("sqlstore: put inbound cursor: %w", err)
	}
	return nil
}

func (s *pgStore) InboundTaken(ctx context.Context, connection, typ, remoteID string) (inboundstore.Taken, bool, error) {
	t := inboundstore.Taken{Connection: connection, Type: typ, RemoteID: remoteID}
	var at int64
	err := s.pool.QueryRow(ctx, `SELECT version_id, hash, outcome, at, reason FROM ehr_inbound_taken WHERE connection = $1 AND type = $2 AND remote_id = $3`,
		connection, typ, remoteID).Scan(&t.VersionID, &t.Hash, &t.Outcome, &at, &t.Reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return inboundstore.Taken{}, false, nil
	}
	if err != nil {
		return inboundstore.Taken{}, false, fmt.Errorf("sqlstore: inbound taken: %w", err)
	}
	t.At = fromMicros(at)
	return t, true, nil
}

func (s *pgStore) PutInboundTaken(ctx context.Context, t inboundstore.Taken) error {
	if err := inboundstore.Check(t); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, fmt.Sprintf(inboundUpsertTaken, "$1, $2, $3, $4, $5, $6, $7, $8"),
		t.Connection, t.Type, t.RemoteID, t.VersionID, t.Hash, t.Outcome, micros(t.At), t.Reason); err != nil {
		return fmt.Errorf("sqlstore: put inbound taken: %w", err)
	}
	return nil
}

func (s *pgStore) AddInboundConflict(ctx context.Context, c inboundstore.Conflict) (inboundstore.Conflict, error) {
	if err := inboundstore.Check(c); err != nil {
		return inboundstore.Conflict{}, err
	}
	if _, err := s.pool.Exec(ctx, fmt.Sprintf(inboundInsertConflict, "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10"),
		c.Connection, c.Tenant, c.Remote, c.Local, c.Field, c.Owner, c.Practice, c.EHR, c.Resolution, s.opts.now().UnixMicro()); err != nil {
		return inboundstore.Conflict{}, fmt.Errorf("sqlstore: add inbound conflict: %w", err)
	}
	out, err := scanConflict(s.pool.QueryRow(ctx, `SELECT `+inboundConflictCols+` FROM ehr_inbound_conflicts
		WHERE connection = $1 AND tenant = $2 AND remote = $3 AND field = $4`, c.Connection, c.Tenant, c.Remote, c.Field))
	if err != nil {
		return inboundstore.Conflict{}, fmt.Errorf("sqlstore: add inbound conflict: %w", err)
	}
	return out, nil
}

func (s *pgStore) InboundConflicts(ctx context.Context, connection string) ([]inboundstore.Conflict, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+inboundConflictCols+` FROM ehr_inbound_conflicts
		WHERE $1 = '' OR connection = $1 ORDER BY id`, connection)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: inbound conflicts: %w", err)
	}
	defer rows.Close()
	var out []inboundstore.Conflict
	for rows.Next() {
		c, err := scanConflict(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: inbound conflicts: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: inbound conflicts: %w", err)
	}
	return out, nil
}

func scanUnused(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}) ([]inboundstore.Taken, error) {
	var out []inboundstore.Taken
	for rows.Next() {
		var t inboundstore.Taken
		var at int64
		if err := rows.Scan(&t.Connection, &t.Type, &t.RemoteID, &t.VersionID, &t.Hash, &t.Outcome, &at, &t.Reason); err != nil {
			return nil, fmt.Errorf("sqlstore: inbound unused: %w", err)
		}
		t.At = fromMicros(at)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: inbound unused: %w", err)
	}
	return out, nil
}

func (s *sqliteStore) InboundUnused(ctx context.Context, connection string) ([]inboundstore.Taken, error) {
	rows, err := s.rdb.QueryContext(ctx, fmt.Sprintf(inboundUnused, "?", "?"), connection, connection)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: inbound unused: %w", err)
	}
	defer rows.Close()
	return scanUnused(rows)
}

func (s *pgStore) InboundUnused(ctx context.Context, connection string) ([]inboundstore.Taken, error) {
	rows, err := s.pool.Query(ctx, fmt.Sprintf(inboundUnused, "$1::text", "$1"), connection)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: inbound unused: %w", err)
	}
	defer rows.Close()
	return scanUnused(rows)
}
