// Package smart owns the SMART Backend Services primitives (SMART App
// Launch STU 2.2, client_credentials with a private_key_jwt client
// assertion) that both sides of kapbridge use: the EHR connector as a
// client (adapters/ehr) and, later, the gateway's own token endpoint and the
// EHR sandbox as servers.
//
//   - Keys: RS384 (RSA 3072) and ES384 (P-384) signing keys, their private
//     PEM form, and public JWK Sets (RFC 7517) whose kid is the RFC 7638
//     thumbprint.
//   - The client assertion: built and signed by a client (SigningKey.Sign),
//     and checked field by field by a server (Validator), with a replay
//     cache for jti.
//   - Scopes: SMART v1 (system/Observation.read) and v2
//     (system/Observation.rs) parsed into one normalized form.
//   - The /.well-known/smart-configuration document and the token
//     response.
//
// Every JWT here goes through github.com/golang-jwt/jwt/v5 with
// WithValidMethods(RS384, ES384); what that library does not check (jti
// replay, exp at most five minutes ahead, the key's curve and size, jku)
// is checked here.
package smart
