package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("sqlstore: store is closed")

// maxAttempts bounds how often Update runs fn when it keeps losing races.
const maxAttempts = 20

// Option configures a store.
type Option func(*options)

type options struct {
	now              func() time.Time
	maxBatch         int
	statementTimeout time.Duration // PostgreSQL; see WithStatementTimeout
}

// WithClock sets the clock used to fill a zero Version.LastUpdated or
// OutboxMessage.Created (default time.Now); tests inject a fixed one.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithMaxBatch caps how many Update calls SQLite's group commit runs in one
// transaction (default 256). PostgreSQL ignores it.
func WithMaxBatch(n int) Option {
	return func(o *options) { o.maxBatch = n }
}

func buildOptions(opts []Option) options {
	o := options{now: time.Now, maxBatch: 256}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.maxBatch < 1 {
		o.maxBatch = 1
	}
	if o.statementTimeout == 0 {
		o.statementTimeout = DefaultStatementTimeout
	}
	return o
}

// Both backends are search.Store: they search and page history, and so do
// their transactions.
var (
	_ search.Store    = (*sqliteStore)(nil)
	_ search.Searcher = (*sqliteTx)(nil)
	_ search.Store    = (*pgStore)(nil)
	_ search.Searcher = (*pgTx)(nil)
)

// Open opens the store named by dsn, migrating its schema as needed. A dsn
// starting with postgres:// or postgresql:// opens PostgreSQL; anything else
// is an SQLite database file, optionally prefixed sqlite: or file: (a file:
// URI may carry its own query parameters), whose parent directories are
// created.
func Open(ctx context.Context, dsn string, opts ...Option) (search.Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return OpenPostgres(ctx, dsn, opts...)
	}
	return OpenSQLite(ctx, dsn, opts...)
}

// timeMicros truncates to the microsecond both backends store, in UTC, so
// what Put is given and what Read returns compare equal.
func timeMicros(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

func checkKey(k fhir.Key) error {
	if k.Tenant == "" || k.Type == "" || k.ID == "" {
		return fmt.Errorf("sqlstore: incomplete key %q/%q/%q", k.Tenant, k.Type, k.ID)
	}
	return nil
}

func notFound(k fhir.Key) error {
	return fmt.Errorf("sqlstore: %s/%s/%s: %w", k.Tenant, k.Type, k.ID, fhir.ErrNotFound)
}

func conflict(k fhir.Key, have, want int64) error {
	return fmt.Errorf("sqlstore: %s/%s/%s: version %d given, next is %d: %w",
		k.Tenant, k.Type, k.ID, have, want, fhir.ErrVersionConflict)
}

// sensitivityOf is what Put records for v (see fhir.Version.Sensitivity):
// its own labels, or for a deletion those of the version it deletes
// (headSens, the head row's).
func sensitivityOf(v fhir.Version, headSens fhir.Sensitivity) fhir.Sensitivity {
	if v.Deleted {
		return headSens
	}
	return fhir.SensitivityOfJSON(v.JSON)
}

// nonNil makes an empty body an empty (not NULL) column value.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// emptyToNil returns nil for an empty body so both backends agree.
func emptyToNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// callFn runs fn, turning a panic into an error for this caller alone: on
// SQLite fn runs on the shared writer goroutine, which must survive it.
func callFn(fn func(fhir.Tx) error, tx fhir.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlstore: panic in Update fn: %v\n%s", r, debug.Stack())
		}
	}()
	return fn(tx)
}

// exhausted wraps the last retryable error once Update gives up.
func exhausted(err error) error {
	return fmt.Errorf("sqlstore: giving up after %d attempts: %w", maxAttempts, err)
}

// backoff sleeps a small random time growing with attempt, so retrying
// transactions that collided do not collide again in lockstep.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(500*time.Microsecond) << min(attempt, 5)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lockKey hashes parts into a 64-bit advisory lock key. The NUL separators
// keep ("ab","c") and ("a","bc") apart.
func lockKey(parts ...string) int64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int64(h.Sum64())
}
