package ehr

import (
	"crypto/subtle"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// A sandbox configured with client secrets plays an EHR that offers only
// client_secret_basic (Oracle Health offers it; some EHRs offer nothing
// else): its token endpoint takes the client id and secret with HTTP
// Basic (RFC 6749 section 2.3.1: each form-encoded, then Base64), refuses
// every request without them (an assertion included) as invalid_client,
// and its SMART configuration lists client_secret_basic alone.

// basicTokenHandler is the token endpoint of a sandbox with secrets.
func basicTokenHandler(issuer *smart.Issuer, clients smart.ClientRegistry, secrets map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		fail := func(status int, code, msg string) {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="sandbox token endpoint"`)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(&smart.TokenError{Code: code, Description: msg})
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
			fail(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			fail(http.StatusBadRequest, "invalid_request", "the form could not be read")
			return
		}
		rawID, rawSecret, ok := r.BasicAuth()
		if !ok {
			fail(http.StatusUnauthorized, "invalid_client", "this sandbox takes client_secret_basic only: send the client id and secret with HTTP Basic (no client_assertion)")
			return
		}
		id, err1 := url.QueryUnescape(rawID)
		secret, err2 := url.QueryUnescape(rawSecret)
		want, known := secrets[id]
		if err1 != nil || err2 != nil || !known || subtle.ConstantTimeCompare([]byte(secret), []byte(want)) != 1 {
			fail(http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
			return
		}
		if r.PostForm.Has("client_assertion") {
			fail(http.StatusBadRequest, "invalid_request", "one client authentication per request: HTTP Basic and a client_assertion were both sent")
			return
		}
		if g := r.PostForm.Get("grant_type"); g != smart.GrantClientCredentials {
			fail(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
			return
		}
		client, err := clients.Client(r.Context(), id)
		if err != nil || client.Disabled {
			fail(http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
			return
		}
		scopes, err := smart.ParseScopes(r.PostForm.Get("scope"))
		if err != nil {
			fail(http.StatusBadRequest, "invalid_scope", err.Error())
			return
		}
		resp, err := issuer.Grant(client, scopes)
		if err != nil {
			fail(http.StatusBadRequest, "invalid_scope", err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
}
