package auth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// fuzzGateway is a gateway with one registered client, "c", whose key
// signs the seeds.
func fuzzGateway(f *testing.F) (*auth.Gateway, *smart.SigningKey) {
	st := memstore.New()
	f.Cleanup(func() { st.Close() })
	key, err := smart.GenerateKey(smart.ES384)
	if err != nil {
		f.Fatal(err)
	}
	set, _ := json.Marshal(key.PublicJWKS())
	ctx := context.Background()
	_ = st.PutAuthClient(ctx, auth.ClientRow{ID: "c", Tenant: "t", JWKS: string(set), Scopes: "system/*.rs"})
	gw, err := auth.NewGateway(ctx, auth.GatewayConfig{Store: st, BaseURL: "https://gw.example"})
	if err != nil {
		f.Fatal(err)
	}
	return gw, key
}

// checkTokenAnswer posts body to the token endpoint: whatever it is, the
// answer is an OAuth error (400 or 401) with no token, never a panic or a
// 5xx.
func checkTokenAnswer(t *testing.T, gw *auth.Gateway, body string) {
	req := httptest.NewRequest(http.MethodPost, "https://gw.example"+auth.TokenPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	gw.TokenHandler().ServeHTTP(rec, req)
	if rec.Code != 400 && rec.Code != 401 {
		t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
	}
	var e smart.TokenError
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || strings.Contains(rec.Body.String(), "access_token") {
		t.Fatalf("answer to %q is not an OAuth error: %s", body, rec.Body)
	}
}

// FuzzTokenForm fuzzes the token endpoint's form parsing.
func FuzzTokenForm(f *testing.F) {
	gw, key := fuzzGateway(f)
	stale, _ := key.Sign(smart.Assertion{ClientID: "c", TokenURL: "https://elsewhere.example/token"})
	for _, s := range []string{
		"", "grant_type=client_credentials", "grant_type=password&username=a&password=b",
		smart.TokenRequestForm(stale, "system/*.rs").Encode(),
		smart.TokenRequestForm(stale, "system/*.rs").Encode() + "&scope=system/Patient.rs",
		smart.TokenRequestForm("a.b.c", "system/*.rs").Encode(),
		"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=%ZZ",
		"scope=" + strings.Repeat("system/Patient.rs+", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) { checkTokenAnswer(t, gw, body) })
}

// FuzzTokenAssertion fuzzes the client assertion's parsing: header,
// claims, signature.
func FuzzTokenAssertion(f *testing.F) {
	gw, key := fuzzGateway(f)
	for _, a := range []smart.Assertion{
		{ClientID: "c", TokenURL: "https://elsewhere.example/token"},
		{ClientID: "nobody", TokenURL: "https://gw.example" + auth.TokenPath},
		{ClientID: "c", TokenURL: "https://gw.example" + auth.TokenPath, IssuedAt: time.Now().Add(-time.Hour)},
	} {
		s, err := key.Sign(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJjIn0.")
	f.Add("...")
	f.Fuzz(func(t *testing.T, assertion string) {
		checkTokenAnswer(t, gw, smart.TokenRequestForm(assertion, "system/*.rs").Encode())
	})
}
