package smart

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// seedJWKS is the public JWKS of an RSA 3072 and a P-384 key made by
// GenerateKey, written out: generating keys in a fuzz worker, under
// coverage instrumentation, takes it about a minute.
const seedJWKS = `{"keys":[{"kty":"RSA","kid":"Y9qV7-_tJq_upNbGyggNhKPL3ybQ9DpYGfa-StbKluk","alg":"RS384","use":"sig","n":"3xsMqL1Bd0MzWP9y4gckX83Bdq8JBL6cHJqvzJyC30B9QLJLveo7KhSOwBmFMy2S0I-U_NNwaaRuf1oplbLjG2YHemzHM19pt3Qzu7UagS4ScSqFxEbAtHGHeQ7oJB_JMPJbhNTYP1vK39sI5H_wHjc7mORhaBIsp9NxnHPFX-fgSpZx9lIDkrLhcY5ljYg7WhWhKHYIcAu7LdTt0Rpe3rx29qK5UKWMBkv2iRy6gPfa6b4egBV_HxSsQga_EvhaH50loAHTrh9XsgXyK3re_83nyr-nGkvNJ7VVitxS5arB8R8_Y2pi-Al6js5ES_tbg1w3Q_H4tVoMVkVQcstN73-4rAfxiQTqZpuUg8m4X3s8kM51KrkcHuLW_UTVZbLOq9KivWnKYXMsaNrIiY9lYX7RCctf1WdDLheCKqfsrm3tTMeJpbAH3dXz41TsMZSukHd2V-j9Tn7xhCv5MKSbYtS90KKavsdIHMLBEl7p6Ykru8N0HCak0UEHCkY9eu5j","e":"AQAB"},{"kty":"EC","kid":"ECPvJjWmCrtRr6NNX0C_YOCQi9vhlZI3mX2lEReQDqc","alg":"ES384","use":"sig","crv":"P-384","x":"UFj94TLcVYLbBt2bvQHI1lvy5q50LNwt2jpY8tAxfv_0E4W4L30uGlE4LivcOJkK","y":"v7dzmNdYCMLREsAQHqS_-kyrRkY9-JXkmFjaFbsDpvRnEDj31bo1V8iL_Wzw-JAh"}]}`

// FuzzParseJWKS: any input either fails or gives a set whose every key is
// usable, and whose JSON reads back to the same keys.
func FuzzParseJWKS(f *testing.F) {
	f.Add(seedJWKS)
	f.Add(`{"keys":[]}`)
	f.Add(`{"keys":[{"kty":"EC","crv":"P-384","kid":"a","x":"AAAA","y":"AAAA"}]}`)
	f.Add(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB","d":"x"}]}`)
	f.Add(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)
	f.Add(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		set, err := ParseJWKS([]byte(doc))
		if err != nil {
			return
		}
		for i := range set.Keys {
			k := &set.Keys[i]
			if k.PublicKey() == nil || k.KeyID == "" || k.Thumbprint() == "" {
				t.Fatalf("unusable key kept: %+v", k)
			}
		}
		again, err := json.Marshal(set)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJWKS(again)
		if err != nil {
			t.Fatalf("re-reading %s: %v", again, err)
		}
		if len(back.Keys) != len(set.Keys) || len(back.Skipped) != 0 {
			t.Fatalf("%d keys became %d (skipped %v)", len(set.Keys), len(back.Keys), back.Skipped)
		}
		for i := range back.Keys {
			if back.Keys[i].Thumbprint() != set.Keys[i].Thumbprint() {
				t.Fatalf("key %d changed on the way through JSON", i)
			}
		}
	})
}

// FuzzParseConfiguration: a document that parses has an absolute token
// endpoint and reads back the same after writing.
func FuzzParseConfiguration(f *testing.F) {
	for _, name := range configFixtures {
		f.Add(string(readFixture(f, name)))
	}
	for _, tc := range configCases {
		f.Add(tc.doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := ParseConfiguration([]byte(doc))
		if err != nil {
			return
		}
		if u, err := url.Parse(c.TokenEndpoint); err != nil || !u.IsAbs() || u.Host == "" {
			t.Fatalf("token_endpoint %q accepted", c.TokenEndpoint)
		}
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfiguration(data)
		if err != nil {
			t.Fatalf("re-reading %s: %v", data, err)
		}
		if back.TokenEndpoint != c.TokenEndpoint || len(back.ScopesSupported) != len(c.ScopesSupported) {
			t.Fatalf("changed on the way through JSON: %+v / %+v", c, back)
		}
		_ = c.CheckBackendServices(ES384)
		_ = c.Validate()
	})
}

// FuzzParseScopes: normalizing is idempotent, and what a normalized scope
// permits does not change when it is parsed again.
func FuzzParseScopes(f *testing.F) {
	for _, tc := range scopeCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScopes(s)
		if err != nil {
			return
		}
		norm := sc.String()
		again, err := ParseScopes(norm)
		if err != nil {
			t.Fatalf("normalized %q (from %q) does not parse: %v", norm, s, err)
		}
		if again.String() != norm {
			t.Fatalf("normalizing is not idempotent: %q -> %q -> %q", s, norm, again.String())
		}
		for _, typ := range []string{"Observation", "Patient", ""} {
			for _, in := range []Interaction{InteractionRead, InteractionCreate, InteractionSearchType, InteractionSearchSystem, InteractionDelete} {
				if sc.Permits(typ, in) != again.Permits(typ, in) {
					t.Fatalf("%q and %q differ on %s %s", s, norm, typ, in)
				}
			}
		}
		if w := sc.Within(sc).String(); w != norm {
			t.Fatalf("scopes within themselves: %q, want %q", w, norm)
		}
	})
}

// FuzzValidateTokenRequest: whatever form body arrives, the validator
// answers with a *ValidationError or a verified request, never panics, and
// accepts nothing unsigned.
func FuzzValidateTokenRequest(f *testing.F) {
	v, _ := testValidator(f)
	good := TokenRequestForm(craft(f, jwt.SigningMethodES384, testEC.signer, nil, nil), "system/Observation.rs").Encode()
	f.Add(good)
	f.Add("grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c&scope=system%2F*.rs")
	f.Add("grant_type=password&username=x")
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		req, err := v.ValidateTokenRequest(context.Background(), form)
		if err != nil {
			var ve *ValidationError
			if !asValidation(err, &ve) {
				t.Fatalf("not a ValidationError: %v", err)
			}
			return
		}
		if req.Assertion == nil || req.Assertion.Client == nil {
			t.Fatal("accepted without a verified assertion")
		}
	})
}

func asValidation(err error, ve **ValidationError) bool {
	e, ok := err.(*ValidationError)
	*ve = e
	return ok
}
