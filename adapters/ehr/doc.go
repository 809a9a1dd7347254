// Package ehr is kapbridge's connector to prescribers' EHRs. So far it
// holds the connector's HTTP side (issue 11, items 2 and 3):
//
//   - TokenSource: SMART Backend Services client authentication. It signs
//     a client assertion (fhir/smart) or uses a client secret (HTTP Basic),
//     discovers the token URL from {base}/.well-known/smart-configuration
//     when none is configured, caches the access token until shortly
//     before it expires, and lets one refresh run at a time.
//   - Client: FHIR requests through github.com/hashicorp/go-retryablehttp
//     with this package's policy: network errors, 429 and 5xx (not 501)
//     are retried with capped exponential backoff and jitter; Retry-After
//     is honoured up to a cap; a request that is not idempotent (a POST
//     create) is repeated only when it provably never left, or when the
//     caller's Landed check says it did not land; a 401 refreshes the
//     token once; the bearer token goes to the FHIR base's origin only;
//     the final error response (its OperationOutcome) is kept with the
//     error; logs carry method, host, path and ids, never a token, a query
//     string or a body.
//   - ParseOperationOutcome, ParseBundle, ParseCapabilityStatement: the
//     EHR's answers read with github.com/samply/golang-fhir-models, an
//     OperationOutcome the models refuse read leniently instead.
//
// The write plan, outbox worker and inbound poller come next; nothing in
// cmd uses this package yet.
package ehr
