package practice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/mappings/records"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// Idempotency-Key, as the IETF httpapi draft describes it, per tenant
// for recordstore.IdempotencyTTL (24 h):
//
//   - The fingerprint is the SHA-256 of the request body. The same key
//     with the same body gets the stored answer (status and bytes) and an
//     Idempotent-Replayed: true header, and nothing is written again; the
//     same key with another body is a 422 naming the key.
//   - Concurrent requests with one key: the first runs; the others wait
//     for it (up to HTTPConfig.IdempotencyWait, default 30 s, or until
//     they give up) and then get its stored answer; one still waiting
//     after that gets 409 and may retry. The lock is per process: two
//     gateway processes over one PostgreSQL store may both run a
//     duplicate, which is harmless because applying a record twice is
//     "unchanged" (no new FHIR version); the answer stored last is the
//     one replayed from then on.
//   - Every record of a request is applied in its own store transaction
//     (a bad record must not roll back the good ones), so the answer
//     cannot commit with all of them: it is stored in its own transaction
//     right after the last record. A crash in between loses only the
//     stored answer; a retry re-applies, and finds the records unchanged.
//   - Answers of status 500 and above are not stored: the request did not
//     finish, and a retry should run it again.

// keyLocks serialises requests that share an idempotency key within this
// process.
type keyLocks struct {
	mu   sync.Mutex
	busy map[string]chan struct{} // closed when the holder is done
}

func newKeyLocks() *keyLocks { return &keyLocks{busy: map[string]chan struct{}{}} }

var errKeyBusy = errors.New("practice: idempotency key held by a running request")

// lock takes k, waiting up to wait for a holder to finish. The returned
// func releases it.
func (l *keyLocks) lock(ctx context.Context, k string, wait time.Duration) (func(), error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		l.mu.Lock()
		done, held := l.busy[k]
		if !held {
			ch := make(chan struct{})
			l.busy[k] = ch
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.busy, k)
				l.mu.Unlock()
				close(ch)
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-done:
		case <-timer.C:
			return nil, errKeyBusy
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// idempotent runs run at most once per (tenant, key) within the TTL and
// returns its answer, or the stored answer of an earlier run (replayed).
// A returned error is an *apiError for the caller's mistakes, anything
// else a storage failure.
func (a *API) idempotent(ctx context.Context, ap *records.Applier, key string, body []byte, run func() (int, []byte, error)) (status int, resp []byte, replayed bool, err error) {
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	// Keys are per practice: two practices may pick the same one.
	unlock, err := a.keys.lock(ctx, tenantName(ap)+"\x00"+key, a.wait)
	if errors.Is(err, errKeyBusy) {
		return 0, nil, false, &apiError{Code: codeIdempotencyPending,
			Message: fmt.Sprintf("a request with Idempotency-Key %q is still running; retry later for its answer", key)}
	}
	if err != nil {
		return 0, nil, false, err
	}
	defer unlock()

	row, found, err := ap.Answer(ctx, key)
	if err != nil {
		return 0, nil, false, fmt.Errorf("read idempotency key: %w", err)
	}
	now := a.now().UTC()
	if found && now.Sub(row.Created) < recordstore.IdempotencyTTL {
		if row.RequestHash != hash {
			return 0, nil, false, &apiError{Code: codeIdempotencyReused,
				Message: fmt.Sprintf("Idempotency-Key %q was used within the last %s for a different request body; use a new key for a new request", key, recordstore.IdempotencyTTL),
				Details: []any{key}}
		}
		return row.Status, row.Response, true, nil
	}
	status, resp, err = run()
	if err != nil || status >= 500 {
		return status, resp, false, err
	}
	stored := recordstore.IdempotencyRow{Key: key, RequestHash: hash, Status: status, Response: resp, Created: now}
	if perr := ap.KeepAnswer(ctx, stored); perr != nil {
		// The records are written and the client gets their answer; only
		// a replay is lost, and a retry finds the records unchanged.
		a.log.WarnContext(ctx, "practice: storing the idempotent answer failed", "error", perr)
	}
	return status, resp, false, nil
}
