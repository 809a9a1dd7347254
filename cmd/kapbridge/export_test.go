package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/practice"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// TestServePracticeAPIAndExport drives the real program: serve takes a
// course over the practice API (mounted beside the FHIR API), the
// prescriber's side puts the CarePlan on hold over the FHIR API, and
// export, run after the server stops, writes the course with status
// on_hold.
func TestServePracticeAPIAndExport(t *testing.T) {
	addr := freeAddr(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "kap.db")
	env := map[string]string{"KAPBRIDGE_STORE": db, "KAPBRIDGE_PRACTICE": "acme-kap"}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logw := &lockedWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-auth", "off", "-listen", addr}, getenv, strings.NewReader(""), io.Discard, logw)
	}()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/practice/v1/schema")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no practice API after 20 s: %v\n%s", err, logw.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	do := func(method, path, ct string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "records", "course-iv.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if st, b := do(http.MethodPost, "/practice/v1/records", "application/x-ndjson", src); st != 200 {
		t.Fatalf("POST records: %d %s", st, b)
	}
	cp := "/CarePlan/" + mappings.ResourceID("acme-kap", mappings.KindCourse, "iv-course", "CarePlan")
	st, b := do(http.MethodGet, cp, "", nil)
	if st != 200 {
		t.Fatalf("GET %s: %d %s (is the practice namespace from KAPBRIDGE_PRACTICE?)", cp, st, b)
	}
	var res map[string]any
	_ = json.Unmarshal(b, &res)
	res["status"] = "on-hold"
	b, _ = json.Marshal(res)
	if st, b := do(http.MethodPut, cp, "application/fhir+json", b); st != 200 {
		t.Fatalf("PUT CarePlan: %d %s", st, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}

	out := filepath.Join(dir, "iv.ndjson")
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"export", "--course", "iv-course", "--out", out}, getenv, nil, io.Discard, &stderr); err != nil {
		t.Fatalf("export: %v\n%s", err, stderr.String())
	}
	f, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var course *mappings.Course
	n := 0
	_ = practice.Read(bytes.NewReader(f), practice.FormatNDJSON, practice.ReadOptions{}, func(it practice.Item) error {
		if it.Err != nil {
			t.Errorf("line %d: %v", it.Line, it.Err)
		}
		n++
		if c, ok := it.Record.(*mappings.Course); ok {
			course = c
		}
		return nil
	})
	if n != bytes.Count(bytes.TrimSpace(src), []byte("\n"))+1 {
		t.Errorf("exported %d records", n)
	}
	if course == nil || course.Status != "on_hold" {
		t.Errorf("exported course %+v, want status on_hold", course)
	}
	if !strings.Contains(stderr.String(), "active -> on_hold") {
		t.Errorf("the summary does not say what merged:\n%s", stderr.String())
	}

	// To stdout; and the mistakes.
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"export", "--course", "iv-course", "--store", db}, func(k string) string { return map[string]string{"KAPBRIDGE_PRACTICE": "acme-kap"}[k] }, nil, &stdout, io.Discard); err != nil || !bytes.Equal(stdout.Bytes(), f) {
		t.Errorf("export to stdout: %v; differs from the file: %v", err, !bytes.Equal(stdout.Bytes(), f))
	}
	if err := run(context.Background(), []string{"export"}, getenv, nil, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Errorf("export without --course: %v, want a usage error", err)
	}
	err = run(context.Background(), []string{"export", "--course", "nope", "--out", filepath.Join(dir, "nope.ndjson")}, getenv, nil, io.Discard, io.Discard)
	if !errors.Is(err, records.ErrCourseNotFound) {
		t.Errorf("unknown course: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.ndjson")); !os.IsNotExist(err) {
		t.Errorf("a failed export left its output file: %v", err)
	}
}
