package smart

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func jwkJSON(t testing.TB, k JWK, extra map[string]any) string {
	t.Helper()
	m := map[string]any{}
	data, _ := json.Marshal(k)
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for name, v := range extra {
		if v == nil {
			delete(m, name)
		} else {
			m[name] = v
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}

func TestParseJWKS(t *testing.T) {
	testKeys(t)
	rsaJ, ecJ := testRSA.Public(), testEC.Public()
	set := func(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }
	badPoint := ecJ
	badPoint.Y = badPoint.X // (x, x) is not on the curve
	many := make([]string, MaxJWKSKeys+1)
	for i := range many {
		many[i] = `{"kty":"oct"}`
	}

	for _, tc := range []struct {
		name        string
		doc         string
		wantErr     string
		wantKeys    int
		wantSkipped string // a reason that must appear among the skipped
	}{
		{"RSA and EC", set(jwkJSON(t, rsaJ, nil), jwkJSON(t, ecJ, nil)), "", 2, ""},
		{"no alg, use or key_ops is fine", set(jwkJSON(t, rsaJ, map[string]any{"alg": nil, "use": nil})), "", 1, ""},
		{"extra members ignored", set(jwkJSON(t, ecJ, map[string]any{"x5t": "abc", "ext": true})), "", 1, ""},
		{"empty set", `{"keys":[]}`, "", 0, ""},
		{"private RSA member d", set(jwkJSON(t, rsaJ, map[string]any{"d": "AQAB"})), "private key material", 0, ""},
		{"symmetric key k", set(`{"kty":"oct","kid":"h","k":"c2VjcmV0"}`), "private key material", 0, ""},
		{"unknown kty skipped", set(`{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"ed"}`, jwkJSON(t, ecJ, nil)), "", 1, "key type"},
		{"P-256 skipped", set(jwkJSON(t, ecJ, map[string]any{"crv": "P-256"})), "", 0, "only P-384"},
		{"point not on curve skipped", set(jwkJSON(t, badPoint, nil)), "", 0, "not a point on the curve"},
		{"short coordinate skipped", set(jwkJSON(t, ecJ, map[string]any{"x": "AAAA"})), "", 0, "48 octets"},
		{"small RSA skipped", set(`{"kty":"RSA","kid":"small","n":"` + b64.EncodeToString(make([]byte, 128)) + `","e":"AQAB"}`), "", 0, "too small"},
		{"bad n skipped", set(jwkJSON(t, rsaJ, map[string]any{"n": "***"})), "", 0, `"n"`},
		{"even exponent skipped", set(jwkJSON(t, rsaJ, map[string]any{"e": "Ag"})), "", 0, "exponent"},
		{"RS256 key skipped", set(jwkJSON(t, rsaJ, map[string]any{"alg": "RS256"})), "", 0, `alg "RS256"`},
		{"no kid skipped", set(jwkJSON(t, ecJ, map[string]any{"kid": nil})), "", 0, "no kid"},
		{"kid of the wrong type skipped", set(jwkJSON(t, ecJ, map[string]any{"kid": 7})), "", 0, "wrong JSON type"},
		{"not JSON", `{"keys":`, "not a JSON object", 0, ""},
		{"an array", `[]`, "not a JSON object", 0, ""},
		{"no keys member", `{"key":[]}`, `no "keys"`, 0, ""},
		{"keys not objects", `{"keys":[1]}`, "not a JSON object", 0, ""},
		{"too many keys", set(many...), "over the limit", 0, ""},
		{"too big", `{"keys":[],"x":"` + strings.Repeat("a", MaxJWKSBytes) + `"}`, "over the limit", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseJWKS([]byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Keys) != tc.wantKeys {
				t.Fatalf("%d keys, want %d (skipped %+v)", len(s.Keys), tc.wantKeys, s.Skipped)
			}
			if tc.wantSkipped != "" && !strings.Contains(fmt.Sprint(s.Skipped), tc.wantSkipped) {
				t.Fatalf("skipped %+v, want a reason containing %q", s.Skipped, tc.wantSkipped)
			}
		})
	}
}

func TestJWKSKey(t *testing.T) {
	testKeys(t)
	dup := testEC2.Public()
	dup.KeyID = testEC.KeyID()
	enc := testRSA2.Public()
	enc.Use = "enc"
	noVerify := testRSA.Public()
	noVerify.KeyOps = []string{"sign"}
	doc, _ := json.Marshal(JWKS{Keys: []JWK{testRSA.Public(), testEC.Public(), dup, enc, noVerify}})
	// noVerify shares testRSA's kid: only the one that may verify is found.
	set, err := ParseJWKS(append(doc[:len(doc)-2], []byte(`,{"kty":"EC","kid":"skipped","crv":"P-521"}]}`)...))
	if err != nil {
		t.Fatal(err)
	}
	if k, err := set.Key(testRSA.KeyID(), RS384); err != nil || k.KeyOps != nil {
		t.Fatalf("RSA key: %+v, %v", k, err)
	}
	for _, tc := range []struct {
		kid, alg string
		is       error
		want     string
	}{
		{"nope", RS384, ErrUnknownKeyID, ""},
		{"skipped", ES384, ErrUnknownKeyID, "unusable: EC key on curve \"P-521\""},
		{testRSA.KeyID(), ES384, ErrKeyMismatch, "needs an EC P-384 key"},
		{testEC.KeyID(), ES384, nil, "two keys"},
		{testRSA2.KeyID(), RS384, ErrKeyMismatch, `use is "enc"`},
	} {
		_, err := set.Key(tc.kid, tc.alg)
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Key(%.8s, %s) = %v, want %v containing %q", tc.kid, tc.alg, err, tc.is, tc.want)
		}
	}
	var nilSet *JWKS
	if _, err := nilSet.Key("x", RS384); !errors.Is(err, ErrUnknownKeyID) {
		t.Errorf("nil set: %v", err)
	}
}

// TestSeedJWKS: the fuzz seed's keys are usable and their kids are their
// thumbprints, as GenerateKey makes them.
func TestSeedJWKS(t *testing.T) {
	s, err := ParseJWKS([]byte(seedJWKS))
	if err != nil || len(s.Keys) != 2 {
		t.Fatalf("%v, %+v", err, s)
	}
	for _, k := range s.Keys {
		if k.Thumbprint() != k.KeyID {
			t.Errorf("kid %s, thumbprint %s", k.KeyID, k.Thumbprint())
		}
	}
}

func TestJWKSMarshal(t *testing.T) {
	data, err := json.Marshal(JWKS{})
	if err != nil || string(data) != `{"keys":[]}` {
		t.Fatalf("empty set: %s, %v", data, err)
	}
}
