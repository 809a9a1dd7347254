package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
)

// EHR sync storage (issue 11): both stores implement syncstore.Store on
// the tables of migration 0005. The queries are written once, with ?
// placeholders (numbered for PostgreSQL) and times passed through the
// dialect (Unix microseconds on SQLite, timestamptz on PostgreSQL).
// SQLite writes run on the store's writer goroutine (inside Update, so
// they batch with resource writes); PostgreSQL leases rows with FOR
// UPDATE SKIP LOCKED.

var (
	_ syncstore.Store       = (*sqliteStore)(nil)
	_ syncstore.Store       = (*pgStore)(nil)
	_ syncstore.LinkBatcher = (*sqliteStore)(nil)
	_ syncstore.LinkBatcher = (*pgStore)(nil)
)

// syncQ is a connection or transaction of either dialect.
type syncQ interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	query(ctx context.Context, q string, args ...any) (syncRows, error)
	// at converts a time into the dialect's parameter.
	at(t time.Time) any
	// timeType is the SQL type of a time column.
	timeType() string
	// skipLocked is the row-lock clause of a lease query.
	skipLocked() string
}

type syncRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// syncTime scans a time column of either dialect.
type syncTime struct{ t *time.Time }

func (s syncTime) Scan(src any) error {
	switch v := src.(type) {
	case int64:
		if v == 0 {
			*s.t = time.Time{}
		} else {
			*s.t = time.UnixMicro(v).UTC()
		}
	case time.Time:
		if v.Unix() == 0 {
			*s.t = time.Time{}
		} else {
			*s.t = v.UTC()
		}
	case nil:
		*s.t = time.Time{}
	default:
		return fmt.Errorf("sqlstore: time column of type %T", src)
	}
	return nil
}

// sqlite side

type sqliteQ struct {
	c interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	}
	// stmts caches c's prepared statements by SQL text (nil: none).
	stmts *syncStmtCache
}

// syncStmtCache holds the prepared statements of the sync queries of one
// connection or pool. SQLite's parse of a statement cost more than running
// it: a drain's fan-out, leases, link reads and results spent half their
// time in the parser (yy_reduce) before these were kept.
type syncStmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// stmt returns the prepared q, or nil when the cache is full (then q runs
// unprepared). Statements built with a variable number of placeholders
// come in few shapes (chunks), so the bound is not reached in practice.
func (c *syncStmtCache) stmt(ctx context.Context, db interface {
	PrepareContext(context.Context, string) (*sql.Stmt, error)
}, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[q]; st != nil {
		return st, nil
	}
	if len(c.m) >= maxCachedStmts {
		return nil, nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st, nil
}

func (c *syncStmtCache) close() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errs
}

func (q sqliteQ) exec(ctx context.Context, s string, args ...any) (int64, error) {
	var (
		r   sql.Result
		err error
	)
	if st, perr := q.prepared(ctx, s); perr != nil {
		return 0, perr
	} else if st != nil {
		r, err = st.ExecContext(ctx, args...)
	} else {
		r, err = q.c.ExecContext(ctx, s, args...)
	}
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

func (q sqliteQ) prepared(ctx context.Context, s string) (*sql.Stmt, error) {
	if q.stmts == nil {
		return nil, nil
	}
	return q.stmts.stmt(ctx, q.c, s)
}

type syncSQLRows struct{ *sql.Rows }

func (r syncSQLRows) Close() { r.Rows.Close() }

func (q sqliteQ) query(ctx context.Context, s string, args ...any) (syncRows, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if st, perr := q.prepared(ctx, s); perr != nil {
		return nil, perr
	} else if st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = q.c.QueryContext(ctx, s, args...)
	}
	if err != nil {
		return nil, err
	}
	return syncSQLRows{rows}, nil
}

func (sqliteQ) at(t time.Time) any {
	if t.IsZero() {
		return int64(0)
	}
	return t.UnixMicro()
}

func (sqliteQ) skipLocked() string { return "" }

func (sqliteQ) timeType() string { return "INTEGER" }

func (s *sqliteStore) syncRead() syncQ { return sqliteQ{s.rdb, &s.syncReadStmts} }

// syncWrite runs fn on the writer goroutine in a transaction; its
// statements use a background context (see sqliteTx).
func (s *sqliteStore) syncWrite(ctx context.Context, fn func(ctx context.Context, q syncQ) error) error {
	return s.Update(ctx, func(fhir.Tx) error {
		return fn(context.Background(), sqliteQ{s.wconn, &s.syncWriteStmts})
	})
}

// postgres side

type pgQ struct {
	c interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
		Query(context.Context, string, ...any) (pgx.Rows, error)
	}
}

// numbered turns ? placeholders into $1, $2 ...
func numbered(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (q pgQ) exec(ctx context.Context, s string, args ...any) (int64, error) {
	tag, err := q.c.Exec(ctx, numbered(s), args...)
	return tag.RowsAffected(), err
}

type pgRows struct{ pgx.Rows }

func (q pgQ) query(ctx context.Context, s string, args ...any) (syncRows, error) {
	rows, err := q.c.Query(ctx, numbered(s), args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (pgQ) at(t time.Time) any {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return syncstore.Micros(t)
}

func (pgQ) skipLocked() string { return " FOR UPDATE SKIP LOCKED" }

func (pgQ) timeType() string { return "timestamptz" }

func (s *pgStore) syncRead() syncQ { return pgQ{s.pool} }

func (s *pgStore) syncWrite(ctx context.Context, fn func(ctx context.Context, q syncQ) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: begin: %w", err)
	}
	if err := fn(ctx, pgQ{tx}); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	return nil
}

// The shared implementation: syncOps over a dialect's read and write.
type syncOps struct {
	read  func() syncQ
	write func(ctx context.Context, fn func(ctx context.Context, q syncQ) error) error
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

const connCols = `name, tenant, base_url, token_url, client_id, key_file, key_pem, scopes, practice, mrn_system, recipient, created, client_secret`

func scanConn(r syncRows) (syncstore.Connection, error) {
	var c syncstore.Connection
	err := r.Scan(&c.Name, &c.Tenant, &c.BaseURL, &c.TokenURL, &c.ClientID, &c.KeyFile, &c.Key, &c.Scopes, &c.Practice,
		&c.MRNSystem, &c.Recipient, syncTime{&c.Created}, &c.ClientSecret)
	if len(c.Key) == 0 {
		c.Key = nil
	}
	if len(c.ClientSecret) == 0 {
		c.ClientSecret = nil
	}
	return c, err
}

func collect[T any](rows syncRows, err error, scan func(syncRows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func one[T any](rows syncRows, err error, scan func(syncRows) (T, error)) (T, error) {
	all, err := collect(rows, err, scan)
	var zero T
	if err != nil {
		return zero, err
	}
	if len(all) == 0 {
		return zero, syncstore.ErrNotFound
	}
	return all[0], nil
}

func syncErr(op string, err error) error {
	if err == nil || errors.Is(err, syncstore.ErrNotFound) || errors.Is(err, syncstore.ErrExists) || errors.Is(err, syncstore.ErrLeaseLost) {
		return err
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}

func (o syncOps) AddConnection(ctx context.Context, c syncstore.Connection) error {
	err := o.write(ctx, func(ctx context.Context, q syncQ) error {
		_, err := q.exec(ctx, `INSERT INTO ehr_connections (`+connCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.Name, c.Tenant, c.BaseURL, c.TokenURL, c.ClientID, c.KeyFile, nonNil(c.Key), c.Scopes, c.Practice, c.MRNSystem, c.Recipient, q.at(c.Created),
			nonNil(c.ClientSecret))
		if isUnique(err) {
			return syncstore.ErrExists
		}
		return err
	})
	return syncErr("add connection", err)
}

func (o syncOps) Connection(ctx context.Context, name string) (syncstore.Connection, error) {
	q := o.read()
	rows, err := q.query(ctx, `SELECT `+connCols+` FROM ehr_connections WHERE name = ?`, name)
	c, err := one(rows, err, scanConn)
	return c, syncErr("connection", err)
}

func (o syncOps) Connections(ctx context.Context) ([]syncstore.Connection, error) {
	q := o.read()
	rows, err := q.query(ctx, `SELECT `+connCols+` FROM ehr_connections ORDER BY name`)
	cs, err := collect(rows, err, scanConn)
	return cs, syncErr("connections", err)
}

func (o syncOps) RemoveConnection(ctx context.Context, name string) error {
	err := o.write(ctx, func(ctx context.Context, q syncQ) error {
		n, err := q.exec(ctx, `DELETE FROM ehr_connections WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n == 0 {
			return syncstore.ErrNotFound
		}
		for _, t := range []string{"ehr_deliveries", "ehr_links", "ehr_patient_links"} {
			if _, err := q.exec(ctx, `DELETE FROM `+t+` WHERE connection = ?`, name); err != nil {
				return err
			}
		}
		return nil
	})
	return syncErr("remove connection", err)
}

// Fanout is set-based: the messages taken are marked in IN lists, and
// the deliveries they make are upserted many rows to a statement, one row
// per resource and connection, counting its messages into gen (Finish
// only compares gen). A first look on the read pool skips the writer when
// nothing waits (the outbound worker asks before every round).
func (o syncOps) Fanout(ctx context.Context, tenant string, limit int, now time.Time) (int, error) {
	if limit <= 0 {
		limit = 1000
	}
	rq := o.read()
	rows, err := rq.query(ctx, `SELECT seq FROM outbox WHERE tenant = ? AND topic = '`+syncstore.TopicChange+`' AND ehr_fanned = `+falseLit(rq)+` ORDER BY seq LIMIT 1`, tenant)
	if waiting, err := collect(rows, err, func(r syncRows) (int64, error) { var n int64; return n, r.Scan(&n) }); err != nil {
		return 0, syncErr("fanout", err)
	} else if len(waiting) == 0 {
		return 0, nil
	}
	var taken int
	err = o.write(ctx, func(ctx context.Context, q syncQ) error {
		taken = 0
		rows, err := q.query(ctx, `SELECT name FROM ehr_connections WHERE tenant = ?`, tenant)
		conns, err := collect(rows, err, func(r syncRows) (string, error) { var s string; return s, r.Scan(&s) })
		if err != nil || len(conns) == 0 {
			return err
		}
		rows, err = q.query(ctx, `SELECT seq, key, payload FROM outbox WHERE tenant = ? AND topic = '`+syncstore.TopicChange+`' AND ehr_fanned = `+
			falseLit(q)+` ORDER BY seq LIMIT ?`+q.skipLocked(), tenant, limit)
		type msg struct {
			seq     int64
			key     string
			payload []byte
		}
		msgs, err := collect(rows, err, func(r syncRows) (msg, error) { var m msg; return m, r.Scan(&m.seq, &m.key, &m.payload) })
		if err != nil || len(msgs) == 0 {
			return err
		}
		seqs := make([]any, len(msgs))
		for i, m := range msgs {
			seqs[i] = m.seq
		}
		for rest := seqs; len(rest) > 0; {
			n := chunkOf(len(rest))
			if _, err := q.exec(ctx, `UPDATE outbox SET ehr_fanned = `+trueLit(q)+` WHERE seq IN (?`+strings.Repeat(", ?", n-1)+`)`, rest[:n]...); err != nil {
				return err
			}
			rest = rest[n:]
		}
		// The deliveries, in the order their resources first changed.
		type target struct{ conn, typ, id string }
		gens := map[target]int{}
		var order []target
		for _, m := range msgs {
			typ, id, ok := syncstore.SplitRef(m.key)
			if !ok {
				continue
			}
			from := syncstore.OriginOf(m.payload)
			for _, c := range conns {
				if c == from {
					continue // taken in from that EHR: it holds it already
				}
				t := target{c, typ, id}
				if gens[t] == 0 {
					order = append(order, t)
				}
				gens[t]++
			}
		}
		for rest := order; len(rest) > 0; {
			n := chunkOf(len(rest))
			args := make([]any, 0, 7*n)
			for _, t := range rest[:n] {
				args = append(args, t.conn, tenant, t.typ, t.id, gens[t], q.at(now), q.at(now))
			}
			if _, err := q.exec(ctx, `INSERT INTO ehr_deliveries (connection, tenant, type, resource_id, gen, state, attempts, next_at, updated)
				VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`+strings.Repeat(`, (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`, n-1)+`
				ON CONFLICT (connection, tenant, type, resource_id) DO UPDATE SET gen = ehr_deliveries.gen + excluded.gen,
				state = 'pending', attempts = 0, next_at = excluded.next_at, updated = excluded.updated`, args...); err != nil {
				return err
			}
			rest = rest[n:]
		}
		taken = len(msgs)
		return nil
	})
	return taken, syncErr("fanout", err)
}

// chunkOf is how many of n items the next statement takes: the largest
// power of two up to 64 that is not more than n, so that the statements
// come in seven shapes (each prepared once).
func chunkOf(n int) int {
	c := 64
	for c > n {
		c /= 2
	}
	return c
}

func falseLit(q syncQ) string {
	if _, ok := q.(pgQ); ok {
		return "false"
	}
	return "0"
}

func trueLit(q syncQ) string {
	if _, ok := q.(pgQ); ok {
		return "true"
	}
	return "1"
}

const deliveryCols = `id, connection, tenant, type, resource_id, gen, state, attempts, leases, next_at, lease_owner, lease_until, last_error, outcome, updated`

func scanDelivery(r syncRows) (syncstore.Delivery, error) {
	var d syncstore.Delivery
	err := r.Scan(&d.ID, &d.Connection, &d.Tenant, &d.Type, &d.ResourceID, &d.Gen, &d.State, &d.Attempts, &d.Leases, syncTime{&d.NextAt},
		&d.LeaseOwner, syncTime{&d.LeaseUntil}, &d.LastError, &d.Outcome, syncTime{&d.Updated})
	if len(d.Outcome) == 0 {
		d.Outcome = nil
	}
	return d, err
}

func (o syncOps) Lease(ctx context.Context, connection, owner string, limit int, now time.Time, ttl time.Duration) ([]syncstore.Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []syncstore.Delivery
	err := o.write(ctx, func(ctx context.Context, q syncQ) error {
		var err error
		out, err = leaseQ(ctx, q, connection, owner, limit, now, ttl)
		return err
	})
	return out, syncErr("lease", err)
}

func leaseQ(ctx context.Context, q syncQ, connection, owner string, limit int, now time.Time, ttl time.Duration) ([]syncstore.Delivery, error) {
	rows, err := q.query(ctx, `UPDATE ehr_deliveries SET lease_owner = ?, lease_until = ?, leases = leases + 1 WHERE id IN (
		SELECT id FROM ehr_deliveries WHERE connection = ? AND state = 'pending' AND next_at <= ? AND lease_until < ?
		ORDER BY next_at, id LIMIT ?`+q.skipLocked()+`) RETURNING `+deliveryCols,
		owner, q.at(now.Add(ttl)), connection, q.at(now), q.at(now), limit)
	out, err := collect(rows, err, scanDelivery)
	slices.SortFunc(out, func(a, b syncstore.Delivery) int {
		if c := a.NextAt.Compare(b.NextAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, err
}

func (o syncOps) Finish(ctx context.Context, d syncstore.Delivery, owner string, r syncstore.Result, now time.Time) error {
	err := o.write(ctx, func(ctx context.Context, q syncQ) error { return finishQ(ctx, q, d, owner, r, now) })
	return syncErr("finish delivery", err)
}

// FinishAll records a round's links and results in one transaction: one
// commit (on SQLite one fsync) instead of two per row.
func (o syncOps) FinishAll(ctx context.Context, owner string, fs []syncstore.Finishing, now time.Time) ([]error, error) {
	errs := make([]error, len(fs))
	err := o.write(ctx, func(ctx context.Context, q syncQ) error { return finishAllQ(ctx, q, owner, fs, now, errs) })
	if err != nil {
		return nil, syncErr("finish deliveries", err)
	}
	return errs, nil
}

// finishAllQ is set-based: the links go many to a statement, and the rows
// whose results are alike (a Bundle's creates: done, same note) are
// finished by one statement for those still held at the generation they
// were leased at; any other row (changed since leased, or its lease lost)
// goes through finishQ, which says which.
func finishAllQ(ctx context.Context, q syncQ, owner string, fs []syncstore.Finishing, now time.Time, errs []error) error {
	var links []syncstore.Link
	for _, f := range fs {
		if f.Link != nil {
			links = append(links, *f.Link)
		}
	}
	if err := putLinksQ(ctx, q, links); err != nil {
		return err
	}
	type shape struct {
		state, note string
		attempted   bool
		next        time.Time
		outcome     string
	}
	groups := map[shape][]int{}
	var order []shape
	for i, f := range fs {
		errs[i] = nil
		r := f.Result
		next := r.NextAt
		if r.State != syncstore.StatePending {
			next = now
		}
		k := shape{r.State, r.Error, r.Attempted, next, string(r.Outcome)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range order {
		inc, keep := 0, 1 // as finishQ
		if k.attempted {
			inc = 1
		}
		if k.state == syncstore.StateDone {
			keep = 0
		}
		finished := map[int64]bool{}
		for rest := groups[k]; len(rest) > 0; {
			n := chunkOf(len(rest))
			args := []any{k.state, inc, q.at(k.next), keep, q.at(time.Time{}), k.note, nonNil([]byte(k.outcome)), q.at(now), owner}
			for _, i := range rest[:n] {
				args = append(args, fs[i].Delivery.ID, fs[i].Delivery.Gen)
			}
			rows, err := q.query(ctx, `UPDATE ehr_deliveries SET state = ?, attempts = attempts + ?, next_at = ?, leases = leases * ?,
				lease_owner = '', lease_until = ?, last_error = ?, outcome = ?, updated = ?
				WHERE lease_owner = ? AND lease_owner <> '' AND ((id = ? AND gen = ?)`+strings.Repeat(` OR (id = ? AND gen = ?)`, n-1)+`) RETURNING id`, args...)
			ids, err := collect(rows, err, func(r syncRows) (int64, error) { var id int64; return id, r.Scan(&id) })
			if err != nil {
				return err
			}
			for _, id := range ids {
				finished[id] = true
			}
			rest = rest[n:]
		}
		for _, i := range groups[k] {
			if finished[fs[i].Delivery.ID] {
				continue
			}
			errs[i] = finishQ(ctx, q, fs[i].Delivery, owner, fs[i].Result, now)
			if errs[i] != nil && !errors.Is(errs[i], syncstore.ErrLeaseLost) {
				return errs[i]
			}
		}
	}
	return nil
}

func finishQ(ctx context.Context, q syncQ, d syncstore.Delivery, owner string, r syncstore.Result, now time.Time) error {
	inc := 0
	if r.Attempted {
		inc = 1
	}
	keep := 1 // the lease count, unless done: see syncstore.Delivery.Leases
	if r.State == syncstore.StateDone {
		keep = 0
	}
	next := r.NextAt
	if r.State != syncstore.StatePending {
		next = now
	}
	n, err := q.exec(ctx, `UPDATE ehr_deliveries SET
		state = CASE WHEN gen = ? THEN ? ELSE 'pending' END,
		attempts = CASE WHEN gen = ? THEN attempts + ? ELSE 0 END,
		next_at = CASE WHEN gen = ? THEN CAST(? AS `+q.timeType()+`) ELSE CAST(? AS `+q.timeType()+`) END,
		leases = leases * ?,
		lease_owner = '', lease_until = ?, last_error = ?, outcome = ?, updated = ?
		WHERE id = ? AND lease_owner = ? AND lease_owner <> ''`,
		d.Gen, r.State, d.Gen, inc, d.Gen, q.at(next), q.at(now), keep, q.at(time.Time{}), r.Error, nonNil(r.Outcome), q.at(now), d.ID, owner)
	if err != nil {
		return err
	}
	if n == 0 {
		return syncstore.ErrLeaseLost
	}
	return nil
}

func (o syncOps) Release(ctx context.Context, owner string) error {
	return syncErr("release leases", o.write(ctx, func(ctx context.Context, q syncQ) error {
		_, err := q.exec(ctx, `UPDATE ehr_deliveries SET lease_owner = '', lease_until = ? WHERE lease_owner = ?`, q.at(time.Time{}), owner)
		return err
	}))
}

func (o syncOps) Replay(ctx context.Context, connection string, now time.Time) (int, error) {
	var n int64
	err := o.write(ctx, func(ctx context.Context, q syncQ) error {
		var err error
		n, err = q.exec(ctx, `UPDATE ehr_deliveries SET state = 'pending', attempts = 0, next_at = ?, updated = ?
			WHERE connection = ? AND state = 'dead'`, q.at(now), q.at(now), connection)
		return err
	})
	return int(n), syncErr("replay", err)
}

func (o syncOps) Wake(ctx context.Context, connection string, now time.Time) error {
	return syncErr("wake", o.write(ctx, func(ctx context.Context, q syncQ) error {
		_, err := q.exec(ctx, `UPDATE ehr_deliveries SET next_at = ? WHERE connection = ? AND state = 'pending' AND next_at > ?`,
			q.at(now), connection, q.at(now))
		return err
	}))
}

func (o syncOps) Deliveries(ctx context.Context, connection, state string, limit int) ([]syncstore.Delivery, error) {
	q := o.read()
	lim := int64(limit)
	if limit <= 0 {
		lim = 1 << 62
	}
	rows, err := q.query(ctx, `SELECT `+deliveryCols+` FROM ehr_deliveries WHERE connection = ? AND (CAST(? AS TEXT) = '' OR state = ?) ORDER BY id LIMIT ?`,
		connection, state, state, lim)
	ds, err := collect(rows, err, scanDelivery)
	return ds, syncErr("deliveries", err)
}

func (o syncOps) Delivery(ctx context.Context, connection, tenant, typ, id string) (syncstore.Delivery, error) {
	q := o.read()
	rows, err := q.query(ctx, `SELECT `+deliveryCols+` FROM ehr_deliveries WHERE connection = ? AND tenant = ? AND type = ? AND resource_id = ?`,
		connection, tenant, typ, id)
	d, err := one(rows, err, scanDelivery)
	return d, syncErr("delivery", err)
}

func (o syncOps) Counts(ctx context.Context, connection string) (map[string]int, error) {
	q := o.read()
	rows, err := q.query(ctx, `SELECT state, COUNT(*) FROM ehr_deliveries WHERE connection = ? GROUP BY state`, connection)
	type kv struct {
		k string
		n int
	}
	kvs, err := collect(rows, err, func(r syncRows) (kv, error) { var x kv; return x, r.Scan(&x.k, &x.n) })
	if err != nil {
		return nil, syncErr("counts", err)
	}
	out := map[string]int{}
	for _, x := range kvs {
		out[x.k] = x.n
	}
	return out, nil
}

const linkCols = `connection, tenant, source_type, source_id, part, remote_type, remote_id, remote_version, hash, updated, body`

func scanLink(r syncRows) (syncstore.Link, error) {
	var l syncstore.Link
	err := r.Scan(&l.Connection, &l.Tenant, &l.SourceType, &l.SourceID, &l.Part, &l.RemoteType, &l.RemoteID, &l.RemoteVersion, &l.Hash, syncTime{&l.Updated}, &l.Body)
	if len(l.Body) == 0 {
		l.Body = nil
	}
	return l, err
}

func (o syncOps) Link(ctx context.Context, connection, tenant, srcType, srcID, part string) (syncstore.Link, error) {
	q := o.read()
	rows, err := q.query(ctx, `SELECT `+linkCols+` FROM ehr_links WHERE connection = ? AND tenant = ? AND source_type = ? AND source_id = ? AND part = ?`,
		connection, tenant, srcType, srcID, part)
	l, err := one(rows, err, scanLink)
	return l, syncErr("link", err)
}

// LinksOf reads the links of sources grouped by tenant and type, their
// ids in IN lists of a few fixed lengths (padded by repeating the last),
// so that the statement cache holds a handful of shapes.
func (o syncOps) LinksOf(ctx context.Context, connection string, sources []syncstore.Source) ([]syncstore.Link, error) {
	type group struct{ tenant, typ string }
	ids := map[group][]string{}
	var order []group
	for _, src := range sources {
		g := group{src.Tenant, src.Type}
		if _, ok := ids[g]; !ok {
			order = append(order, g)
		}
		ids[g] = append(ids[g], src.ID)
	}
	q := o.read()
	var out []syncstore.Link
	for _, g := range order {
		for rest := ids[g]; len(rest) > 0; {
			n := 8
			for n < len(rest) && n < linksOfChunk {
				n *= 2
			}
			take := min(n, len(rest))
			args := make([]any, 0, 3+n)
			args = append(args, connection, g.tenant, g.typ)
			for i := range n {
				args = append(args, rest[min(i, take-1)])
			}
			rows, err := q.query(ctx, `SELECT `+linkCols+` FROM ehr_links WHERE connection = ? AND tenant = ? AND source_type = ? AND source_id IN (?`+
				strings.Repeat(", ?", n-1)+`)`, args...)
			ls, err := collect(rows, err, scanLink)
			if err != nil {
				return nil, syncErr("links of sources", err)
			}
			out = append(out, ls...)
			rest = rest[take:]
		}
	}
	return out, nil
}

// linksOfChunk is the longest IN list of LinksOf.
const linksOfChunk = 128

func (o syncOps) PutLink(ctx context.Context, l syncstore.Link) error {
	return syncErr("put link", o.write(ctx, func(ctx context.Context, q syncQ) error { return putLinkQ(ctx, q, l) }))
}

// putLinksQ is putLinkQ of many links, many to a statement (a source
// part twice: the last one wins, as one by one).
func putLinksQ(ctx context.Context, q syncQ, ls []syncstore.Link) error {
	type src struct{ conn, tenant, typ, id, part string }
	last := map[src]int{}
	for i, l := range ls {
		last[src{l.Connection, l.Tenant, l.SourceType, l.SourceID, l.Part}] = i
	}
	var uniq []syncstore.Link
	for i, l := range ls {
		if last[src{l.Connection, l.Tenant, l.SourceType, l.SourceID, l.Part}] == i {
			uniq = append(uniq, l)
		}
	}
	for rest := uniq; len(rest) > 0; {
		n := chunkOf(len(rest))
		args := make([]any, 0, 11*n)
		for _, l := range rest[:n] {
			args = append(args, l.Connection, l.Tenant, l.SourceType, l.SourceID, l.Part, l.RemoteType, l.RemoteID, l.RemoteVersion, l.Hash, q.at(l.Updated), nonNil(l.Body))
		}
		if _, err := q.exec(ctx, `INSERT INTO ehr_links (`+linkCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`+
			strings.Repeat(`, (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, n-1)+`
			ON CONFLICT (connection, tenant, source_type, source_id, part) DO UPDATE SET remote_type = excluded.remote_type,
			remote_id = excluded.remote_id, remote_version = excluded.remote_version, hash = excluded.hash, updated = excluded.updated,
			body = excluded.body`, args...); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

func putLinkQ(ctx context.Context, q syncQ, l syncstore.Link) error {
	_, err := q.exec(ctx, `INSERT INTO ehr_links (`+linkCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (connection, tenant, source_type, source_id, part) DO UPDATE SET remote_type = excluded.remote_type,
		remote_id = excluded.remote_id, remote_version = excluded.remote_version, hash = excluded.hash, updated = excluded.updated,
		body = excluded.body`,
		l.Connection, l.Tenant, l.SourceType, l.SourceID, l.Part, l.RemoteType, l.RemoteID, l.RemoteVersion, l.Hash, q.at(l.Updated), nonNil(l.Body))
	return err
}

func (o syncOps) LinkByRemote(ctx context.Context, connection, remoteType, remoteID string) (syncstore.Link, error) {
	q := o.read()
	rows, err := q.query(ctx, `SELECT `+linkCols+` FROM ehr_links WHERE connection = ? AND remote_type = ? AND remote_id = ? LIMIT 1`,
		connection, remoteType, remoteID)
	l, err := one(rows, err, scanLink)
	return l, syncErr("link by remote", err)
}

func (o syncOps) Links(ctx context.Context, connection string) ([]syncstore.Link, error) {
	q := o.read()
	rows, err := q.query(ctx, `SELECT `+linkCols+` FROM ehr_links WHERE connection = ? ORDER BY tenant, source_type, source_id, part`, connection)
	ls, err := collect(rows, err, scanLink)
	return ls, syncErr("links", err)
}

const patientCols = `connection, tenant, patient_id, state, remote_id, reason, updated`

func scanPatient(r syncRows) (syncstore.PatientLink, error) {
	var p syncstore.PatientLink
	err := r.Scan(&p.Connection, &p.Tenant, &p.PatientID, &p.State, &p.RemoteID, &p.Reason, syncTime{&p.Updated})
	return p, err
}

func (o syncOps) PatientLink(ctx context.Context, connection, tenant, patientID string) (syncstore.PatientLink, error) {
	q := o.read()
	rows, err := q.query(ctx, `SELECT `+patientCols+` FROM ehr_patient_links WHERE connection = ? AND tenant = ? AND patient_id = ?`,
		connection, tenant, patientID)
	p, err := one(rows, err, scanPatient)
	return p, syncErr("patient link", err)
}

func (o syncOps) PutPatientLink(ctx context.Context, l syncstore.PatientLink) error {
	return syncErr("put patient link", o.write(ctx, func(ctx context.Context, q syncQ) error {
		_, err := q.exec(ctx, `INSERT INTO ehr_patient_links (`+patientCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (connection, tenant, patient_id) DO UPDATE SET state = excluded.state, remote_id = excluded.remote_id,
			reason = excluded.reason, updated = excluded.updated`,
			l.Connection, l.Tenant, l.PatientID, l.State, l.RemoteID, l.Reason, q.at(l.Updated))
		return err
	}))
}

func (o syncOps) PatientLinks(ctx context.Context, connection, state string) ([]syncstore.PatientLink, error) {
	q := o.read()
	rows, err := q.query(ctx, `SELECT `+patientCols+` FROM ehr_patient_links WHERE connection = ? AND (CAST(? AS TEXT) = '' OR state = ?) ORDER BY tenant, patient_id`,
		connection, state, state)
	ps, err := collect(rows, err, scanPatient)
	return ps, syncErr("patient links", err)
}
