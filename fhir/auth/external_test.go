package auth_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

func privateOf(t *testing.T, k *smart.SigningKey) any {
	p, _ := k.MarshalPEM()
	b, _ := pem.Decode(p)
	priv, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// TestExternalIssuer: tokens of an external identity provider are taken
// when signed by its published key for this audience, for a registered
// client, with the client's scopes as the upper bound.
func TestExternalIssuer(t *testing.T) {
	key, _ := smart.GenerateKey(smart.ES384)
	set, _ := json.Marshal(key.PublicJWKS())
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(set) }))
	defer idp.Close()
	st := memstore.New()
	defer st.Close()
	ctx := context.Background()
	_ = st.PutAuthClient(ctx, auth.ClientRow{ID: "app", Tenant: "acme", JWKSURL: "https://unused.example/jwks", Scopes: "system/Observation.rs"})
	gw, err := auth.NewGateway(ctx, auth.GatewayConfig{Store: st, BaseURL: "https://gw.example"})
	if err != nil {
		t.Fatal(err)
	}
	ext := &auth.External{Issuer: "https://idp.example", Audience: "https://gw.example", JWKSURL: idp.URL, Store: st}
	v := auth.Verifiers{Gateway: gw, External: ext}
	now := time.Now()
	sign := func(m jwt.SigningMethod, k any, mod func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"iss": "https://idp.example", "aud": "https://gw.example", "client_id": "app",
			"scope": "system/Observation.rs system/Patient.rs", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix()}
		if mod != nil {
			mod(c)
		}
		tok := jwt.NewWithClaims(m, c)
		tok.Header["kid"] = key.KeyID()
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	priv := privateOf(t, key)
	p, err := v.Verify(ctx, sign(jwt.SigningMethodES384, priv, nil))
	if err != nil || p.ClientID != "app" || p.Tenant != "acme" || p.Scopes.String() != "system/Observation.rs" {
		t.Fatalf("external token: %+v, %v; want client app of acme with system/Observation.rs only", p, err)
	}
	other, _ := smart.GenerateKey(smart.ES384)
	for name, tok := range map[string]string{
		"wrong aud":       sign(jwt.SigningMethodES384, priv, func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" }),
		"expired":         sign(jwt.SigningMethodES384, priv, func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }),
		"unknown client":  sign(jwt.SigningMethodES384, priv, func(c jwt.MapClaims) { c["client_id"] = "nobody" }),
		"another key":     sign(jwt.SigningMethodES384, privateOf(t, other), nil),
		"HS256 with JWKS": sign(jwt.SigningMethodHS256, set, nil),
	} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, auth.ErrUnauthorized) {
			t.Errorf("%s: err %v, want ErrUnauthorized", name, err)
		}
	}
}
