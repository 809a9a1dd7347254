package smart

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testTokenURL = "https://ehr.example/auth/token"
	testClientID = "kapbridge-test"
	testJWKSURL  = "https://kapbridge.example/jwks/kapbridge-test.json"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeFetcher serves JWK Sets by URL, counting fetches.
type fakeFetcher struct {
	sets  map[string]*JWKS
	calls int
}

func (f *fakeFetcher) FetchJWKS(_ context.Context, u string) (*JWKS, error) {
	f.calls++
	if s, ok := f.sets[u]; ok {
		return s, nil
	}
	return nil, errors.New("404")
}

// testValidator registers testClientID with the RS384 and ES384 test keys
// inline, "url-client" with the keys at testJWKSURL only, and a disabled
// client.
func testValidator(t testing.TB) (*Validator, *fakeFetcher) {
	t.Helper()
	testKeys(t)
	both := &JWKS{Keys: []JWK{testRSA.Public(), testEC.Public()}}
	f := &fakeFetcher{sets: map[string]*JWKS{testJWKSURL: both}}
	return &Validator{
		TokenURL: testTokenURL,
		Clients: Clients{
			testClientID: {ID: testClientID, JWKS: both, JWKSURL: testJWKSURL},
			"url-client": {ID: "url-client", JWKSURL: testJWKSURL},
			"no-url":     {ID: "no-url", JWKS: both},
			"disabled":   {ID: "disabled", JWKS: both, Disabled: true},
		},
		Fetcher: f,
		Now:     func() time.Time { return testNow },
	}, f
}

// craft signs a token the way an attacker or a broken client might: any
// method, any key, header and claims edited (a nil value deletes).
func craft(t testing.TB, method jwt.SigningMethod, key any, header, claims map[string]any) string {
	t.Helper()
	c := jwt.MapClaims{
		"iss": testClientID, "sub": testClientID, "aud": testTokenURL,
		"iat": testNow.Unix(), "exp": testNow.Add(4 * time.Minute).Unix(), "jti": NewID(),
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok := jwt.NewWithClaims(method, c)
	kid := testRSA.KeyID()
	if method == jwt.SigningMethodES384 {
		kid = testEC.KeyID()
	}
	tok.Header["kid"] = kid
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestValidateAssertionTable has one row per field of a token request
// and its client assertion that can be wrong; each request goes through
// ValidateTokenRequest and must be refused naming that field, with the
// OAuth error a token endpoint answers (invalid_client for everything
// about the assertion).
func TestValidateAssertionTable(t *testing.T) {
	testKeys(t)
	rsaKey, ecKey := testRSA.signer, testEC.signer
	pubDER, _ := x509.MarshalPKIXPublicKey(&testRSA2048Private.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	rs384 := func(h, c map[string]any) string { return craft(t, jwt.SigningMethodRS384, rsaKey, h, c) }
	exp := func(d time.Duration) int64 { return testNow.Add(d).Unix() }
	good := rs384(nil, nil)
	parts := strings.Split(good, ".")
	tamperedClaims := parts[0] + "." + b64.EncodeToString([]byte(`{"iss":"kapbridge-test","sub":"kapbridge-test","aud":"`+testTokenURL+`","exp":`+
		itoa(exp(4*time.Minute))+`,"jti":"tampered"}`)) + "." + parts[2]

	replayed := rs384(nil, nil)

	for _, tc := range []struct {
		name      string
		assertion string
		want      Field // "" means valid
		reason    string
		form      func(url.Values) // edits the token request around the assertion
	}{
		{"valid RS384", good, "", "", nil},
		{"valid ES384", craft(t, jwt.SigningMethodES384, ecKey, nil, nil), "", "", nil},
		{"valid with aud in an array", rs384(nil, map[string]any{"aud": []string{"other", testTokenURL}}), "", "", nil},
		{"valid jku equal to the registered URL", rs384(map[string]any{"jku": testJWKSURL}, nil), "", "", nil},
		{"valid exp within leeway past", rs384(nil, map[string]any{"exp": exp(-20 * time.Second), "iat": exp(-time.Minute)}), "", "", nil},

		{"alg none", craft(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, nil), FieldAlg, `"none"`, nil},
		{"alg HS256 keyed with the public key", craft(t, jwt.SigningMethodHS256, pubPEM, nil, nil), FieldAlg, `"HS256"`, nil},
		{"alg RS256", craft(t, jwt.SigningMethodRS256, rsaKey, nil, nil), FieldAlg, `"RS256"`, nil},
		{"alg ES256 claimed", rs384(map[string]any{"alg": "ES256"}, nil), FieldAlg, `"ES256"`, nil},
		{"alg missing", rs384(map[string]any{"alg": nil}, nil), FieldAlg, "missing", nil},
		{"alg ES384 with the RSA key's kid", craft(t, jwt.SigningMethodES384, ecKey, map[string]any{"kid": testRSA.KeyID()}, nil), FieldAlg, "needs an EC P-384 key", nil},
		{"typ missing", rs384(map[string]any{"typ": nil}, nil), FieldTyp, "missing", nil},
		{"typ not JWT", rs384(map[string]any{"typ": "at+jwt"}, nil), FieldTyp, "at+jwt", nil},
		{"crit", rs384(map[string]any{"crit": []string{"exp"}}, nil), FieldCrit, "not supported", nil},
		{"kid missing", rs384(map[string]any{"kid": nil}, nil), FieldKID, "missing", nil},
		{"kid not a string", rs384(map[string]any{"kid": 42}, nil), FieldKID, "42", nil},
		{"kid unknown", rs384(map[string]any{"kid": "no-such-key"}, nil), FieldKID, "no key with this kid", nil},
		{"kid of an unregistered key", craft(t, jwt.SigningMethodES384, testEC2.signer, map[string]any{"kid": testEC2.KeyID()}, nil), FieldKID, "no key with this kid", nil},
		{"signed by another key under a registered kid", craft(t, jwt.SigningMethodES384, testEC2.signer, nil, nil), FieldSignature, "does not verify", nil},
		{"claims changed after signing", tamperedClaims, FieldSignature, "does not verify", nil},
		{"jku not the registered URL", rs384(map[string]any{"jku": "https://evil.example/jwks.json"}, nil), FieldJKU, "evil.example", nil},
		{"jku not a string", rs384(map[string]any{"jku": 1}, nil), FieldJKU, "not a URL", nil},
		{"jku for a client without a JWKS URL", rs384(map[string]any{"jku": testJWKSURL}, map[string]any{"iss": "no-url", "sub": "no-url"}), FieldJKU, "no registered JWK Set URL", nil},
		{"iss missing", rs384(nil, map[string]any{"iss": nil}), FieldIss, "missing", nil},
		{"iss not a registered client", rs384(nil, map[string]any{"iss": "stranger", "sub": "stranger"}), FieldIss, "not a registered client", nil},
		{"iss a disabled client", rs384(nil, map[string]any{"iss": "disabled", "sub": "disabled"}), FieldIss, "disabled", nil},
		{"sub missing", rs384(nil, map[string]any{"sub": nil}), FieldSub, "missing", nil},
		{"sub not iss", rs384(nil, map[string]any{"sub": "someone-else"}), FieldSub, "not the iss", nil},
		{"aud missing", rs384(nil, map[string]any{"aud": nil}), FieldAud, "missing", nil},
		{"aud another URL", rs384(nil, map[string]any{"aud": "https://ehr.example/auth/token/"}), FieldAud, "not this server's token URL", nil},
		{"aud array without ours", rs384(nil, map[string]any{"aud": []string{"a", "b"}}), FieldAud, "none of the 2", nil},
		{"aud a number", rs384(nil, map[string]any{"aud": 5}), FieldAud, "not a string", nil},
		{"exp missing", rs384(nil, map[string]any{"exp": nil}), FieldExp, "missing", nil},
		{"exp too far ahead", rs384(nil, map[string]any{"exp": exp(10 * time.Minute)}), FieldExp, "more than 5m0s ahead", nil},
		{"exp just over five minutes and leeway", rs384(nil, map[string]any{"exp": exp(5*time.Minute + 31*time.Second)}), FieldExp, "ahead", nil},
		{"exp past", rs384(nil, map[string]any{"exp": exp(-2 * time.Minute), "iat": exp(-5 * time.Minute)}), FieldExp, "expired", nil},
		{"exp a string", rs384(nil, map[string]any{"exp": itoa(exp(time.Minute))}), FieldExp, "not a number", nil},
		{"nbf in the future", rs384(nil, map[string]any{"nbf": exp(2 * time.Minute)}), FieldNbf, "future", nil},
		{"iat in the future", rs384(nil, map[string]any{"iat": exp(2 * time.Minute)}), FieldIat, "future", nil},
		{"jti missing", rs384(nil, map[string]any{"jti": nil}), FieldJTI, "missing", nil},
		{"jti empty", rs384(nil, map[string]any{"jti": ""}), FieldJTI, "missing", nil},
		{"jti too long", rs384(nil, map[string]any{"jti": strings.Repeat("j", 256)}), FieldJTI, "over the limit", nil},
		{"not three parts", "a.b", FieldAssertion, "compact form", nil},
		{"header not base64url", "!!.e30.e30", FieldAssertion, "header", nil},
		{"claims not JSON", b64.EncodeToString([]byte(`{"alg":"RS384"}`)) + ".bm90IGpzb24." + parts[2], FieldAssertion, "claims", nil},
		{"too long", strings.Repeat("a", MaxAssertionBytes+1), FieldAssertion, "over the limit", nil},
		{"jti replayed", replayed, FieldJTI, "already used", nil},
		{"grant_type wrong", good, FieldGrantType, "authorization_code", func(f url.Values) { f.Set("grant_type", "authorization_code") }},
		{"grant_type missing", good, FieldGrantType, `""`, func(f url.Values) { f.Del("grant_type") }},
		{"client_assertion_type wrong", good, FieldAssertionType, "saml2-bearer", func(f url.Values) {
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		}},
		{"client_assertion missing", good, FieldAssertion, "missing", func(f url.Values) { f.Del("client_assertion") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := testValidator(t)
			f := TokenRequestForm(tc.assertion, "system/Observation.rs")
			if tc.form != nil {
				tc.form(f)
			}
			if tc.assertion == replayed {
				if _, err := v.ValidateTokenRequest(context.Background(), f); err != nil {
					t.Fatalf("first use: %v", err)
				}
			}
			got, err := v.ValidateTokenRequest(context.Background(), f)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if a := got.Assertion; a.Client.ID == "" || a.ID == "" || a.Expiry.IsZero() {
					t.Fatalf("verified assertion incomplete: %+v", a)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T), want a *ValidationError on %s", err, err, tc.want)
			}
			if ve.Field != tc.want || !strings.Contains(ve.Reason, tc.reason) {
				t.Fatalf("refused on %s (%q), want %s with %q", ve.Field, ve.Reason, tc.want, tc.reason)
			}
			t.Log(err)
			oauth := map[Field]string{FieldGrantType: "unsupported_grant_type", FieldAssertionType: "invalid_request"}[tc.want]
			if oauth == "" {
				oauth = "invalid_client"
			}
			if ve.OAuthError() != oauth {
				t.Fatalf("OAuth error %s, want %s", ve.OAuthError(), oauth)
			}
			if strings.Contains(err.Error(), parts[2]) {
				t.Fatal("the error message holds the signature")
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestValidateAssertionReplay: the same assertion twice is refused on
// jti; the same jti from another client is not a replay; a refused
// assertion does not take its jti's place.
func TestValidateAssertionReplay(t *testing.T) {
	v, _ := testValidator(t)
	ctx := context.Background()
	a := craft(t, jwt.SigningMethodRS384, testRSA.signer, nil, map[string]any{"jti": "once"})
	if _, err := v.ValidateAssertion(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, err := v.ValidateAssertion(ctx, a)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != FieldJTI || !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: %v, want a jti refusal wrapping ErrReplayed", err)
	}
	other := craft(t, jwt.SigningMethodRS384, testRSA.signer, nil, map[string]any{"jti": "once", "iss": "url-client", "sub": "url-client"})
	if _, err := v.ValidateAssertion(ctx, other); err != nil {
		t.Fatalf("same jti, other client: %v", err)
	}
	bad := craft(t, jwt.SigningMethodES384, testEC2.signer, nil, map[string]any{"jti": "not-yet"})
	if _, err := v.ValidateAssertion(ctx, bad); err == nil {
		t.Fatal("bad signature accepted")
	}
	good := craft(t, jwt.SigningMethodRS384, testRSA.signer, nil, map[string]any{"jti": "not-yet"})
	if _, err := v.ValidateAssertion(ctx, good); err != nil {
		t.Fatalf("a jti first seen on a forged assertion was burnt: %v", err)
	}
	// After the assertion's lifetime (and the leeway) the jti is forgotten.
	v.Now = func() time.Time { return testNow.Add(10 * time.Minute) }
	if n := v.memory.Len(); n != 3 {
		t.Fatalf("replay cache holds %d ids, want 3", n)
	}
	late := craft(t, jwt.SigningMethodRS384, testRSA.signer, nil, map[string]any{
		"jti": "once", "iat": testNow.Add(10 * time.Minute).Unix(), "exp": testNow.Add(13 * time.Minute).Unix()})
	v.memory.Now = v.Now
	if _, err := v.ValidateAssertion(ctx, late); err != nil {
		t.Fatalf("jti reused after its assertion expired: %v", err)
	}
}

// TestValidateAssertionKeySources: the key is found inline, at the JWKS
// URL when the client registered only a URL, and by jku.
func TestValidateAssertionKeySources(t *testing.T) {
	v, f := testValidator(t)
	ctx := context.Background()
	urlOnly := map[string]any{"iss": "url-client", "sub": "url-client"}
	if _, err := v.ValidateAssertion(ctx, craft(t, jwt.SigningMethodES384, testEC.signer, nil, urlOnly)); err != nil {
		t.Fatal(err)
	}
	if f.calls != 1 {
		t.Fatalf("%d fetches, want 1", f.calls)
	}
	if _, err := v.ValidateAssertion(ctx, craft(t, jwt.SigningMethodES384, testEC.signer, nil, nil)); err != nil || f.calls != 1 {
		t.Fatalf("inline key: %v, %d fetches (want none more)", err, f.calls)
	}
	v.Fetcher = nil
	_, err := v.ValidateAssertion(ctx, craft(t, jwt.SigningMethodES384, testEC.signer, nil, urlOnly))
	var ve *ValidationError
	if err == nil || errors.As(err, &ve) || !strings.Contains(err.Error(), "no JWKSFetcher") {
		t.Fatalf("URL-only client without a fetcher: %v, want a configuration error (not the client's fault)", err)
	}
}

func TestValidateAssertionSignedBySign(t *testing.T) {
	v, _ := testValidator(t)
	for _, k := range []*SigningKey{testRSA, testEC} {
		a, err := k.Sign(Assertion{ClientID: testClientID, TokenURL: testTokenURL, IssuedAt: testNow, JKU: testJWKSURL})
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.ValidateAssertion(context.Background(), a)
		if err != nil {
			t.Fatalf("%s: %v", k.Alg(), err)
		}
		if got.Alg != k.Alg() || got.KeyID != k.KeyID() || !got.Expiry.Equal(testNow.Add(DefaultAssertionLifetime)) || len(got.ID) != 22 {
			t.Fatalf("%s: %+v", k.Alg(), got)
		}
		// The header is what SMART asks for.
		tok, _, err := jwt.NewParser().ParseUnverified(a, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		if tok.Header["typ"] != "JWT" || tok.Header["kid"] != k.KeyID() || tok.Header["jku"] != testJWKSURL {
			t.Fatalf("header %v", tok.Header)
		}
		if aud, _ := tok.Claims.(jwt.MapClaims)["aud"].(string); aud != testTokenURL {
			t.Fatalf("aud %v, want the token URL as a string", tok.Claims.(jwt.MapClaims)["aud"])
		}
	}
	for _, a := range []Assertion{
		{TokenURL: testTokenURL},
		{ClientID: testClientID, TokenURL: "/token"},
		{ClientID: testClientID, TokenURL: testTokenURL, Lifetime: 6 * time.Minute},
	} {
		if _, err := testRSA.Sign(a); err == nil {
			t.Errorf("Sign(%+v) succeeded", a)
		}
	}
}

func TestValidateTokenRequest(t *testing.T) {
	testKeys(t)
	form := func(edit func(url.Values)) url.Values {
		a := craft(t, jwt.SigningMethodES384, testEC.signer, nil, nil)
		f := TokenRequestForm(a, "system/Observation.rs system/Patient.read")
		if edit != nil {
			edit(f)
		}
		return f
	}
	for _, tc := range []struct {
		name  string
		form  url.Values
		field Field
		oauth string
	}{
		{"valid", form(nil), "", ""},
		{"valid with client_id", form(func(f url.Values) { f.Set("client_id", testClientID) }), "", ""},
		{"grant_type wrong", form(func(f url.Values) { f.Set("grant_type", "authorization_code") }), FieldGrantType, "unsupported_grant_type"},
		{"grant_type missing", form(func(f url.Values) { f.Del("grant_type") }), FieldGrantType, "unsupported_grant_type"},
		{"grant_type twice", form(func(f url.Values) { f.Add("grant_type", GrantClientCredentials) }), FieldGrantType, "unsupported_grant_type"},
		{"assertion type wrong", form(func(f url.Values) {
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		}), FieldAssertionType, "invalid_request"},
		{"assertion missing", form(func(f url.Values) { f.Del("client_assertion") }), FieldAssertion, "invalid_client"},
		{"two assertions", form(func(f url.Values) { f.Add("client_assertion", "x") }), FieldAssertion, "invalid_client"},
		{"scope missing", form(func(f url.Values) { f.Del("scope") }), FieldScope, "invalid_scope"},
		{"scope malformed", form(func(f url.Values) { f.Set("scope", "system/Observation.sr") }), FieldScope, "invalid_scope"},
		{"client_id not iss", form(func(f url.Values) { f.Set("client_id", "other") }), FieldClientID, "invalid_request"},
		{"assertion refused", form(func(f url.Values) {
			f.Set("client_assertion", craft(t, jwt.SigningMethodRS256, testRSA.signer, nil, nil))
		}), FieldAlg, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := testValidator(t)
			req, err := v.ValidateTokenRequest(context.Background(), tc.form)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := req.Scopes.String(); got != "system/Observation.rs system/Patient.rs" {
					t.Fatalf("scopes %q", got)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field || ve.OAuthError() != tc.oauth {
				t.Fatalf("error %v, want %s (%s)", err, tc.field, tc.oauth)
			}
		})
	}
}

func TestMemoryReplayCache(t *testing.T) {
	now := testNow
	c := &MemoryReplayCache{Now: func() time.Time { return now }, MaxEntries: 2}
	ctx := context.Background()
	if err := c.Remember(ctx, "a", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.Remember(ctx, "a", now.Add(time.Minute)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: %v", err)
	}
	if err := c.Remember(ctx, "b", now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.Remember(ctx, "c", now.Add(time.Minute)); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("full: %v", err)
	}
	now = now.Add(90 * time.Second) // a has expired, b has not
	if err := c.Remember(ctx, "c", now.Add(time.Minute)); err != nil {
		t.Fatalf("after a expired: %v", err)
	}
	if err := c.Remember(ctx, "a", now.Add(time.Minute)); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("b and c live, cache of 2: %v", err)
	}
	if err := c.Remember(ctx, "b", now.Add(time.Minute)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("b still live: %v", err)
	}
}
