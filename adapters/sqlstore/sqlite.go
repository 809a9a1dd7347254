package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	_ "modernc.org/sqlite" // registers driver "sqlite"
)

// The SQLite backend: one writer connection owned by one goroutine that
// group-commits queued Update calls, and a pool of query_only connections
// that WAL lets read while the writer writes.

const sqliteBusyTimeoutMS = "10000"

// sqliteStore is the SQLite fhir.Store.
type sqliteStore struct {
	opts options

	wdb   *sql.DB   // holds the single writer connection
	wconn *sql.Conn // pinned; used only by the writer goroutine (and Open)
	w     sqliteWriterStmts

	rdb *sql.DB // read-only pool for Read, VRead, History, Outbox, Search
	r   sqliteReaderStmts

	ws  sqliteSearchStmts
	rec sqliteRecordStmts // practice records (records_sqlite.go)
	// The sync queries' prepared statements (sync.go): on the read pool,
	// and on the writer connection (used by the writer goroutine only).
	syncReadStmts, syncWriteStmts syncStmtCache
	seq                           int64     // the last seq given to a Put; writer goroutine only
	idx                           idxBuffer // index rows waiting for the batch's end; writer goroutine only

	mu         sync.RWMutex // guards closed and sends on queue against close(queue)
	closed     bool
	queue      chan *writeReq
	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// writeReq is one queued Update call.
type writeReq struct {
	ctx  context.Context
	fn   func(fhir.Tx) error
	err  error
	done chan error
}

type sqliteWriterStmts struct {
	begin, commit, rollback               *sql.Stmt
	savepoint, release, rollbackTo        *sql.Stmt
	newest, head, insertVersion           *sql.Stmt
	upsertHead, deleteIdents, insertIdent *sql.Stmt
	lookup, enqueue                       *sql.Stmt
}

type sqliteReaderStmts struct {
	newest, vread, history, outbox *sql.Stmt
	authGen                        *sql.Stmt
}

const (
	sqlNewest = `SELECT version_id, last_updated, deleted, body, sensitivity, method FROM resource_versions
		WHERE tenant = ? AND type = ? AND id = ? ORDER BY version_id DESC LIMIT 1`
	sqlVRead = `SELECT version_id, last_updated, deleted, body, sensitivity, method FROM resource_versions
		WHERE tenant = ? AND type = ? AND id = ? AND version_id = ?`
	sqlHistory = `SELECT version_id, last_updated, deleted, body, sensitivity, method FROM resource_versions
		WHERE tenant = ? AND type = ? AND id = ? ORDER BY version_id DESC LIMIT ?`
	sqlOutbox = `SELECT seq, tenant, topic, key, payload, created FROM outbox
		WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?`
)

// OpenSQLite opens (creating it and its parent directories if needed) the
// SQLite database at path, which may be prefixed sqlite: or be a file: URI,
// and migrates it. The database runs in WAL mode with synchronous=FULL, so
// an Update that returned nil survives a crash or power loss.
//
// Update runs fn on the store's single writer goroutine, batched with other
// callers' fns in one transaction: fn must not call Update on the same store
// (it would wait for itself forever) and should be quick, since the whole
// batch waits for it.
func OpenSQLite(ctx context.Context, path string, opts ...Option) (search.Store, error) {
	o := buildOptions(opts)
	file, userQuery, err := parseSQLiteDSN(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o750); err != nil {
		return nil, fmt.Errorf("sqlstore: create directory for %s: %w", file, err)
	}
	s := &sqliteStore{opts: o, queue: make(chan *writeReq, 4*o.maxBatch), writerDone: make(chan struct{})}

	// The writer's page cache is 32 MiB of pages. It costs about twice
	// that in resident memory: modernc's allocator rounds each page
	// (4 KiB plus SQLite's header) up to an 8 KiB slot. A 64 MiB cache
	// took an import to ~190 MB RSS, too close to its 200 MB budget.
	s.wdb, err = sql.Open("sqlite", sqliteURI(file, userQuery,
		"busy_timeout("+sqliteBusyTimeoutMS+")", "journal_mode(WAL)", "synchronous(FULL)", "cache_size(-32768)", "temp_store(MEMORY)"))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", file, err)
	}
	s.wdb.SetMaxOpenConns(1)
	if s.wconn, err = s.wdb.Conn(ctx); err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("sqlstore: open %s: %w", file, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.closeConns()
		return nil, err
	}
	if err := s.prepareWriter(ctx); err != nil {
		s.closeConns()
		return nil, err
	}
	if err := s.prepareSearch(ctx); err != nil {
		s.closeConns()
		return nil, err
	}

	// Readers open after the writer has set WAL mode, which is persistent.
	s.rdb, err = sql.Open("sqlite", sqliteURI(file, userQuery,
		"busy_timeout("+sqliteBusyTimeoutMS+")", "query_only(1)"))
	if err != nil {
		s.closeConns()
		return nil, fmt.Errorf("sqlstore: open %s for reading: %w", file, err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	s.rdb.SetMaxOpenConns(n)
	s.rdb.SetMaxIdleConns(n)
	if err := s.prepareReader(ctx); err != nil {
		s.closeConns()
		return nil, err
	}
	if err := s.prepareSearchReader(ctx); err != nil {
		s.closeConns()
		return nil, err
	}

	go s.writeLoop()
	return s, nil
}

// parseSQLiteDSN returns the file path of dsn and any query parameters a
// file: URI carried.
func parseSQLiteDSN(dsn string) (string, url.Values, error) {
	var query url.Values
	file := dsn
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		file = strings.TrimPrefix(dsn, "sqlite://")
	case strings.HasPrefix(dsn, "sqlite:"):
		file = strings.TrimPrefix(dsn, "sqlite:")
	case strings.HasPrefix(dsn, "file:"):
		u, err := url.Parse(dsn)
		if err != nil {
			return "", nil, fmt.Errorf("sqlstore: parse %q: %w", dsn, err)
		}
		file = u.Path
		if u.Opaque != "" { // file:relative/path
			if file, err = url.PathUnescape(u.Opaque); err != nil {
				return "", nil, fmt.Errorf("sqlstore: parse %q: %w", dsn, err)
			}
		}
		query = u.Query()
	}
	if file == "" || file == ":memory:" || query.Get("mode") == "memory" {
		// Each connection of an in-memory database is its own database, so
		// the read pool would never see the writer's data.
		return "", nil, fmt.Errorf("sqlstore: %q: an SQLite store needs a file path", dsn)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", nil, fmt.Errorf("sqlstore: %q: %w", dsn, err)
	}
	return abs, query, nil
}

// sqliteURI builds a file: URI so that any character in the path is
// escaped, adding the driver's _pragma parameters.
func sqliteURI(file string, user url.Values, pragmas ...string) string {
	q := url.Values{}
	for k, vs := range user {
		q[k] = append([]string(nil), vs...)
	}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(file), OmitHost: true, RawQuery: q.Encode()}
	return u.String()
}

func (s *sqliteStore) migrate(ctx context.Context) error {
	ms, err := loadMigrations("sqlite")
	if err != nil {
		return err
	}
	c := s.wconn
	if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlstore: create schema_migrations: %w", err)
	}
	// BEGIN IMMEDIATE takes the write lock first, so two processes opening
	// one new file do not both apply a migration.
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	err = func() error {
		applied := map[int]bool{}
		rows, err := c.QueryContext(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return err
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			applied[v] = true
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, m := range ms {
			if applied[m.version] {
				continue
			}
			if _, err := c.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if _, err := c.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.version, m.name, s.opts.now().UnixMicro()); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
		}
		return nil
	}()
	if err != nil {
		c.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		c.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("sqlstore: migrate: commit: %w", err)
	}
	return nil
}

func (s *sqliteStore) prepareWriter(ctx context.Context) error {
	w := &s.w
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&w.begin, "BEGIN IMMEDIATE"},
		{&w.commit, "COMMIT"},
		{&w.rollback, "ROLLBACK"},
		{&w.savepoint, "SAVEPOINT fn"},
		{&w.release, "RELEASE fn"},
		{&w.rollbackTo, "ROLLBACK TO fn"},
		{&w.newest, sqlNewest},
		{&w.head, "SELECT version_id, sensitivity FROM resource_heads WHERE tenant = ? AND type = ? AND id = ?"},
		{&w.insertVersion, `INSERT INTO resource_versions (tenant, type, id, version_id, last_updated, deleted, body, seq, sensitivity, method)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.upsertHead, `INSERT INTO resource_heads (tenant, type, id, version_id, deleted, sensitivity) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant, type, id) DO UPDATE SET version_id = excluded.version_id, deleted = excluded.deleted, sensitivity = excluded.sensitivity`},
		{&w.deleteIdents, "DELETE FROM resource_identifiers WHERE tenant = ? AND type = ? AND id = ?"},
		{&w.insertIdent, `INSERT OR IGNORE INTO resource_identifiers (tenant, type, id, system, value) VALUES (?, ?, ?, ?, ?)`},
		{&w.lookup, `SELECT id FROM resource_identifiers WHERE tenant = ? AND type = ? AND system = ? AND value = ? ORDER BY id`},
		{&w.enqueue, `INSERT INTO outbox (tenant, topic, key, payload, created) VALUES (?, ?, ?, ?, ?)`},
	} {
		st, err := s.wconn.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("sqlstore: prepare %q: %w", p.sql, err)
		}
		*p.st = st
	}
	return nil
}

func (s *sqliteStore) prepareReader(ctx context.Context) error {
	r := &s.r
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&r.newest, sqlNewest},
		{&r.vread, sqlVRead},
		{&r.history, sqlHistory},
		{&r.outbox, sqlOutbox},
		{&r.authGen, sqlAuthGeneration},
	} {
		st, err := s.rdb.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("sqlstore: prepare %q: %w", p.sql, err)
		}
		*p.st = st
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanSQLiteVersion(k fhir.Key, row scanner) (fhir.Version, error) {
	v := fhir.Version{Key: k}
	var micros int64
	if err := row.Scan(&v.VersionID, &micros, &v.Deleted, &v.JSON, &v.Sensitivity, &v.Method); err != nil {
		return fhir.Version{}, err
	}
	v.LastUpdated = time.UnixMicro(micros).UTC()
	v.JSON = emptyToNil(v.JSON)
	return v, nil
}

func (s *sqliteStore) Read(ctx context.Context, k fhir.Key) (fhir.Version, error) {
	v, err := scanSQLiteVersion(k, s.r.newest.QueryRowContext(ctx, k.Tenant, k.Type, k.ID))
	return v, readErr(k, err)
}

func (s *sqliteStore) VRead(ctx context.Context, k fhir.Key, vid int64) (fhir.Version, error) {
	v, err := scanSQLiteVersion(k, s.r.vread.QueryRowContext(ctx, k.Tenant, k.Type, k.ID, vid))
	if errors.Is(err, sql.ErrNoRows) {
		return fhir.Version{}, fmt.Errorf("sqlstore: %s/%s/%s/_history/%d: %w", k.Tenant, k.Type, k.ID, vid, fhir.ErrNotFound)
	}
	return v, readErr(k, err)
}

// readErr maps no row to ErrNotFound and wraps anything else.
func readErr(k fhir.Key, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return notFound(k)
	default:
		return fmt.Errorf("sqlstore: read %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
	}
}

func (s *sqliteStore) History(ctx context.Context, k fhir.Key, limit int) ([]fhir.Version, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.history.QueryContext(ctx, k.Tenant, k.Type, k.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: history %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
	}
	defer rows.Close()
	var vs []fhir.Version
	for rows.Next() {
		v, err := scanSQLiteVersion(k, rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: history %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: history %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
	}
	if len(vs) == 0 {
		return nil, notFound(k)
	}
	return vs, nil
}

func (s *sqliteStore) Outbox(ctx context.Context, tenant string, after int64, limit int) ([]fhir.OutboxMessage, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.outbox.QueryContext(ctx, tenant, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: outbox: %w", err)
	}
	defer rows.Close()
	var ms []fhir.OutboxMessage
	for rows.Next() {
		var m fhir.OutboxMessage
		var micros int64
		if err := rows.Scan(&m.Seq, &m.Tenant, &m.Topic, &m.Key, &m.Payload, &micros); err != nil {
			return nil, fmt.Errorf("sqlstore: outbox: %w", err)
		}
		m.Created = time.UnixMicro(micros).UTC()
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: outbox: %w", err)
	}
	return ms, nil
}

// Update queues fn for the writer goroutine and waits for its answer. Once
// queued, the caller waits even if ctx ends: fn may already be committing,
// and returning early would misreport a durable write as failed. The writer
// skips (answering ctx.Err()) a request whose ctx ended before fn ran.
func (s *sqliteStore) Update(ctx context.Context, fn func(fhir.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	select {
	case s.queue <- r:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	return <-r.done
}

// writeLoop is the group commit: it takes whatever is queued (up to
// maxBatch) and runs it as one transaction, so one fsync serves every
// caller that queued while the previous batch was committing.
func (s *sqliteStore) writeLoop() {
	defer close(s.writerDone)
	batch := make([]*writeReq, 0, s.opts.maxBatch)
	for first := range s.queue {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < s.opts.maxBatch {
			select {
			case r, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.runBatch(batch)
		clear(batch) // drop references to finished requests
	}
}

// runBatch runs each request's fn in its own savepoint inside one
// transaction, commits once, and answers every request.
func (s *sqliteStore) runBatch(batch []*writeReq) {
	bg := context.Background()
	fail := func(err error) {
		s.w.rollback.ExecContext(bg) // best effort; may be no transaction
		for _, r := range batch {
			if r.err == nil {
				r.err = err
			}
		}
	}
	if _, err := s.w.begin.ExecContext(bg); err != nil {
		fail(fmt.Errorf("sqlstore: begin: %w", err))
	} else if err := s.loadSeq(); err != nil {
		fail(err)
	} else {
		ok := true
		for _, r := range batch {
			if err := s.runOne(r); err != nil {
				// The transaction is unusable (SQLite rolled it back, e.g.
				// on a full disk): everyone in the batch fails.
				fail(err)
				ok = false
				break
			}
		}
		if ok {
			if err := s.flushIndex(false); err != nil {
				fail(err)
			} else if _, err := s.w.commit.ExecContext(bg); err != nil {
				fail(fmt.Errorf("sqlstore: commit: %w", err))
			}
		}
	}
	// Whatever happened, this batch's buffered index rows are done with.
	s.idx.reset()
	for _, r := range batch {
		r.done <- r.err
	}
}

// runOne runs r.fn inside a savepoint, setting r.err to fn's outcome. It
// returns an error only when the enclosing transaction is broken.
func (s *sqliteStore) runOne(r *writeReq) error {
	bg := context.Background()
	for attempt := 1; ; attempt++ {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			return nil
		}
		if _, err := s.w.savepoint.ExecContext(bg); err != nil {
			return fmt.Errorf("sqlstore: savepoint: %w", err)
		}
		s.idx.setMark()
		tx := &sqliteTx{s: s}
		err := callFn(r.fn, tx)
		tx.done.Store(true)
		if err == nil && !tx.flushFirst {
			if _, err := s.w.release.ExecContext(bg); err != nil {
				return fmt.Errorf("sqlstore: release savepoint: %w", err)
			}
			r.err = nil
			return nil
		}
		s.idx.rollback()
		if _, err := s.w.rollbackTo.ExecContext(bg); err != nil {
			return fmt.Errorf("sqlstore: rollback to savepoint: %w", err)
		}
		if _, err := s.w.release.ExecContext(bg); err != nil {
			return fmt.Errorf("sqlstore: release savepoint: %w", err)
		}
		if tx.flushFirst {
			// fn searched: insert the earlier fns' index rows, outside
			// any savepoint, and run fn again (not an attempt: it did not
			// conflict). The next run finds nothing earlier buffered.
			if err := s.flushIndex(false); err != nil {
				return err
			}
			attempt--
			continue
		}
		if !errors.Is(err, fhir.ErrVersionConflict) {
			r.err = err // fn's own error, unchanged
			return nil
		}
		// Writes are serialized here, so a conflict is fn's doing rather
		// than a lost race; re-running honours the Update contract anyway.
		if attempt == maxAttempts {
			r.err = exhausted(err)
			return nil
		}
	}
}

// Close stops accepting updates, lets the writer finish what is queued,
// and closes the connections. Later calls return nil.
func (s *sqliteStore) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.queue)
		s.mu.Unlock()
		<-s.writerDone
		s.closeErr = s.closeConns()
	})
	return s.closeErr
}

func (s *sqliteStore) closeConns() error {
	var errs []error
	errs = append(errs, s.ws.closeCache()...)
	errs = append(errs, s.rec.close()...)
	errs = append(errs, s.syncReadStmts.close()...)
	errs = append(errs, s.syncWriteStmts.close()...)
	for _, st := range s.ws.prepared {
		errs = append(errs, st.Close())
	}
	for _, st := range []*sql.Stmt{s.r.newest, s.r.vread, s.r.history, s.r.outbox, s.r.authGen} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	w := &s.w
	for _, st := range []*sql.Stmt{w.begin, w.commit, w.rollback, w.savepoint, w.release, w.rollbackTo,
		w.newest, w.head, w.insertVersion, w.upsertHead, w.deleteIdents, w.insertIdent, w.lookup, w.enqueue} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlstore: close: %w", err)
	}
	return nil
}

// errTxDone reports use of a Tx after its fn returned.
var errTxDone = errors.New("sqlstore: transaction already finished")

// sqliteTx is the Tx given to fn on the writer goroutine. Its statements run
// with a background context: cancelling a write statement makes SQLite roll
// back the whole transaction, which here holds other callers' work. The
// caller's ctx is still checked before each statement.
type sqliteTx struct {
	s    *sqliteStore
	done atomic.Bool
	// flushFirst: fn searched while earlier fns' index rows were buffered
	// (see indexbuf_sqlite.go); runOne re-runs it after a flush.
	flushFirst bool
}

func (tx *sqliteTx) check(ctx context.Context) error {
	if tx.done.Load() {
		return errTxDone
	}
	return ctx.Err()
}

func (tx *sqliteTx) Read(ctx context.Context, k fhir.Key) (fhir.Version, error) {
	if err := tx.check(ctx); err != nil {
		return fhir.Version{}, err
	}
	v, err := scanSQLiteVersion(k, tx.s.w.newest.QueryRowContext(context.Background(), k.Tenant, k.Type, k.ID))
	return v, readErr(k, err)
}

func (tx *sqliteTx) LookupIdentifier(ctx context.Context, tenant, typ string, ident fhir.Identifier) ([]string, error) {
	if err := tx.check(ctx); err != nil {
		return nil, err
	}
	rows, err := tx.s.w.lookup.QueryContext(context.Background(), tenant, typ, ident.System, ident.Value)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: lookup identifier: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlstore: lookup identifier: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: lookup identifier: %w", err)
	}
	return ids, nil
}

func (tx *sqliteTx) Put(ctx context.Context, v fhir.Version, idx fhir.Index) error {
	if err := tx.check(ctx); err != nil {
		return err
	}
	if err := checkKey(v.Key); err != nil {
		return err
	}
	bg, w, k := context.Background(), &tx.s.w, v.Key
	var cur int64
	var curSens fhir.Sensitivity
	if err := w.head.QueryRowContext(bg, k.Tenant, k.Type, k.ID).Scan(&cur, &curSens); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlstore: put %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err)
	}
	if v.VersionID != cur+1 {
		return conflict(k, v.VersionID, cur+1)
	}
	v.Sensitivity = sensitivityOf(v, curSens)
	lu := v.LastUpdated
	if lu.IsZero() {
		lu = tx.s.opts.now()
	}
	wrap := func(err error) error { return fmt.Errorf("sqlstore: put %s/%s/%s: %w", k.Tenant, k.Type, k.ID, err) }
	tx.s.seq++
	seq := tx.s.seq
	if _, err := w.insertVersion.ExecContext(bg, k.Tenant, k.Type, k.ID, v.VersionID, lu.UnixMicro(), v.Deleted, nonNil(v.JSON), seq, v.Sensitivity, v.Method); err != nil {
		return wrap(err)
	}
	if _, err := w.upsertHead.ExecContext(bg, k.Tenant, k.Type, k.ID, v.VersionID, v.Deleted, v.Sensitivity); err != nil {
		return wrap(err)
	}
	if cur > 0 {
		if _, err := w.deleteIdents.ExecContext(bg, k.Tenant, k.Type, k.ID); err != nil {
			return wrap(err)
		}
	}
	if !v.Deleted {
		for _, id := range idx.Identifiers {
			if _, err := w.insertIdent.ExecContext(bg, k.Tenant, k.Type, k.ID, id.System, id.Value); err != nil {
				return wrap(err)
			}
		}
	}
	if err := tx.putIndex(k, v, lu, cur > 0, seq, idx); err != nil {
		return wrap(err)
	}
	return nil
}

// LockCriteria does nothing: the single writer runs one fn at a time, and
// a search inside it sees every earlier fn's writes (search_sqlite.go).
func (tx *sqliteTx) LockCriteria(ctx context.Context, tenant, typ string) error { return tx.check(ctx) }

func (tx *sqliteTx) Enqueue(ctx context.Context, m fhir.OutboxMessage) error {
	if err := tx.check(ctx); err != nil {
		return err
	}
	if m.Tenant == "" {
		return errors.New("sqlstore: enqueue: empty tenant")
	}
	created := m.Created
	if created.IsZero() {
		created = tx.s.opts.now()
	}
	if _, err := tx.s.w.enqueue.ExecContext(context.Background(), m.Tenant, m.Topic, m.Key, nonNil(m.Payload), created.UnixMicro()); err != nil {
		return fmt.Errorf("sqlstore: enqueue: %w", err)
	}
	return nil
}
