package fhir

import (
	"context"
	"time"
)

// DefaultTenant is the practice every row belongs to until practice
// tenants arrive (roadmap item 2). Every stored row carries a tenant key
// from the start so that change needs no migration of the data model.
const DefaultTenant = "default"

// Key names one resource of one tenant.
type Key struct {
	Tenant string
	Type   string
	ID     string
}

// Version is one immutable version of a resource.
type Version struct {
	Key
	VersionID int64
	// LastUpdated is stored with microsecond precision and read back in
	// UTC; a zero value in Put means the store's clock.
	LastUpdated time.Time
	Deleted     bool
	// JSON is the resource exactly as it is served: the JSON received with
	// id, meta.versionId and meta.lastUpdated set by the server. It is
	// empty for a deletion.
	JSON []byte
	// Sensitivity is what the store recorded when it wrote the version:
	// SensitivityOfJSON(JSON), or for a deletion the Sensitivity of the
	// version it deleted (so a deleted note stays a note). Stores set it
	// themselves in Put; what the caller puts there is ignored.
	Sensitivity Sensitivity
	// Method is the HTTP method of the interaction that wrote the
	// version (POST, PUT, PATCH or DELETE), which a history Bundle
	// reports. "" means not recorded (versions stored before it was, and
	// writers outside the REST API): a history then reports DELETE for a
	// deletion, POST for version 1 and PUT otherwise (MethodOf).
	Method string
}

// MethodOf is the method that wrote v: v.Method, or when that was not
// recorded, what it most likely was.
func MethodOf(v Version) string {
	switch {
	case v.Method != "":
		return v.Method
	case v.Deleted:
		return "DELETE"
	case v.VersionID == 1:
		return "POST"
	}
	return "PUT"
}

// Identifier is one Identifier (system|value) of a resource, indexed so
// that conditional create and conditional update can find it.
type Identifier struct {
	System string
	Value  string
}

// Index is what a write indexes beside the version, in the same
// transaction. It grows with search (one struct, so adding a field does
// not change the Tx interface).
type Index struct {
	Identifiers []Identifier
	// Entries are the search-parameter values of the version (a deletion
	// has none).
	Entries []IndexEntry
}

// OutboxMessage is a row that commits atomically with a resource change;
// the EHR connector (roadmap item 1) will lease and deliver them.
type OutboxMessage struct {
	Seq     int64 // assigned by the store
	Tenant  string
	Topic   string
	Key     string
	Payload []byte
	Created time.Time
}

// Store keeps every version of every resource, per tenant.
//
// Errors: ErrNotFound (wrapped) when nothing matches; any other error is a
// storage failure.
type Store interface {
	// Read returns the newest version of k, which may be a deletion
	// (Deleted set, JSON empty).
	Read(ctx context.Context, k Key) (Version, error)
	// VRead returns version vid of k.
	VRead(ctx context.Context, k Key, vid int64) (Version, error)
	// History returns the versions of k, newest first; at most limit
	// (limit <= 0: all). It returns ErrNotFound if k never existed.
	History(ctx context.Context, k Key, limit int) ([]Version, error)
	// Update runs fn in one transaction and commits if fn returns nil.
	// When Update returns nil the writes are durable. fn's own error is
	// returned unchanged and nothing of the transaction remains. If the
	// transaction loses a race (ErrVersionConflict) Update rolls back and
	// runs fn again, a bounded number of times, so fn must have no effects
	// outside tx; when the attempts run out the error wraps
	// ErrVersionConflict. An ErrVersionConflict that fn returns on its own
	// is retried the same way, so a failed client precondition (If-Match)
	// should be reported with another error.
	//
	// fn must not call Update on the same Store: a backend may run fn on a
	// single writer goroutine (the SQLite store does), where it would wait
	// for itself. If ctx ends before fn runs, Update returns ctx.Err(); a
	// panic in fn is returned as an error.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// Outbox returns up to limit (limit <= 0: all) outbox messages of
	// tenant with Seq > after, oldest first.
	Outbox(ctx context.Context, tenant string, after int64, limit int) ([]OutboxMessage, error)
	Close() error
}

// Tx is a store transaction: what fn may do inside Store.Update.
type Tx interface {
	// Read returns the newest version of k (possibly a deletion) and holds
	// it against concurrent writers until the transaction ends. A resource
	// that does not exist yet is not held: of two transactions creating
	// it, the second's Put fails and Update retries it.
	Read(ctx context.Context, k Key) (Version, error)
	// LookupIdentifier returns the ids of the live (not deleted) resources
	// of typ in tenant that carry ident. Concurrent transactions looking up
	// the same identifier are serialized until commit, so a
	// check-then-create is race-free. (Only lookups serialize: a Put that
	// adds the identifier without looking it up first does not wait.)
	LookupIdentifier(ctx context.Context, tenant, typ string, ident Identifier) ([]string, error)
	// Put stores v as a new version. v.VersionID must be exactly one more
	// than the newest stored version of v.Key (1 for a new resource),
	// otherwise Put returns ErrVersionConflict. idx replaces what was
	// indexed for the resource (a deletion clears it). Put records the
	// version's Sensitivity itself (see Version.Sensitivity), so no writer
	// can forget to label a note.
	Put(ctx context.Context, v Version, idx Index) error
	// Enqueue adds m to the outbox; it commits or vanishes with the
	// transaction.
	Enqueue(ctx context.Context, m OutboxMessage) error
	// LockCriteria serializes this transaction, until it ends, with every
	// other transaction that calls LockCriteria for the same tenant and
	// type. A conditional write whose criteria are a search (not a lone
	// identifier, which LookupIdentifier serializes) takes it before
	// searching, so two such writes cannot both find nothing and both
	// create. A store whose writers are serialized anyway may do nothing.
	LockCriteria(ctx context.Context, tenant, typ string) error
}
