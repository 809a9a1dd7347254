package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestEndToEnd starts the real program through run, waits for /metadata,
// and drives create, read, update, delete and history over HTTP; then
// stops it with its context, as SIGTERM would.
func TestEndToEnd(t *testing.T) {
	addr := freeAddr(t)
	dir := t.TempDir()
	env := map[string]string{"KAPBRIDGE_STORE": filepath.Join(dir, "data", "kap.db")}
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	logw := &lockedWriter{w: &logs}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-auth", "off", "-listen", addr}, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, logw)
	}()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/metadata")
		if err == nil {
			var cs map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&cs)
			resp.Body.Close()
			if resp.StatusCode == 200 && cs["fhirVersion"] == "4.0.1" && cs["resourceType"] == "CapabilityStatement" {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before serving: %v\n%s", err, logw.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /metadata after 20 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	call := func(method, path string, body string, wantStatus int) map[string]any {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, wantStatus, b)
		}
		var m map[string]any
		if len(b) > 0 {
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s %s: not JSON: %s", method, path, b)
			}
		}
		return m
	}
	created := call("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"valueQuantity":{"value":72.0,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`, 201)
	id := created["id"].(string)
	read := call("GET", "/Observation/"+id, "", 200)
	if read["valueQuantity"].(map[string]any)["value"] != 72.0 {
		t.Errorf("read back %v", read)
	}
	call("PUT", "/Observation/"+id, `{"resourceType":"Observation","id":"`+id+`","status":"amended","code":{"text":"heart rate"}}`, 200)
	call("DELETE", "/Observation/"+id, "", 204)
	gone := call("GET", "/Observation/"+id, "", 410)
	if gone["resourceType"] != "OperationOutcome" {
		t.Errorf("410 body %v", gone)
	}
	hist := call("GET", "/Observation/"+id+"/_history", "", 200)
	if n := len(hist["entry"].([]any)); n != 3 {
		t.Errorf("history has %d entries, want 3", n)
	}

	// the practice record JSON Schema is served at a stable path
	resp, err := http.Get(base + schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&schema)
	resp.Body.Close()
	if resp.StatusCode != 200 || schema["$id"] == nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/schema+json") {
		t.Errorf("schema: %d %v %v", resp.StatusCode, resp.Header.Get("Content-Type"), schema["$id"])
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("run did not stop after its context was cancelled")
	}
	out := logw.String()
	if !strings.Contains(out, `"request_id"`) || !strings.Contains(out, "shutting down") {
		t.Errorf("logs lack request ids or the shutdown line:\n%s", out)
	}
	// Not the code "8867-4": a request id (a UUID) can hold it.
	if strings.Contains(out, "loinc.org") || strings.Contains(out, "heart rate") {
		t.Errorf("logs carry resource content:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "kap.db")); err != nil {
		t.Errorf("SQLite file not created where KAPBRIDGE_STORE said: %v", err)
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), nil, func(string) string { return "" }, nil, &out, &errb); exitCode(err) != 2 {
		t.Errorf("no command: %v (exit %d)", err, exitCode(err))
	}
	if err := run(context.Background(), []string{"bogus"}, func(string) string { return "" }, nil, &out, &errb); exitCode(err) != 2 {
		t.Errorf("unknown command: %v", err)
	}
	if err := run(context.Background(), []string{"serve", "-log-format", "xml"}, func(string) string { return "" }, nil, &out, &errb); exitCode(err) != 2 {
		t.Errorf("bad flag value: %v", err)
	}
	if err := run(context.Background(), []string{"serve", "-base-url", "ftp://x"}, func(string) string { return "" }, nil, &out, &errb); exitCode(err) != 2 {
		t.Errorf("bad base url: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, nil, &out, &errb); err != nil || !strings.HasPrefix(out.String(), "kapbridge ") {
		t.Errorf("version: %v %q", err, out.String())
	}
}

func TestFlagsAndEnvironment(t *testing.T) {
	env := map[string]string{"KAPBRIDGE_LISTEN": "127.0.0.1:9999", "KAPBRIDGE_STORE": "postgres://x@h/db", "KAPBRIDGE_BASE_URL": "https://fhir.example.org/r4"}
	cfg, err := parseServeFlags(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || cfg.Listen != "127.0.0.1:9999" || cfg.Store != "postgres://x@h/db" || cfg.BaseURL != "https://fhir.example.org/r4" {
		t.Errorf("env: %+v %v", cfg, err)
	}
	cfg, err = parseServeFlags([]string{"-listen", "127.0.0.1:7000"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || cfg.Listen != "127.0.0.1:7000" {
		t.Errorf("flag must win over env: %+v %v", cfg, err)
	}
	cfg, err = parseServeFlags(nil, func(string) string { return "" }, io.Discard)
	if err != nil || cfg.Listen != "127.0.0.1:8080" || cfg.BaseURL != "http://127.0.0.1:8080" || !strings.Contains(cfg.Store, "kapbridge-data") {
		t.Errorf("defaults: %+v %v", cfg, err)
	}
}
