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
//   - Outbound sync (outbound*.go, link.go): Outbound drains one
//     connection's delivery rows (syncstore.Store: the rows the change
//     hook, syncstore.Enqueue run as write.Writer.Changed, fans out per
//     connection). NewOutbound(ctx, conn, sync, store, OutboundConfig)
//     builds it from a stored syncstore.Connection (ConnectionClient +
//     FetchCapabilities + PlanWrites); RunOnce leases and delivers one
//     batch, Drain until nothing is due, Run until ctx ends (releasing
//     its leases). Per row: the privacy gate (fhir/consent) first, the
//     patient link (by MRN identifier or Patient/$match; LinkPatient
//     confirms one by hand and wakes the waiting rows), the part built
//     by the plan, references rewritten to the EHR's ids, meta.source
//     (DefaultSource#tenant/Type/id/_history/vid) and the SyncTagSystem
//     tag stamped, a content-hash skip, the write by the plan's method
//     (412: re-read, write again), and the link recorded; failures back
//     off, refusals and exhausted rows are dead letters that Replay
//     requeues. Deliver's result is also a record for people: each row
//     keeps why it went, waits, was held back or died. A resource never
//     written (no link, the row's first lease since it was last done)
//     is created by plain POST without a search first; where the EHR
//     declares batch (else transaction) a round's such creates go in one
//     Bundle (outbound_bundle.go), an entry that failed is retried alone,
//     and a Bundle whose answer was lost is resolved by search first.
//   - The sandbox filter (sandbox.go): CapabilityFilter, middleware that
//     makes kapbridge's own FHIR API answer as a chosen EHR would:
//     refusing with 405 every interaction that EHR's statement does not
//     declare, and serving that statement at /metadata.
package ehr
