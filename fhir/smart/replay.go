package smart

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ReplayCache remembers the jti of every accepted client assertion for as
// long as the assertion could still be presented.
type ReplayCache interface {
	// Remember records id as used until until. It returns ErrReplayed when
	// id is already recorded and its time has not passed; any other error
	// (the cache is full or unreachable) must fail the request closed.
	Remember(ctx context.Context, id string, until time.Time) error
}

// Errors of a ReplayCache.
var (
	ErrReplayed        = errors.New("smart: assertion id already used")
	ErrReplayCacheFull = errors.New("smart: replay cache full")
)

// DefaultReplayEntries bounds a MemoryReplayCache: at most one assertion
// every 300 µs, sustained over the five minutes each is remembered.
const DefaultReplayEntries = 1 << 20

// MemoryReplayCache is a ReplayCache in this process's memory. It
// forgets everything on restart and is not shared between replicas: an
// assertion replayed within its five minutes to another process or after a
// restart is accepted. The gateway's own token endpoint needs a persistent
// cache in its store (issue 14); this one serves tests, the sandbox, and a
// single process. The zero value is ready to use.
type MemoryReplayCache struct {
	Now        func() time.Time // nil means time.Now
	MaxEntries int              // zero means DefaultReplayEntries

	mu        sync.Mutex
	seen      map[string]time.Time
	nextSweep time.Time
}

// Remember implements ReplayCache. Expired entries are swept at most every
// 10 s, or when the cache is full; when it is still full, it refuses
// (ErrReplayCacheFull) rather than forget an id that is still live.
func (c *MemoryReplayCache) Remember(_ context.Context, id string, until time.Time) error {
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	max := c.MaxEntries
	if max <= 0 {
		max = DefaultReplayEntries
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = make(map[string]time.Time)
	}
	if t, ok := c.seen[id]; ok && now.Before(t) {
		return ErrReplayed
	}
	if len(c.seen) >= max || !now.Before(c.nextSweep) {
		for k, t := range c.seen {
			if !now.Before(t) {
				delete(c.seen, k)
			}
		}
		c.nextSweep = now.Add(10 * time.Second)
		if len(c.seen) >= max {
			return ErrReplayCacheFull
		}
	}
	c.seen[id] = until
	return nil
}

// Len is how many ids are remembered, expired ones not yet swept included.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
