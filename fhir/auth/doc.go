// Package auth owns the gateway's own authorization (issue 14): the
// backend services registered to call it (Client, kept in a Store), the
// keys it signs access tokens with (Keyring, rotatable), the jti of every
// client assertion it accepted (a persistent smart.ReplayCache, so a
// replay is refused after a restart too), the JWK Sets clients publish at
// a URL (Fetcher, cached as Cache-Control says), the token endpoint and
// the check of a bearer token on every request (Gateway, with a cache per
// token), and the decision whether a token's scopes allow a request
// (Decide), made before any data is touched.
//
// The SMART primitives (assertion validation field by field, scopes,
// signing keys) are package smart's; this package puts them on a store.
package auth
