package mappings

import "time"

// RecordRow is a practice record as the gateway stores it, beside the FHIR
// resources made from it. It lives here, a plain data type, because the
// practice adapter (which writes it) and the SQL store (which keeps it)
// must not import each other, and both already import mappings.
type RecordRow struct {
	Tenant string
	Kind   Kind
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
	// State is RecordMapped, RecordPending or RecordRejected.
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
	RecordMapped   = "mapped"
	RecordPending  = "pending"
	RecordRejected = "rejected"
)

// IdempotencyRow is the stored answer to an ingestion request carrying an
// Idempotency-Key: the same key within 24 hours gets the same answer
// without a second write.
type IdempotencyRow struct {
	Tenant      string
	Key         string
	RequestHash string
	Status      int
	Response    []byte
	Created     time.Time
}

// IdempotencyTTL is how long a stored answer is honoured.
const IdempotencyTTL = 24 * time.Hour
