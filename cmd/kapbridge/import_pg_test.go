package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestImportPostgres: the command on a PostgreSQL store (a fresh schema of
// the server KAPBRIDGE_TEST_POSTGRES_DSN names): a course in CSV, then
// again as NDJSON, changes nothing the second time.
func TestImportPostgres(t *testing.T) {
	dsn := os.Getenv("KAPBRIDGE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("KAPBRIDGE_TEST_POSTGRES_DSN not set: skipping the PostgreSQL half (.ci/run sets it)")
	}
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "kbimport_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	store := u.String()

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
