package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// TestClientsCommand: add, list, disable through the command line, and
// its refusals of what would not work later.
func TestClientsCommand(t *testing.T) {
	store := filepath.Join(t.TempDir(), "kap.db")
	c := addClient(t, store, "ehr", smart.RS384, "default", "system/Observation.rs", "--recipient", "Practitioner/dr")
	_ = c
	runC := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"clients"}, append(args, "--store", store)...), func(string) string { return "" }, nil, &out, &errb)
		return out.String() + errb.String(), err
	}
	out, err := runC("list")
	if err != nil || !strings.Contains(out, "ehr") || !strings.Contains(out, "Practitioner/dr") || !strings.Contains(out, "enabled") || !strings.Contains(out, "system/Observation.rs") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := runC("disable", "--id", "ehr"); err != nil || !strings.Contains(out, "disabled") {
		t.Fatalf("disable: %v %s", err, out)
	}
	if out, _ := runC("list"); !strings.Contains(out, "disabled") {
		t.Fatalf("list after disable: %s", out)
	}
	for _, bad := range [][]string{
		{"add", "--id", "x", "--scopes", "system/*.rs"},                                    // no keys
		{"add", "--id", "x", "--jwks-url", "ftp://x", "--scopes", "system/*.rs"},           // not http(s)
		{"add", "--id", "x", "--jwks-url", "https://x/jwks", "--scopes", "system/Nope.rs"}, // unknown type
		{"add", "--id", "x", "--jwks-url", "https://x/jwks", "--scopes", "system/*.rs", "--recipient", "Patient/1"},
		{"frobnicate"},
	} {
		if _, err := runC(bad...); exitCode(err) != 2 {
			t.Errorf("clients %v: err %v, want a usage error", bad, err)
		}
	}
	if _, err := runC("disable", "--id", "nobody"); err == nil {
		t.Error("disabling an unknown client succeeded")
	}
}

// TestServeDevMode: the README's quick start. `serve --dev` prints a
// token that opens the API at once, and the key and command for a new one.
func TestServeDevMode(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	env := map[string]string{"KAPBRIDGE_STORE": filepath.Join(dir, "kap.db"), "KAPBRIDGE_LOG_LEVEL": "error"}
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "-listen", addr}, func(k string) string { return env[k] }, strings.NewReader(""), out, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var tok string
	re := regexp.MustCompile(`export KAPBRIDGE_TOKEN=(\S+)`)
	for deadline := time.Now().Add(20 * time.Second); tok == ""; time.Sleep(50 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			tok = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no token printed:\n%s", out.String())
		}
	}
	base := "http://" + addr
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest("GET", base+"/Patient", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the printed token: %d", resp.StatusCode)
	}
	if r, err := http.Get(base + "/Patient"); err != nil || r.StatusCode != 401 {
		t.Fatalf("without the token: %v %v", err, r)
	}
	// The printed command gets a new token.
	m := regexp.MustCompile(`--key (\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no key path printed:\n%s", out.String())
	}
	var o, e bytes.Buffer
	if err := run(context.Background(), []string{"clients", "token", "--id", "dev", "--key", m[1], "--scope", "system/Patient.rs", "--base-url", base},
		func(string) string { return "" }, nil, &o, &e); err != nil || strings.Count(strings.TrimSpace(o.String()), ".") != 2 {
		t.Fatalf("clients token: %v %s %s", err, o.String(), e.String())
	}
}

// TestServeAuthOffWarns: -auth=off says, on start, that everyone is
// served; -dev with it is refused.
func TestServeAuthOffWarns(t *testing.T) {
	env := map[string]string{"KAPBRIDGE_STORE": filepath.Join(t.TempDir(), "kap.db"), "KAPBRIDGE_LOG_LEVEL": "error"}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	errw := &lockedWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-auth", "off", "-listen", addr}, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, errw)
	}()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(errw.String(), "WARNING: -auth=off"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning:\n%s", errw.String())
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r, err := http.Get("http://" + addr + "/Patient"); err == nil {
			r.Body.Close()
			if r.StatusCode != 200 {
				t.Fatalf("-auth=off: GET /Patient without a token answered %d", r.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not answer")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"serve", "-auth", "off", "-dev"}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
	if exitCode(err) != 2 {
		t.Fatalf("-auth=off -dev: %v, want a usage error", err)
	}
}
