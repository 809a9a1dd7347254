package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// cmdRunner runs kapbridge commands in-process on one store.
func cmdRunner(t *testing.T, env map[string]string) (cmd func(...string) string, try func(...string) (string, error)) {
	getenv := func(k string) string { return env[k] }
	try = func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), args, getenv, strings.NewReader(""), &out, &out)
		return out.String(), err
	}
	cmd = func(args ...string) string {
		t.Helper()
		out, err := try(args...)
		if err != nil {
			t.Fatalf("kapbridge %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	return cmd, try
}

// TestEHRClientSecret: an EHR that offers only client_secret_basic (the
// sandbox with the Oracle profile, configured with a secret): ehr add
// --client-secret-file stores the secret, ehr show and list never print
// it, and the stored connection gets tokens by HTTP Basic (a request
// that needs one passes), while a signed assertion is refused there.
func TestEHRClientSecret(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kb.db")
	env := map[string]string{"KAPBRIDGE_STORE": db}
	cmd, try := cmdRunner(t, env)
	const secret = "s3cret: with+spaces/&and=more"
	secretFile := filepath.Join(dir, "oracle.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// kapbridge sandbox playing Oracle Health with client_secret_basic only.
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	sbDone := make(chan error, 1)
	go func() {
		sbDone <- run(ctx, []string{"sandbox", "--profile", "oracle", "--listen", addr, "--client-secret", "kb-basic=" + secretFile},
			os.Getenv, strings.NewReader(""), io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-sbDone; err != nil {
			t.Errorf("sandbox: %v", err)
		}
	}()
	srv := struct{ URL string }{"http://" + addr}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(srv.URL + "/.well-known/smart-configuration")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), `"token_endpoint_auth_methods_supported":["client_secret_basic"]`) {
				t.Fatalf("the sandbox's SMART configuration: %s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no sandbox")
		}
	}
	key := filepath.Join(dir, "k.pem")
	cmd("keys", "generate", "--alg", "ES384", "--out", key)
	if out, err := try("ehr", "add", "both", "--base", srv.URL, "--client-id", "kb-basic", "--key", key, "--client-secret-file", secretFile, "--scopes", "system/*.cruds"); err == nil {
		t.Errorf("ehr add with a key and a secret: no error\n%s", out)
	}
	out := cmd("ehr", "add", "oracle", "--base", srv.URL, "--client-id", "kb-basic", "--client-secret-file", secretFile, "--scopes", "system/*.cruds")
	if !strings.Contains(out, "client secret") || strings.Contains(out, "jwks") {
		t.Errorf("ehr add: %s", out)
	}
	// The secret from the environment instead of a file.
	env["KAPBRIDGE_EHR_CLIENT_SECRET"] = "wrong-secret"
	cmd("ehr", "add", "oracle-env", "--base", srv.URL, "--client-id", "kb-basic", "--scopes", "system/*.cruds", "--no-backfill")
	delete(env, "KAPBRIDGE_EHR_CLIENT_SECRET")
	// A key, with the token URL given (discovery would already refuse:
	// the SMART configuration offers client_secret_basic alone).
	cmd("ehr", "add", "oracle-key", "--base", srv.URL, "--token-url", srv.URL+ehr.SandboxTokenPath, "--client-id", "kb-basic", "--key", key,
		"--scopes", "system/*.cruds", "--no-backfill")
	for _, args := range [][]string{{"ehr", "show", "oracle"}, {"ehr", "list"}, {"ehr", "show", "oracle-env"}, {"sync", "status"}} {
		out := cmd(args...)
		if strings.Contains(out, "s3cret") || strings.Contains(out, "wrong-secret") {
			t.Errorf("kapbridge %s prints the secret:\n%s", strings.Join(args, " "), out)
		}
		if args[1] == "show" && !strings.Contains(out, "client secret, HTTP Basic") {
			t.Errorf("kapbridge %s does not say how it authenticates:\n%s", strings.Join(args, " "), out)
		}
	}
	st, err := sqlstore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ss := st.(syncstore.Store)
	get := func(name string) error {
		c, err := ss.Connection(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		client, err := ehr.ConnectionClient(c, ehr.OutboundConfig{Logger: slog.New(slog.DiscardHandler), Policy: ehr.RetryPolicy{MaxRetries: -1}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.Do(t.Context(), &ehr.Request{Method: http.MethodGet, URL: "Observation?patient=nobody"})
		return err
	}
	c, _ := ss.Connection(t.Context(), "oracle")
	if string(c.ClientSecret) != secret || c.Key != nil {
		t.Fatalf("stored connection: secret %d bytes, key %d bytes; want the file's secret (newline dropped), no key", len(c.ClientSecret), len(c.Key))
	}
	if err := get("oracle"); err != nil {
		t.Errorf("a request with the stored secret: %v", err)
	}
	for _, name := range []string{"oracle-env", "oracle-key"} {
		if err := get(name); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "invalid_client") {
			t.Errorf("%s (a wrong secret, or a key where only Basic goes): %v; want invalid_client", name, err)
		}
	}
}

func mustDone(t *testing.T, ss syncstore.Store, conn string) []syncstore.Delivery {
	t.Helper()
	ds, err := ss.Deliveries(t.Context(), conn, syncstore.StateDone, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestSyncBackfillFollowPrune: a connection added after the data gets all
// of it (ehr add backfills; again is a no-op), the outbox is pruned once
// delivered, and the real binary's serve --sync picks up connections
// added, removed and changed while it runs.
func TestSyncBackfillFollowPrune(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kb.db")
	env := map[string]string{"KAPBRIDGE_STORE": db, "KAPBRIDGE_PRACTICE": "acme-kap"}
	cmd, _ := cmdRunner(t, env)
	key := filepath.Join(dir, "epic.pem")
	cmd("keys", "generate", "--alg", "ES384", "--out", key)
	jwks := filepath.Join(dir, "epic.jwks.json")
	sandboxes := map[string]fhir.Store{}
	urls := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d"} {
		urls[n], sandboxes[n] = syncSandbox(t, jwks)
	}
	add := func(name, sandbox string) string {
		return cmd("ehr", "add", name, "--base", urls[sandbox], "--client-id", "kapbridge", "--key", key, "--scopes", "system/*.cruds", "--mrn-system", testMRN)
	}
	cmd("import", filepath.Join("..", "..", "testdata", "import", "course-im.json"))
	add("a", "a")
	cmd("sync", "run", "--once", "--connection", "a")
	onA := countType(t, sandboxes["a"], "Observation")
	if onA == 0 {
		t.Fatal("nothing reached the first EHR")
	}
	// b comes after everything was fanned out to a: only the backfill
	// can give it the data.
	if out := add("b", "b"); !strings.Contains(out, "queued ") || strings.Contains(out, "queued 0 ") {
		t.Errorf("ehr add b queued nothing:\n%s", out)
	}
	if out := cmd("sync", "backfill", "b"); !strings.Contains(out, "queued 0 record(s)") {
		t.Errorf("a second backfill queued more:\n%s", out)
	}
	cmd("sync", "run", "--once", "--connection", "b")
	cmd("sync", "run", "--once", "--connection", "b")
	if onB := countType(t, sandboxes["b"], "Observation"); onB != onA {
		t.Errorf("the EHR added later holds %d Observations, the first %d", onB, onA)
	}

	// Pruning: everything is delivered, so every fanned-out message goes.
	st, err := sqlstore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	before, err := st.Outbox(t.Context(), fhir.DefaultTenant, 0, 0)
	st.Close()
	if err != nil || len(before) == 0 {
		t.Fatalf("outbox before pruning: %d messages, %v", len(before), err)
	}
	if out := cmd("sync", "prune", "--retention", "1h"); !strings.Contains(out, "pruned 0 outbox message(s) and 0 delivery row(s)") {
		t.Errorf("prune with a retention longer than the test's age: %s", out)
	}
	out := cmd("sync", "prune", "--retention", "0s")
	if !strings.Contains(out, "pruned ") || strings.Contains(out, "pruned 0 outbox") || strings.Contains(out, "and 0 delivery") {
		t.Errorf("prune: %s", out)
	}
	st, err = sqlstore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	after, err := st.Outbox(t.Context(), fhir.DefaultTenant, 0, 0)
	st.Close()
	if err != nil || len(after) != 0 {
		t.Errorf("after pruning a fully delivered outbox, %d of %d messages are left (%v)", len(after), len(before), err)
	}
	if out := cmd("sync", "status"); !strings.Contains(out, "held back by the privacy gate (") || !strings.Contains(out, "0 pending") {
		t.Errorf("after pruning, sync status lost what it lists:\n%s", out)
	}
	cmd("ehr", "remove", "b")

	// A deletion at the practice that Epic cannot take (no delete
	// declared) is listed by sync status with the reason.
	st, err = sqlstore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	var gone fhir.Key
	for _, d := range mustDone(t, st.(syncstore.Store), "a") {
		if l, err := st.(syncstore.Store).Link(t.Context(), "a", d.Tenant, d.Type, d.ResourceID, ""); err == nil && l.RemoteType == "Observation" {
			gone = fhir.Key{Tenant: d.Tenant, Type: d.Type, ID: d.ResourceID}
			break
		}
	}
	err = st.Update(t.Context(), func(tx fhir.Tx) error {
		cur, err := tx.Read(t.Context(), gone)
		if err != nil {
			return err
		}
		_, err = (write.Writer{Changed: syncstore.Enqueue}).Delete(t.Context(), tx, gone, cur, time.Time{})
		return err
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	out = cmd("sync", "run", "--once", "--connection", "a")
	if !strings.Contains(out, "deletions not sent (1):") || !strings.Contains(out, gone.Type+"/"+gone.ID+": deleted at the practice, but Observation/") ||
		!strings.Contains(out, "declares no delete of Observation") {
		t.Errorf("sync status does not list the deletion Epic was not sent:\n%s", out)
	}
	live := onA - 1 // what a connection added now gets: the deleted one is not sent

	// serve --sync, the real binary, started with connection a only.
	bin := buildBinary(t)
	addr := freeAddr(t)
	var logs lockedWriter
	logs.w = &bytes.Buffer{}
	srv := exec.Command(bin, "serve", "--listen", addr, "--sync", "--sync-refresh", "100ms", "--sync-inbound", "200ms", "--sync-retention", "1ms")
	srv.Env = append(os.Environ(), "KAPBRIDGE_STORE="+db, "KAPBRIDGE_PRACTICE=acme-kap")
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- srv.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			srv.Process.Kill()
			t.Errorf("serve did not stop on SIGTERM")
		}
	}()
	await := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s; serve's log:\n%s", what, logs.String())
			}
		}
	}
	// The deletion's outbox message, delivered (noted as not sent), is
	// pruned by serve itself with so short a retention.
	await("serve --sync prunes what was delivered", func() bool {
		return strings.Contains(logs.String(), `"msg":"ehr sync: pruned what was delivered","outbox_messages":1,`)
	})
	await("serve --sync starts a's workers", func() bool { return strings.Contains(logs.String(), `workers started","connection":"a"`) })
	// Added while it runs: c gets the backlog with no restart.
	add("c", "c")
	await("serve --sync delivers to a connection added while it runs", func() bool { return countType(t, sandboxes["c"], "Observation") == live })
	// Changed: c removed and added again for another EHR. Its old
	// worker must stop (else it would send c's rows to the old EHR).
	cmd("ehr", "remove", "c")
	add("c", "d")
	await("serve --sync delivers to a connection changed while it runs", func() bool { return countType(t, sandboxes["d"], "Observation") == live })
	if n := countType(t, sandboxes["c"], "Observation"); n != live {
		t.Errorf("the old EHR of c holds %d Observations, want %d (nothing more after the change)", n, live)
	}
	await("serve --sync says it stopped the old workers", func() bool {
		return strings.Contains(logs.String(), `its workers stopped","connection":"c"`)
	})
	cmd("ehr", "remove", "c")
	await("serve --sync stops the workers of a connection removed", func() bool {
		return strings.Count(logs.String(), "its workers stopped") >= 2
	})
	if strings.Count(logs.String(), `workers started","connection":"c"`) != 2 {
		t.Errorf("serve's log does not show a, c, c started:\n%s", logs.String())
	}
}
