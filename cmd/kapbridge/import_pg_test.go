package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
)

// TestImportPostgres: the command on a PostgreSQL store (a fresh schema of
// the server KAPBRIDGE_TEST_POSTGRES_DSN names): a course in CSV, then
// again as NDJSON, changes nothing the second time.
func TestImportPostgres(t *testing.T) {
	dsn := sqltest.PostgresDSN(t)
	if dsn == "" {
		t.Skip("KAPBRIDGE_TEST_POSTGRES_DSN not set: skipping the PostgreSQL half (.ci/run sets it)")
	}
	store := sqltest.FreshSchema(t, dsn)

	csvs, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "import", "course-iv", "*.csv"))
	out, _, err := runImport(t, store, append([]string{"--progress", "none"}, csvs...)...)
	if err != nil || !strings.Contains(out, "imported: 60, unchanged: 0, pending: 0, rejected: 0") {
		t.Fatalf("CSV import: %v\n%s", err, out)
	}
	out, _, err = runImport(t, store, "--progress", "none", filepath.Join("..", "..", "testdata", "records", "course-iv.ndjson"))
	if err != nil || !strings.Contains(out, "imported: 0, unchanged: 60, pending: 0, rejected: 0") {
		t.Fatalf("NDJSON re-import: %v\n%s", err, out)
	}
}
