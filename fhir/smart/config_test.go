package smart

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The real SMART configurations of Epic's and Oracle Health's sandboxes,
// copied unchanged from ../shared/ehr-capabilities.
var configFixtures = []string{"epic.smart-configuration.json", "oracle-health.smart-configuration.json"}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ehr", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseConfigurationRealEHRs(t *testing.T) {
	for _, name := range configFixtures {
		t.Run(name, func(t *testing.T) {
			c, err := ParseConfiguration(readFixture(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(c.TokenEndpoint, "https://") || !strings.Contains(c.TokenEndpoint, "token") {
				t.Fatalf("token_endpoint %q", c.TokenEndpoint)
			}
			for _, alg := range []string{RS384, ES384} {
				if err := c.CheckBackendServices(alg); err != nil {
					t.Errorf("%s: %v", alg, err)
				}
			}
			// Neither is a backend-services-only document of our own kind:
			// Epic lists no signing algorithms, and neither lists system/
			// scopes, so Validate (for our own documents) says what is missing.
			if err := c.Validate(); err == nil && name == configFixtures[0] {
				t.Error("Epic's document passes Validate, though it lists no signing algorithms")
			}
		})
	}
	oracle, _ := ParseConfiguration(readFixture(t, configFixtures[1]))
	if len(oracle.ScopesSupported) < 100 || oracle.Issuer == "" || oracle.RevocationEndpoint == "" {
		t.Errorf("Oracle Health: %d scopes, issuer %q, revocation %q", len(oracle.ScopesSupported), oracle.Issuer, oracle.RevocationEndpoint)
	}
}

// configCases seed FuzzParseConfiguration too.
var configCases = []struct {
	name, doc, wantErr string
}{
	{"minimal", `{"token_endpoint":"https://e.example/token"}`, ""},
	{"loopback http", `{"token_endpoint":"http://127.0.0.1:9/token","capabilities":[]}`, ""},
	{"no token_endpoint", `{"grant_types_supported":["client_credentials"]}`, "no token_endpoint"},
	{"relative token_endpoint", `{"token_endpoint":"/token"}`, "absolute"},
	{"ftp token_endpoint", `{"token_endpoint":"ftp://e.example/token"}`, "absolute"},
	{"fragment", `{"token_endpoint":"https://e.example/token#x"}`, "fragment"},
	{"bad jwks_uri", `{"token_endpoint":"https://e.example/token","jwks_uri":"keys"}`, "jwks_uri"},
	{"list of numbers", `{"token_endpoint":"https://e.example/token","scopes_supported":[1]}`, "expected shape"},
	{"not an object", `[]`, "expected shape"},
	{"trailing data", `{"token_endpoint":"https://e.example/token"} {}`, "after its JSON object"},
	{"empty", ``, "expected shape"},
}

func TestParseConfiguration(t *testing.T) {
	for _, tc := range configCases {
		_, err := ParseConfiguration([]byte(tc.doc))
		if (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	noCC, _ := ParseConfiguration([]byte(`{"token_endpoint":"https://e.example/t","grant_types_supported":["authorization_code"]}`))
	if err := noCC.CheckBackendServices(RS384); err == nil || !strings.Contains(err.Error(), "client_credentials") {
		t.Errorf("no client_credentials: %v", err)
	}
	noJWT, _ := ParseConfiguration([]byte(`{"token_endpoint":"https://e.example/t","grant_types_supported":["client_credentials"],"token_endpoint_auth_methods_supported":["client_secret_basic"]}`))
	if err := noJWT.CheckBackendServices(RS384); err == nil || !strings.Contains(err.Error(), "private_key_jwt") {
		t.Errorf("no private_key_jwt: %v", err)
	}
	rsOnly, _ := ParseConfiguration([]byte(`{"token_endpoint":"https://e.example/t","grant_types_supported":["client_credentials"],"token_endpoint_auth_signing_alg_values_supported":["RS384"]}`))
	if rsOnly.CheckBackendServices(RS384) != nil || rsOnly.CheckBackendServices(ES384) == nil {
		t.Error("an RS384-only server: RS384 must pass and ES384 fail")
	}
}

func TestBackendServicesConfiguration(t *testing.T) {
	c := BackendServicesConfiguration("https://kapbridge.example/auth/token", []string{"system/*.rs"})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfiguration(data)
	if err != nil || back.Validate() != nil {
		t.Fatalf("round trip: %v / %v\n%s", err, back.Validate(), data)
	}
	if err := (&Configuration{TokenEndpoint: "x"}).Validate(); err == nil || strings.Count(err.Error(), ";") != 5 {
		t.Errorf("empty configuration: %v, want six things missing", err)
	}
}

func TestParseTokenResponse(t *testing.T) {
	for _, tc := range []struct {
		doc     string
		wantExp int64
		wantErr string
	}{
		{`{"access_token":"abc","token_type":"bearer","expires_in":300,"scope":"system/Observation.rs"}`, 300, ""},
		{`{"access_token":"abc","token_type":"Bearer","expires_in":"3600"}`, 3600, ""},
		{`{"access_token":"abc","token_type":"BEARER"}`, 0, ""},
		{`{"access_token":"abc","token_type":"bearer","expires_in":299.9}`, 299, ""},
		{`{"access_token":"abc","token_type":"bearer","expires_in":null}`, 0, ""},
		{`{"token_type":"bearer","expires_in":300}`, 0, "no access_token"},
		{`{"access_token":"abc","token_type":"mac"}`, 0, "not bearer"},
		{`{"access_token":"abc","token_type":"bearer","expires_in":-1}`, 0, "expires_in"},
		{`{"access_token":"abc","token_type":"bearer","expires_in":"soon"}`, 0, "expires_in"},
		{`{"access_token":1}`, 0, "expected JSON"},
	} {
		got, err := ParseTokenResponse([]byte(tc.doc))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want an error containing %q", tc.doc, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.ExpiresIn != tc.wantExp {
			t.Errorf("%s: %+v, %v", tc.doc, got, err)
			continue
		}
		for _, s := range []string{fmt.Sprint(got), fmt.Sprintf("%v %+v %#v %s", *got, *got, *got, *got)} {
			if strings.Contains(s, "abc") {
				t.Errorf("the access token shows in %q", s)
			}
		}
	}
	e, ok := ParseTokenError([]byte(`{"error":"invalid_client","error_description":"kid not found"}`))
	if !ok || e.Error() != "token endpoint: invalid_client: kid not found" {
		t.Errorf("token error: %v %v", e, ok)
	}
	if _, ok := ParseTokenError([]byte(`<html>`)); ok {
		t.Error("HTML read as a token error")
	}
}
