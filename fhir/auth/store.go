package auth

import (
	"context"
	"errors"
	"time"
)

// ClientRow is a registered backend service as a Store keeps it.
type ClientRow struct {
	ID string
	// Tenant is the practice whose resources the client sees.
	Tenant string
	// JWKS is the client's public JWK Set (JSON), "" when it publishes its
	// keys at JWKSURL only.
	JWKS     string
	JWKSURL  string
	Scopes   string // the scopes it may be granted, space separated
	Disabled bool
	// Recipient, for a prescriber's client, is the "Practitioner/id" a
	// patient's Consent names to share with it: the client sees only the
	// patients whose Consent shares their record with Recipient, and their
	// psychotherapy notes only where a Consent permits them. "" is a client
	// of the practice itself, which sees all of its resources, its notes
	// included.
	Recipient string
	Created   time.Time
}

// KeyRow is one of the gateway's signing keys.
type KeyRow struct {
	KID     string
	Alg     string
	PEM     []byte // PKCS#8 private key
	Created time.Time
	// Retired is when the key stopped signing; zero while it signs.
	Retired time.Time
}

// ErrNoClient is returned by Store.AuthClient for an unknown id.
var ErrNoClient = errors.New("auth: no such client")

// ErrJTIUsed is returned by Store.RememberJTI for an id already
// remembered and not yet expired.
var ErrJTIUsed = errors.New("auth: jti already used")

// Store keeps clients, signing keys and used assertion ids. The SQL
// stores (adapters/sqlstore) and memstore implement it.
type Store interface {
	// AuthClient returns the client id, or ErrNoClient.
	AuthClient(ctx context.Context, id string) (ClientRow, error)
	// PutAuthClient adds or replaces a client.
	PutAuthClient(ctx context.Context, c ClientRow) error
	// AuthClients lists the clients by id.
	AuthClients(ctx context.Context) ([]ClientRow, error)
	// AuthKeys lists the signing keys, newest first.
	AuthKeys(ctx context.Context) ([]KeyRow, error)
	// PutAuthKey adds a key, or records its retirement.
	PutAuthKey(ctx context.Context, k KeyRow) error
	// RememberJTI records id as used until until, atomically: of two
	// callers with the same id, one gets ErrJTIUsed. An id whose time has
	// passed may be used again (and expired ids are purged).
	RememberJTI(ctx context.Context, id string, until time.Time) error
}
