package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// TestKeysAndSandbox: `kapbridge keys generate` writes a key the sandbox
// accepts once registered with --client, and a connector using that key
// writes what the profile allows through the sandbox started by run.
func TestKeysAndSandbox(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "gw.pem")
	var out bytes.Buffer
	if err := run(t.Context(), []string{"keys", "generate", "--alg", "RS384", "--out", keyFile}, os.Getenv, strings.NewReader(""), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v", fi, err)
	}
	if err := run(t.Context(), []string{"keys", "generate", "--out", keyFile}, os.Getenv, strings.NewReader(""), io.Discard, io.Discard); err == nil {
		t.Error("keys generate overwrote an existing key")
	}
	pemData, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := smart.ParsePrivateKeyPEM(pemData)
	if err != nil || key.Alg() != smart.RS384 || !strings.Contains(out.String(), key.KeyID()) {
		t.Fatalf("key: %v %v\n%s", key, err, out.String())
	}

	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"sandbox", "--profile", "epic", "--listen", addr, "--client", "kapbridge=" + filepath.Join(dir, "gw.jwks.json")}, os.Getenv, strings.NewReader(""), io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sandbox: %v", err)
		}
	}()
	base := "http://" + addr
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/metadata"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no sandbox")
		}
	}
	ts, err := ehr.NewTokenSource(ehr.TokenConfig{FHIRBase: base, ClientID: "kapbridge", Key: key, Scope: "system/Observation.cruds", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ehr.NewClient(ehr.Config{BaseURL: base, Tokens: ts, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(t.Context(), &ehr.Request{Method: http.MethodPost, URL: "Observation",
		Body: []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`)})
	if err != nil || resp.Status != http.StatusCreated {
		t.Fatalf("create through the sandbox: %v %v", resp, err)
	}
}
