package records

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// decodedCache keeps decoded records by hash: looking up a session's
// course and client for every observation would otherwise decode the same
// JSON thousands of times. Entries are immutable (keyed by content), so
// sharing them between transactions is safe.
type decodedCache struct {
	mu sync.Mutex
	m  map[string]mappings.Record
}

const decodedCacheMax = 4096

func (c *decodedCache) decode(row recordstore.Row) (mappings.Record, error) {
	key := string(row.Kind) + "\x00" + row.Hash
	c.mu.Lock()
	r, ok := c.m[key]
	c.mu.Unlock()
	if ok && row.Hash != "" {
		return r, nil
	}
	r, err := decodeStored(mappings.Kind(row.Kind), row.Body)
	if err != nil {
		return nil, fmt.Errorf("stored record %s/%s: %w", row.Kind, row.ID, err)
	}
	if row.Hash == "" {
		return r, nil
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= decodedCacheMax {
		c.m = map[string]mappings.Record{} // crude but bounded
	}
	c.m[key] = r
	c.mu.Unlock()
	return r, nil
}

// decodeStored decodes a canonical body the gateway wrote itself (already
// checked by mappings.Decode when it arrived), so plain encoding/json
// suffices.
func decodeStored(kind mappings.Kind, body []byte) (mappings.Record, error) {
	r, ok := mappings.NewRecord(kind)
	if !ok {
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	if err := json.Unmarshal(body, r); err != nil {
		return nil, err
	}
	return r, nil
}
