// Package ehr is kapbridge's connector to prescribers' EHRs: it gets KAP
// work into each EHR in a form that EHR accepts, and plays such an EHR in
// the sandbox. Its parts:
//
//   - Auth and HTTP (token.go, client.go, policy.go, models.go):
//     TokenSource authenticates as a SMART Backend Services client (a
//     signed client assertion, or a client secret where that is all an
//     EHR offers) and caches the access token; Client sends FHIR requests
//     with the retry policy (network errors, 429 and 5xx but 501, capped
//     backoff with jitter, Retry-After; a create is repeated only when it
//     provably did not land), keeps the EHR's final OperationOutcome, and
//     logs no token, query or body; the EHR's OperationOutcomes and
//     Bundles are read with the R4 models.
//   - Capabilities (capability*.go): an EHR's CapabilityStatement read
//     into what kapbridge relies on: per resource type the interactions,
//     conditional create/update/delete, updateCreate, versioning (If-Match)
//     and search parameters; the system interactions (transaction, batch,
//     history); formats; the SMART security services and OAuth URLs.
//     Read leniently, since the samply R4 models refuse a whole document
//     for one unknown code: what cannot be read is left out with a
//     warning, never guessed.
//   - The write plan (plan.go, plan_table.go): PlanWrites decides, from the
//     capabilities alone, how every KAP artifact (course, screening,
//     scores, vitals, doses, safety signals, sessions, Provenance,
//     Consent, process notes ...) lands on that EHR: as itself where
//     writable, else as a representation it accepts, or not at all, with
//     the reason; and how each resource type is written there
//     (conditional update, PUT by id, or a search for what was written
//     before, then POST, PUT or PATCH, with If-Match where versioned;
//     transaction, batch or single requests). The outbox worker writes by
//     the plan; WriteTable prints it for `kapbridge ehr plan NAME`. Every
//     safety signal reaches the prescriber as a Flag or, where Flags are
//     read-only, as an urgent alert Communication; process notes go only
//     where the privacy gate finds a Consent permitting them.
//   - The representations (plan_represent.go): pure builders of what an
//     EHR accepts in place of what it does not: a CarePlan or a
//     QuestionnaireResponse as a DocumentReference (a readable XHTML
//     summary plus the resource's JSON), a MedicationAdministration as an
//     Observation recording the dose, a Flag as an alert Communication.
//     Each keeps its input's practice identifier and security labels.
//   - The sandbox filter (sandbox.go): CapabilityFilter, middleware that
//     makes kapbridge's own FHIR API answer as a chosen EHR would:
//     refusing with 405 every interaction that EHR's statement does not
//     declare, and serving that statement at /metadata.
package ehr
