package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "modernc.org/sqlite"             // registers driver "sqlite"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/server"
)

// backend opens a fresh, empty store.
type backend struct {
	name string
	open func(t *testing.T) search.Store
	// openDumped opens a fresh store as open does, with a function that
	// renders everything the store holds (every table, every row) as
	// text: two equal dumps mean the store is unchanged byte for byte.
	openDumped func(t *testing.T) (search.Store, func(t *testing.T) string)
}

// backends returns SQLite always and PostgreSQL when
// KAPBRIDGE_TEST_POSTGRES_DSN is set (.ci/run sets it).
func backends(t *testing.T) []backend {
	sqlite := func(t *testing.T) (search.Store, func(*testing.T) string) {
		path := filepath.Join(t.TempDir(), "kapbridge.db")
		st, err := sqlstore.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st, func(t *testing.T) string { return dumpSQLite(t, path) }
	}
	bs := []backend{{"sqlite", func(t *testing.T) search.Store { st, _ := sqlite(t); return st }, sqlite}}
	dsn := os.Getenv("KAPBRIDGE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Log("KAPBRIDGE_TEST_POSTGRES_DSN not set: the PostgreSQL half of this test is skipped (.ci/run sets it)")
		return bs
	}
	postgres := func(t *testing.T) (search.Store, func(*testing.T) string) {
		schemaDSN := freshPostgresSchema(t, dsn)
		st, err := sqlstore.Open(context.Background(), schemaDSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st, func(t *testing.T) string { return dumpPostgres(t, schemaDSN) }
	}
	return append(bs, backend{"postgres", func(t *testing.T) search.Store { st, _ := postgres(t); return st }, postgres})
}

// freshPostgresSchema creates an empty schema, dropped after the test, and
// returns dsn with search_path pointing at it.
func freshPostgresSchema(t *testing.T, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "kbtest_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}

// countingStore counts committed Put calls, to prove that a refused
// request stored nothing.
type countingStore struct {
	search.Store
	committed atomic.Int64
}

type countingTx struct {
	fhir.Tx
	puts *int64
}

func (tx countingTx) Put(ctx context.Context, v fhir.Version, idx fhir.Index) error {
	err := tx.Tx.Put(ctx, v, idx)
	if err == nil {
		*tx.puts++
	}
	return err
}

// Search is the wrapped transaction's: a search.Store's Tx searches.
func (tx countingTx) Search(ctx context.Context, tenant string, q *search.Query, cur *search.Cursor) (search.Result, error) {
	return tx.Tx.(search.Searcher).Search(ctx, tenant, q, cur)
}

func (s *countingStore) Update(ctx context.Context, fn func(fhir.Tx) error) error {
	var puts int64
	err := s.Store.Update(ctx, func(tx fhir.Tx) error {
		puts = 0
		return fn(countingTx{tx, &puts})
	})
	if err == nil {
		s.committed.Add(puts)
	}
	return err
}

// testServer is the FHIR API over real loopback HTTP.
type testServer struct {
	*httptest.Server
	t *testing.T
}

func newTestServer(t *testing.T, st fhir.Store) *testServer {
	var h http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	// KAPBRIDGE_TEST_LOG=1 shows the server's log (causes of 500s).
	var logw io.Writer = io.Discard
	if os.Getenv("KAPBRIDGE_TEST_LOG") != "" {
		logw = os.Stderr
	}
	h = server.New(server.Config{Store: st, BaseURL: ts.URL, Logger: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	return &testServer{ts, t}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON (%d): %v\n%s", r.status, err, r.body)
	}
	return m
}

// do sends a request; headers alternate name, value.
func (s *testServer) do(method, path string, body []byte, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// assertOutcome checks that r is an OperationOutcome with the status
// wanted, and returns its issues.
func assertOutcome(t *testing.T, r response, status int) []any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %.600s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") && !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want FHIR JSON", ct)
	}
	m := r.json(t)
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("body is a %v, want OperationOutcome: %.300s", m["resourceType"], r.body)
	}
	issues, _ := m["issue"].([]any)
	if len(issues) == 0 {
		t.Fatalf("OperationOutcome without issues: %s", r.body)
	}
	for _, is := range issues {
		im := is.(map[string]any)
		if im["severity"] == nil || im["code"] == nil {
			t.Errorf("issue lacks severity or code: %v", im)
		}
	}
	return issues
}

// withoutServerMeta drops what the server owns (id, meta.versionId,
// meta.lastUpdated) so a stored resource can be compared with what was
// sent, as decoded JSON.
func withoutServerMeta(m map[string]any) map[string]any {
	delete(m, "id")
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	return m
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return m
}

func jsonEqual(a, b map[string]any) bool { return reflect.DeepEqual(a, b) }

// dumpSQLite renders every table of the SQLite database at path (the
// schema, then each table's rows sorted by all columns), read through its
// own connection so it sees only what is committed. It knows no table by
// name, so index tables added later are covered too.
func dumpSQLite(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	dumpQuery(t, db, &b, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
	rows, err := db.Query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		b.WriteString("== " + n + "\n")
		cols := dumpColumns(t, db, `SELECT * FROM "`+n+`" LIMIT 0`)
		dumpQuery(t, db, &b, `SELECT * FROM "`+n+`" ORDER BY `+orderAll(cols))
	}
	return b.String()
}

// dumpPostgres renders every table of the schema dsn's search_path
// selects, as dumpSQLite does.
func dumpPostgres(t *testing.T, dsn string) string {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	rows, err := db.Query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	if len(names) == 0 {
		t.Fatal("dumpPostgres: the schema has no tables; is search_path set?")
	}
	for _, n := range names {
		b.WriteString("== " + n + "\n")
		cols := dumpColumns(t, db, `SELECT * FROM "`+n+`" LIMIT 0`)
		dumpQuery(t, db, &b, `SELECT * FROM "`+n+`" ORDER BY `+orderAll(cols))
	}
	return b.String()
}

func dumpColumns(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	rows, err := db.Query(q)
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

// dumpQuery writes one line per row of q, every value quoted, and
// returns the number of rows.
func dumpQuery(t *testing.T, db *sql.DB, b *strings.Builder, q string) int {
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
	n := 0
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
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
