package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// authEnv is the FHIR API with authorization on, over loopback.
type authEnv struct {
	*testServer
	st *memstore.Store
	gw *auth.Gateway
}

func newAuthServer(t *testing.T, opts ...func(*server.Auth)) *authEnv {
	t.Helper()
	st := newMemStore(t)
	env := &authEnv{st: st}
	ts, _ := newServer(t, server.Config{Store: st})
	// newServer set BaseURL to the test server's; the gateway needs it
	// first, so the handler is made again with Auth.
	gw, err := auth.NewGateway(context.Background(), auth.GatewayConfig{Store: st, BaseURL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	env.gw = gw
	a := &server.Auth{Verifier: gw, Gateway: gw}
	for _, o := range opts {
		o(a)
	}
	srv := server.New(server.Config{Store: st, BaseURL: ts.URL, Logger: slog.New(slog.DiscardHandler), Auth: a})
	ts.Config.Handler = srv
	env.testServer = ts
	return env
}

// client registers a client of tenant with scopes and returns a token for
// ask.
func (e *authEnv) client(t *testing.T, id, tenant, scopes, ask string) string {
	t.Helper()
	key, err := smart.GenerateKey(smart.ES384)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(key.PublicJWKS())
	if err := e.st.PutAuthClient(context.Background(), auth.ClientRow{ID: id, Tenant: tenant, JWKS: string(set), Scopes: scopes}); err != nil {
		t.Fatal(err)
	}
	a, err := key.Sign(smart.Assertion{ClientID: id, TokenURL: e.URL + auth.TokenPath})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(e.URL+auth.TokenPath, smart.TokenRequestForm(a, ask))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	tr, err := smart.ParseTokenResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	return tr.AccessToken
}

func (e *authEnv) do(t *testing.T, token, method, path, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.URL+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestAuthBearerRequired(t *testing.T) {
	e := newAuthServer(t)
	for _, p := range []string{"/metadata", "/.well-known/smart-configuration", auth.JWKSPath} {
		if code, _, body := e.do(t, "", "GET", p, ""); code != 200 {
			t.Errorf("GET %s without a token: %d %s, want 200", p, code, body)
		}
	}
	code, h, body := e.do(t, "", "GET", "/Patient", "")
	if code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(body, `"OperationOutcome"`) {
		t.Fatalf("no token: %d %q %s", code, h.Get("WWW-Authenticate"), body)
	}
	code, h, body = e.do(t, "garbage", "GET", "/Patient", "")
	if code != 401 || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") || !strings.Contains(body, `"login"`) {
		t.Fatalf("garbage token: %d %q %s", code, h.Get("WWW-Authenticate"), body)
	}
	var conf smart.Configuration
	_, _, body = e.do(t, "", "GET", "/.well-known/smart-configuration", "")
	if err := json.Unmarshal([]byte(body), &conf); err != nil || conf.TokenEndpoint != e.URL+auth.TokenPath || conf.JWKSURI != e.URL+auth.JWKSPath {
		t.Fatalf("smart-configuration: %v %s", err, body)
	}
	if err := conf.CheckBackendServices(smart.ES384); err != nil {
		t.Fatal(err)
	}
	// The CapabilityStatement declares it too, and still validates.
	_, _, body = e.do(t, "", "GET", "/metadata", "")
	if !strings.Contains(body, `"SMART-on-FHIR"`) || !strings.Contains(body, `"valueUri":"`+e.URL+auth.TokenPath+`"`) {
		t.Fatalf("metadata without rest.security: %.500s", body)
	}
	if _, _, err := fhir.ParseResource([]byte(body)); err != nil {
		t.Fatalf("the CapabilityStatement with security does not validate: %v", err)
	}
}

func TestAuthScopesAndTenants(t *testing.T) {
	e := newAuthServer(t)
	writer := e.client(t, "writer", "acme", "system/*.cruds", "system/*.cruds")
	reader := e.client(t, "reader", "acme", "system/Observation.rs", "system/Observation.rs")
	other := e.client(t, "other", "beta", "system/*.cruds", "system/*.cruds")

	code, _, body := e.do(t, writer, "PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	code, _, body = e.do(t, writer, "PUT", "/Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, tc := range []struct {
		name, token, method, path, body string
		want                            int
	}{
		{"reader reads its type", reader, "GET", "/Observation/o1", "", 200},
		{"reader reads another type", reader, "GET", "/Patient/p1", "", 403},
		{"reader reads a missing id of another type", reader, "GET", "/Patient/nope", "", 403},
		{"reader writes", reader, "PUT", "/Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"y"}}`, 403},
		{"include of another type", reader, "GET", "/Observation?_include=Observation:subject", "", 403},
		{"include narrowed to another type", reader, "GET", "/Observation?_include=Observation:subject:Patient", "", 403},
		{"chain into another type", reader, "GET", "/Observation?subject:Patient.name=x", "", 403},
		{"_has of another type", reader, "GET", "/Observation?_has:Provenance:target:agent=x", "", 403},
		{"revinclude of another type", reader, "GET", "/Observation?_revinclude=Provenance:target", "", 403},
		{"$everything", reader, "GET", "/Patient/p1/$everything", "", 403},
		{"system history", reader, "GET", "/_history", "", 403},
		{"transaction with a forbidden entry", reader, "POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Patient/p1"}}]}`, 403},
		{"batch with a forbidden entry", reader, "POST", "/", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/o1"}},{"request":{"method":"DELETE","url":"Observation/o1"}}]}`, 403},
		{"search form with a forbidden include", reader, "POST", "/Observation/_search", "", 403},
		{"writer cannot write an AuditEvent", writer, "POST", "/AuditEvent", `{"resourceType":"AuditEvent"}`, 403},
		{"other tenant read", other, "GET", "/Patient/p1", "", 404},
		{"other tenant vread", other, "GET", "/Patient/p1/_history/1", "", 404},
		{"other tenant history", other, "GET", "/Patient/p1/_history", "", 404},
	} {
		var code int
		var body string
		if tc.name == "search form with a forbidden include" {
			req, _ := http.NewRequest("POST", e.URL+tc.path, strings.NewReader(url.Values{"_include": {"Observation:subject"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+tc.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
		} else {
			code, _, body = e.do(t, tc.token, tc.method, tc.path, tc.body)
		}
		if code != tc.want || code >= 400 && !strings.Contains(body, `"OperationOutcome"`) {
			t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, code, body, tc.want)
		}
		if code == 403 && strings.Contains(body, "p1") && !strings.Contains(tc.path+tc.body, "p1") {
			t.Errorf("%s: the refusal mentions a stored id: %s", tc.name, body)
		}
	}
	// Nothing changed by the refused writes, and the other tenant's
	// search finds nothing.
	if code, _, body := e.do(t, writer, "GET", "/Observation/o1", ""); code != 200 || !strings.Contains(body, `"text":"x"`) {
		t.Fatalf("after refusals: %d %s", code, body)
	}
	if code, _, body := e.do(t, other, "GET", "/Patient", ""); code != 200 || strings.Contains(body, `"entry"`) {
		t.Fatalf("other tenant search: %d %s", code, body)
	}
	if code, _, body := e.do(t, other, "GET", "/_history", ""); code != 200 || strings.Contains(body, "p1") {
		t.Fatalf("other tenant system history: %d %s", code, body)
	}
	// Conditional update across tenants: creates in its own practice, never
	// touches the other's.
	if code, _, body := e.do(t, other, "PUT", "/Patient?_id=p1", `{"resourceType":"Patient","active":true}`); code != 201 {
		t.Fatalf("other tenant conditional update: %d %s", code, body)
	}
	if _, _, body := e.do(t, writer, "GET", "/Patient/p1", ""); strings.Contains(body, "active") {
		t.Fatalf("the other practice's conditional update changed this one's patient: %s", body)
	}
}

func TestAuthHardening(t *testing.T) {
	e := newAuthServer(t, func(a *server.Auth) {
		a.RateLimit, a.RateBurst = 1, 3
		a.CORSOrigins = []string{"https://app.example"}
	})
	tok := e.client(t, "c", "acme", "system/*.rs", "system/*.rs")
	code, h, _ := e.do(t, tok, "GET", "/Patient", "")
	if code != 200 || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" ||
		h.Get("Cache-Control") != "no-store" || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("security headers: %d %v", code, h)
	}
	if h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS headers without an Origin: %v", h)
	}
	// Burst of 3 (one spent above), then 429 with Retry-After.
	var got []int
	var retry string
	for range 4 {
		code, h, body := e.do(t, tok, "GET", "/Patient", "")
		got = append(got, code)
		if code == 429 {
			retry = h.Get("Retry-After")
			if !strings.Contains(body, `"throttled"`) {
				t.Errorf("429 body: %s", body)
			}
		}
	}
	if got[0] != 200 || got[1] != 200 || got[3] != 429 || retry == "" {
		t.Fatalf("rate limit: statuses %v, Retry-After %q; want 200, 200, then 429 with Retry-After", got, retry)
	}
	// CORS: only the configured origin, and its preflight without a token.
	for _, tc := range []struct {
		origin string
		want   string
	}{{"https://app.example", "https://app.example"}, {"https://evil.example", ""}} {
		req, _ := http.NewRequest("OPTIONS", e.URL+"/Patient", nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want || tc.want != "" && resp.StatusCode != 204 {
			t.Errorf("preflight from %s: %d, Allow-Origin %q; want %q", tc.origin, resp.StatusCode, got, tc.want)
		}
	}
}

func TestAuthNoCORSByDefault(t *testing.T) {
	e := newAuthServer(t)
	req, _ := http.NewRequest("OPTIONS", e.URL+"/Patient", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode < 400 {
		t.Fatalf("preflight without configured origins: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestAuthKeyRotation(t *testing.T) {
	e := newAuthServer(t)
	old := e.client(t, "c", "acme", "system/*.rs", "system/*.rs")
	if err := e.gw.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	nu := e.client(t, "d", "acme", "system/*.rs", "system/*.rs")
	if kid(t, old) == kid(t, nu) {
		t.Fatal("the rotation did not change the signing key")
	}
	for _, tok := range []string{old, nu} {
		if code, _, body := e.do(t, tok, "GET", "/Patient", ""); code != 200 {
			t.Fatalf("token after rotation: %d %s", code, body)
		}
	}
	_, _, body := e.do(t, "", "GET", auth.JWKSPath, "")
	if !strings.Contains(body, kid(t, old)) || !strings.Contains(body, kid(t, nu)) {
		t.Fatalf("the JWK Set does not publish both keys: %s", body)
	}
}

func kid(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m["kid"].(string)
}

// registerClient registers a client with a recipient and returns its
// token.
func (e *authEnv) prescriber(t *testing.T, id, recipient string, scopes ...string) string {
	t.Helper()
	sc := "system/*.rs"
	if len(scopes) > 0 {
		sc = scopes[0]
	}
	tok := e.client(t, id, "acme", sc, sc)
	row, err := e.st.AuthClient(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	row.Recipient = recipient
	if err := e.st.PutAuthClient(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	return tok
}

func consentJSON(id, patient, actor, label string) string {
	sec := ""
	if label != "" {
		sec = `,"securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"` + label + `"}]`
	}
	return `{"resourceType":"Consent","id":"` + id + `","status":"active",
		"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
		"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
		"patient":{"reference":"` + patient + `"},
		"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]},
		"provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},
		"reference":{"reference":"` + actor + `"}}]` + sec + `}}`
}

// TestAuthConsent: the practice's own client reads everything, notes
// included; a prescriber's client only the patients a Consent shares
// with it, and their notes only with a Consent permitting PSYTHPN.
func TestAuthConsent(t *testing.T) {
	e := newAuthServer(t)
	practice := e.client(t, "practice", "acme", "system/*.cruds", "system/*.cruds")
	for _, w := range []struct{ path, body string }{
		{"/Patient/p1", `{"resourceType":"Patient","id":"p1"}`},
		{"/Patient/p2", `{"resourceType":"Patient","id":"p2"}`},
		{"/Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`},
		{"/Observation/o2", `{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`},
		{"/DocumentReference/n1", `{"resourceType":"DocumentReference","id":"n1","status":"current","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]},"subject":{"reference":"Patient/p1"},"content":[{"attachment":{"contentType":"text/plain","data":"U0VDUkVU"}}]}`},
		{"/Consent/c1", consentJSON("c1", "Patient/p1", "Practitioner/dr", "")},
	} {
		if code, _, body := e.do(t, practice, "PUT", w.path, w.body); code != 201 {
			t.Fatalf("seed %s: %d %s", w.path, code, body)
		}
	}
	dr := e.prescriber(t, "dr", "Practitioner/dr")
	other := e.prescriber(t, "other", "Practitioner/other")
	drw := e.prescriber(t, "drw", "Practitioner/dr", "system/*.cruds")
	check := func(name, tok, method, path string, want int, has, hasNot string) {
		t.Helper()
		code, _, body := e.do(t, tok, method, path, "")
		if code != want || has != "" && !strings.Contains(body, has) || hasNot != "" && strings.Contains(body, hasNot) {
			t.Errorf("%s: %s %s = %d %.300s; want %d", name, method, path, code, body, want)
		}
	}
	check("practice reads its note", practice, "GET", "/DocumentReference/n1", 200, "U0VDUkVU", "")
	check("shared patient", dr, "GET", "/Patient/p1", 200, "", "")
	check("shared patient's observation", dr, "GET", "/Observation/o1", 200, "", "")
	check("unshared patient", dr, "GET", "/Patient/p2", 404, "", "")
	check("unshared patient's observation", dr, "GET", "/Observation/o2", 404, "", "")
	check("unshared observation's history", dr, "GET", "/Observation/o2/_history", 404, "", "")
	check("search of the shared patient", dr, "GET", "/Observation?patient=Patient/p1", 200, "Observation/o1", "o2")
	check("search of the unshared patient", dr, "GET", "/Observation?patient=p2", 403, "", "o2")
	check("search naming no patient", dr, "GET", "/Observation", 403, "", "o1")
	check("search naming two patients", dr, "GET", "/Observation?patient=p1,p2", 403, "", "o2")
	check("note without a note Consent", dr, "GET", "/DocumentReference/n1", 404, "", "U0VDUkVU")
	check("note search without a note Consent", dr, "GET", "/DocumentReference?patient=p1", 200, "", "U0VDUkVU")
	check("note by $everything", dr, "GET", "/Patient/p1/$everything", 200, "o1", "U0VDUkVU")
	check("bundle", dr, "POST", "/", 403, "", "")
	for _, w := range []struct{ name, method, path, body string }{
		{"move a shared observation to an unshared patient", "PUT", "/Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`},
		{"create by update for an unshared patient", "PUT", "/Observation/new1", `{"resourceType":"Observation","id":"new1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`},
		{"create for an unshared patient", "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`},
	} {
		if code, _, body := e.do(t, drw, w.method, w.path, w.body); code != 403 || !strings.Contains(body, "Consent") {
			t.Errorf("%s: %d %s; want 403 naming the Consent", w.name, code, body)
		}
	}
	if code, _, body := e.do(t, drw, "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`); code != 201 {
		t.Errorf("a prescriber writing for its shared patient: %d %s", code, body)
	}
	check("include of its patient", dr, "GET", "/Observation?patient=p1&_include=Observation:subject", 200, "Patient/p1", "")
	check("iterated include", dr, "GET", "/Observation?patient=p1&_include:iterate=Patient:link", 403, "", "")
	check("include into other observations", dr, "GET", "/Observation?patient=p1&_include=Observation:has-member", 403, "", "")
	check("revinclude of observations", dr, "GET", "/Patient?_id=p1&_revinclude=Observation:subject", 403, "", "")
	check("revinclude of provenance", dr, "GET", "/Patient?_id=p1&_revinclude=Provenance:target", 200, "", "")
	check("system history", dr, "GET", "/_history", 403, "", "")
	check("another prescriber", other, "GET", "/Patient/p1", 404, "", "")
	check("another prescriber's search", other, "GET", "/Observation?patient=p1", 403, "", "o1")

	if code, _, body := e.do(t, practice, "PUT", "/Consent/c2", consentJSON("c2", "Patient/p1", "Practitioner/dr", "PSYTHPN")); code != 201 {
		t.Fatalf("note Consent: %d %s", code, body)
	}
	check("note with a note Consent", dr, "GET", "/DocumentReference/n1", 200, "U0VDUkVU", "")
	check("note search with a note Consent", dr, "GET", "/DocumentReference?patient=p1", 200, "U0VDUkVU", "")
	check("the other prescriber still not", other, "GET", "/DocumentReference/n1", 404, "", "U0VDUkVU")
}
