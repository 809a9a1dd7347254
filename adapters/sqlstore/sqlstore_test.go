package sqlstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirtest"
)

const pgEnv = sqltest.EnvPostgresDSN

// sqliteOpener gives each test its own database file under t.TempDir().
func sqliteOpener() fhirtest.StoreOpener {
	return fhirtest.PerTestStorage(
		func(t *testing.T) string { return filepath.Join(t.TempDir(), "db", "fhir.db") },
		func(t *testing.T, path string) fhir.Store {
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatalf("open SQLite store: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
}

func TestSQLiteStore(t *testing.T) {
	fhirtest.RunStoreSuite(t, sqliteOpener())
}

// postgresDSN returns the test server's DSN or skips t.
func postgresDSN(t testing.TB) string {
	dsn := sqltest.PostgresDSN(t)
	if dsn == "" {
		t.Skip(pgEnv + " not set: skipping PostgreSQL store suite (.ci/run sets it)")
	}
	return dsn
}

func postgresOpener(dsn string) fhirtest.StoreOpener {
	return fhirtest.PerTestStorage(
		func(t *testing.T) string { return sqltest.FreshSchema(t, dsn) },
		func(t *testing.T, schemaDSN string) fhir.Store {
			s, err := Open(t.Context(), schemaDSN)
			if err != nil {
				t.Fatalf("open PostgreSQL store: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
}

func TestPostgresStore(t *testing.T) {
	fhirtest.RunStoreSuite(t, postgresOpener(postgresDSN(t)))
}

func TestSQLiteDSNForms(t *testing.T) {
	dir := t.TempDir()
	for _, dsn := range []string{
		filepath.Join(dir, "a", "b", "plain.db"),
		"sqlite:" + filepath.Join(dir, "prefixed.db"),
		"file:" + filepath.Join(dir, "uri dir", "with?odd#chars.db") + "?cache=private",
	} {
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Errorf("Open(%q): %v", dsn, err)
			continue
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close(%q): %v", dsn, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "b", "plain.db")); err != nil {
		t.Errorf("plain path not created: %v", err)
	}
	if _, err := Open(t.Context(), ":memory:"); err == nil {
		t.Errorf("Open(:memory:) succeeded; an in-memory database cannot be shared by the read pool")
	}
}

func TestMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	for range 3 {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if dsn := sqltest.PostgresDSN(t); dsn != "" {
		sdsn := sqltest.FreshSchema(t, dsn)
		// Replicas starting at once: the advisory lock lets one migrate.
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				s, err := Open(t.Context(), sdsn)
				if err == nil {
					s.Close()
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Errorf("concurrent PostgreSQL open: %v", err)
			}
		}
	}
}

func TestUpdateAfterClose(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Update(t.Context(), func(fhir.Tx) error { return nil }); err != ErrClosed {
		t.Errorf("Update after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestSQLiteCloseDrainsQueue closes the store while updates are queued:
// each must either be durable or fail with ErrClosed, never hang or vanish.
func TestSQLiteCloseDrainsQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drain.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	errs := make(chan error, n)
	keys := make([]fhir.Key, n)
	for i := range n {
		keys[i] = fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: fmt.Sprintf("d%d", i)}
		go func() {
			errs <- s.Update(t.Context(), func(tx fhir.Tx) error {
				return tx.Put(t.Context(), fhir.Version{Key: keys[i], VersionID: 1, JSON: []byte("{}")}, fhir.Index{})
			})
		}()
	}
	time.Sleep(time.Millisecond) // let some queue, some not
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ok := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, ErrClosed):
		default:
			t.Errorf("Update during Close: %v", err)
		}
	}
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	found := 0
	for _, k := range keys {
		if _, err := s.Read(t.Context(), k); err == nil {
			found++
		}
	}
	if found != ok {
		t.Errorf("%d updates reported success, %d resources stored", ok, found)
	}
	t.Logf("%d of %d updates committed before Close", ok, n)
}

// TestSQLitePragmas checks the settings durability and concurrency rest on.
func TestSQLitePragmas(t *testing.T) {
	st, err := Open(t.Context(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqliteStore)
	var mode string
	var sync, busy int
	// Nothing is queued, so the writer goroutine is idle and the pinned
	// connection free.
	if err := s.wconn.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v; want wal", mode, err)
	}
	if err := s.wconn.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Errorf("synchronous %d, %v; want 2 (FULL)", sync, err)
	}
	if err := s.wconn.QueryRowContext(t.Context(), "PRAGMA busy_timeout").Scan(&busy); err != nil || busy == 0 {
		t.Errorf("busy_timeout %d, %v; want > 0", busy, err)
	}
	var qo int
	if err := s.rdb.QueryRowContext(t.Context(), "PRAGMA query_only").Scan(&qo); err != nil || qo != 1 {
		t.Errorf("reader query_only %d, %v; want 1", qo, err)
	}
}

// TestSQLiteGroupCommitIsolatesFns runs many concurrent updates, half of
// which fail after writing: batched together, each fn's outcome is its own.
func TestSQLiteGroupCommitIsolatesFns(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 200
	boom := errors.New("boom")
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Update(t.Context(), func(tx fhir.Tx) error {
				k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: fmt.Sprintf("g%d", i)}
				if err := tx.Put(t.Context(), fhir.Version{Key: k, VersionID: 1, JSON: []byte("{}")}, fhir.Index{}); err != nil {
					return err
				}
				if err := tx.Enqueue(t.Context(), fhir.OutboxMessage{Tenant: k.Tenant, Topic: "t", Key: k.ID}); err != nil {
					return err
				}
				if i%2 == 0 {
					return boom
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		want := error(nil)
		if i%2 == 0 {
			want = boom
		}
		if err != want {
			t.Errorf("update %d: %v, want %v", i, err, want)
		}
		_, rerr := s.Read(t.Context(), fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: fmt.Sprintf("g%d", i)})
		if (rerr == nil) != (i%2 == 1) {
			t.Errorf("resource g%d: read error %v, stored should be %v", i, rerr, i%2 == 1)
		}
	}
	ms, err := s.Outbox(t.Context(), fhir.DefaultTenant, 0, 0)
	if err != nil || len(ms) != n/2 {
		t.Errorf("outbox: %d messages, %v; want %d", len(ms), err, n/2)
	}
}

// TestClockFillsZeroTimes: a zero LastUpdated or Created takes the
// injected clock's time, at microsecond precision in UTC.
func TestClockFillsZeroTimes(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6007, time.FixedZone("X", -7200))
	dsns := map[string]string{"sqlite": filepath.Join(t.TempDir(), "clock.db")}
	if dsn := sqltest.PostgresDSN(t); dsn != "" {
		dsns["postgres"] = sqltest.FreshSchema(t, dsn)
	}
	for name, dsn := range dsns {
		s, err := Open(t.Context(), dsn, WithClock(func() time.Time { return at }))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: "clock"}
		err = s.Update(t.Context(), func(tx fhir.Tx) error {
			if err := tx.Put(t.Context(), fhir.Version{Key: k, VersionID: 1, JSON: []byte("{}")}, fhir.Index{}); err != nil {
				return err
			}
			return tx.Enqueue(t.Context(), fhir.OutboxMessage{Tenant: k.Tenant, Topic: "t", Key: "k"})
		})
		if err != nil {
			t.Fatal(err)
		}
		want := at.Truncate(time.Microsecond).UTC()
		if v, err := s.Read(t.Context(), k); err != nil || !v.LastUpdated.Equal(want) || v.LastUpdated.Location() != time.UTC {
			t.Errorf("%s: LastUpdated %v, %v; want %v", name, v.LastUpdated, err, want)
		}
		if ms, err := s.Outbox(t.Context(), k.Tenant, 0, 0); err != nil || len(ms) != 1 || !ms[0].Created.Equal(want) {
			t.Errorf("%s: outbox %+v, %v; want Created %v", name, ms, err, want)
		}
	}
}

func TestSQLiteSearch(t *testing.T) {
	fhirtest.RunSearchSuite(t, sqliteOpener())
}

func TestPostgresSearch(t *testing.T) {
	fhirtest.RunSearchSuite(t, postgresOpener(postgresDSN(t)))
}
