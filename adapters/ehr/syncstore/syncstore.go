// Package syncstore is the storage contract of EHR sync: the connections
// to prescriber EHRs, the delivery queue fed from the store's outbox (one
// row per resource and connection, leased by workers), the link table
// (what was written where, at which version, with which content hash) and
// the patient links (a client and the EHR's patient, or why the client
// waits). It is a leaf package: the SQL stores (adapters/sqlstore)
// implement it, Memory implements it over any fhir.Store, and synctest
// holds the one contract suite every implementation passes.
package syncstore

import (
	"context"
	"errors"
	"strings"
	"time"
)

// TopicChange is the outbox topic of a resource change that may have to
// reach an EHR; the message's Key is "Type/id". Enqueue writes it.
const TopicChange = "ehr.change"

// Errors; test with errors.Is.
var (
	ErrNotFound  = errors.New("syncstore: not found")
	ErrExists    = errors.New("syncstore: already exists")
	ErrLeaseLost = errors.New("syncstore: the lease is no longer held")
)

// Connection is one prescriber EHR the gateway writes to.
type Connection struct {
	Name     string
	Tenant   string // the practice tenant whose changes go there
	BaseURL  string // the EHR's FHIR base
	TokenURL string // "" discovers it from BaseURL/.well-known/smart-configuration
	ClientID string
	// KeyFile is the PEM private key that signs client assertions; Key,
	// when set, is that PEM itself (KeyFile then only says where it came
	// from).
	KeyFile string
	Key     []byte
	// ClientSecret, for an EHR that offers only client_secret_basic, is
	// the secret sent with HTTP Basic at the token endpoint instead of a
	// signed assertion: a connection has either a key or a secret. Kept
	// in the store like the key; never printed.
	ClientSecret []byte
	Scopes       string // space-separated SMART scopes to ask for
	// Practice is the namespace URI of the practice identifiers written
	// with every resource; "" means the identifiers as mapped.
	Practice string
	// MRNSystem is the EHR's MRN identifier system, by which clients are
	// linked to the EHR's patients.
	MRNSystem string
	// Recipient is the local reference ("Practitioner/id") of whom this
	// EHR's records reach: a Consent naming it lets process notes go.
	// "" names nobody, so no note ever goes.
	Recipient string
	Created   time.Time
}

// Delivery states.
const (
	StatePending = "pending" // to deliver (maybe waiting for its NextAt)
	StateDone    = "done"    // delivered, or decided not to go (Note says why)
	StateDead    = "dead"    // dead-lettered: attempts ran out; Replay requeues
)

// Delivery is the current version of one resource still to reach (or
// having reached) one connection. Changes to a resource while it waits
// coalesce into one row: the worker sends whatever is current.
type Delivery struct {
	ID         int64
	Connection string
	Tenant     string
	Type       string
	ResourceID string
	// Gen counts the changes fanned out to this row; Finish marks the row
	// done only if no change came in since it was leased.
	Gen      int64
	State    string
	Attempts int
	// Leases counts the leases of this row since it was last finished
	// done; Lease counts the lease it returns. 1 means no earlier holder
	// can have written the resource without recording it: a worker that
	// finds no link may create it without searching first. More than 1
	// means one may have (it was killed, stopped or lost its lease, or an
	// attempt failed in a way that may have landed and no search has
	// settled it since): search before creating.
	Leases     int
	NextAt     time.Time
	LeaseOwner string
	LeaseUntil time.Time
	// LastError is the last failure, or for a done row a note on what was
	// decided (held back by the privacy gate, not in the plan ...).
	LastError string
	// Outcome is the EHR's final OperationOutcome of the last failure.
	Outcome []byte
	Updated time.Time
}

// Ref is "Type/id".
func (d Delivery) Ref() string { return d.Type + "/" + d.ResourceID }

// Result is how a leased delivery ended.
type Result struct {
	State string // StateDone, StatePending (retry or wait) or StateDead
	// Attempted: this was a failed attempt (counted toward dead-lettering);
	// false for a wait (a patient not linked, a target not yet written).
	Attempted bool
	NextAt    time.Time // for StatePending
	Error     string
	Outcome   []byte
}

// Finishing is one row's end for FinishAll: its result and the link its
// write recorded (nil when none).
type Finishing struct {
	Delivery Delivery
	Result   Result
	Link     *Link
}

// Link records what one source resource became on one connection. A
// source may make several parts (a Flag's alert Communication, a dose's
// Observation): Part names the builder, "" the resource as mapped.
type Link struct {
	Connection    string
	Tenant        string
	SourceType    string
	SourceID      string
	Part          string
	RemoteType    string
	RemoteID      string
	RemoteVersion string // the versionId / ETag the EHR answered, "" if none
	Hash          string // of the content written
	// Body is the content last written (as sent, meta aside), kept only
	// where later changes go as patches computed from it; nil otherwise.
	Body    []byte
	Updated time.Time
}

// Patient link states.
const (
	PatientLinked  = "linked"
	PatientWaiting = "waiting"
)

// PatientLink ties a local Patient to the EHR's, or says why it waits.
type PatientLink struct {
	Connection string
	Tenant     string
	PatientID  string // local Patient id
	State      string
	RemoteID   string // when linked
	Reason     string // when waiting: what the match found
	Updated    time.Time
}

// Store is the sync storage contract. Times passed in are the caller's
// clock (tests drive it); stores keep them to the microsecond.
//
// Errors: ErrNotFound, ErrExists, ErrLeaseLost as documented; anything
// else is a storage failure.
type Store interface {
	// AddConnection stores c; ErrExists if the name is taken.
	AddConnection(ctx context.Context, c Connection) error
	// Connection returns the named connection, or ErrNotFound.
	Connection(ctx context.Context, name string) (Connection, error)
	// Connections lists all, by name.
	Connections(ctx context.Context) ([]Connection, error)
	// RemoveConnection deletes the connection with its deliveries, links
	// and patient links; ErrNotFound if there is none.
	RemoveConnection(ctx context.Context, name string) error

	// Fanout takes up to limit unprocessed TopicChange outbox messages of
	// tenant and makes (or renews) a pending delivery per message and
	// connection of that tenant, at now, in one transaction; it returns
	// how many messages it took. With no connection for tenant it takes
	// none, so changes made before the first connection still go to it.
	// Concurrent callers never take the same message.
	Fanout(ctx context.Context, tenant string, limit int, now time.Time) (int, error)
	// Lease gives owner up to limit pending deliveries of connection due
	// at now and not leased by anyone else (or whose lease expired), held
	// until now+ttl. Concurrent callers get disjoint rows.
	Lease(ctx context.Context, connection, owner string, limit int, now time.Time, ttl time.Duration) ([]Delivery, error)
	// Finish ends owner's lease of d with r, at now. If the row changed
	// since d was leased (d.Gen is old) it stays pending, due now, with
	// attempts reset. Leases is reset when r is done. ErrLeaseLost if
	// owner no longer holds it.
	Finish(ctx context.Context, d Delivery, owner string, r Result, now time.Time) error
	// FinishAll is, in one transaction, for each of fs: PutLink of its
	// Link (when set), then Finish of its Delivery with its Result. It
	// returns one error per item (nil or ErrLeaseLost; a link is recorded
	// even when the lease was lost: the write it records happened), and
	// an error when the transaction failed (then nothing was recorded).
	FinishAll(ctx context.Context, owner string, fs []Finishing, now time.Time) ([]error, error)
	// Release drops every lease of owner (a graceful stop).
	Release(ctx context.Context, owner string) error
	// Replay makes the dead deliveries of connection pending, due at now,
	// with attempts reset; it returns how many. It wakes none of the rows
	// that wait for them (ehr.Replay, what `kapbridge sync replay` runs,
	// wakes them too).
	Replay(ctx context.Context, connection string, now time.Time) (int, error)
	// Wake makes every pending delivery of connection due at now (a
	// patient was linked, a waited-for target written).
	Wake(ctx context.Context, connection string, now time.Time) error
	// Deliveries lists deliveries of connection in state ("" any), by id;
	// at most limit (<= 0: all).
	Deliveries(ctx context.Context, connection, state string, limit int) ([]Delivery, error)
	// Delivery returns the delivery of one resource to connection, or
	// ErrNotFound.
	Delivery(ctx context.Context, connection, tenant, typ, id string) (Delivery, error)
	// Counts counts the deliveries of connection by state.
	Counts(ctx context.Context, connection string) (map[string]int, error)
	// Backfill gives connection a pending delivery, due at now, for every
	// live resource of its tenant that has none yet (a connection added
	// after the data), up to limit resources in Type/id order after the
	// cursor after ("" from the start); it returns the cursor to go on
	// from ("" when every resource was seen) and how many rows it added.
	// A resource that already has a row (the normal path got there
	// first, or a backfill before was interrupted) keeps it untouched, so
	// running it again resumes it and never duplicates.
	Backfill(ctx context.Context, connection, after string, limit int, now time.Time) (next string, added int, err error)
	// Prune deletes what is fully delivered and older than before: the
	// fanned-out outbox messages whose resource has no delivery left to
	// do (none pending or dead), and the done deliveries with no note
	// (a note, like held back or deletion not sent, stays listed). Dead
	// letters are kept until replayed or discarded. It returns how many
	// messages and deliveries went.
	Prune(ctx context.Context, before time.Time) (messages, deliveries int, err error)
	// Discard deletes the dead letters of connection: every one for ref
	// "", else that of ref ("Type/id"); it returns how many.
	Discard(ctx context.Context, connection, ref string) (int, error)

	// Link returns the link of a source part, or ErrNotFound.
	Link(ctx context.Context, connection, tenant, srcType, srcID, part string) (Link, error)
	// PutLink inserts or replaces l.
	PutLink(ctx context.Context, l Link) error
	// LinkByRemote returns the link of a remote resource, or ErrNotFound.
	LinkByRemote(ctx context.Context, connection, remoteType, remoteID string) (Link, error)
	// Links lists the links of connection, by source.
	Links(ctx context.Context, connection string) ([]Link, error)

	// PatientLink returns the patient link, or ErrNotFound.
	PatientLink(ctx context.Context, connection, tenant, patientID string) (PatientLink, error)
	// PutPatientLink inserts or replaces l.
	PutPatientLink(ctx context.Context, l PatientLink) error
	// PatientLinks lists the patient links of connection in state ("" any).
	PatientLinks(ctx context.Context, connection, state string) ([]PatientLink, error)
}

// SplitRef splits "Type/id"; ok is false for anything else.
func SplitRef(ref string) (typ, id string, ok bool) {
	typ, id, ok = strings.Cut(ref, "/")
	return typ, id, ok && typ != "" && id != "" && !strings.Contains(id, "/")
}

// Micros keeps t to the microsecond in UTC, as stores do.
func Micros(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
