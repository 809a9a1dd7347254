package sqlstore

import (
	"database/sql"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// TestSQLiteSearchMigrationKeepsData opens a database written before the
// search migration: its live resources are findable by _id at once, and
// writes continue the version sequence.
func TestSQLiteSearchMigrationKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	ms, err := loadMigrations("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	lu := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixMicro()
	for _, q := range []string{
		ms[0].sql,
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 0)`,
		`INSERT INTO resource_versions VALUES ('default', 'Patient', 'a', 1, 1, 0, '{"v":1}')`,
		`INSERT INTO resource_versions VALUES ('default', 'Patient', 'b', 1, 1, 0, '{"v":1}')`,
		`INSERT INTO resource_versions VALUES ('default', 'Patient', 'b', 2, 2, 1, '')`,
		`INSERT INTO resource_heads VALUES ('default', 'Patient', 'a', 1, 0)`,
		`INSERT INTO resource_heads VALUES ('default', 'Patient', 'b', 2, 1)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := db.Exec(`UPDATE resource_versions SET last_updated = ?`, lu); err != nil {
		t.Fatal(err)
	}
	db.Close()

	st, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqliteStore)
	all := func() []string {
		res, err := s.Search(t.Context(), fhir.DefaultTenant, &search.Query{Type: "Patient"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, v := range res.Matches {
			ids = append(ids, v.ID)
		}
		return ids
	}
	if got := all(); len(got) != 1 || got[0] != "a" {
		t.Errorf("after migration: %v, want [a]", got)
	}
	k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: "a"}
	if err := s.Update(t.Context(), func(tx fhir.Tx) error {
		return tx.Put(t.Context(), fhir.Version{Key: k, VersionID: 2, Deleted: true}, fhir.Index{})
	}); err != nil {
		t.Fatal(err)
	}
	if got := all(); len(got) != 0 {
		t.Errorf("after deleting a: %v", got)
	}
	h, err := s.HistoryPage(t.Context(), fhir.DefaultTenant, search.HistoryQuery{})
	if err != nil || len(h.Versions) != 4 || h.Versions[0].ID != "a" || h.Versions[0].VersionID != 2 {
		t.Errorf("history: %+v, %v; want 4 versions, a/2 first", h.Versions, err)
	}
}

// TestPostgresSnapshotIgnoresLateCommits: a transaction that started
// writing before a search's first page but commits after it stays
// invisible on every later page, although its transaction id is lower
// than that of one that committed before the first page.
func TestPostgresSnapshotIgnoresLateCommits(t *testing.T) {
	st, err := Open(t.Context(), sqltest.FreshSchema(t, postgresDSN(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*pgStore)
	code := &search.Param{Code: "code", Type: search.Token}
	put := func(tx fhir.Tx, id string) error {
		k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: id}
		return tx.Put(t.Context(), fhir.Version{Key: k, VersionID: 1, JSON: []byte(`{}`)},
			fhir.Index{Entries: []fhir.IndexEntry{{Param: "code", Type: "token", Code: "X"}}})
	}
	for _, id := range []string{"c1", "c2", "c3"} {
		if err := s.Update(t.Context(), func(tx fhir.Tx) error { return put(tx, id) }); err != nil {
			t.Fatal(err)
		}
	}
	written, release, lateDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		lateDone <- s.Update(t.Context(), func(tx fhir.Tx) error {
			for _, id := range []string{"a0", "z9"} {
				if err := put(tx, id); err != nil {
					return err
				}
			}
			close(written)
			<-release
			return nil
		})
	}()
	<-written
	if err := s.Update(t.Context(), func(tx fhir.Tx) error { return put(tx, "b5") }); err != nil {
		t.Fatal(err)
	}
	q := &search.Query{Type: "Observation", Count: 2, Clauses: []search.Clause{{Param: code, Values: []search.Value{{Code: "X"}}}}}
	res, err := s.Search(t.Context(), fhir.DefaultTenant, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-lateDone; err != nil {
		t.Fatal(err)
	}
	var ids []string
	for {
		for _, v := range res.Matches {
			ids = append(ids, v.ID)
		}
		if res.Next == nil {
			break
		}
		if res, err = s.Search(t.Context(), fhir.DefaultTenant, q, res.Next); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"b5", "c1", "c2", "c3"}; !slices.Equal(ids, want) {
		t.Errorf("pages: %v, want %v", ids, want)
	}
	res, err = s.Search(t.Context(), fhir.DefaultTenant, &search.Query{Type: "Observation", Summary: "count"}, nil)
	if err != nil || res.Total != 6 {
		t.Errorf("a new search: %d, %v; want 6", res.Total, err)
	}
}

// TestSearchErrorsAreFHIRErrors: what the store cannot evaluate, and a
// cursor that does not fit, reach the client as 400s.
func TestSearchErrorsAreFHIRErrors(t *testing.T) {
	st, err := Open(t.Context(), filepath.Join(t.TempDir(), "e.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqliteStore)
	subject := &search.Param{Code: "subject", Type: search.Reference}
	q := &search.Query{Type: "Observation", Clauses: []search.Clause{{Param: subject, Modifier: "identifier", Values: []search.Value{{Code: "x"}}}}}
	_, err = s.Search(t.Context(), fhir.DefaultTenant, q, nil)
	if !errors.Is(err, ErrUnsupported) || fhir.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("subject:identifier: %v (status %d); want ErrUnsupported, 400", err, fhir.StatusOf(err))
	}
	q = &search.Query{Type: "Observation", Sort: []search.SortKey{{Param: subject}}}
	_, err = s.Search(t.Context(), fhir.DefaultTenant, q, &search.Cursor{After: []string{"x", "y"}})
	if fhir.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("bad cursor: %v (status %d); want 400", err, fhir.StatusOf(err))
	}
}
