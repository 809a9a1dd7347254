package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/audit"
	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// authConfig is the security configuration of `kapbridge serve` (issue
// 14): authorization on by default, a dev mode that prints a ready client
// and token, TLS.
type authConfig struct {
	// Off serves every request without a token: only with -auth=off, and
	// loudly.
	Off bool
	// Dev registers the client "dev" with every scope and prints its key
	// and a token valid DevTokenLifetime.
	Dev             bool
	TLSCert, TLSKey string
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client in audit records.
	TrustedProxies []string
	// RateLimit and RateBurst bound each client's requests (server.Auth).
	RateLimit   float64
	RateBurst   int
	CORSOrigins []string
	// IdP* accept an external identity provider's tokens beside the
	// gateway's own (auth.External).
	IdPIssuer, IdPAudience, IdPJWKSURL string
}

// DevTokenLifetime is the lifetime of access tokens in -dev mode, long
// enough to follow the quick start; real clients get five minutes.
const DevTokenLifetime = time.Hour

// devClientID and devScopes are the dev mode's client.
const (
	devClientID = "dev"
	devScopes   = "system/*.cruds system/AuditEvent.rs " + practiceScope
	// practiceScope is the scope the practice API needs.
	practiceScope = "practice-api"
)

// authFlags defines the security flags on fs. The function it returns,
// called after parsing, checks them and fixes the base URL's scheme for
// TLS.
func authFlags(fs *flag.FlagSet, getenv func(string) string, a *authConfig) func(cfg *serveConfig) error {
	env := func(name string) string { return getenv(name) }
	mode := fs.String("auth", cmpOr(env("KAPBRIDGE_AUTH"), "on"), "authorization: on (every request but /metadata and /.well-known/ needs a bearer token from /auth/token), or off (anyone may read and write everything; prints a warning) (KAPBRIDGE_AUTH)")
	fs.BoolVar(&a.Dev, "dev", env("KAPBRIDGE_DEV") == "1", `dev mode: register the client "dev" with every scope, write its private key beside the store, and print a token valid 1h (KAPBRIDGE_DEV=1)`)
	fs.StringVar(&a.TLSCert, "tls-cert", env("KAPBRIDGE_TLS_CERT"), "serve HTTPS with this certificate (PEM; with -tls-key) (KAPBRIDGE_TLS_CERT)")
	fs.StringVar(&a.TLSKey, "tls-key", env("KAPBRIDGE_TLS_KEY"), "the private key of -tls-cert (PEM) (KAPBRIDGE_TLS_KEY)")
	fs.Float64Var(&a.RateLimit, "rate-limit", envFloat(getenv, "KAPBRIDGE_RATE_LIMIT", 200), "requests a second each client may send on average (callers of the token endpoint counted by address); beyond: 429 with Retry-After; 0: no limit (KAPBRIDGE_RATE_LIMIT)")
	fs.IntVar(&a.RateBurst, "rate-burst", int(envFloat(getenv, "KAPBRIDGE_RATE_BURST", 400)), "requests a client may send at once above -rate-limit (KAPBRIDGE_RATE_BURST)")
	cors := fs.String("cors-origins", env("KAPBRIDGE_CORS_ORIGINS"), "comma-separated browser origins (https://app.example) allowed to call the API; none by default: no CORS headers (KAPBRIDGE_CORS_ORIGINS)")
	fs.StringVar(&a.IdPIssuer, "idp-issuer", env("KAPBRIDGE_IDP_ISSUER"), "also accept access tokens of this external identity provider (its iss), for registered clients (KAPBRIDGE_IDP_ISSUER)")
	fs.StringVar(&a.IdPJWKSURL, "idp-jwks-url", env("KAPBRIDGE_IDP_JWKS_URL"), "where -idp-issuer publishes its keys (RS384 or ES384) (KAPBRIDGE_IDP_JWKS_URL)")
	fs.StringVar(&a.IdPAudience, "idp-audience", env("KAPBRIDGE_IDP_AUDIENCE"), "the aud its tokens must carry; default the base URL (KAPBRIDGE_IDP_AUDIENCE)")
	proxies := fs.String("trusted-proxies", env("KAPBRIDGE_TRUSTED_PROXIES"), "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For names the client in audit records; none by default (KAPBRIDGE_TRUSTED_PROXIES)")
	return func(cfg *serveConfig) error {
		for _, p := range strings.Split(*proxies, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
				return usageError{fmt.Sprintf("-trusted-proxies: %q is not an IP address or CIDR", p)}
			}
			a.TrustedProxies = append(a.TrustedProxies, p)
		}
		for _, o := range strings.Split(*cors, ",") {
			if o = strings.TrimSpace(o); o != "" {
				if !strings.HasPrefix(o, "https://") && !strings.HasPrefix(o, "http://") || strings.Count(o, "/") != 2 {
					return usageError{fmt.Sprintf("-cors-origins: %q is not an origin such as https://app.example", o)}
				}
				a.CORSOrigins = append(a.CORSOrigins, o)
			}
		}
		if a.RateLimit < 0 || a.RateBurst < 0 {
			return usageError{"-rate-limit and -rate-burst cannot be negative"}
		}
		switch *mode {
		case "on":
		case "off":
			a.Off = true
		default:
			return usageError{fmt.Sprintf("-auth %q: want on or off", *mode)}
		}
		if a.Off && a.Dev {
			return usageError{"-dev needs -auth=on: it prints a token for the authorization -auth=off turns off"}
		}
		if (a.IdPIssuer == "") != (a.IdPJWKSURL == "") {
			return usageError{"-idp-issuer and -idp-jwks-url go together"}
		}
		if (a.TLSCert == "") != (a.TLSKey == "") {
			return usageError{"-tls-cert and -tls-key go together"}
		}
		if a.TLSCert != "" && cfg.BaseURL == "http://"+cfg.Listen {
			cfg.BaseURL = "https://" + cfg.Listen
		}
		if a.IdPAudience == "" {
			a.IdPAudience = cfg.BaseURL
		}
		return nil
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// setupAuth makes the server's authorization from a: nil with a warning
// when it is off; otherwise the gateway on the store, and in dev mode the
// dev client registered and its token printed.
func setupAuth(ctx context.Context, a authConfig, st fhir.Store, cfg serveConfig, stdout, stderr io.Writer, log *slog.Logger) (*server.Auth, func(), error) {
	if a.Off {
		const warn = "WARNING: -auth=off: the API serves everyone, without a token: anyone who can reach " +
			"this address can read and change every record, psychotherapy notes excepted. Use it on a closed machine only."
		fmt.Fprintln(stderr, warn)
		log.Warn("authorization is off: every request is served without a token")
		return nil, func() {}, nil
	}
	as, ok := st.(auth.Store)
	if !ok {
		return nil, nil, fmt.Errorf("the store (%T) cannot keep clients and keys", st)
	}
	gc := auth.GatewayConfig{Store: as, BaseURL: cfg.BaseURL}
	if a.Dev {
		gc.Lifetime = DevTokenLifetime
	}
	gw, err := auth.NewGateway(ctx, gc)
	if err != nil {
		return nil, nil, err
	}
	go reloadKeys(ctx, gw, log)
	var verifier server.Verifier = gw
	if a.IdPIssuer != "" {
		verifier = auth.Verifiers{Gateway: gw, External: &auth.External{Issuer: a.IdPIssuer, Audience: a.IdPAudience, JWKSURL: a.IdPJWKSURL, Store: as}}
	}
	out := &server.Auth{Verifier: verifier, Gateway: gw, Public: []string{schemaPath,
		// Each EHR connection's public JWK Set (/ehr/NAME/jwks.json): the
		// EHR fetches it, as its JKU, without a token of ours.
		"/ehr/"},
		APIScopes:      map[string]string{"/practice": practiceScope},
		TrustedProxies: a.TrustedProxies, RateLimit: a.RateLimit, RateBurst: a.RateBurst, CORSOrigins: a.CORSOrigins}
	if a.Dev {
		if err := devClient(ctx, gw, as, cfg, stdout); err != nil {
			return nil, nil, fmt.Errorf("dev mode: %w", err)
		}
	}
	// The audit trail: one AuditEvent per request, written in batches; it
	// is closed (everything queued written) after the server has stopped
	// and before the store closes.
	trail := audit.NewTrail(audit.TrailConfig{Store: st, Tenant: auth.AuditTenant, NewID: server.NewUUID, Base: cfg.BaseURL, Logger: log})
	out.Audit = trail
	return out, func() { trail.Close() }, nil
}

// reloadKeys rereads the signing keys every minute, so a rotation by
// `kapbridge clients rotate-key` reaches a running server.
func reloadKeys(ctx context.Context, gw *auth.Gateway, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := gw.Reload(ctx); err != nil && ctx.Err() == nil {
				log.Error("reload signing keys", "err", err)
			}
		}
	}
}

// devClient registers the dev client (a new key each start, the old one
// replaced), writes its private key beside the store, and prints it with a
// token.
func devClient(ctx context.Context, gw *auth.Gateway, st auth.Store, cfg serveConfig, stdout io.Writer) error {
	key, err := smart.GenerateKey(smart.ES384)
	if err != nil {
		return err
	}
	set, err := json.Marshal(key.PublicJWKS())
	if err != nil {
		return err
	}
	if err := st.PutAuthClient(ctx, auth.ClientRow{ID: devClientID, Tenant: fhir.DefaultTenant, JWKS: string(set), Scopes: devScopes}); err != nil {
		return err
	}
	dir := "."
	if !strings.HasPrefix(cfg.Store, "postgres://") && !strings.HasPrefix(cfg.Store, "postgresql://") {
		dir = filepath.Dir(strings.TrimPrefix(strings.TrimPrefix(cfg.Store, "sqlite:"), "file:"))
	}
	keyFile := filepath.Join(dir, "dev-client.pem")
	pem, err := key.MarshalPEM()
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem, 0o600); err != nil {
		return err
	}
	a, err := key.Sign(smart.Assertion{ClientID: devClientID, TokenURL: gw.TokenURL()})
	if err != nil {
		return err
	}
	tok, err := gw.Issue(ctx, smart.TokenRequestForm(a, devScopes))
	if err != nil {
		var ve *smart.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("the dev token was refused: %w", err)
		}
		return err
	}
	fmt.Fprintf(stdout, `DEV MODE: client %q (tenant %s, scopes %s)
  private key: %s
  access token, valid %s:

export KAPBRIDGE_TOKEN=%s

  then: curl -H "Authorization: Bearer $KAPBRIDGE_TOKEN" %s/Patient
  a new token: kapbridge clients token --id %s --key %s --scope %q --base-url %s
`, devClientID, fhir.DefaultTenant, devScopes, keyFile, DevTokenLifetime, tok.AccessToken, cfg.BaseURL, devClientID, keyFile, devScopes, cfg.BaseURL)
	return nil
}

// serveOn serves srv on ln, over TLS when a certificate is configured.
func serveOn(srv *http.Server, ln net.Listener, a authConfig) error {
	if a.TLSCert != "" {
		return srv.ServeTLS(ln, a.TLSCert, a.TLSKey)
	}
	return srv.Serve(ln)
}

// envFloat reads a number from the environment, def when unset or not a
// number (the flag's own parsing reports a bad command-line value).
func envFloat(getenv func(string) string, name string, def float64) float64 {
	if v, err := strconv.ParseFloat(getenv(name), 64); err == nil {
		return v
	}
	return def
}

// demoAuth is the demo gateway's authorization: serve's, with the dev
// client registered and its token printed to out.
func demoAuth(ctx context.Context, st fhir.Store, dbFile, base string, out io.Writer) (*server.Auth, error) {
	as, ok := st.(auth.Store)
	if !ok {
		return nil, fmt.Errorf("the store (%T) cannot keep clients and keys", st)
	}
	gw, err := auth.NewGateway(ctx, auth.GatewayConfig{Store: as, BaseURL: base, Lifetime: DevTokenLifetime})
	if err != nil {
		return nil, err
	}
	if err := devClient(ctx, gw, as, serveConfig{Store: dbFile, BaseURL: base}, out); err != nil {
		return nil, err
	}
	return &server.Auth{Verifier: gw, Gateway: gw, Public: []string{schemaPath},
		APIScopes: map[string]string{"/practice": practiceScope}}, nil
}
