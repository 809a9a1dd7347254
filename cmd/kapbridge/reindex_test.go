package main

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// TestReindexCommand: an Observation stored without its index rows (as
// before a change to what is indexed) is not found by code; after
// `kapbridge reindex` it is, on SQLite and PostgreSQL. A usage mistake is
// exit status 2.
func TestReindexCommand(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testReindexCommand(t, filepath.Join(t.TempDir(), "r.db")) })
	t.Run("postgres", func(t *testing.T) {
		dsn := sqltest.PostgresDSN(t)
		if dsn == "" {
			t.Skip(sqltest.EnvPostgresDSN + " not set: skipping the PostgreSQL half (.ci/run sets it)")
		}
		testReindexCommand(t, sqltest.FreshSchema(t, dsn))
	})
	if err := run(context.Background(), []string{"reindex", "-page", "0"}, func(string) string { return "" }, strings.NewReader(""), io.Discard, io.Discard); exitCode(err) != 2 {
		t.Errorf("-page 0: %v, want a usage error", err)
	}
}

func testReindexCommand(t *testing.T, store string) {
	ctx := t.Context()
	st, err := sqlstore.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	for i, code := range []string{"8867-4", "9279-1", "8310-5"} {
		res, _, err := fhir.ParseResource([]byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]}}`))
		if err != nil {
			t.Fatal(err)
		}
		id := "o" + string(rune('1'+i))
		ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		write.Stamp(res, id, 1, ts)
		v := fhir.Version{Key: fhir.Key{Tenant: fhir.DefaultTenant, Type: "Observation", ID: id}, VersionID: 1, LastUpdated: ts, JSON: res.Encode()}
		if err := st.Update(ctx, func(tx fhir.Tx) error { return tx.Put(ctx, v, fhir.Index{}) }); err != nil {
			t.Fatal(err)
		}
	}
	found := func(st search.Store) int {
		q, err := search.ParseQuery("Observation", url.Values{"code": {"http://loinc.org|9279-1"}}, "", true)
		if err != nil {
			t.Fatal(err)
		}
		res, err := st.Search(ctx, fhir.DefaultTenant, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Matches)
	}
	if n := found(st); n != 0 {
		t.Fatalf("before reindex: %d found", n)
	}
	st.Close()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"reindex", "-store", store, "-page", "2"}, func(string) string { return "" }, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("reindex: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "reindexed 3 live resources") {
		t.Errorf("reindex said %q (stderr %q)", out.String(), errOut.String())
	}
	st, err = sqlstore.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n := found(st); n != 1 {
		t.Errorf("after reindex: %d found, want 1", n)
	}
}
