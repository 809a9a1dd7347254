package audit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// Trail writes audit records to a store, in batches, off the request
// path. Record queues (waiting when the queue is full: an event is never
// dropped to keep up); a goroutine writes what is queued, up to MaxBatch
// events per transaction. Close writes what is left.
type Trail struct {
	store  fhir.Store
	tenant func(string) string
	newID  func() string
	writer write.Writer
	log    *slog.Logger
	via    bool

	queue   chan item
	done    chan struct{}
	closing sync.Once
	mu      sync.RWMutex
	closed  bool

	// Failed counts events the store refused after retries (each one
	// logged with its request id).
	failed int64
}

// TrailConfig configures NewTrail.
type TrailConfig struct {
	Store fhir.Store
	// Tenant maps a record's practice to the tenant its events go to
	// (auth.AuditTenant); "" is given as fhir.DefaultTenant.
	Tenant func(practice string) string
	NewID  func() string
	// Base is the server's base URL, for the index of an event written
	// through write.Writer.
	Base   string
	Logger *slog.Logger
	// ViaWriter writes every event as the REST API writes a resource
	// (parsed back from JSON, stamped, indexed by evaluating each
	// AuditEvent search parameter): the general path, slower, which the
	// direct one (Record.Stored, Record.Index) is tested against and
	// measured beside (BenchmarkReadByIDAuth). Records the direct path
	// does not handle take the general one anyway.
	ViaWriter bool
	// Queue is how many records wait at most; default 4096.
	Queue int
}

// item is a queued record, or a marker whose channel is closed once
// everything queued before it is written.
type item struct {
	r     Record
	flush chan struct{}
}

// MaxBatch is the most events written in one transaction.
const MaxBatch = 256

// NewTrail starts a Trail.
func NewTrail(cfg TrailConfig) *Trail {
	t := &Trail{store: cfg.Store, tenant: cfg.Tenant, newID: cfg.NewID, writer: write.Writer{Base: cfg.Base}, log: cfg.Logger, via: cfg.ViaWriter,
		queue: make(chan item, max(cfg.Queue, 1)), done: make(chan struct{})}
	if cfg.Queue <= 0 {
		t.queue = make(chan item, 4096)
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	if t.tenant == nil {
		t.tenant = func(p string) string { return p }
	}
	go t.run()
	return t
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: trail closed")

// Record queues r, waiting while the queue is full.
func (t *Trail) Record(r Record) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		t.log.Error("audit record after the trail closed: not written", "request_id", r.RequestID)
		return ErrClosed
	}
	t.queue <- item{r: r}
	return nil
}

// Close writes every queued record and stops.
func (t *Trail) Close() error {
	t.closing.Do(func() {
		t.mu.Lock()
		t.closed = true
		close(t.queue)
		t.mu.Unlock()
		<-t.done
	})
	return nil
}

// Sync waits until every record queued before it is written.
func (t *Trail) Sync() {
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return
	}
	done := make(chan struct{})
	t.queue <- item{flush: done}
	t.mu.RUnlock()
	<-done
}

func (t *Trail) run() {
	defer close(t.done)
	batch := make([]Record, 0, MaxBatch)
	var flushes []chan struct{}
	add := func(it item) {
		if it.flush != nil {
			flushes = append(flushes, it.flush)
		} else {
			batch = append(batch, it.r)
		}
	}
	for it := range t.queue {
		batch, flushes = batch[:0], flushes[:0]
		add(it)
	more:
		for len(batch) < MaxBatch {
			select {
			case it, ok := <-t.queue:
				if !ok {
					break more
				}
				add(it)
			default:
				break more
			}
		}
		if len(batch) > 0 {
			t.write(batch)
		}
		for _, f := range flushes {
			close(f)
		}
	}
}

// write stores a batch in one transaction, retrying a failed one three
// times, then one event at a time so one bad event cannot lose the others.
func (t *Trail) write(batch []Record) {
	ctx := context.Background()
	ids := make([]string, len(batch))
	for i := range ids {
		ids[i] = t.newID()
	}
	put := func(rs []Record, ids []string) error {
		return t.store.Update(ctx, func(tx fhir.Tx) error {
			ts := time.Now().UTC().Truncate(time.Microsecond)
			for i, r := range rs {
				tenant := r.Tenant
				if tenant == "" {
					tenant = fhir.DefaultTenant
				}
				k := fhir.Key{Tenant: t.tenant(tenant), Type: "AuditEvent", ID: ids[i]}
				// The direct path: the event as stored and its index, made
				// from the record (index.go), as the writer would make them.
				if idx, ok := r.Index(ids[i], ts); ok && !t.via {
					v := fhir.Version{Key: k, VersionID: 1, LastUpdated: ts, JSON: r.Stored(ids[i], ts)}
					if err := tx.Put(ctx, v, fhir.Index{Entries: idx}); err != nil {
						return err
					}
					continue
				}
				res, err := fhir.ParseJSON(r.JSON(), fhir.StoredLimits)
				if err != nil {
					return err
				}
				if _, err := t.writer.Put(ctx, tx, k, fhir.Version{Key: k}, res); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var err error
	for try := 0; try < 3; try++ {
		if err = put(batch, ids); err == nil {
			return
		}
		time.Sleep(time.Duration(try+1) * 50 * time.Millisecond)
	}
	for i := range batch {
		if err := put(batch[i:i+1], ids[i:i+1]); err != nil {
			t.failed++
			t.log.Error("audit event not written", "request_id", batch[i].RequestID, "err", err)
		}
	}
}
