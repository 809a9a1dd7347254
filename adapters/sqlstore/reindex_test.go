package sqlstore

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// TestReindex: resources stored without their index rows (as data
// written before a change to what is indexed), or with stale ones, are
// found by their search parameters and identifiers after ReindexPage has
// run over them, on SQLite and PostgreSQL. The run is resumable: reopening
// the store after a page carries on after it; a deletion is not
// reindexed; a finished run's successor starts again from the beginning.
func TestReindex(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fhir.db")
		testReindex(t, func() search.Store {
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := sqltest.PostgresDSN(t)
		if dsn == "" {
			t.Skip(pgEnv + " not set: skipping the PostgreSQL half (.ci/run sets it)")
		}
		schema := sqltest.FreshSchema(t, dsn)
		testReindex(t, func() search.Store {
			s, err := Open(t.Context(), schema)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

func testReindex(t *testing.T, open func() search.Store) {
	ctx := t.Context()
	st := open()
	ten := fhir.DefaultTenant
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	put := func(typ, id string, vid int64, body string, idx fhir.Index) {
		t.Helper()
		res, _, err := fhir.ParseResource([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		write.Stamp(res, id, vid, ts)
		v := fhir.Version{Key: fhir.Key{Tenant: ten, Type: typ, ID: id}, VersionID: vid, LastUpdated: ts, JSON: res.Encode()}
		if err := st.Update(ctx, func(tx fhir.Tx) error { return tx.Put(ctx, v, idx) }); err != nil {
			t.Fatal(err)
		}
	}
	// Stored with no index rows at all.
	put("Patient", "p1", 1, `{"resourceType":"Patient","identifier":[{"system":"urn:x","value":"1"}],"name":[{"family":"Shaw"}]}`, fhir.Index{})
	put("Observation", "o1", 1, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"}}`, fhir.Index{})
	// Stored with a stale value, which must go.
	put("Observation", "o2", 1, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"9279-1"}]}}`,
		fhir.Index{Entries: []fhir.IndexEntry{{Param: "code", Type: "token", Code: "STALE"}}})
	// Deleted: nothing to index.
	put("Observation", "o3", 1, `{"resourceType":"Observation","status":"final","code":{"text":"gone"}}`, fhir.Index{})
	if err := st.Update(ctx, func(tx fhir.Tx) error {
		return tx.Put(ctx, fhir.Version{Key: fhir.Key{Tenant: ten, Type: "Observation", ID: "o3"}, VersionID: 2, Deleted: true}, fhir.Index{})
	}); err != nil {
		t.Fatal(err)
	}

	find := func(st search.Store, typ, param, value string) []string {
		t.Helper()
		q, err := search.ParseQuery(typ, url.Values{param: {value}}, "", true)
		if err != nil {
			t.Fatal(err)
		}
		res, err := st.Search(ctx, ten, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, v := range res.Matches {
			ids = append(ids, v.ID)
		}
		return ids
	}
	lookup := func(st search.Store) []string {
		t.Helper()
		var ids []string
		if err := st.Update(ctx, func(tx fhir.Tx) error {
			var err error
			ids, err = tx.LookupIdentifier(ctx, ten, "Patient", fhir.Identifier{System: "urn:x", Value: "1"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := find(st, "Observation", "code", "8867-4"); len(got) != 0 {
		t.Fatalf("before reindex, code found: %v", got)
	}
	if got := lookup(st); len(got) != 0 {
		t.Fatalf("before reindex, identifier found: %v", got)
	}

	index := func(v fhir.Version) (fhir.Index, error) {
		res, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
		if err != nil {
			return fhir.Index{}, err
		}
		return write.Writer{}.Index(res), nil
	}
	ri := st.(Reindexer)
	p, err := ri.ReindexPage(ctx, false, 1, index)
	if err != nil {
		t.Fatal(err)
	}
	if p.Page != 1 || p.Count != 1 || p.Done || p.After.ID != "o1" {
		t.Fatalf("first page: %+v", p)
	}
	// The process stops; another one resumes after o1.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open()
	t.Cleanup(func() { st.Close() })
	ri = st.(Reindexer)
	var pages []ReindexProgress
	for {
		p, err := ri.ReindexPage(ctx, false, 1, index)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, p)
		if p.Done || len(pages) > 10 {
			break
		}
	}
	last := pages[len(pages)-1]
	if len(pages) != 3 || pages[0].After.ID != "o2" || pages[0].Count != 2 || pages[1].After.ID != "p1" || last.Count != 3 || last.Page != 0 || !last.Done {
		t.Fatalf("resumed run: %+v", pages)
	}
	if got := find(st, "Observation", "code", "8867-4"); len(got) != 1 || got[0] != "o1" {
		t.Errorf("after reindex, code=8867-4: %v", got)
	}
	if got := find(st, "Observation", "subject", "Patient/p1"); len(got) != 1 || got[0] != "o1" {
		t.Errorf("after reindex, subject=Patient/p1: %v", got)
	}
	if got := find(st, "Patient", "family", "shaw"); len(got) != 1 || got[0] != "p1" {
		t.Errorf("after reindex, family=shaw: %v", got)
	}
	if got := find(st, "Observation", "code", "STALE"); len(got) != 0 {
		t.Errorf("after reindex, the stale value still found: %v", got)
	}
	if got := find(st, "Observation", "code", "9279-1"); len(got) != 1 || got[0] != "o2" {
		t.Errorf("after reindex, code=9279-1: %v", got)
	}
	if got := lookup(st); len(got) != 1 || got[0] != "p1" {
		t.Errorf("after reindex, identifier urn:x|1: %v", got)
	}
	// Reindexing again changes nothing found, and a finished run's
	// successor starts from the beginning; restart does too.
	p, err = ri.ReindexPage(context.Background(), false, 10, index)
	if err != nil || p.Count != 3 || p.Page != 3 || !p.Done {
		t.Errorf("a new run after a finished one: %+v %v", p, err)
	}
	if _, err := ri.ReindexPage(ctx, false, 1, index); err != nil {
		t.Fatal(err)
	}
	if p, err = ri.ReindexPage(ctx, true, 1, index); err != nil || p.Count != 1 || p.After.ID != "o1" {
		t.Errorf("restart: %+v %v", p, err)
	}
	if got := find(st, "Observation", "code", "8867-4"); len(got) != 1 {
		t.Errorf("after reindexing twice, code=8867-4: %v", got)
	}
}
