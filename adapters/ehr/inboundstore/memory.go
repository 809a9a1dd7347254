package inboundstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is the Store in memory: for tests and the in-memory gateway.
// Its zero value is ready to use.
type Memory struct {
	// Now stamps conflicts; nil means time.Now.
	Now func() time.Time

	mu        sync.Mutex
	cursors   map[string]Cursor
	taken     map[string]Taken
	conflicts []Conflict
}

var _ Store = (*Memory)(nil)

func mkey(parts ...string) string { return strings.Join(parts, "\x00") }

// Micros truncates t to the microsecond and puts it in UTC: what the SQL
// stores keep, so every implementation returns the same times.
func Micros(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

func (m *Memory) InboundCursor(_ context.Context, connection, tenant, patient, typ string) (Cursor, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.cursors[mkey(connection, tenant, patient, typ)]
	return c, ok, nil
}

func (m *Memory) PutInboundCursor(_ context.Context, c Cursor) error {
	if err := checkCursor(c); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cursors == nil {
		m.cursors = map[string]Cursor{}
	}
	c.Since, c.Polled = Micros(c.Since), Micros(c.Polled)
	m.cursors[mkey(c.Connection, c.Tenant, c.Patient, c.Type)] = c
	return nil
}

func (m *Memory) InboundTaken(_ context.Context, connection, typ, remoteID string) (Taken, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.taken[mkey(connection, typ, remoteID)]
	return t, ok, nil
}

func (m *Memory) PutInboundTaken(_ context.Context, t Taken) error {
	if err := checkTaken(t); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.taken == nil {
		m.taken = map[string]Taken{}
	}
	t.At = Micros(t.At)
	m.taken[mkey(t.Connection, t.Type, t.RemoteID)] = t
	return nil
}

func (m *Memory) InboundUnused(_ context.Context, connection string) ([]Taken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Taken
	for _, t := range m.taken {
		if (connection == "" || t.Connection == connection) && (t.Outcome == OutcomeKept || t.Outcome == OutcomeRejected) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b Taken) int {
		return strings.Compare(mkey(a.Connection, a.Type, a.RemoteID), mkey(b.Connection, b.Type, b.RemoteID))
	})
	return out, nil
}

func (m *Memory) AddInboundConflict(_ context.Context, c Conflict) (Conflict, error) {
	if err := checkConflict(c); err != nil {
		return Conflict{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, old := range m.conflicts {
		if old.Connection == c.Connection && old.Tenant == c.Tenant && old.Remote == c.Remote && old.Field == c.Field {
			return old, nil
		}
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	c.ID = int64(len(m.conflicts) + 1)
	c.At = Micros(now())
	m.conflicts = append(m.conflicts, c)
	return c, nil
}

func (m *Memory) InboundConflicts(_ context.Context, connection string) ([]Conflict, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Conflict
	for _, c := range m.conflicts {
		if connection == "" || c.Connection == connection {
			out = append(out, c)
		}
	}
	return out, nil
}
