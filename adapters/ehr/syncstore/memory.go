package syncstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// Outboxer reads a store's outbox (fhir.Store has it).
type Outboxer interface {
	Outbox(ctx context.Context, tenant string, after int64, limit int) ([]fhir.OutboxMessage, error)
}

// Memory is the sync Store in memory, over a store whose outbox Seq
// order is commit order (memstore's: it numbers messages when it
// commits), so a cursor per tenant cannot skip a late commit. It forgets
// everything when dropped: for tests and the in-memory gateway.
type Memory struct {
	outbox Outboxer

	mu         sync.Mutex
	cursor     map[string]int64 // tenant -> last outbox seq taken
	conns      map[string]Connection
	deliveries []*Delivery
	nextID     int64
	links      map[string]Link
	patients   map[string]PatientLink
}

// NewMemory returns an empty Memory reading outbox.
func NewMemory(outbox Outboxer) *Memory {
	return &Memory{outbox: outbox, cursor: map[string]int64{}, conns: map[string]Connection{},
		links: map[string]Link{}, patients: map[string]PatientLink{}}
}

var _ Store = (*Memory)(nil)

func key(parts ...string) string { return strings.Join(parts, "\x00") }

func (m *Memory) AddConnection(_ context.Context, c Connection) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.conns[c.Name]; ok {
		return ErrExists
	}
	c.Created = Micros(c.Created)
	c.Key = slices.Clone(c.Key)
	c.ClientSecret = slices.Clone(c.ClientSecret)
	m.conns[c.Name] = c
	return nil
}

func (m *Memory) Connection(_ context.Context, name string) (Connection, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.conns[name]
	if !ok {
		return Connection{}, ErrNotFound
	}
	return c, nil
}

func (m *Memory) Connections(context.Context) ([]Connection, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Connection
	for _, c := range m.conns {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Connection) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *Memory) RemoveConnection(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.conns[name]; !ok {
		return ErrNotFound
	}
	delete(m.conns, name)
	m.deliveries = slices.DeleteFunc(m.deliveries, func(d *Delivery) bool { return d.Connection == name })
	for k, l := range m.links {
		if l.Connection == name {
			delete(m.links, k)
		}
	}
	for k, p := range m.patients {
		if p.Connection == name {
			delete(m.patients, k)
		}
	}
	return nil
}

func (m *Memory) Fanout(ctx context.Context, tenant string, limit int, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var conns []string
	for _, c := range m.conns {
		if c.Tenant == tenant {
			conns = append(conns, c.Name)
		}
	}
	if len(conns) == 0 {
		return 0, nil
	}
	msgs, err := m.outbox.Outbox(ctx, tenant, m.cursor[tenant], limit)
	if err != nil {
		return 0, err
	}
	now = Micros(now)
	for _, msg := range msgs {
		m.cursor[tenant] = msg.Seq
		typ, id, ok := SplitRef(msg.Key)
		if msg.Topic != TopicChange || !ok {
			continue
		}
		from := OriginOf(msg.Payload)
		for _, c := range conns {
			if c != from { // taken in from that EHR: it holds it already
				m.renew(c, tenant, typ, id, now)
			}
		}
	}
	return len(msgs), nil
}

func (m *Memory) renew(conn, tenant, typ, id string, now time.Time) {
	for _, d := range m.deliveries {
		if d.Connection == conn && d.Tenant == tenant && d.Type == typ && d.ResourceID == id {
			d.Gen++
			d.State, d.Attempts, d.NextAt, d.Updated = StatePending, 0, now, now
			return
		}
	}
	m.nextID++
	m.deliveries = append(m.deliveries, &Delivery{ID: m.nextID, Connection: conn, Tenant: tenant, Type: typ, ResourceID: id,
		Gen: 1, State: StatePending, NextAt: now, Updated: now})
}

func (m *Memory) Lease(_ context.Context, connection, owner string, limit int, now time.Time, ttl time.Duration) ([]Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now = Micros(now)
	var due []*Delivery
	for _, d := range m.deliveries {
		if d.Connection == connection && d.State == StatePending && !d.NextAt.After(now) && d.LeaseUntil.Before(now) {
			due = append(due, d)
		}
	}
	slices.SortStableFunc(due, func(a, b *Delivery) int { return a.NextAt.Compare(b.NextAt) })
	if limit > 0 && len(due) > limit {
		due = due[:limit]
	}
	out := make([]Delivery, len(due))
	for i, d := range due {
		d.LeaseOwner, d.LeaseUntil = owner, Micros(now.Add(ttl))
		d.Leases++
		out[i] = *d
	}
	return out, nil
}

func (m *Memory) Finish(_ context.Context, d Delivery, owner string, r Result, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.finish(d, owner, r, now)
}

func (m *Memory) FinishAll(_ context.Context, owner string, fs []Finishing, now time.Time) ([]error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := make([]error, len(fs))
	for i, f := range fs {
		if f.Link != nil {
			m.putLink(*f.Link)
		}
		errs[i] = m.finish(f.Delivery, owner, f.Result, now)
	}
	return errs, nil
}

func (m *Memory) finish(d Delivery, owner string, r Result, now time.Time) error {
	now = Micros(now)
	for _, cur := range m.deliveries {
		if cur.ID != d.ID {
			continue
		}
		if cur.LeaseOwner != owner || owner == "" {
			return ErrLeaseLost
		}
		cur.LeaseOwner, cur.LeaseUntil, cur.Updated = "", time.Time{}, now
		cur.LastError, cur.Outcome = r.Error, slices.Clone(r.Outcome)
		if r.State == StateDone {
			cur.Leases = 0
		}
		if cur.Gen != d.Gen {
			cur.State, cur.Attempts, cur.NextAt = StatePending, 0, now
			return nil
		}
		cur.State = r.State
		if r.Attempted {
			cur.Attempts++
		}
		if r.State == StatePending {
			cur.NextAt = Micros(r.NextAt)
		}
		return nil
	}
	return ErrLeaseLost
}

func (m *Memory) Release(_ context.Context, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.deliveries {
		if d.LeaseOwner == owner {
			d.LeaseOwner, d.LeaseUntil = "", time.Time{}
		}
	}
	return nil
}

func (m *Memory) Replay(_ context.Context, connection string, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, d := range m.deliveries {
		if d.Connection == connection && d.State == StateDead {
			d.State, d.Attempts, d.NextAt, d.Updated = StatePending, 0, Micros(now), Micros(now)
			n++
		}
	}
	return n, nil
}

func (m *Memory) Wake(_ context.Context, connection string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.deliveries {
		if d.Connection == connection && d.State == StatePending && d.NextAt.After(now) {
			d.NextAt = Micros(now)
		}
	}
	return nil
}

func (m *Memory) Deliveries(_ context.Context, connection, state string, limit int) ([]Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Delivery
	for _, d := range m.deliveries {
		if d.Connection == connection && (state == "" || d.State == state) {
			c := *d
			c.Outcome = slices.Clone(d.Outcome)
			out = append(out, c)
			if limit > 0 && len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

func (m *Memory) Delivery(_ context.Context, connection, tenant, typ, id string) (Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.deliveries {
		if d.Connection == connection && d.Tenant == tenant && d.Type == typ && d.ResourceID == id {
			c := *d
			c.Outcome = slices.Clone(d.Outcome)
			return c, nil
		}
	}
	return Delivery{}, ErrNotFound
}

func (m *Memory) Counts(_ context.Context, connection string) (map[string]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, d := range m.deliveries {
		if d.Connection == connection {
			out[d.State]++
		}
	}
	return out, nil
}

func (m *Memory) Link(_ context.Context, connection, tenant, srcType, srcID, part string) (Link, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.links[key(connection, tenant, srcType, srcID, part)]
	if !ok {
		return Link{}, ErrNotFound
	}
	return l, nil
}

var _ LinkBatcher = (*Memory)(nil)

// LinksOf implements LinkBatcher.
func (m *Memory) LinksOf(_ context.Context, connection string, sources []Source) ([]Link, error) {
	want := make(map[string]bool, len(sources))
	for _, src := range sources {
		want[key(connection, src.Tenant, src.Type, src.ID)] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Link
	for _, l := range m.links {
		if want[key(l.Connection, l.Tenant, l.SourceType, l.SourceID)] {
			out = append(out, l)
		}
	}
	return out, nil
}

func (m *Memory) PutLink(_ context.Context, l Link) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.putLink(l)
	return nil
}

func (m *Memory) putLink(l Link) {
	l.Updated = Micros(l.Updated)
	l.Body = slices.Clone(l.Body)
	m.links[key(l.Connection, l.Tenant, l.SourceType, l.SourceID, l.Part)] = l
}

func (m *Memory) LinkByRemote(_ context.Context, connection, remoteType, remoteID string) (Link, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.links {
		if l.Connection == connection && l.RemoteType == remoteType && l.RemoteID == remoteID {
			return l, nil
		}
	}
	return Link{}, ErrNotFound
}

func (m *Memory) Links(_ context.Context, connection string) ([]Link, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Link
	for _, l := range m.links {
		if l.Connection == connection {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Link) int {
		return strings.Compare(key(a.Tenant, a.SourceType, a.SourceID, a.Part), key(b.Tenant, b.SourceType, b.SourceID, b.Part))
	})
	return out, nil
}

func (m *Memory) PatientLink(_ context.Context, connection, tenant, patientID string) (PatientLink, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.patients[key(connection, tenant, patientID)]
	if !ok {
		return PatientLink{}, ErrNotFound
	}
	return p, nil
}

func (m *Memory) PutPatientLink(_ context.Context, l PatientLink) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l.Updated = Micros(l.Updated)
	m.patients[key(l.Connection, l.Tenant, l.PatientID)] = l
	return nil
}

func (m *Memory) PatientLinks(_ context.Context, connection, state string) ([]PatientLink, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []PatientLink
	for _, p := range m.patients {
		if p.Connection == connection && (state == "" || p.State == state) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b PatientLink) int { return strings.Compare(a.Tenant+a.PatientID, b.Tenant+b.PatientID) })
	return out, nil
}

// Backfill lists the live resources through the store's history (memory
// holds no separate list of heads): newest first, so a resource's first
// version seen is its current one.
func (m *Memory) Backfill(ctx context.Context, connection, after string, limit int, now time.Time) (string, int, error) {
	m.mu.Lock()
	c, ok := m.conns[connection]
	m.mu.Unlock()
	if !ok {
		return "", 0, ErrNotFound
	}
	hp, ok := m.outbox.(search.HistoryPager)
	if !ok {
		return "", 0, errors.New("syncstore: memory backfill needs a store that pages its history")
	}
	live := map[string]bool{}
	var cur *search.Cursor
	for {
		r, err := hp.HistoryPage(ctx, c.Tenant, search.HistoryQuery{Count: 1000, Cursor: cur})
		if err != nil {
			return "", 0, err
		}
		for _, v := range r.Versions {
			ref := v.Type + "/" + v.ID
			if _, seen := live[ref]; !seen {
				live[ref] = !v.Deleted
			}
		}
		if cur = r.Next; cur == nil {
			break
		}
	}
	var refs []string
	for ref, ok := range live {
		if ok && ref > after {
			refs = append(refs, ref)
		}
	}
	slices.Sort(refs)
	next := ""
	if limit > 0 && len(refs) > limit {
		refs, next = refs[:limit], refs[limit-1]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now = Micros(now)
	added := 0
	for _, ref := range refs {
		typ, id, _ := SplitRef(ref)
		if slices.ContainsFunc(m.deliveries, func(d *Delivery) bool {
			return d.Connection == connection && d.Tenant == c.Tenant && d.Type == typ && d.ResourceID == id
		}) {
			continue
		}
		m.nextID++
		m.deliveries = append(m.deliveries, &Delivery{ID: m.nextID, Connection: connection, Tenant: c.Tenant, Type: typ, ResourceID: id,
			Gen: 1, State: StatePending, NextAt: now, Updated: now})
		added++
	}
	return next, added, nil
}

// Prune drops the done deliveries with no note; the outbox is the
// memory store's own (its messages are numbered and read by cursor, and
// go with the process).
func (m *Memory) Prune(_ context.Context, before time.Time) (int, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.deliveries)
	m.deliveries = slices.DeleteFunc(m.deliveries, func(d *Delivery) bool {
		return d.State == StateDone && d.LastError == "" && d.LeaseOwner == "" && d.Updated.Before(before)
	})
	return 0, n - len(m.deliveries), nil
}

func (m *Memory) Discard(_ context.Context, connection, ref string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.deliveries)
	m.deliveries = slices.DeleteFunc(m.deliveries, func(d *Delivery) bool {
		return d.Connection == connection && d.State == StateDead && (ref == "" || d.Ref() == ref)
	})
	return n - len(m.deliveries), nil
}
