// Package sqltest helps tests that need the real SQL stores: the
// PostgreSQL server of the test run (KAPBRIDGE_TEST_POSTGRES_DSN), a fresh
// schema on it for each test, and a dump of everything a store holds, to
// prove that a refused request wrote nothing. It is for tests only.
package sqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "modernc.org/sqlite"             // registers driver "sqlite"
)

// EnvPostgresDSN names the PostgreSQL server tests run against; CI
// (.ci/run) sets it.
const EnvPostgresDSN = "KAPBRIDGE_TEST_POSTGRES_DSN"

// PostgresDSN returns the DSN of the test PostgreSQL server, or "" after
// logging that the PostgreSQL half of t is skipped because none is set.
// Under CI (CI set, as .ci/run does) a missing DSN fails t instead: the
// PostgreSQL half must run there.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvPostgresDSN)
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal(EnvPostgresDSN + " not set while CI is: the PostgreSQL half of this test must run in CI (.ci/run sets it)")
		}
		t.Log(EnvPostgresDSN + " not set: the PostgreSQL half of this test is skipped (.ci/run sets it)")
	}
	return dsn
}

// FreshSchema creates an empty schema with a random name in the database
// dsn names, drops it (and all it holds) when t ends, and returns dsn with
// search_path selecting it, so tests run in parallel and again without
// seeing each other. dsn is a postgres:// URL or a key=value string.
func FreshSchema(t testing.TB, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "kbtest_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to PostgreSQL (%s): %v", EnvPostgresDSN, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithParam(dsn, "search_path", schema)
}

// WithParam returns dsn (a postgres:// URL or a key=value string) with
// the run-time parameter name set to value.
func WithParam(dsn, name, value string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			q.Set(name, value)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " " + name + "=" + value
}

// Dump renders everything the store at dsn holds as text: every table
// (found in the database, so tables added later are covered too), each
// table's rows sorted by all their columns, every value quoted. dsn is an
// SQLite file path or a postgres:// URL whose search_path selects the
// schema. It reads through a connection of its own, so it sees only what
// is committed; two equal dumps mean the store is unchanged byte for byte.
func Dump(t testing.TB, dsn string) string {
	t.Helper()
	driver, source, list := "sqlite", "file:"+dsn+"?mode=ro&_pragma=busy_timeout(10000)",
		"SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		driver, source, list = "pgx", dsn,
			"SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name"
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	if driver == "sqlite" {
		dumpRows(t, db, &b, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
	}
	var names []string
	rows, err := db.Query(list)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	if len(names) == 0 {
		t.Fatalf("sqltest.Dump: %s holds no tables (for PostgreSQL, is search_path set?)", dsn)
	}
	for _, n := range names {
		b.WriteString("== " + n + "\n")
		dumpRows(t, db, &b, `SELECT * FROM "`+n+`" ORDER BY `+orderAll(columns(t, db, n)))
	}
	return b.String()
}

// columns counts the columns of table.
func columns(t testing.TB, db *sql.DB, table string) int {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM "` + table + `" LIMIT 0`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	return len(cols)
}

// orderAll is "1, 2, ..., n": sort by every column so the dump does not
// depend on physical row order.
func orderAll(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = strconv.Itoa(i + 1)
	}
	return strings.Join(parts, ", ")
}

// dumpRows writes one line per row of q, every value quoted.
func dumpRows(t testing.TB, db *sql.DB, b *strings.Builder, q string) {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if i > 0 {
				b.WriteByte('\t')
			}
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(b, "%q", v)
			case time.Time:
				b.WriteString(v.UTC().Format(time.RFC3339Nano))
			default:
				fmt.Fprintf(b, "%#v", v)
			}
		}
		b.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
