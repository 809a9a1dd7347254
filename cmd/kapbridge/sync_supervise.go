package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// The long-running sync (serve --sync, sync run) follows the store's
// connections while it runs: every refresh it lists them, starts the
// outbound worker and the inbound poll of a connection added since,
// stops those of one removed (or changed: removed and added again with
// other settings, which start afresh), and prunes what is fully
// delivered once per prune interval. No restart is needed.

// Defaults of the long-running sync.
const (
	defaultSyncRefresh   = 10 * time.Second
	defaultSyncRetention = 7 * 24 * time.Hour
	syncPruneEvery       = time.Hour
)

type syncSupervisor struct {
	ss  syncstore.Store
	st  search.Store
	ap  *records.Applier
	log *slog.Logger
	// only, when set, is the one connection to run.
	only                   string
	poll, inbound, refresh time.Duration
	retention, pruneEvery  time.Duration
	now                    func() time.Time
	running                map[string]*runningConn
	lastPrune              time.Time
}

type runningConn struct {
	conn   syncstore.Connection
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *syncSupervisor) defaults() {
	if s.refresh <= 0 {
		s.refresh = defaultSyncRefresh
	}
	if s.poll <= 0 {
		s.poll = 2 * time.Second
	}
	if s.retention <= 0 {
		s.retention = defaultSyncRetention
	}
	if s.pruneEvery <= 0 {
		s.pruneEvery = syncPruneEvery
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.running == nil {
		s.running = map[string]*runningConn{}
	}
}

// Run follows the connections until ctx ends, then stops every worker
// (each releases its leases) before it returns.
func (s *syncSupervisor) Run(ctx context.Context) {
	s.defaults()
	t := time.NewTicker(s.refresh)
	defer t.Stop()
	for {
		s.follow(ctx)
		s.prune(ctx)
		select {
		case <-ctx.Done():
			for name := range s.running {
				s.stop(name)
			}
			return
		case <-t.C:
		}
	}
}

// follow starts and stops workers to match the stored connections.
func (s *syncSupervisor) follow(ctx context.Context) {
	conns, err := s.ss.Connections(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("ehr sync: the connections could not be listed; the running workers go on", "error", err)
		}
		return
	}
	want := map[string]syncstore.Connection{}
	for _, c := range conns {
		if s.only == "" || c.Name == s.only {
			want[c.Name] = c
		}
	}
	for name, r := range s.running {
		if c, ok := want[name]; !ok || !reflect.DeepEqual(c, r.conn) {
			s.stop(name)
			s.log.Info("ehr sync: connection removed or changed; its workers stopped", "connection", name)
		}
	}
	for name, c := range want {
		if _, ok := s.running[name]; ok {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		r := &runningConn{conn: c, cancel: cancel, done: make(chan struct{})}
		s.running[name] = r
		go func() {
			defer close(r.done)
			in := make(chan struct{})
			go func() {
				defer close(in)
				RunInbound(cctx, []syncstore.Connection{c}, s.ss, s.st, s.ap, s.inbound, s.log)
			}()
			RunWorkers(cctx, []syncstore.Connection{c}, s.ss, s.st, s.poll, s.log)
			<-in
		}()
		s.log.Info("ehr sync: workers started", "connection", name)
	}
}

func (s *syncSupervisor) stop(name string) {
	r := s.running[name]
	r.cancel()
	<-r.done
	delete(s.running, name)
}

// prune drops what is fully delivered and older than the retention, once
// per pruneEvery.
func (s *syncSupervisor) prune(ctx context.Context) {
	if !s.lastPrune.IsZero() && s.now().Sub(s.lastPrune) < s.pruneEvery {
		return
	}
	s.lastPrune = s.now()
	m, d, err := s.ss.Prune(ctx, s.now().Add(-s.retention))
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Warn("ehr sync: pruning the delivered outbox failed; trying again next interval", "error", err)
	case m+d > 0:
		s.log.Info("ehr sync: pruned what was delivered", "outbox_messages", m, "deliveries", d, "older_than", s.retention.String())
	}
}

// backfill queues every record already in the store for connection name.
func backfill(ctx context.Context, ss syncstore.Store, name string, stdout io.Writer) error {
	total := 0
	for after := ""; ; {
		next, n, err := ss.Backfill(ctx, name, after, 1000, time.Now())
		if err != nil {
			return fmt.Errorf("backfill %s (run kapbridge sync backfill %s again to resume): %w", name, name, err)
		}
		total += n
		if next == "" {
			break
		}
		after = next
	}
	fmt.Fprintf(stdout, "queued %d record(s) already in the store for %s; they go on the next sync\n", total, name)
	return nil
}
