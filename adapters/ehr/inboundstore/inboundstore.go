// Package inboundstore is the storage contract of the inbound half of EHR
// sync: per connection, patient and resource type the poll cursor (how
// far the EHR's changes were taken in); per remote resource the version
// last taken (so a re-poll over an overlapping window, or after a crash,
// takes nothing twice); and the conflicts the ownership rules decided,
// kept for people to read (`kapbridge sync status`, the API). It is a
// leaf package: the SQL stores (adapters/sqlstore) implement it, Memory
// implements it for tests, and inboundtest holds the one contract suite
// every implementation passes.
package inboundstore

import (
	"context"
	"time"
)

// Cursor is how far one patient's resources of one type were polled.
type Cursor struct {
	Connection string
	Tenant     string
	Patient    string // the practice's client id
	Type       string // the FHIR resource type polled
	// Since is the newest change time taken in (the EHR's
	// meta.lastUpdated, or the resource's date where the EHR cannot
	// search by _lastUpdated); the next poll starts an overlap before it.
	Since  time.Time
	Polled time.Time // when the last complete poll ended
}

// Taken is the version of a remote resource last taken in (or found to
// be an echo of the gateway's own write, or kept with a reason).
type Taken struct {
	Connection string
	Type       string
	RemoteID   string
	VersionID  string // meta.versionId; "" when the EHR does not version
	Hash       string // SHA-256 of the resource without meta
	Outcome    string // applied, echo, kept, conflict, rejected (what became of it)
	// Reason says why a resource kept or rejected could not be used, for
	// people (`kapbridge sync status`); "" otherwise.
	Reason string
	At     time.Time
}

// Outcomes of a resource that came back but could not be used: listed by
// InboundUnused.
const (
	OutcomeKept     = "kept"
	OutcomeRejected = "rejected"
)

// Owners of a conflict's subject.
const (
	OwnerPractice = "practice"
	OwnerEHR      = "ehr"
)

// Conflict is a change from an EHR that met a practice record it
// disagrees with, and how ownership decided it.
type Conflict struct {
	ID         int64
	Connection string
	Tenant     string
	// Remote is the EHR's resource version: "Type/id/_history/v" (or
	// "Type/id" when unversioned).
	Remote string
	// Local is the practice record concerned: "kind/id".
	Local string
	// Field is what disagrees ("course.status", "session.dose",
	// "observation"...).
	Field string
	// Owner is who owns Field (OwnerPractice, OwnerEHR): whose value
	// stands.
	Owner string
	// Practice and EHR are the two values, as text for people.
	Practice string
	EHR      string
	// Resolution says what the gateway did, in words.
	Resolution string
	At         time.Time
}

// Store keeps the inbound state. Methods are named Inbound* because the
// SQL stores implement other contracts beside it.
type Store interface {
	// InboundCursor returns the cursor, false if that poll never ran.
	InboundCursor(ctx context.Context, connection, tenant, patient, typ string) (Cursor, bool, error)
	// PutInboundCursor inserts or replaces a cursor.
	PutInboundCursor(ctx context.Context, c Cursor) error
	// InboundTaken returns what was last taken of a remote resource.
	InboundTaken(ctx context.Context, connection, typ, remoteID string) (Taken, bool, error)
	// PutInboundTaken inserts or replaces it.
	PutInboundTaken(ctx context.Context, t Taken) error
	// InboundUnused lists the remote resources of a connection ("" for
	// all) whose last version taken could not be used (OutcomeKept,
	// OutcomeRejected), with the reason, by connection, type and id.
	InboundUnused(ctx context.Context, connection string) ([]Taken, error)
	// AddInboundConflict records c (its ID and At are set) and returns it;
	// a conflict already recorded for the same Connection, Tenant, Remote
	// and Field is returned as it was (a re-poll records nothing twice).
	AddInboundConflict(ctx context.Context, c Conflict) (Conflict, error)
	// InboundConflicts lists the conflicts of a connection ("" for all),
	// oldest first.
	InboundConflicts(ctx context.Context, connection string) ([]Conflict, error)
}
