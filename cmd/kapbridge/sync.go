package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/mappings"
)

// `kapbridge sync`: the outbound workers (run), what waits and what
// failed (status), and dead letters sent again (replay).

const syncUsage = `usage:
  kapbridge sync run [--once] [--connection NAME] [--poll 2s] [--inbound 1m] [--practice NAME] [--threshold n=v]
                             deliver the queue to every EHR connection and take in what the EHRs wrote for the
                             linked patients, every --inbound, until stopped (--once: deliver until nothing is due, poll once)
  kapbridge sync status [--connection NAME]
                             per connection: pending, waiting patients and why, dead letters with the last error,
                             inbound conflicts (what each side holds, how it was resolved)
  kapbridge sync replay NAME send the connection's dead letters again
  kapbridge sync discard NAME [TYPE/ID]
                             drop the connection's dead letters (all, or that of one resource): they are not sent
  kapbridge sync backfill NAME
                             queue every record already in the store for the connection (ehr add does it; run again
                             to resume one interrupted: what is queued stays queued once)
  kapbridge sync prune [--retention 168h]
                             delete what was fully delivered longer ago than the retention (sync run and
                             serve --sync do it hourly); dead letters stay until replayed or discarded
(each takes --store DSN, default $KAPBRIDGE_STORE or ./kapbridge-data/kapbridge.db)`

func quietLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func syncCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{syncUsage}
	}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	sub := args[0]
	fs := flag.NewFlagSet("kapbridge sync "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	store := fs.String("store", env("KAPBRIDGE_STORE", "./kapbridge-data/kapbridge.db"), "store: an SQLite file path, or a postgres://... URL (KAPBRIDGE_STORE)")
	only := fs.String("connection", "", "only this connection")
	once := fs.Bool("once", false, "run: stop when nothing is due (rows waiting for a patient link or a retry stay queued)")
	poll := fs.Duration("poll", 2*time.Second, "run: how often an idle worker looks for new changes")
	inboundEvery := fs.Duration("inbound", defaultInboundInterval, "run: how often each EHR is polled for its changes to the linked patients")
	refresh := fs.Duration("refresh", defaultSyncRefresh, "run: how often the stored connections are read again (one added or removed starts or stops)")
	retention := fs.Duration("retention", defaultSyncRetention, "run, prune: how long what was fully delivered is kept")
	practiceName := fs.String("practice", env("KAPBRIDGE_PRACTICE", "default"), "the practice's namespace, as import and serve use it (KAPBRIDGE_PRACTICE)")
	var lim mappings.Limits
	applyThresholds := thresholdFlags(fs, getenv, &lim)
	pos, err := interleave(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return usageError{err.Error()}
	}
	args1 := map[string][2]int{"run": {0, 0}, "status": {0, 0}, "prune": {0, 0}, "replay": {1, 1}, "backfill": {1, 1}, "discard": {1, 2}}
	if n, ok := args1[sub]; !ok || len(pos) < n[0] || len(pos) > n[1] {
		return usageError{syncUsage}
	}
	if err := applyThresholds(); err != nil {
		return err
	}
	st, ss, err := openSyncStore(ctx, *store)
	if err != nil {
		return err
	}
	defer st.Close()
	conns, err := ss.Connections(ctx)
	if err != nil {
		return err
	}
	if *only != "" || len(pos) > 0 {
		name := *only
		if len(pos) > 0 {
			name = pos[0]
		}
		c, err := ss.Connection(ctx, name)
		if err != nil {
			return connErr(name, err)
		}
		conns = []syncstore.Connection{c}
	}
	switch sub {
	case "run":
		if len(conns) == 0 {
			return errors.New("sync run: no EHR connections (kapbridge ehr add)")
		}
		log := quietLogger(stderr)
		ap := inboundApplier(st, *practiceName, lim, "")
		if err := ap.Check(); err != nil {
			return fmt.Errorf("sync run: %w", err)
		}
		if *once {
			outErr := runOnce(ctx, conns, ss, st, log)
			reps, inErr := pollInboundOnce(ctx, conns, ss, st, ap, log)
			printInbound(stdout, reps)
			// The status of every connection, the failed ones' too,
			// before the failures.
			return errors.Join(syncStatus(ctx, ss, st, conns, stdout), outErr, inErr)
		}
		fmt.Fprintf(stdout, "syncing %d EHR connection(s), polling them for their changes every %s, following connections added or removed; stop with Ctrl-C (leases are released)\n", len(conns), *inboundEvery)
		(&syncSupervisor{ss: ss, st: st, ap: ap, log: log, only: *only, poll: *poll, inbound: *inboundEvery, refresh: *refresh, retention: *retention}).Run(ctx)
		return nil
	case "status":
		return syncStatus(ctx, ss, st, conns, stdout)
	case "replay":
		n, err := ehr.Replay(ctx, ss, conns[0].Name, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "requeued %d dead letter(s) of %s; they go on the next sync\n", n, conns[0].Name)
		return nil
	case "discard":
		ref := ""
		if len(pos) == 2 {
			ref = pos[1]
			if _, _, ok := syncstore.SplitRef(ref); !ok {
				return usageError{"sync discard: " + ref + " is not TYPE/ID\n" + syncUsage}
			}
		}
		n, err := ehr.Discard(ctx, ss, conns[0].Name, ref, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "discarded %d dead letter(s) of %s: they will not be sent\n", n, conns[0].Name)
		return nil
	case "backfill":
		return backfill(ctx, ss, conns[0].Name, stdout)
	case "prune":
		m, d, err := ss.Prune(ctx, time.Now().Add(-*retention))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pruned %d outbox message(s) and %d delivery row(s) fully delivered more than %s ago\n", m, d, *retention)
		return nil
	}
	return usageError{syncUsage}
}

// runOnce drains every connection until nothing is due; a connection
// whose EHR cannot be reached is reported, and the others still run.
func runOnce(ctx context.Context, conns []syncstore.Connection, ss syncstore.Store, st search.Store, log *slog.Logger) error {
	var errs []error
	for _, c := range conns {
		ob, err := ehr.NewOutbound(ctx, c, ss, st, ehr.OutboundConfig{Logger: log})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ob.TargetWait = 10 * time.Millisecond
		for {
			if err := ob.Drain(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
				break
			}
			// Rows waiting a moment for a target written in this run.
			ds, err := ss.Deliveries(ctx, c.Name, syncstore.StatePending, 0)
			if err != nil {
				return err
			}
			due := false
			for _, d := range ds {
				if d.NextAt.Before(time.Now().Add(time.Second)) {
					due = true
				}
			}
			if !due {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// RunWorkers runs one worker per connection until ctx ends: one EHR
// being down (or unreachable at start) delays only its own rows. Each
// worker releases its leases as it stops.
func RunWorkers(ctx context.Context, conns []syncstore.Connection, ss syncstore.Store, st search.Store, poll time.Duration, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				ob, err := ehr.NewOutbound(ctx, c, ss, st, ehr.OutboundConfig{Logger: log})
				if err != nil {
					log.Warn("ehr sync: connection not ready; trying again in 30 s", "connection", c.Name, "error", err)
					select {
					case <-ctx.Done():
					case <-time.After(30 * time.Second):
					}
					continue
				}
				_ = ob.Run(ctx, poll)
			}
		}()
	}
	wg.Wait()
}

// syncStatus prints, per connection, the counts, the patients waiting for
// a link and why, the rows waiting, those held back, and the dead letters
// with their last error.
func syncStatus(ctx context.Context, ss syncstore.Store, st any, conns []syncstore.Connection, stdout io.Writer) error {
	if len(conns) == 0 {
		fmt.Fprintln(stdout, "no EHR connections (kapbridge ehr add)")
		return nil
	}
	for _, c := range conns {
		n, err := ss.Counts(ctx, c.Name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s (%s): %d pending, %d done, %d dead\n", c.Name, c.BaseURL, n[syncstore.StatePending], n[syncstore.StateDone], n[syncstore.StateDead])
		waiting, err := ss.PatientLinks(ctx, c.Name, syncstore.PatientWaiting)
		if err != nil {
			return err
		}
		if len(waiting) > 0 {
			fmt.Fprintf(stdout, "  patients waiting for a link (%d):\n", len(waiting))
			for _, p := range waiting {
				fmt.Fprintf(stdout, "    Patient/%s: %s\n", p.PatientID, p.Reason)
			}
		}
		pending, err := ss.Deliveries(ctx, c.Name, syncstore.StatePending, 0)
		if err != nil {
			return err
		}
		var retrying, waitingRows []syncstore.Delivery
		for _, d := range pending {
			switch {
			case d.Attempts > 0:
				retrying = append(retrying, d)
			case strings.HasPrefix(d.LastError, "waiting for") && !strings.HasPrefix(d.LastError, "waiting for the patient link"):
				waitingRows = append(waitingRows, d)
			}
		}
		if len(waitingRows) > 0 {
			fmt.Fprintf(stdout, "  waiting for another record to be written first (%d):\n", len(waitingRows))
			for _, d := range waitingRows {
				fmt.Fprintf(stdout, "    %s: %s\n", d.Ref(), oneLine(d.LastError, 200))
			}
		}
		if len(retrying) > 0 {
			fmt.Fprintf(stdout, "  retrying (%d):\n", len(retrying))
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			for _, d := range retrying {
				fmt.Fprintf(tw, "    %s\tattempt %d, next %s\t%s\n", d.Ref(), d.Attempts, d.NextAt.Local().Format(time.TimeOnly), oneLine(d.LastError, 160))
			}
			tw.Flush()
		}
		done, err := ss.Deliveries(ctx, c.Name, syncstore.StateDone, 0)
		if err != nil {
			return err
		}
		var held, undeleted []syncstore.Delivery
		for _, d := range done {
			switch {
			case strings.HasPrefix(d.LastError, "held back"):
				held = append(held, d)
			case strings.HasPrefix(d.LastError, ehr.NoteDeletionNotSent):
				undeleted = append(undeleted, d)
			}
		}
		if len(undeleted) > 0 {
			fmt.Fprintf(stdout, "  deletions not sent (%d):\n", len(undeleted))
			for _, d := range undeleted {
				fmt.Fprintf(stdout, "    %s: %s\n", d.Ref(), oneLine(strings.TrimPrefix(d.LastError, ehr.NoteDeletionNotSent+": "), 300))
			}
		}
		if len(held) > 0 {
			fmt.Fprintf(stdout, "  held back by the privacy gate (%d):\n", len(held))
			for _, d := range held {
				fmt.Fprintf(stdout, "    %s: %s\n", d.Ref(), oneLine(strings.TrimPrefix(d.LastError, "held back by the privacy gate: "), 160))
			}
		}
		dead, err := ss.Deliveries(ctx, c.Name, syncstore.StateDead, 0)
		if err != nil {
			return err
		}
		if len(dead) > 0 {
			fmt.Fprintf(stdout, "  dead letters (%d; kapbridge sync replay %s):\n", len(dead), c.Name)
			for _, d := range dead {
				fmt.Fprintf(stdout, "    %s after %d attempt(s): %s\n", d.Ref(), d.Attempts, oneLine(d.LastError, 300))
			}
		}
		if err := inboundConflicts(ctx, st, c.Name, stdout); err != nil {
			return err
		}
		if err := inboundUnused(ctx, st, c.Name, stdout); err != nil {
			return err
		}
	}
	return nil
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// enqueueChanges is the change hook for st: every write enqueues for the
// EHRs in its own transaction, whether or not a connection exists yet (a
// connection added later takes the changes not yet fanned out).
func enqueueChanges(st fhir.Store) func(context.Context, fhir.Tx, fhir.Version) error {
	if _, ok := st.(syncstore.Store); ok {
		return syncstore.Enqueue
	}
	return nil
}
