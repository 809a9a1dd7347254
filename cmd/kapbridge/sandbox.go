package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// clientFlags collects repeated --client ID=JWKS-FILE[,SCOPES] flags.
type clientFlags []string

func (c *clientFlags) String() string     { return strings.Join(*c, " ") }
func (c *clientFlags) Set(s string) error { *c = append(*c, s); return nil }

// sandbox is `kapbridge sandbox`: the gateway acting as an EHR, for
// rehearsals and tests (adapters/ehr NewSandbox). It keeps what clients
// write in memory, until it stops.
func sandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kapbridge sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "epic", "the EHR to play: epic, oracle (their published CapabilityStatements) or full (kapbridge's own)")
	listen := fs.String("listen", "127.0.0.1:9090", "address to listen on")
	baseURL := fs.String("base-url", "", "public base URL (default http://<listen>)")
	var clients clientFlags
	fs.Var(&clients, "client", "a backend service allowed to ask for tokens: ID=JWKS-FILE[,SCOPES] (repeatable; SCOPES default system/*.cruds), e.g. kapbridge=gw.jwks.json")
	var secretClients clientFlags
	fs.Var(&secretClients, "client-secret", "instead of --client, play an EHR that offers only client_secret_basic: ID=SECRET-FILE[,SCOPES] (repeatable); tokens are issued for the id and secret sent with HTTP Basic, assertions are refused")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("sandbox takes no arguments, got %q", fs.Args())}
	}
	if len(clients) > 0 && len(secretClients) > 0 {
		return usageError{"give --client (private_key_jwt) or --client-secret (client_secret_basic), not both: the sandbox plays an EHR that offers one"}
	}
	if len(clients) == 0 && len(secretClients) == 0 {
		return usageError{"give at least one --client ID=JWKS-FILE (kapbridge keys generate makes a key and its JWK Set), or --client-secret ID=SECRET-FILE"}
	}
	registry := smart.Clients{}
	secrets, err := sandboxSecrets(secretClients, registry)
	if err != nil {
		return err
	}
	for _, c := range clients {
		id, rest, ok := strings.Cut(c, "=")
		file, scopeText, _ := strings.Cut(rest, ",")
		if !ok || id == "" || file == "" {
			return usageError{fmt.Sprintf("--client %q: want ID=JWKS-FILE[,SCOPES]", c)}
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--client %s: %w", id, err)
		}
		jwks, err := smart.ParseJWKS(data)
		if err != nil {
			return fmt.Errorf("--client %s: %w", id, err)
		}
		if scopeText == "" {
			scopeText = "system/*.cruds"
		}
		scopes, err := smart.ParseScopes(strings.ReplaceAll(scopeText, ",", " "))
		if err != nil {
			return usageError{fmt.Sprintf("--client %s: %v", id, err)}
		}
		registry[id] = &smart.Client{ID: id, JWKS: jwks, Scopes: scopes}
	}
	base := *baseURL
	if base == "" {
		base = "http://" + *listen
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := ehr.NewSandbox(ehr.SandboxConfig{Profile: *profile, BaseURL: base, Clients: registry, Secrets: secrets, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "EHR sandbox (%s profile), in memory until it stops\n  FHIR base:    %s\n  token URL:    %s%s\n  SMART config: %s/.well-known/smart-configuration\n",
		*profile, base, base, ehr.SandboxTokenPath, base)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// sandboxSecrets reads --client-secret ID=SECRET-FILE[,SCOPES] flags into
// the secrets the sandbox checks and the registry's clients.
func sandboxSecrets(flags clientFlags, registry smart.Clients) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	secrets := map[string]string{}
	for _, c := range flags {
		id, rest, ok := strings.Cut(c, "=")
		file, scopeText, _ := strings.Cut(rest, ",")
		if !ok || id == "" || file == "" {
			return nil, usageError{fmt.Sprintf("--client-secret %q: want ID=SECRET-FILE[,SCOPES]", c)}
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--client-secret %s: %w", id, err)
		}
		secret := strings.TrimRight(string(data), "\r\n")
		if secret == "" {
			return nil, fmt.Errorf("--client-secret %s: %s is empty", id, file)
		}
		if scopeText == "" {
			scopeText = "system/*.cruds"
		}
		scopes, err := smart.ParseScopes(strings.ReplaceAll(scopeText, ",", " "))
		if err != nil {
			return nil, usageError{fmt.Sprintf("--client-secret %s: %v", id, err)}
		}
		secrets[id] = secret
		registry[id] = &smart.Client{ID: id, Scopes: scopes}
	}
	return secrets, nil
}
