package ehr

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// SandboxConfig configures an EHR sandbox (NewSandbox).
type SandboxConfig struct {
	// Profile is the EHR the sandbox plays: "epic", "oracle" (their real
	// statements, Profile) or "full" (kapbridge's own: everything).
	Profile string
	// BaseURL is the sandbox's public base URL; its FHIR API is at the
	// root, the token endpoint at /auth/token.
	BaseURL string
	// Clients are the backend services allowed to ask for tokens, with
	// their public keys and the scopes they may be granted.
	Clients smart.ClientRegistry
	// Secrets, when set, make the sandbox an EHR that offers only
	// client_secret_basic: client id -> secret; the token endpoint takes
	// those with HTTP Basic and refuses assertions (sandbox_basic.go).
	Secrets map[string]string
	// Key signs the access tokens; nil: a new ES384 key.
	Key *smart.SigningKey
	// Store holds what clients write; nil: a new in-memory store (the
	// sandbox then forgets everything when it stops).
	Store fhir.Store
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Sandbox paths besides the FHIR API.
const (
	SandboxTokenPath = "/auth/token"
	smartConfigPath  = "/.well-known/smart-configuration"
)

// NewSandbox returns kapbridge acting as an EHR: its FHIR API (on
// cfg.Store) behind the profile's CapabilityFilter, so it accepts exactly
// what that EHR's statement declares and serves that statement at
// /metadata; a SMART Backend Services token endpoint that checks client
// assertions field by field against the registered keys
// (smart.Validator) and issues short-lived access tokens; and a bearer
// check on every FHIR request but /metadata: no token or an invalid one is
// 401 with WWW-Authenticate, a token whose scopes do not permit the
// interaction is 403, both as OperationOutcomes, before the request
// touches any data.
func NewSandbox(cfg SandboxConfig) (http.Handler, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" || cfg.Clients == nil {
		return nil, errors.New("ehr: a sandbox needs a BaseURL and Clients")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	st := cfg.Store
	if st == nil {
		st = memstore.New()
	}
	key := cfg.Key
	if key == nil {
		var err error
		if key, err = smart.GenerateKey(smart.ES384); err != nil {
			return nil, err
		}
	}
	api := server.New(server.Config{Store: st, BaseURL: base, Logger: log})
	var statement []byte
	if cfg.Profile == "full" {
		statement = kapbridgeMetadata(api)
	} else {
		var err error
		if statement, err = Profile(cfg.Profile); err != nil {
			return nil, err
		}
	}
	caps, err := ReadCapabilities(statement)
	if err != nil {
		return nil, fmt.Errorf("ehr: sandbox profile %s: %w", cfg.Profile, err)
	}
	issuer := &smart.Issuer{Keys: []*smart.SigningKey{key}, Name: base,
		Validator: &smart.Validator{TokenURL: base + SandboxTokenPath, Clients: cfg.Clients}}
	smartConf := smart.BackendServicesConfiguration(base+SandboxTokenPath, []string{"system/*.cruds", "system/*.rs"})
	tokens := issuer.TokenHandler()
	if len(cfg.Secrets) > 0 {
		smartConf.TokenEndpointAuthMethodsSupported = []string{"client_secret_basic"}
		smartConf.TokenEndpointAuthSigningAlgValuesSupported = nil
		smartConf.Capabilities = []string{"client-confidential-symmetric", "permission-v1", "permission-v2"}
		tokens = basicTokenHandler(issuer, cfg.Clients, cfg.Secrets)
	}
	conf, err := json.Marshal(smartConf)
	if err != nil {
		return nil, err
	}
	filtered := CapabilityFilter(caps)(api)
	mux := http.NewServeMux()
	mux.Handle("POST "+SandboxTokenPath, tokens)
	mux.HandleFunc("GET "+smartConfigPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(conf)
	})
	mux.Handle("/", sandboxBearer(issuer, filtered))
	return mux, nil
}

// kapbridgeMetadata is the statement of api, kapbridge's own.
func kapbridgeMetadata(api http.Handler) []byte {
	rec := &bufferWriter{header: http.Header{}}
	req, _ := http.NewRequest(http.MethodGet, "/metadata", nil)
	api.ServeHTTP(rec, req)
	return rec.body
}

// bufferWriter is the least http.ResponseWriter: a body and a header.
type bufferWriter struct {
	header http.Header
	body   []byte
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) WriteHeader(int)     {}
func (b *bufferWriter) Write(p []byte) (int, error) {
	b.body = append(b.body, p...)
	return len(p), nil
}

// sandboxBearer lets /metadata through and checks the access token of
// every other request, and its scopes against the interaction.
func sandboxBearer(issuer *smart.Issuer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metadata" {
			next.ServeHTTP(w, r)
			return
		}
		raw := smart.BearerToken(r)
		if raw == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox"`)
			writeSandboxOutcome(w, http.StatusUnauthorized, fhir.IssueLogin, "this sandbox needs an access token from "+SandboxTokenPath+" (SMART Backend Services)")
			return
		}
		tok, err := issuer.Verify(raw)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox", error="invalid_token"`)
			writeSandboxOutcome(w, http.StatusUnauthorized, fhir.IssueLogin, "the access token is invalid or expired")
			return
		}
		if typ, in, ok := scopeInteraction(r); ok && !tok.Scopes.Permits(typ, in) {
			writeSandboxOutcome(w, http.StatusForbidden, fhir.IssueForbidden,
				fmt.Sprintf("the token's scopes (%s) do not permit %s on %s", tok.Scopes, in, typeOrSystem(typ)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func typeOrSystem(typ string) string {
	if typ == "" {
		return "the system"
	}
	return typ
}

// scopeInteraction maps a request to what a SMART scope decides: the
// resource type ("" at system level) and the interaction. Bundles (POST
// /) and operations are not mapped (ok false): the sandbox lets any valid
// token send them, and the filter still refuses what the profile does not
// declare; checking each entry's scope is the gateway's own authorization
// (issue 14), not the rehearsal EHR's.
func scopeInteraction(r *http.Request) (string, smart.Interaction, bool) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if segs[0] == "" || strings.HasPrefix(segs[0], "$") {
		if r.Method == http.MethodGet && len(segs) == 1 && segs[0] == "_history" {
			return "", smart.InteractionHistorySystem, true
		}
		return "", "", false
	}
	typ := segs[0]
	if !fhir.IsResourceType(typ) {
		return "", "", false
	}
	for _, s := range segs[1:] {
		if strings.HasPrefix(s, "$") {
			return "", "", false
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case len(segs) == 1:
			return typ, smart.InteractionSearchType, true
		case len(segs) == 2 && segs[1] == "_history":
			return typ, smart.InteractionHistoryType, true
		case len(segs) == 2:
			return typ, smart.InteractionRead, true
		default:
			return typ, smart.InteractionVRead, true
		}
	case http.MethodPost:
		if len(segs) == 2 && segs[1] == "_search" {
			return typ, smart.InteractionSearchType, true
		}
		return typ, smart.InteractionCreate, true
	case http.MethodPut:
		return typ, smart.InteractionUpdate, true
	case http.MethodPatch:
		return typ, smart.InteractionPatch, true
	case http.MethodDelete:
		return typ, smart.InteractionDelete, true
	}
	return "", "", false
}

func writeSandboxOutcome(w http.ResponseWriter, status int, code fhir.IssueType, msg string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_, _ = w.Write(fhir.OperationOutcome([]fhir.Issue{{Severity: fhir.SeverityError, Code: code, Diagnostics: msg}}))
}
