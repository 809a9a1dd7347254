package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore/sqltest"
	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// attackClient is a client registered through `kapbridge clients add`.
type attackClient struct {
	id  string
	key *smart.SigningKey
}

// startServeCtl runs `kapbridge serve` (authorization on) on store until
// stop is called or the test ends, and returns its base URL.
func startServeCtl(t *testing.T, store, addr string, args ...string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logw := &lockedWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	env := map[string]string{"KAPBRIDGE_STORE": store, "KAPBRIDGE_LOG_LEVEL": "error"}
	go func() {
		done <- run(ctx, append([]string{"serve", "-listen", addr}, args...), func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, logw)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(25 * time.Second):
			t.Error("serve did not stop")
		}
	}
	t.Cleanup(stop)
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/metadata"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base, stop
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, logw.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer /metadata:\n%s", logw.String())
		}
	}
}

// addClient registers a client with the real command line.
func addClient(t *testing.T, store, id, alg, tenant, scopes string, extra ...string) attackClient {
	t.Helper()
	key, err := smart.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(key.PublicJWKS())
	file := filepath.Join(t.TempDir(), id+".jwks.json")
	if err := os.WriteFile(file, set, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), append([]string{"clients", "add", "--id", id, "--jwks", file, "--scopes", scopes, "--tenant", tenant, "--store", store}, extra...),
		func(string) string { return "" }, nil, &out, &errb); err != nil {
		t.Fatalf("clients add %s: %v\n%s", id, err, errb.String())
	}
	return attackClient{id: id, key: key}
}

// postToken sends a token request form and returns the status and body.
func postToken(t *testing.T, base string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(base+auth.TokenPath, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c attackClient) assertion(t *testing.T, base string) string {
	t.Helper()
	a, err := c.key.Sign(smart.Assertion{ClientID: c.id, TokenURL: base + auth.TokenPath})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (c attackClient) token(t *testing.T, base, scope string) string {
	t.Helper()
	code, body := postToken(t, base, smart.TokenRequestForm(c.assertion(t, base), scope))
	if code != 200 {
		t.Fatalf("token for %s: %d %s", c.id, code, body)
	}
	tr, err := smart.ParseTokenResponse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return tr.AccessToken
}

// forge signs claims with method and key, with header extras.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unsigned(header, claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return strings.TrimRight(b64url(b), "=")
	}
	return enc(header) + "." + enc(claims) + "."
}

func b64url(b []byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var out strings.Builder
	for i := 0; i < len(b); i += 3 {
		var n uint32
		k := min(3, len(b)-i)
		for j := 0; j < 3; j++ {
			n <<= 8
			if j < k {
				n |= uint32(b[i+j])
			}
		}
		for j := 0; j < k+1; j++ {
			out.WriteByte(alphabet[(n>>(18-6*j))&63])
		}
	}
	return out.String()
}

// TestAttackTable replays the attacks of issue 14 against the real
// program (`kapbridge serve`, authorization on, clients registered with
// `kapbridge clients add`) on SQLite, and on PostgreSQL when
// KAPBRIDGE_TEST_POSTGRES_DSN is set: each is refused with the right
// status and an OAuth error or OperationOutcome, no token is granted, and
// the store is unchanged byte for byte (sqltest.Dump) by the refusals.
func TestAttackTable(t *testing.T) {
	for name, newStore := range serveStores(t) {
		t.Run(name, func(t *testing.T) { runAttackTable(t, newStore(t)) })
	}
}

func runAttackTable(t *testing.T, store string) {
	writer := addClient(t, store, "writer", smart.ES384, "default", "system/*.cruds")
	reader := addClient(t, store, "reader", smart.RS384, "default", "system/Observation.rs")
	other := addClient(t, store, "other", smart.ES384, "beta", "system/*.cruds")
	gone := addClient(t, store, "gone", smart.ES384, "default", "system/*.rs")
	// A prescriber with whom a Consent shares Patient/p1's record but not
	// its psychotherapy notes, and one with no Consent at all.
	dr := addClient(t, store, "dr", smart.ES384, "default", "system/*.rs", "--recipient", "Practitioner/dr")
	stranger := addClient(t, store, "stranger", smart.ES384, "default", "system/*.rs", "--recipient", "Practitioner/stranger")
	if err := run(context.Background(), []string{"clients", "disable", "--id", "gone", "--store", store}, func(string) string { return "" }, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	base, stop := startServeCtl(t, store, addr)
	tokenURL := base + auth.TokenPath

	wTok := writer.token(t, base, "system/*.cruds")
	rTok := reader.token(t, base, "system/Observation.rs")
	oTok := other.token(t, base, "system/*.cruds")
	dTok := dr.token(t, base, "system/*.rs")
	sTok := stranger.token(t, base, "system/*.rs")
	g := &gatewayProc{base: base}
	send := func(tok, method, path, body string) answer {
		h := map[string]string{}
		if tok != "" {
			h["Authorization"] = "Bearer " + tok
		}
		return g.do(t, method, path, h, body)
	}
	for _, w := range []struct{ path, body string }{
		{"/Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"Rivera"}],"identifier":[{"system":"urn:x","value":"1"}]}`},
		{"/Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`},
		{"/Consent/c1", `{"resourceType":"Consent","id":"c1","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/p1"},"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]},"provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},"reference":{"reference":"Practitioner/dr"}}]}}`},
		{"/DocumentReference/n1", `{"resourceType":"DocumentReference","id":"n1","status":"current","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSYTHPN"}]},"subject":{"reference":"Patient/p1"},"content":[{"attachment":{"contentType":"text/plain","data":"U0VDUkVU"}}]}`},
	} {
		if a := send(wTok, "PUT", w.path, w.body); a.status != 201 {
			t.Fatalf("seed %s: %d %s", w.path, a.status, a.body)
		}
	}
	// A used assertion, to replay (now and after a restart).
	used := writer.assertion(t, base)
	if code, body := postToken(t, base, smart.TokenRequestForm(used, "system/*.rs")); code != 200 {
		t.Fatalf("token: %d %s", code, body)
	}
	// Asking for scopes the client may not have is refused (invalid_scope)
	// after its assertion was verified, so its jti is spent, as it must be:
	// a genuine assertion is never good twice.
	if code, body := postToken(t, base, smart.TokenRequestForm(reader.assertion(t, base), "system/Patient.rs")); code != 400 || !strings.Contains(body, "invalid_scope") {
		t.Errorf("scope escalation at the token endpoint: %d %s; want 400 invalid_scope", code, body)
	}
	before := sqltest.Dump(t, store)

	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "writer", "sub": "writer", "aud": tokenURL, "exp": now.Add(4 * time.Minute).Unix(),
			"iat": now.Unix(), "jti": smart.NewID()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	wpriv := writerPrivate(t, writer.key)
	hdr := map[string]any{"kid": writer.key.KeyID()}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	readerPub, _ := json.Marshal(reader.key.Public())
	tokenRows := []struct {
		name      string
		assertion string
		scope     string
		want      int
	}{
		{"alg none", unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": writer.key.KeyID()}, claims(nil)), "system/*.rs", 401},
		{"HS256 signed with the public key (algorithm confusion)", forge(t, jwt.SigningMethodHS256, readerPub, map[string]any{"kid": reader.key.KeyID()}, claims(func(c jwt.MapClaims) { c["iss"], c["sub"] = "reader", "reader" })), "system/*.rs", 401},
		{"RS256", forge(t, jwt.SigningMethodRS256, rsaKey, map[string]any{"kid": reader.key.KeyID()}, claims(func(c jwt.MapClaims) { c["iss"], c["sub"] = "reader", "reader" })), "system/*.rs", 401},
		{"expired", forge(t, jwt.SigningMethodES384, wpriv, hdr, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })), "system/*.rs", 401},
		{"nbf in the future", forge(t, jwt.SigningMethodES384, wpriv, hdr, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), "system/*.rs", 401},
		{"wrong aud", forge(t, jwt.SigningMethodES384, wpriv, hdr, claims(func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example/token" })), "system/*.rs", 401},
		{"wrong iss", forge(t, jwt.SigningMethodES384, wpriv, hdr, claims(func(c jwt.MapClaims) { c["iss"], c["sub"] = "nobody", "nobody" })), "system/*.rs", 401},
		{"iss is not sub", forge(t, jwt.SigningMethodES384, wpriv, hdr, claims(func(c jwt.MapClaims) { c["sub"] = "reader" })), "system/*.rs", 401},
		{"unknown kid", forge(t, jwt.SigningMethodES384, wpriv, map[string]any{"kid": "nope"}, claims(nil)), "system/*.rs", 401},
		{"exp an hour ahead", forge(t, jwt.SigningMethodES384, wpriv, hdr, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(time.Hour).Unix() })), "system/*.rs", 401},
		{"no exp", forge(t, jwt.SigningMethodES384, wpriv, hdr, claims(func(c jwt.MapClaims) { delete(c, "exp") })), "system/*.rs", 401},
		{"replayed jti", used, "system/*.rs", 401},
		{"disabled client", gone.assertion(t, base), "system/*.rs", 401},
		{"signed by another key", forge(t, jwt.SigningMethodES384, otherEC(t), hdr, claims(nil)), "system/*.rs", 401},
	}
	for _, tc := range tokenRows {
		code, body := postToken(t, base, smart.TokenRequestForm(tc.assertion, tc.scope))
		if code != tc.want || strings.Contains(body, "access_token") || !strings.Contains(body, `"error"`) {
			t.Errorf("token endpoint, %s: %d %s; want %d with an OAuth error", tc.name, code, body, tc.want)
		}
	}
	for _, form := range []url.Values{{}, {"grant_type": {"password"}}, {"grant_type": {"client_credentials"}, "client_assertion_type": {"x"}}} {
		if code, body := postToken(t, base, form); code != 400 || strings.Contains(body, "access_token") {
			t.Errorf("malformed token request %v: %d %s", form, code, body)
		}
	}

	// Access tokens that are not the gateway's.
	gw := gatewayKey(t, store)
	atClaims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": base, "aud": base, "sub": "writer", "client_id": "writer", "scope": "system/*.cruds",
			"iat": now.Unix(), "exp": now.Add(4 * time.Minute).Unix(), "jti": smart.NewID()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	gwPub, _ := json.Marshal(gw.Public())
	gwHdr := map[string]any{"kid": gw.KeyID()}
	gwPriv := writerPrivate(t, gw)
	apiRows := []struct {
		name, token string
	}{
		{"no token", ""},
		{"a malformed token", "not.a.jwt"},
		{"alg none", unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": gw.KeyID()}, atClaims(nil))},
		{"HS256 signed with the gateway's public key", forge(t, jwt.SigningMethodHS256, gwPub, gwHdr, atClaims(nil))},
		{"RS256", forge(t, jwt.SigningMethodRS256, rsaKey, gwHdr, atClaims(nil))},
		{"expired", forge(t, jwt.SigningMethodES384, gwPriv, gwHdr, atClaims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }))},
		{"nbf in the future", forge(t, jwt.SigningMethodES384, gwPriv, gwHdr, atClaims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }))},
		{"wrong aud", forge(t, jwt.SigningMethodES384, gwPriv, gwHdr, atClaims(func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" }))},
		{"wrong iss", forge(t, jwt.SigningMethodES384, gwPriv, gwHdr, atClaims(func(c jwt.MapClaims) { c["iss"] = "https://elsewhere.example" }))},
		{"unknown kid", forge(t, jwt.SigningMethodES384, gwPriv, map[string]any{"kid": "nope"}, atClaims(nil))},
		{"a disabled client's token", forge(t, jwt.SigningMethodES384, gwPriv, gwHdr, atClaims(func(c jwt.MapClaims) { c["client_id"], c["sub"] = "gone", "gone" }))},
	}
	for _, tc := range apiRows {
		for _, p := range []string{"/Patient/p1", "/Patient", "/practice/v1/records"} {
			a := send(tc.token, "GET", p, "")
			if a.status != 401 || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(string(a.body), `"OperationOutcome"`) || strings.Contains(string(a.body), "Rivera") {
				t.Errorf("API, %s, GET %s: %d %q %s; want 401 with WWW-Authenticate and an OperationOutcome", tc.name, p, a.status, a.header.Get("WWW-Authenticate"), a.body)
			}
		}
	}

	// Scopes and tenants.
	note := "U0VDUkVU"
	scopeRows := []struct {
		name, token, method, path, body string
		want                            int
	}{
		{"scope escalation: a .rs client writes", rTok, "PUT", "/Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"y"}}`, 403},
		{"scope escalation: a .rs client creates", rTok, "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"y"}}`, 403},
		{"scope escalation: a .rs client deletes", rTok, "DELETE", "/Observation/o1", "", 403},
		{"forbidden type read", rTok, "GET", "/Patient/p1", "", 403},
		{"forbidden type in a transaction", rTok, "POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Observation/o1"}},{"request":{"method":"GET","url":"Patient/p1"}}]}`, 403},
		{"forbidden type in a batch", rTok, "POST", "/", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?name=Rivera"}}]}`, 403},
		{"forbidden write in a transaction", rTok, "POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"z"}},"request":{"method":"POST","url":"Observation"}}]}`, 403},
		{"forbidden type in _include", rTok, "GET", "/Observation?_include=Observation:subject", "", 403},
		{"forbidden type in _revinclude", rTok, "GET", "/Observation?_revinclude=Provenance:target", "", 403},
		{"forbidden type in _has", rTok, "GET", "/Observation?_has:Provenance:target:agent=x", "", 403},
		{"forbidden type in a chain", rTok, "GET", "/Observation?subject:Patient.name=Rivera", "", 403},
		{"forbidden type in $everything", rTok, "GET", "/Patient/p1/$everything", "", 403},
		{"AuditEvent written by a client", wTok, "POST", "/AuditEvent", `{"resourceType":"AuditEvent"}`, 403},
		{"cross-tenant read", oTok, "GET", "/Patient/p1", "", 404},
		{"cross-tenant vread", oTok, "GET", "/Patient/p1/_history/1", "", 404},
		{"cross-tenant history", oTok, "GET", "/Patient/p1/_history", "", 404},
		{"cross-tenant delete", oTok, "DELETE", "/Observation/o1", "", 404},
		{"psychotherapy note read, no note Consent", dTok, "GET", "/DocumentReference/n1", "", 404},
		{"psychotherapy note vread, no note Consent", dTok, "GET", "/DocumentReference/n1/_history/1", "", 404},
		{"psychotherapy note history, no note Consent", dTok, "GET", "/DocumentReference/n1/_history", "", 404},
		{"psychotherapy note in a transaction", dTok, "POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"DocumentReference/n1"}}]}`, 403},
		{"psychotherapy note by system history", dTok, "GET", "/_history", "", 403},
		{"psychotherapy note, no Consent at all", sTok, "GET", "/DocumentReference/n1", "", 404},
		{"unshared patient", sTok, "GET", "/Patient/p1", "", 404},
		{"unshared patient's observation", sTok, "GET", "/Observation/o1", "", 404},
		{"unshared patient's search", sTok, "GET", "/Observation?patient=p1", "", 403},
		{"psychotherapy note by _revinclude", dTok, "GET", "/Patient?_id=p1&_revinclude=DocumentReference:subject", "", 403},
	}
	for _, tc := range scopeRows {
		a := send(tc.token, tc.method, tc.path, tc.body)
		if a.status != tc.want || a.status >= 400 && !strings.Contains(string(a.body), `"OperationOutcome"`) ||
			strings.Contains(string(a.body), "Rivera") || strings.Contains(string(a.body), note) {
			t.Errorf("%s: %s %s = %d %.400s; want %d, nothing disclosed", tc.name, tc.method, tc.path, a.status, a.body, tc.want)
		}
	}
	// Controls: the note exists and its practice reads it; the prescriber
	// reads what its Consent shares.
	if a := send(wTok, "GET", "/DocumentReference/n1", ""); a.status != 200 || !strings.Contains(string(a.body), note) {
		t.Errorf("the practice reading its own note: %d %.300s", a.status, a.body)
	}
	if a := send(dTok, "GET", "/Observation/o1", ""); a.status != 200 {
		t.Errorf("the prescriber reading its shared patient's observation: %d %.300s", a.status, a.body)
	}
	// Oversized requests, with a valid token: refused by the limits, before
	// anything is stored (the abuse table, TestAbuseTable, replays the
	// rest of the hardening issue's rows, slow connections included).
	deep := strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000)
	for _, tc := range []struct{ name, method, path, body string }{
		{"1,000-deep JSON", "POST", "/Patient", `{"resourceType":"Patient","extension":[` + deep + `]}`},
		{"10,000-entry bundle", "POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[` +
			strings.TrimSuffix(strings.Repeat(`{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},`, 10_000), ",") + `]}`},
	} {
		if a := send(wTok, tc.method, tc.path, tc.body); a.status < 400 || a.status >= 500 || !strings.Contains(string(a.body), `"OperationOutcome"`) {
			t.Errorf("%s: %d %.300s; want a 4xx OperationOutcome", tc.name, a.status, a.body)
		}
	}
	if status := hugeBody(t, addr, wTok); status != http.StatusRequestEntityTooLarge {
		t.Errorf("100 MB body: %d, want 413", status)
	}
	// 500 slow connections (a request line and a header, then a byte a
	// second, never finishing) while a normal client reads with its token:
	// every read answered, none slower than 2 s.
	slow := make([]net.Conn, 0, 500)
	for range 500 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slow connection %d: %v", len(slow), err)
		}
		fmt.Fprintf(c, "GET /Patient/p1 HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nX-Slow: ", addr, wTok)
		slow = append(slow, c)
	}
	stopDrip := make(chan struct{})
	dripped := make(chan struct{})
	go func() {
		defer close(dripped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopDrip:
				return
			case <-tick.C:
				for _, c := range slow {
					_, _ = c.Write([]byte("a"))
				}
			}
		}
	}()
	var slowest time.Duration
	for range 20 {
		start := time.Now()
		if a := send(wTok, "GET", "/Patient/p1", ""); a.status != 200 {
			t.Errorf("normal read during 500 slow connections: %d %.200s", a.status, a.body)
		}
		slowest = max(slowest, time.Since(start))
		time.Sleep(100 * time.Millisecond)
	}
	close(stopDrip)
	<-dripped
	for _, c := range slow {
		c.Close()
	}
	if slowest > 2*time.Second {
		t.Errorf("during 500 slow connections the slowest normal read took %v", slowest)
	}
	t.Logf("500 slow connections: slowest of 20 normal reads %v", slowest.Round(time.Millisecond))
	// Searches that must come back without the other practice's data or
	// the note.
	for _, tc := range []struct{ name, token, path string }{
		{"cross-tenant search", oTok, "/Patient?name=Rivera"},
		{"cross-tenant identifier search", oTok, "/Patient?identifier=urn:x|1"},
		{"cross-tenant system history", oTok, "/_history"},
		{"psychotherapy note search", dTok, "/DocumentReference?patient=p1"},
		{"psychotherapy note by $everything", dTok, "/Patient/p1/$everything"},
		{"psychotherapy note by _has", dTok, "/Patient?_id=p1&_has:DocumentReference:subject:status=current"},
		{"psychotherapy note by a chain", dTok, "/DocumentReference?patient=p1&subject:Patient._id=p1"},
	} {
		a := send(tc.token, "GET", tc.path, "")
		if a.status != 200 || strings.Contains(string(a.body), note) || strings.Contains(string(a.body), "DocumentReference/n1") ||
			strings.HasPrefix(tc.name, "cross-tenant") && strings.Contains(string(a.body), `"entry"`) {
			t.Errorf("%s: GET %s = %d %.400s", tc.name, tc.path, a.status, a.body)
		}
	}
	if after := withoutAudit(sqltest.Dump(t, store)); after != withoutAudit(before) {
		t.Errorf("the refused requests changed the store:\n%s", diffLines(before, after))
	}
	if a := send(oTok, "PUT", "/Patient?identifier=urn:x|1", `{"resourceType":"Patient","name":[{"family":"Other"}],"identifier":[{"system":"urn:x","value":"1"}]}`); a.status != 201 {
		t.Errorf("cross-tenant conditional update: %d %s; want 201 (a new patient in its own practice)", a.status, a.body)
	}
	if a := send(wTok, "GET", "/Patient/p1", ""); a.status != 200 || !strings.Contains(string(a.body), "Rivera") || strings.Contains(string(a.body), "Other") {
		t.Errorf("the other practice's conditional update reached this one: %d %s", a.status, a.body)
	}

	// A client disabled by another process (the command line, on the same
	// store) while the server runs: the token it already holds, verified
	// and cached by the server a moment ago, is refused once the server's
	// last read of the clients' generation is older than its bound (100 ms,
	// fhir/auth clientStale): the test waits 150 ms, then every request
	// must be refused.
	late := addClient(t, store, "late", smart.ES384, "default", "system/*.rs")
	lTok := late.token(t, base, "system/*.rs")
	if a := send(lTok, "GET", "/Patient/p1", ""); a.status != 200 {
		t.Fatalf("a fresh client's token: %d %.200s", a.status, a.body)
	}
	if err := run(context.Background(), []string{"clients", "disable", "--id", "late", "--store", store}, func(string) string { return "" }, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	for _, p := range []string{"/Patient/p1", "/Patient", "/practice/v1/records"} {
		if a := send(lTok, "GET", p, ""); a.status != 401 || strings.Contains(string(a.body), "Rivera") {
			t.Errorf("token issued, client disabled from another process: GET %s = %d %.200s; want 401 within 100 ms", p, a.status, a.body)
		}
	}

	// A replayed assertion after a restart.
	stop()
	base2, _ := startServeCtl(t, store, addr)
	if code, body := postToken(t, base2, smart.TokenRequestForm(used, "system/*.rs")); code != 401 || strings.Contains(body, "access_token") {
		t.Errorf("assertion replayed after a restart: %d %s; want 401", code, body)
	}
}

// writerPrivate gets the private key of a SigningKey back through PEM.
func writerPrivate(t *testing.T, k *smart.SigningKey) any {
	t.Helper()
	p, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(p)
	priv, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func otherEC(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// gatewayKey reads the gateway's signing key from the store, as an
// attacker who stole nothing cannot, to forge tokens that differ from a
// real one in one claim only.
func gatewayKey(t *testing.T, store string) *smart.SigningKey {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks, err := auth.Keys{Store: st.(auth.Store)}.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ks[0]
}

// diffLines lists the lines of b not in a, and of a not in b.
func diffLines(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for l := range mb {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	for l := range ma {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	return strings.Join(out, "\n")
}

// withoutAudit drops the rows of the audit trail (tenant ...#audit) from
// a dump: every request, refused ones included, is audited there.
func withoutAudit(dump string) string {
	var out []string
	for _, l := range strings.Split(dump, "\n") {
		if !strings.Contains(l, "#audit") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// hugeBody declares a 100 MB body (and sends 1 KB of it): the answer's
// status, which must come before the body is read.
func hugeBody(t *testing.T, addr, token string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST /Patient HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/fhir+json\r\nContent-Length: %d\r\n\r\n%s",
		addr, token, 100<<20, strings.Repeat(" ", 1024))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("100 MB body: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
