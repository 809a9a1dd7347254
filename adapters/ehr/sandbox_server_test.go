package ehr

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// TestSandboxAuth: the sandbox as an EHR over real HTTP, driven by the
// connector's own token source and client: the token URL is discovered,
// a real ES384 assertion earns a token, the token opens exactly what the
// profile declares and the scopes permit, and requests without a valid
// token are refused before any data is touched.
func TestSandboxAuth(t *testing.T) {
	appKey, err := smart.GenerateKey(smart.ES384)
	if err != nil {
		t.Fatal(err)
	}
	everything, _ := smart.ParseScopes("system/*.cruds")
	readOnly, _ := smart.ParseScopes("system/Observation.rs")
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer srv.Close()
	h, err = NewSandbox(SandboxConfig{Profile: "epic", BaseURL: srv.URL, Logger: slog.New(slog.DiscardHandler), Clients: smart.Clients{
		"gateway": {ID: "gateway", JWKS: appKey.PublicJWKS(), Scopes: everything},
		"reader":  {ID: "reader", JWKS: appKey.PublicJWKS(), Scopes: readOnly},
	}})
	if err != nil {
		t.Fatal(err)
	}
	client := func(id, scope string, key *smart.SigningKey) *Client {
		t.Helper()
		ts, err := NewTokenSource(TokenConfig{FHIRBase: srv.URL, ClientID: id, Key: key, Scope: scope, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewClient(Config{BaseURL: srv.URL, Tokens: ts, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	obs := []byte(`{"resourceType":"Observation","status":"final","code":{"text":"heart rate"},"valueQuantity":{"value":72,"unit":"/min"}}`)
	carePlan := []byte(`{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"display":"x"}}`)

	gw := client("gateway", "system/Observation.cruds system/CarePlan.cruds", appKey)
	resp, err := gw.Do(t.Context(), &Request{Method: http.MethodPost, URL: "Observation", Body: obs})
	if err != nil || resp.Status != http.StatusCreated {
		t.Fatalf("create Observation: %v %v", resp, err)
	}
	_, err = gw.Do(t.Context(), &Request{Method: http.MethodPost, URL: "CarePlan", Body: carePlan})
	var ee *Error
	if !errors.As(err, &ee) || ee.Status != http.StatusMethodNotAllowed {
		t.Errorf("create CarePlan on the Epic profile: %v; want 405", err)
	}
	if resp, err := gw.Do(t.Context(), &Request{Method: http.MethodGet, URL: "Observation"}); err != nil || resp.Status != http.StatusOK {
		t.Errorf("search: %v %v", resp, err)
	}

	// A token without the write scope: 403 before anything is written.
	rd := client("reader", "system/Observation.rs", appKey)
	_, err = rd.Do(t.Context(), &Request{Method: http.MethodPost, URL: "Observation", Body: obs})
	if !errors.As(err, &ee) || ee.Status != http.StatusForbidden {
		t.Errorf("create with a read-only token: %v; want 403", err)
	}
	// An assertion signed by a key nobody registered: no token at all.
	stranger, _ := smart.GenerateKey(smart.RS384)
	_, err = client("gateway", "system/Observation.rs", stranger).Do(t.Context(), &Request{Method: http.MethodGet, URL: "Observation"})
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("a stranger's assertion: %v; want invalid_client", err)
	}

	// Without a token, or with a forged one: 401 with WWW-Authenticate,
	// as an OperationOutcome; /metadata stays open.
	for _, auth := range []string{"", "Bearer not-a-token"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/Observation", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(string(body), "OperationOutcome") {
			t.Errorf("Authorization %q: %d %q %s", auth, res.StatusCode, res.Header.Get("WWW-Authenticate"), body)
		}
	}
	res, err := http.Get(srv.URL + "/metadata")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("/metadata: %v %v", res, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `"Epic"`) {
		t.Errorf("/metadata is not Epic's statement: %.200s", body)
	}
}
