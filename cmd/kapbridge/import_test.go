package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/practice"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// runImport runs `kapbridge import` in-process with the given flags.
func runImport(t *testing.T, store string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"KAPBRIDGE_STORE": store}
	err = run(context.Background(), append([]string{"import"}, args...), func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

// storedRecords lists the "kind/id" of the stored practice records.
func storedRecords(t *testing.T, store string) map[string]string {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.(recordstore.Store).ListRecords(context.Background(), fhir.DefaultTenant, "", "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		out[string(r.Kind)+"/"+r.ID] = r.State
	}
	return out
}

func readRejects(t *testing.T, path string) []practice.Reject {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []practice.Reject
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var r practice.Reject
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("rejects line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

const (
	goodClient = `{"kind":"client","id":"c1","name":{"family":"Okafor","given":["Ada"]},"birth_date":"1984-03-17"}`
	goodPract  = `{"kind":"practitioner","id":"p1","name":{"family":"Lind"},"role":"prescriber","credential":"MD"}`
	clientsCSV = "id,name.family,name.given,birth_date,sex\n"
)

// TestImportCorruptFiles: in every broken file the good records land,
// each bad one is in the rejects file with its line and reason, and the
// exit status says there were rejects.
func TestImportCorruptFiles(t *testing.T) {
	bigCell := strings.Repeat("x", 1<<20)
	cases := []struct {
		name, file, content string
		args                []string
		land                []string       // kind/id that must be stored
		rejects             map[int]string // line -> reason (regexp)
	}{
		{"truncated JSON", "t.json", "[\n" + goodClient + ",\n" + goodPract + ",\n" + `{"kind":"client","id":"c2","name":{"fam`,
			nil, []string{"client/c1", "practitioner/p1"}, map[int]string{4: "truncated"}},
		{"CSV missing column", "c.csv", clientsCSV + "c1,Okafor,Ada,1984-03-17,female\nc2,Lind,1990-01-01,male\nc3,Moreno,Luis,1979-05-02,male\n",
			nil, []string{"client/c1", "client/c3"}, map[int]string{3: "missing"}},
		{"bad date", "d.csv", clientsCSV + "c1,Okafor,Ada,1984-03-17,female\nc2,Lind,Eva,1984-13-45,female\n",
			nil, []string{"client/c1"}, map[int]string{3: `birth_date: "1984-13-45" is not a date`}},
		{"date format", "f.csv", clientsCSV + "c1,Okafor,Ada,17/03/1984,female\nc2,Lind,Eva,1984-02-01,female\nc3,Moreno,Luis,31/02/1984,male\n",
			[]string{"--date-format", "%d/%m/%Y"}, []string{"client/c1", "client/c2"}, map[int]string{4: "date format"}},
		{"unknown kind", "k.ndjson", goodClient + "\n" + `{"kind":"invoice","id":"i1"}` + "\n" + goodPract + "\n",
			nil, []string{"client/c1", "practitioner/p1"}, map[int]string{2: `unknown kind "invoice"`}},
		{"unknown field", "u.ndjson", goodClient + "\n" + `{"kind":"client","id":"c2","name":{"family":"X"},"birth_date":"1990-01-01","shoe_size":42}` + "\n",
			nil, []string{"client/c1"}, map[int]string{2: "shoe_size: unknown field"}},
		{"1 MB cell", "n.csv", clientsCSV + "c1,Okafor,Ada,1984-03-17,female\nc2," + bigCell + ",Eva,1990-01-01,female\nc3,Moreno,Luis,1979-05-02,male\n",
			nil, []string{"client/c1", "client/c3"}, map[int]string{3: "more than the limit"}},
		{"1 MB line", "n.ndjson", goodClient + "\n" + `{"kind":"client","id":"c2","name":{"family":"` + bigCell + `"},"birth_date":"1990-01-01"}` + "\n" + goodPract + "\n",
			nil, []string{"client/c1", "practitioner/p1"}, map[int]string{2: "limit"}},
		{"invalid UTF-8", "v.ndjson", goodClient + "\n" + `{"kind":"client","id":"c2","name":{"family":"M` + "\xff\xfe" + `ller"},"birth_date":"1990-01-01"}` + "\n" + goodPract + "\n",
			nil, []string{"client/c1", "practitioner/p1"}, map[int]string{2: "invalid UTF-8"}},
		{"invalid UTF-8 in CSV", "v.csv", clientsCSV + "c1,Okafor,Ada,1984-03-17,female\nc2,M\xffller,Eva,1990-01-01,female\n",
			nil, []string{"client/c1"}, map[int]string{3: "invalid UTF-8"}},
		{"NUL", "z.ndjson", goodClient + "\n" + `{"kind":"client","id":"c2","name":{"family":"M\u0000ller"},"birth_date":"1990-01-01"}` + "\n" + goodPract + "\n",
			nil, []string{"client/c1", "practitioner/p1"}, map[int]string{2: `name.family: holds U\+0000`}},
		{"NUL in CSV", "z.csv", clientsCSV + "c1,Okafor,Ada,1984-03-17,female\nc2,M\x00ller,Eva,1990-01-01,female\n",
			nil, []string{"client/c1"}, map[int]string{3: `U\+0000`}},
		{"BOM", "b.ndjson", "\xef\xbb\xbf" + goodClient + "\n" + `{"kind":"client","id":"c2"}` + "\n" + goodPract + "\n",
			nil, []string{"client/c1", "practitioner/p1"}, map[int]string{2: "required"}},
		{"BOM CSV", "b.csv", "\xef\xbb\xbf" + clientsCSV + "c1,Okafor,Ada,1984-03-17,female\n",
			nil, []string{"client/c1"}, nil},
		{"CRLF", "r.ndjson", goodClient + "\r\n" + `{"kind":"client","id":"c2"}` + "\r\n" + goodPract + "\r\n",
			nil, []string{"client/c1", "practitioner/p1"}, map[int]string{2: "required"}},
		{"CRLF CSV", "r.csv", strings.ReplaceAll(clientsCSV+"c1,Okafor,Ada,1984-03-17,female\nc2,Lind,Eva,1990-13-01,female\nc3,\"Moreno\r\nJr\",Luis,1979-05-02,male\n", "\n", "\r\n"),
			nil, []string{"client/c1", "client/c3"}, map[int]string{3: "not a date"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, tc.file)
			if err := os.WriteFile(in, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			store := filepath.Join(dir, "k.db")
			rej := filepath.Join(dir, "rejects.ndjson")
			stdout, stderr, err := runImport(t, store, append(append([]string{"--rejects", rej, "--progress", "none"}, tc.args...), in)...)
			var er errRejected
			switch {
			case len(tc.rejects) > 0 && !errors.As(err, &er):
				t.Errorf("err = %v, want rejects (exit status 1)\n%s%s", err, stdout, stderr)
			case len(tc.rejects) == 0 && err != nil:
				t.Errorf("err = %v\n%s%s", err, stdout, stderr)
			}
			if err != nil && exitCode(err) != 1 {
				t.Errorf("exit status %d, want 1", exitCode(err))
			}
			got := storedRecords(t, store)
			for _, k := range tc.land {
				if got[k] == "" {
					t.Errorf("%s did not land (stored: %v)", k, got)
				}
			}
			if len(got) != len(tc.land) {
				t.Errorf("stored %v, want exactly %v", got, tc.land)
			}
			rs := readRejects(t, rej)
			if len(rs) != len(tc.rejects) {
				t.Errorf("%d rejects, want %d: %+v", len(rs), len(tc.rejects), rs)
			}
			for _, r := range rs {
				want, ok := tc.rejects[r.Line]
				if !ok {
					t.Errorf("reject at line %d unexpected: %v", r.Line, r.Reasons)
					continue
				}
				if !regexp.MustCompile(want).MatchString(strings.Join(r.Reasons, "; ")) {
					t.Errorf("line %d: reasons %q do not match %q", r.Line, r.Reasons, want)
				}
				if r.File != in || len(r.Record) == 0 {
					t.Errorf("line %d: file %q, record %d bytes", r.Line, r.File, len(r.Record))
				}
			}
		})
	}
}

// TestImportTwiceAndPending: a re-import changes nothing; a session
// without its course is pending and listed, and lands when the course
// comes in a later import.
func TestImportTwiceAndPending(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "k.db")
	course := filepath.Join("..", "..", "testdata", "records", "course-iv.ndjson")
	out, _, err := runImport(t, store, "--progress", "none", course)
	if err != nil || !strings.Contains(out, "imported: 60, unchanged: 0, pending: 0, rejected: 0") {
		t.Fatalf("first import: %v\n%s", err, out)
	}
	out, _, err = runImport(t, store, "--progress", "none", course)
	if err != nil || !strings.Contains(out, "imported: 0, unchanged: 60, pending: 0, rejected: 0") {
		t.Fatalf("re-import: %v\n%s", err, out)
	}

	// A session (and observation) whose course is in a later file.
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "records", "course-im.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	var first, second []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if strings.Contains(line, `"kind": "course"`) || strings.Contains(line, `"kind":"course"`) {
			second = append(second, line)
		} else {
			first = append(first, line)
		}
	}
	f1, f2 := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "b.ndjson")
	os.WriteFile(f1, []byte(strings.Join(first, "\n")+"\n"), 0o644)
	os.WriteFile(f2, []byte(strings.Join(second, "\n")+"\n"), 0o644)
	out, _, err = runImport(t, store, "--progress", "none", f1)
	if err != nil || !strings.Contains(out, "records waiting for records not imported yet") || !strings.Contains(out, "waits for course/im-course since") {
		t.Fatalf("import without the course: %v\n%s", err, out)
	}
	out, _, err = runImport(t, store, "--progress", "none", f2)
	if err != nil || !strings.Contains(out, "pending: 0, rejected: 0") {
		t.Fatalf("import of the course: %v\n%s", err, out)
	}
	for k, st := range storedRecords(t, store) {
		if st != recordstore.StateMapped {
			t.Errorf("%s is %s", k, st)
		}
	}
}

// TestImportDryRun writes nothing.
func TestImportDryRun(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "k.db")
	course := filepath.Join("..", "..", "testdata", "records", "course-iv.ndjson")
	out, _, err := runImport(t, store, "--progress", "none", "--dry-run", course)
	if err != nil || !strings.Contains(out, "would import (dry run): 60, unchanged: 0, pending: 0, rejected: 0") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if got := storedRecords(t, store); len(got) != 0 {
		t.Errorf("dry run stored %d records", len(got))
	}
}

// TestImportProgressPipe: into a pipe (not a terminal) progress is plain
// lines, no carriage returns.
func TestImportProgressPipe(t *testing.T) {
	dir := t.TempDir()
	course := filepath.Join("..", "..", "testdata", "records", "course-iv.ndjson")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	env := map[string]string{"KAPBRIDGE_STORE": filepath.Join(dir, "k.db")}
	done := make(chan []byte)
	go func() {
		var b bytes.Buffer
		b.ReadFrom(r)
		done <- b.Bytes()
	}()
	err = run(context.Background(), []string{"import", "--progress-interval", "1ms", course}, func(k string) string { return env[k] }, strings.NewReader(""), &out, w)
	w.Close()
	progress := string(<-done)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(progress, "\r") || !regexp.MustCompile(`(?m)^import: .*course-iv.ndjson: 60 records \(100% of .*\), \d+ records/s, ETA 0:00$`).MatchString(progress) {
		t.Errorf("progress in a pipe:\n%q", progress)
	}
}

// buildBinary builds kapbridge into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kapbridge")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestImportProgressTerminal runs the real binary on a pseudo-terminal
// (script(1) allocates one): the progress is a bar redrawn with \r.
func TestImportProgressTerminal(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) not installed")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "obs.ndjson")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	practice.WriteSyntheticObservations(f, 300)
	f.Close()
	cmdline := bin + " import --store " + filepath.Join(dir, "k.db") + " --progress-interval 5ms " + in
	out, err := exec.Command("script", "-q", "-e", "-c", cmdline, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "\r[") || !regexp.MustCompile(`\[=+ *\] +\d+% \d+ records \d+/s ETA`).MatchString(s) || !strings.Contains(s, "] 100% 311 records") {
		t.Errorf("no progress bar on the terminal:\n%q", s)
	}
}

// TestProgressRender checks both renderings with an injected clock.
func TestProgressRender(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	p := &practice.Progress{W: &buf, TTY: true, Now: func() time.Time { return now }, Interval: time.Hour}
	p.Start(1000)
	p.StartFile("x.ndjson", 1000)
	for range 50 {
		p.Record()
	}
	p.Bytes(250)
	now = now.Add(10 * time.Second)
	if got, want := p.Line(), "[=======                       ]  25% 50 records 5/s ETA 0:30"; got != want {
		t.Errorf("bar %q, want %q", got, want)
	}
	p.Finish()
	if !strings.HasPrefix(buf.String(), "\r[") || !strings.HasSuffix(buf.String(), "\n") {
		t.Errorf("final draw %q", buf.String())
	}
	p.TTY = false
	if got, want := p.Line(), "import: x.ndjson: 50 records (25% of 1000 B), 5 records/s, ETA 0:30"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
}

// TestImportCrashSafety kills the real binary with SIGKILL at random
// points while it imports, 20 times, then lets it finish: the store ends
// equal to a clean import, no resource missing, duplicated or with extra
// versions. With one worker the order of writes is fixed, so even the
// version counts must match exactly. With the default 64 workers records
// commit in a varying order, so a course's CarePlan (and its Provenance)
// gains a version per batch of its sessions, a number that depends on the
// interleaving, not on the crashes; and a kill can leave a later dose
// stored without an earlier one, so when the earlier one lands the later
// dose's checks run again: a finding that held only while the earlier
// dose was missing is withdrawn (its Flag deleted) and the dose's
// Provenance written again. With 64 workers, therefore, the live
// resources and their content must match, and a resource the clean
// import does not have may exist only as deleted.
func TestImportCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "obs.ndjson")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	if err := practice.WriteSyntheticObservations(f, n); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, workers := range []string{"1", "64"} {
		t.Run("workers="+workers, func(t *testing.T) {
			dir := t.TempDir()
			imp := func(store string) *exec.Cmd {
				return exec.Command(bin, "import", "--progress", "none", "--workers", workers, "--store", store, in)
			}
			clean := filepath.Join(dir, "clean.db")
			if out, err := imp(clean).CombinedOutput(); err != nil {
				t.Fatalf("clean import: %v\n%s", err, out)
			}
			crashed := filepath.Join(dir, "crashed.db")
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
			for i := range 20 {
				cmd := imp(crashed)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond)
				cmd.Process.Signal(syscall.SIGKILL)
				if err := cmd.Wait(); err == nil {
					t.Logf("kill %d: the import had finished already", i)
					continue
				}
				if n, err := countRecordRows(crashed); err == nil {
					t.Logf("kill %d: %d records stored", i, n)
				}
			}
			if out, err := imp(crashed).CombinedOutput(); err != nil {
				t.Fatalf("final import: %v\n%s", err, out)
			}
			a, b := dumpStore(t, clean), dumpStore(t, crashed)
			if len(a) < n*5 {
				t.Fatalf("clean import has only %d resources", len(a))
			}
			for k, v := range a {
				w, ok := b[k]
				if !ok {
					t.Errorf("missing after crashes: %s", k)
					continue
				}
				if workers != "1" {
					v.versions, w.versions = 0, 0
				}
				if v != w {
					t.Errorf("%s: clean %+v, after crashes %+v", k, v, w)
				}
			}
			for k, w := range b {
				if _, ok := a[k]; !ok {
					if workers != "1" && w.content == "" {
						t.Logf("withdrawn after crashes (deleted, %d versions): %s", w.versions, k)
						continue
					}
					t.Errorf("extra after crashes: %s %+v", k, w)
				}
			}
		})
	}
}

type dumpEntry struct {
	versions int
	content  string
}

// openSQLite opens an SQLite store file through the database/sql driver
// the store itself uses (modernc.org/sqlite, registered as "sqlite" by
// package sqlstore), to look at it below the store's API.
func openSQLite(path string) (*sql.DB, error) { return sql.Open("sqlite", path) }

// countRecordRows counts the practice records stored in an SQLite file.
func countRecordRows(path string) (int, error) {
	db, err := openSQLite(path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRow("SELECT count(*) FROM practice_records").Scan(&n)
	return n, err
}

// dumpStore reads every resource's version count and newest content
// (without meta.versionId, meta.lastUpdated and Provenance.recorded:
// they say when, and the version count is compared on its own). Which
// resources exist, and how many versions each has, comes from the
// resource_versions table itself, so a version no record names (an
// orphan a crash left) is seen too; the content comes through the
// store's API.
func dumpStore(t *testing.T, path string) map[string]dumpEntry {
	t.Helper()
	db, err := openSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT type, id, count(*) FROM resource_versions GROUP BY type, id")
	if err != nil {
		t.Fatal(err)
	}
	type counted struct {
		typ, id string
		n       int
	}
	var all []counted
	for rows.Next() {
		var c counted
		if err := rows.Scan(&c.typ, &c.id, &c.n); err != nil {
			t.Fatal(err)
		}
		all = append(all, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()

	s, err := sqlstore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stamp := regexp.MustCompile(`"(versionId|lastUpdated|recorded)":"[^"]*"`)
	m := map[string]dumpEntry{}
	for _, c := range all {
		v, err := s.Read(context.Background(), fhir.Key{Tenant: fhir.DefaultTenant, Type: c.typ, ID: c.id})
		if err != nil {
			t.Fatal(err)
		}
		m[c.typ+"/"+c.id] = dumpEntry{versions: c.n, content: stamp.ReplaceAllString(string(v.JSON), "")}
	}
	return m
}

// TestImportPendingThenRejected: a session that waited for its course and
// then fails a check against it is reported in the rejects file of the
// import that completed it.
func TestImportPendingThenRejected(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "k.db")
	f1, f2 := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "b.ndjson")
	os.WriteFile(f1, []byte(goodClient+"\n"+goodPract+"\n"+
		`{"kind":"practitioner","id":"p2","name":{"family":"Moreno"},"role":"therapist","credential":"LCSW"}`+"\n"+
		`{"kind":"session","id":"s1","course":"k1","type":"preparation","status":"planned","planned_start":"2026-01-10T10:00:00Z"}`+"\n"), 0o644)
	os.WriteFile(f2, []byte(`{"kind":"course","id":"k1","client":"c1","prescriber":"p1","therapist":"p2","indications":["trd"],"route":"iv","planned":{"preparation":2,"dosing":6,"integration":6},"status":"active","start":"2026-02-01"}`+"\n"), 0o644)
	if out, _, err := runImport(t, store, "--progress", "none", f1); err != nil || !strings.Contains(out, "pending: 1") {
		t.Fatalf("%v\n%s", err, out)
	}
	rej := filepath.Join(dir, "rej.ndjson")
	out, _, err := runImport(t, store, "--progress", "none", "--rejects", rej, f2)
	var er errRejected
	if !errors.As(err, &er) || !strings.Contains(out, "rejected: 1") {
		t.Fatalf("%v\n%s", err, out)
	}
	rs := readRejects(t, rej)
	if len(rs) != 1 || rs[0].Kind != "session" || rs[0].ID != "s1" || !strings.Contains(strings.Join(rs[0].Reasons, " "), "session.before_course") {
		t.Errorf("rejects %+v", rs)
	}
	if st := storedRecords(t, store)["session/s1"]; st != recordstore.StateRejected {
		t.Errorf("session stored as %q", st)
	}
}
