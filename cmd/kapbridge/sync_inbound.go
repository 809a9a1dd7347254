package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr"
	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// Inbound half of `kapbridge sync run` and `serve --sync`: each
// connection's linked patients are polled (ehr.Poller.PollLinked) and
// what the EHR wrote is mapped through the same records.Applier the
// import and the practice API use, so the same safety thresholds judge it.

// defaultInboundInterval is how often the long-running commands poll
// each EHR for its changes.
const defaultInboundInterval = time.Minute

// inboundPoller builds the poller of one connection. The EHR's client and
// CapabilityStatement come from the outbound side's constructor, so both
// directions authenticate and read capabilities the same way.
func inboundPoller(ctx context.Context, c syncstore.Connection, ss syncstore.Store, st search.Store, in inboundstore.Store, ap *records.Applier, log *slog.Logger) (*ehr.Poller, error) {
	ob, err := ehr.NewOutbound(ctx, c, ss, st, ehr.OutboundConfig{Logger: log})
	if err != nil {
		return nil, err
	}
	links := ehr.SyncLinks{Store: ss}
	return &ehr.Poller{Connection: c.Name, Tenant: c.Tenant, Client: ob.Client, Caps: ob.Caps, State: in, Links: links, Source: ehr.DefaultSource, Logger: log,
		Sink: &ehr.RecordSink{Connection: c.Name, Tenant: c.Tenant, Applier: ap, Conflicts: in, Links: links, EHRName: c.Name, EHRBase: c.BaseURL}}, nil
}

// pollInboundOnce polls every connection once; a connection that fails is
// reported in the joined error, and the others still run.
func pollInboundOnce(ctx context.Context, conns []syncstore.Connection, ss syncstore.Store, st search.Store, ap *records.Applier, log *slog.Logger) ([]*ehr.InboundReport, error) {
	in, ok := st.(inboundstore.Store)
	if !ok {
		return nil, errors.New("sync: this store keeps no inbound state")
	}
	var reps []*ehr.InboundReport
	var errs []error
	for _, c := range conns {
		if ctx.Err() != nil {
			break
		}
		p, err := inboundPoller(ctx, c, ss, st, in, ap, log)
		if err != nil {
			errs = append(errs, fmt.Errorf("inbound %s: %w", c.Name, err))
			continue
		}
		rs, err := p.PollLinked(ctx, ss, st)
		reps = append(reps, rs...)
		if err != nil {
			errs = append(errs, fmt.Errorf("inbound %s: %w", c.Name, err))
		}
	}
	return reps, errors.Join(errs...)
}

// RunInbound polls each connection every interval until ctx ends, one
// goroutine per connection so a slow or unreachable EHR delays only its
// own poll. What could not be used is logged by remote resource id and
// outcome only (no PHI); `kapbridge sync status` lists the conflicts.
func RunInbound(ctx context.Context, conns []syncstore.Connection, ss syncstore.Store, st search.Store, ap *records.Applier, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = defaultInboundInterval
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			var pl reusedPoller
			for {
				reps, err := pl.poll(ctx, c, ss, st, ap, log)
				if err != nil && ctx.Err() == nil {
					log.Warn("ehr inbound: poll failed; trying again next interval", "connection", c.Name, "error", err)
				}
				for _, rep := range reps {
					for _, it := range rep.Items {
						if it.Outcome == ehr.InboundRejected || it.Outcome == ehr.InboundKept || it.Outcome == ehr.InboundConflict {
							log.Warn("ehr inbound: resource not used as sent", "connection", c.Name, "remote", it.Remote, "outcome", it.Outcome)
						}
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
}

// capsMaxAge is how long a long-running poll keeps one client and
// CapabilityStatement: the write plan's daily refresh (issue 11).
const capsMaxAge = 24 * time.Hour

// reusedPoller keeps one connection's poller between polls, so each poll
// reuses the client's cached token and the CapabilityStatement instead of
// fetching both again every interval. It is built again after a day, and
// after a poll that failed, in case what failed was the client itself
// (a withdrawn token, a changed statement).
type reusedPoller struct {
	p     *ehr.Poller
	built time.Time
	now   func() time.Time // nil: time.Now
}

func (r *reusedPoller) poll(ctx context.Context, c syncstore.Connection, ss syncstore.Store, st search.Store, ap *records.Applier, log *slog.Logger) ([]*ehr.InboundReport, error) {
	now := time.Now
	if r.now != nil {
		now = r.now
	}
	if r.p == nil || now().Sub(r.built) >= capsMaxAge {
		in, ok := st.(inboundstore.Store)
		if !ok {
			return nil, errors.New("sync: this store keeps no inbound state")
		}
		p, err := inboundPoller(ctx, c, ss, st, in, ap, log)
		if err != nil {
			return nil, fmt.Errorf("inbound %s: %w", c.Name, err)
		}
		r.p, r.built = p, now()
	}
	reps, err := r.p.PollLinked(ctx, ss, st)
	if err != nil {
		r.p = nil
		return reps, fmt.Errorf("inbound %s: %w", c.Name, err)
	}
	return reps, nil
}

// printInbound lists what one poll took in: every resource that was not
// an echo or a repeat, with its outcome and, where not applied, why.
func printInbound(w io.Writer, reps []*ehr.InboundReport) {
	n := 0
	for _, rep := range reps {
		n += len(rep.Items)
	}
	fmt.Fprintf(w, "inbound: %d new resource(s) from the EHRs\n", n)
	for _, rep := range reps {
		for _, tp := range rep.Types {
			switch {
			case tp.Err != nil:
				fmt.Fprintf(w, "  %s %s of client %s: poll failed: %s\n", rep.Connection, tp.Type, rep.Patient.Client, oneLine(tp.Err.Error(), 200))
			case tp.Skipped != "":
				fmt.Fprintf(w, "  %s %s of client %s: not polled: %s\n", rep.Connection, tp.Type, rep.Patient.Client, oneLine(tp.Skipped, 200))
			}
		}
		for _, it := range rep.Items {
			line := fmt.Sprintf("  %s %s: %s", rep.Connection, it.Remote, it.Outcome)
			if len(it.Records) > 0 {
				line += fmt.Sprintf(" (%v)", it.Records)
			}
			if it.Detail != "" {
				line += ": " + oneLine(it.Detail, 200)
			}
			fmt.Fprintln(w, line)
		}
	}
}

// inboundConflicts lists a connection's conflicts: what each side holds,
// who owns it and what the gateway did.
func inboundConflicts(ctx context.Context, st any, conn string, w io.Writer) error {
	in, ok := st.(inboundstore.Store)
	if !ok {
		return nil
	}
	cs, err := in.InboundConflicts(ctx, conn)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		return nil
	}
	fmt.Fprintf(w, "  inbound conflicts (%d):\n", len(cs))
	for _, c := range cs {
		fmt.Fprintf(w, "    %s vs %s (%s, owned by the %s): practice holds %q, EHR holds %q; %s\n",
			c.Remote, c.Local, c.Field, c.Owner, oneLine(c.Practice, 120), oneLine(c.EHR, 120), oneLine(c.Resolution, 200))
	}
	return nil
}

// inboundUnused lists what came back from a connection's EHR and could
// not be used: type, remote id and version, and why.
func inboundUnused(ctx context.Context, st any, conn string, w io.Writer) error {
	in, ok := st.(inboundstore.Store)
	if !ok {
		return nil
	}
	us, err := in.InboundUnused(ctx, conn)
	if err != nil || len(us) == 0 {
		return err
	}
	fmt.Fprintf(w, "  inbound resources not used (%d):\n", len(us))
	for _, u := range us {
		ref := u.Type + "/" + u.RemoteID
		if u.VersionID != "" {
			ref += "/_history/" + u.VersionID
		}
		fmt.Fprintf(w, "    %s %s: %s: %s\n", u.Connection, ref, u.Outcome, oneLine(u.Reason, 300))
	}
	return nil
}

// inboundApplier is the applier the inbound poll maps through: the one
// serve builds (practice, safety thresholds and their checks, every write
// enqueued for the EHRs), so what comes back from an EHR is judged as a
// record from the practice would be.
func inboundApplier(st fhir.Store, practice string, lim mappings.Limits, base string) *records.Applier {
	return &records.Applier{Store: st, Mapper: &mappings.Mapper{Practice: practice, Limits: lim}, Writer: write.Writer{Base: base, Changed: enqueueChanges(st)},
		Tenant: fhir.DefaultTenant, Checks: mappings.CheckConfig{Limits: lim}}
}
