package smart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// WellKnownPath is where a FHIR server publishes its SMART configuration,
// relative to its base URL.
const WellKnownPath = "/.well-known/smart-configuration"

// MaxConfigurationBytes bounds a SMART configuration document read from a
// server (Oracle Health's, with ~250 scopes, is 9 KB).
const MaxConfigurationBytes = 1 << 20

// Configuration is the /.well-known/smart-configuration document (SMART
// App Launch 2.2 section 2.0.x). The members SMART Backend Services needs
// are first; the rest are those the specification defines, read when
// present. Members it does not define are ignored.
type Configuration struct {
	TokenEndpoint                              string   `json:"token_endpoint"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	Capabilities                               []string `json:"capabilities"`

	Issuer                        string   `json:"issuer,omitempty"`
	JWKSURI                       string   `json:"jwks_uri,omitempty"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint,omitempty"`
	RegistrationEndpoint          string   `json:"registration_endpoint,omitempty"`
	IntrospectionEndpoint         string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint            string   `json:"revocation_endpoint,omitempty"`
	ManagementEndpoint            string   `json:"management_endpoint,omitempty"`
	ResponseTypesSupported        []string `json:"response_types_supported,omitempty"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported,omitempty"`
}

// ParseConfiguration reads a SMART configuration as a client must take
// it from a real EHR: token_endpoint is required and, like every endpoint
// given, must be an absolute http(s) URL without a fragment; lists must be
// lists of strings; everything else may be missing (Epic's document, for
// one, has no token_endpoint_auth_signing_alg_values_supported). Use
// CheckBackendServices for what a backend service needs, Validate for the
// members a server's own document must have.
func ParseConfiguration(data []byte) (*Configuration, error) {
	if len(data) > MaxConfigurationBytes {
		return nil, fmt.Errorf("smart: SMART configuration of %d bytes is over the limit of %d", len(data), MaxConfigurationBytes)
	}
	var c Configuration
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("smart: SMART configuration is not a JSON object of the expected shape: %w", err)
	}
	if dec.More() {
		return nil, errors.New("smart: SMART configuration has data after its JSON object")
	}
	if c.TokenEndpoint == "" {
		return nil, errors.New("smart: SMART configuration has no token_endpoint")
	}
	for _, e := range []struct{ name, url string }{
		{"token_endpoint", c.TokenEndpoint},
		{"jwks_uri", c.JWKSURI},
		{"authorization_endpoint", c.AuthorizationEndpoint},
		{"registration_endpoint", c.RegistrationEndpoint},
		{"introspection_endpoint", c.IntrospectionEndpoint},
		{"revocation_endpoint", c.RevocationEndpoint},
		{"management_endpoint", c.ManagementEndpoint},
	} {
		if e.url == "" {
			continue
		}
		if err := checkEndpoint(e.url); err != nil {
			return nil, fmt.Errorf("smart: SMART configuration %s: %w", e.name, err)
		}
	}
	return &c, nil
}

func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", clip(s))
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", clip(s))
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("%q has a fragment", clip(s))
	}
	return nil
}

// CheckBackendServices says whether the server declares what a backend
// service signing with alg needs: client_credentials among the grant
// types and, where the server lists them, private_key_jwt among the
// authentication methods and alg among the signing algorithms (a list
// left out is taken as not saying no).
func (c *Configuration) CheckBackendServices(alg string) error {
	if !slices.Contains(c.GrantTypesSupported, GrantClientCredentials) {
		return fmt.Errorf("smart: the server's grant_types_supported %v does not include %s", c.GrantTypesSupported, GrantClientCredentials)
	}
	if m := c.TokenEndpointAuthMethodsSupported; len(m) > 0 && !slices.Contains(m, "private_key_jwt") {
		return fmt.Errorf("smart: the server's token_endpoint_auth_methods_supported %v does not include private_key_jwt", m)
	}
	if a := c.TokenEndpointAuthSigningAlgValuesSupported; len(a) > 0 && !slices.Contains(a, alg) {
		return fmt.Errorf("smart: the server's token_endpoint_auth_signing_alg_values_supported %v does not include %s", a, alg)
	}
	return nil
}

// Validate checks a document a server publishes for SMART Backend
// Services: token_endpoint; grant_types_supported with client_credentials;
// token_endpoint_auth_methods_supported with private_key_jwt;
// token_endpoint_auth_signing_alg_values_supported with RS384 and ES384;
// scopes_supported; capabilities present (it may be empty).
func (c *Configuration) Validate() error {
	var missing []string
	if c.TokenEndpoint == "" || checkEndpoint(c.TokenEndpoint) != nil {
		missing = append(missing, "token_endpoint (an absolute URL)")
	}
	if !slices.Contains(c.GrantTypesSupported, GrantClientCredentials) {
		missing = append(missing, "grant_types_supported with client_credentials")
	}
	if !slices.Contains(c.TokenEndpointAuthMethodsSupported, "private_key_jwt") {
		missing = append(missing, "token_endpoint_auth_methods_supported with private_key_jwt")
	}
	if !slices.Contains(c.TokenEndpointAuthSigningAlgValuesSupported, RS384) || !slices.Contains(c.TokenEndpointAuthSigningAlgValuesSupported, ES384) {
		missing = append(missing, "token_endpoint_auth_signing_alg_values_supported with RS384 and ES384")
	}
	if len(c.ScopesSupported) == 0 {
		missing = append(missing, "scopes_supported")
	}
	if c.Capabilities == nil {
		missing = append(missing, "capabilities")
	}
	if len(missing) > 0 {
		return fmt.Errorf("smart: SMART configuration lacks %s", strings.Join(missing, "; "))
	}
	return nil
}

// BackendServicesConfiguration is the document of a server that offers
// SMART Backend Services only (no user-facing launch): it passes Validate.
func BackendServicesConfiguration(tokenURL string, scopes []string) Configuration {
	return Configuration{
		TokenEndpoint:                              tokenURL,
		GrantTypesSupported:                        []string{GrantClientCredentials},
		TokenEndpointAuthMethodsSupported:          []string{"private_key_jwt"},
		TokenEndpointAuthSigningAlgValuesSupported: validMethods(),
		ScopesSupported:                            slices.Clone(scopes),
		Capabilities:                               []string{"client-confidential-asymmetric", "permission-v1", "permission-v2"},
	}
}

// TokenResponse is a successful token response (RFC 6749 section 5.1, as
// SMART Backend Services fills it: no refresh token).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in,omitempty"` // seconds
	Scope       string `json:"scope,omitempty"`
}

// String keeps the access token out of logs and error messages.
func (t TokenResponse) String() string {
	return fmt.Sprintf("TokenResponse{token_type: %s, expires_in: %d, scope: %q, access_token: [redacted]}", t.TokenType, t.ExpiresIn, t.Scope)
}

// GoString keeps the access token out of %#v.
func (t TokenResponse) GoString() string { return t.String() }

// ParseTokenResponse reads a token response. access_token is required
// and token_type must be bearer (in any case: Epic sends "Bearer");
// expires_in may be a number or, as some servers send it, a string of
// digits; 0 means the server did not say.
func ParseTokenResponse(data []byte) (*TokenResponse, error) {
	var raw struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Scope       string          `json:"scope"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("smart: token response is not the expected JSON object: %w", err)
	}
	if raw.AccessToken == "" {
		return nil, errors.New("smart: token response has no access_token")
	}
	if !strings.EqualFold(raw.TokenType, "bearer") {
		return nil, fmt.Errorf("smart: token response token_type %q is not bearer", clip(raw.TokenType))
	}
	t := &TokenResponse{AccessToken: raw.AccessToken, TokenType: raw.TokenType, Scope: raw.Scope}
	if len(raw.ExpiresIn) > 0 && string(raw.ExpiresIn) != "null" {
		s := strings.Trim(string(raw.ExpiresIn), `"`)
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n < 0 || n > 1e9 {
			return nil, fmt.Errorf("smart: token response expires_in %s is not a number of seconds", clip(string(raw.ExpiresIn)))
		}
		t.ExpiresIn = int64(n)
	}
	return t, nil
}

// TokenError is an error response of a token endpoint (RFC 6749 section
// 5.2): a code such as invalid_client, and an optional description.
type TokenError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	URI         string `json:"error_uri,omitempty"`
}

func (e *TokenError) Error() string {
	if e.Description == "" {
		return "token endpoint: " + e.Code
	}
	return "token endpoint: " + e.Code + ": " + e.Description
}

// ParseTokenError reads an error response; ok is false when data is not
// one (no "error" member).
func ParseTokenError(data []byte) (*TokenError, bool) {
	var e TokenError
	if json.Unmarshal(data, &e) != nil || e.Code == "" {
		return nil, false
	}
	e.Code, e.Description = clip(e.Code), clipN(e.Description, 500)
	return &e, true
}
