// Package recordstore is the contract between the use case that applies
// practice records (package records) and the stores that keep them
// (adapters/sqlstore), as database/sql/driver is between database/sql
// and drivers: the rows a store keeps beside the FHIR versions, and the
// methods it implements to keep them. It imports nothing of the project,
// so a store implements it without importing the domain, and its types
// are plain data (a kind is a string).
package recordstore

import (
	"context"
	"time"
)

// Row is a practice record as the gateway stores it, beside the FHIR
// resources made from it.
type Row struct {
	Tenant string
	Kind   string // the record's kind: "client", "session", ...
	ID     string
	// Parent is the id of the record this one hangs under (a course's
	// client, a session's course, a screening's or consent's client, an
	// observation's or note's session; "" for clients and practitioners),
	// so checks and the CarePlan find a parent's children without decoding
	// every record.
	Parent string
	// Body is the record's canonical JSON (encoding/json of the decoded
	// struct), Hash its SHA-256 in hex: an identical re-import is detected
	// by the hash alone.
	Body []byte
	Hash string
	// State is StateMapped, StatePending or StateRejected.
	State string
	// Pending lists the "kind/id" references not yet known (state
	// pending); Resources the "Type/id/version" of every FHIR resource the
	// record's last mapping wrote or confirmed (state mapped).
	Pending   []string
	Resources []string
	// Reasons says why a record that was waiting became rejected once its
	// references arrived (state rejected).
	Reasons []string
	Updated time.Time
}

// Record states.
const (
	StateMapped   = "mapped"
	StatePending  = "pending"
	StateRejected = "rejected"
)

// IdempotencyRow is the stored answer to an ingestion request carrying an
// Idempotency-Key: the same key within IdempotencyTTL gets the same answer
// without a second write.
type IdempotencyRow struct {
	Tenant      string
	Key         string
	RequestHash string
	Status      int
	Response    []byte
	Created     time.Time
}

// IdempotencyTTL is how long a stored answer is honoured; a store returns
// no older row and may purge them.
const IdempotencyTTL = 24 * time.Hour

// Store reads stored rows outside transactions. A store that implements
// it keeps practice records: every transaction its Update runs must then
// implement Tx. Errors are storage failures; a row not found is
// (zero, false, nil).
type Store interface {
	GetRecord(ctx context.Context, tenant, kind, id string) (Row, bool, error)
	// ListRecords lists rows by kind and state, "" matching any, in kind
	// and id order.
	ListRecords(ctx context.Context, tenant, kind, state string) ([]Row, error)
	// GetIdempotency returns the answer stored for key, unless older than
	// IdempotencyTTL.
	GetIdempotency(ctx context.Context, tenant, key string) (IdempotencyRow, bool, error)
}

// Tx reads and writes rows in the store transaction that writes the FHIR
// versions made from them, so a record and its resources commit together.
type Tx interface {
	GetRecord(ctx context.Context, tenant, kind, id string) (Row, bool, error)
	// PutRecord inserts or replaces the row of (tenant, kind, id).
	PutRecord(ctx context.Context, r Row) error
	// WaitingOn returns the pending rows whose Pending lists ref
	// ("kind/id"), in kind and id order.
	WaitingOn(ctx context.Context, tenant, ref string) ([]Row, error)
	// ChildRecords returns the rows of kind whose Parent is parent, in id
	// order.
	ChildRecords(ctx context.Context, tenant, kind, parent string) ([]Row, error)
	// LockRecords serializes the transactions of one tenant that apply
	// records until this one ends. Pending resolution needs it where
	// transactions run concurrently (PostgreSQL): otherwise a record and
	// the one it waits for could commit side by side, each not seeing the
	// other, and the waiting one would never resolve.
	LockRecords(ctx context.Context, tenant string) error
	// PutIdempotency stores an answer, replacing any of the same key.
	PutIdempotency(ctx context.Context, r IdempotencyRow) error
}
