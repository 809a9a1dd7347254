package memstore_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirtest"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// open gives each test an empty store of its own.
func open(t *testing.T) fhir.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreSuite(t *testing.T) {
	fhirtest.RunStoreSuiteWith(t, open, fhirtest.Features{Volatile: true})
}

func TestSearchSuite(t *testing.T) {
	fhirtest.RunSearchSuite(t, open)
}

func TestClosed(t *testing.T) {
	s, ctx := memstore.New(), t.Context()
	k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: "p"}
	if err := s.Update(ctx, func(tx fhir.Tx) error {
		return tx.Put(ctx, fhir.Version{Key: k, VersionID: 1, JSON: []byte(`{}`)}, fhir.Index{})
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if _, err := s.Read(ctx, k); !errors.Is(err, memstore.ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if err := s.Update(ctx, func(fhir.Tx) error { return nil }); !errors.Is(err, memstore.ErrClosed) {
		t.Errorf("Update after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Search(ctx, fhir.DefaultTenant, &search.Query{Type: "Patient"}, nil); !errors.Is(err, memstore.ErrClosed) {
		t.Errorf("Search after Close: %v, want ErrClosed", err)
	}
}

// A cursor must name a committed snapshot: a forged one must not read a
// running transaction's writes.
func TestCursorFromElsewhere(t *testing.T) {
	s, ctx := memstore.New(), t.Context()
	defer s.Close()
	q := &search.Query{Type: "Patient"}
	for _, cur := range []*search.Cursor{{Snapshot: 99}, {Snapshot: -1}} {
		_, err := s.Search(ctx, fhir.DefaultTenant, q, cur)
		var fe *fhir.Error
		if !errors.As(err, &fe) || fe.Code != fhir.IssueInvalid {
			t.Errorf("cursor %+v: %v, want an invalid *fhir.Error", cur, err)
		}
		if _, err := s.HistoryPage(ctx, fhir.DefaultTenant, search.HistoryQuery{Cursor: cur}); !errors.As(err, &fe) {
			t.Errorf("history cursor %+v: %v, want a *fhir.Error", cur, err)
		}
	}
	// Sort values that do not fit the keys.
	q.Sort = []search.SortKey{{Param: &search.Param{Code: "birthdate", Type: search.Date}}}
	if _, err := s.Search(ctx, fhir.DefaultTenant, q, &search.Cursor{After: []string{"sx"}}); err == nil {
		t.Errorf("string sort value for a date key: no error")
	}
}

func TestUnsupportedIsNotSupported(t *testing.T) {
	s, ctx := memstore.New(), t.Context()
	defer s.Close()
	tok := &search.Param{Code: "code", Type: search.Token}
	for name, q := range map[string]*search.Query{
		"no type":       {},
		"token :in":     {Type: "Observation", Clauses: []search.Clause{{Param: tok, Modifier: "in", Values: []search.Value{{Code: "x"}}}}},
		"special":       {Type: "Location", Clauses: []search.Clause{{Param: &search.Param{Code: "near", Type: search.Special}, Values: []search.Value{{Code: "x"}}}}},
		"no value":      {Type: "Observation", Clauses: []search.Clause{{Param: tok}}},
		"bad prefix":    {Type: "Patient", Clauses: []search.Clause{{Param: &search.Param{Code: "birthdate", Type: search.Date}, Values: []search.Value{{Prefix: "xx"}}}}},
		"sort on comp.": {Type: "Observation", Sort: []search.SortKey{{Param: &search.Param{Code: "c", Type: search.Composite}}}},
	} {
		_, err := s.Search(ctx, fhir.DefaultTenant, q, nil)
		var fe *fhir.Error
		if !errors.Is(err, memstore.ErrUnsupported) || !errors.As(err, &fe) || fe.Code != fhir.IssueNotSupported {
			t.Errorf("%s: %v, want a not-supported *fhir.Error wrapping ErrUnsupported", name, err)
		}
	}
	err := s.Update(ctx, func(tx fhir.Tx) error {
		_, err := tx.(search.Searcher).Search(ctx, fhir.DefaultTenant, &search.Query{Type: "Patient"}, &search.Cursor{Snapshot: 1})
		return err
	})
	if !errors.Is(err, memstore.ErrUnsupported) {
		t.Errorf("paging inside a transaction: %v, want ErrUnsupported", err)
	}
}

func dump(t *testing.T, s *memstore.Store) string {
	t.Helper()
	var b strings.Builder
	if err := s.Dump(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A failed transaction leaves the store as it was, byte for byte: not
// even the tenant or type it was the first to write remains.
func TestFailedUpdateLeavesNoTrace(t *testing.T) {
	s, ctx := memstore.New(), t.Context()
	defer s.Close()
	put := func(tx fhir.Tx, tenant, typ, id string, vid int64) error {
		return tx.Put(ctx, fhir.Version{Key: fhir.Key{Tenant: tenant, Type: typ, ID: id}, VersionID: vid, JSON: []byte(`{"a":1}`)},
			fhir.Index{Identifiers: []fhir.Identifier{{System: "s", Value: id}},
				Entries: []fhir.IndexEntry{{Param: "code", Type: "token", Code: id}}})
	}
	if err := s.Update(ctx, func(tx fhir.Tx) error { return put(tx, "a", "Patient", "p", 1) }); err != nil {
		t.Fatal(err)
	}
	before := dump(t, s)
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx fhir.Tx) error {
		for _, w := range []struct {
			tenant, typ, id string
			vid             int64
		}{{"a", "Patient", "p", 2}, {"a", "Patient", "q", 1}, {"a", "Group", "g", 1}, {"b", "Patient", "p", 1}, {"a", "Patient", "p", 3}} {
			if err := put(tx, w.tenant, w.typ, w.id, w.vid); err != nil {
				return err
			}
		}
		if err := tx.Enqueue(ctx, fhir.OutboxMessage{Tenant: "c", Topic: "t"}); err != nil {
			return err
		}
		// Refused Puts, of a new tenant and of a new type.
		if err := put(tx, "d", "Patient", "p", 2); !errors.Is(err, fhir.ErrVersionConflict) {
			return fmt.Errorf("version 2 of a new resource: %v", err)
		}
		if err := put(tx, "a", "Device", "x", 3); !errors.Is(err, fhir.ErrVersionConflict) {
			return fmt.Errorf("version 3 of a new resource: %v", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	if after := dump(t, s); after != before {
		t.Errorf("a failed Update changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Writes from goroutines that fn started and did not wait for race the
// end of the transaction: each is part of it or refused, never left over
// to surface with a later commit.
func TestWritesRacingTheirTransactionsEnd(t *testing.T) {
	s, ctx := memstore.New(), t.Context()
	defer s.Close()
	boom := errors.New("boom")
	for round := range 40 {
		var wg sync.WaitGroup
		_ = s.Update(ctx, func(tx fhir.Tx) error {
			for g := range 3 {
				wg.Go(func() {
					for i := 0; ; i++ {
						k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: fmt.Sprintf("r%d-%d-%d", round, g, i)}
						if tx.Put(ctx, fhir.Version{Key: k, VersionID: 1, JSON: []byte(`{}`)}, fhir.Index{}) != nil ||
							tx.Enqueue(ctx, fhir.OutboxMessage{Tenant: fhir.DefaultTenant, Key: k.ID}) != nil {
							return
						}
					}
				})
			}
			time.Sleep(50 * time.Microsecond)
			if round%2 == 0 {
				return boom
			}
			return nil
		})
		wg.Wait()
		before := dump(t, s)
		if err := s.Update(ctx, func(fhir.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if after := dump(t, s); after != before {
			t.Fatalf("round %d: an empty commit changed the store: writes outlived their transaction", round)
		}
	}
}
