package ehr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/consent"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/smart"
	"github.com/kapbridge/kapbridge/mappings"
)

// The outbound worker: it drains one connection's deliveries. For each
// leased row it reads the resource's current version, asks the write
// plan how that artifact lands on this EHR, runs the privacy gate
// (fhir/consent) before anything leaves, links the patient (never
// guessed), builds the representation, rewrites references to what the
// EHR holds (waiting for a target not yet written), stamps meta.source
// and the sync tag, skips content whose hash the link table already
// holds, and writes by the plan's method. Failures back off and, after
// MaxAttempts, are dead-lettered with the EHR's last OperationOutcome.

// deadSuffix marks a waited-for target that is dead-lettered.
const deadSuffix = " (dead)"

// Replay requeues connection's dead letters and wakes the rows that
// waited for them; it returns how many were dead.
func Replay(ctx context.Context, s syncstore.Store, connection string, now time.Time) (int, error) {
	n, err := s.Replay(ctx, connection, now)
	if err != nil {
		return 0, err
	}
	return n, s.Wake(ctx, connection, now)
}

// Discard drops connection's dead letters (ref "Type/id", or all when
// ""), so they are never sent, and wakes the rows that wait for them:
// such a row otherwise waits PatientWait for a replay that will not come,
// and then goes without its reference to the discarded target anyway.
func Discard(ctx context.Context, s syncstore.Store, connection, ref string, now time.Time) (int, error) {
	n, err := s.Discard(ctx, connection, ref)
	if err != nil || n == 0 {
		return n, err
	}
	return n, s.Wake(ctx, connection, now)
}

// Stamps on everything written, so inbound sync knows its own echoes.
const (
	// SyncTagSystem|SyncTagCode is the meta.tag of every resource kapbridge
	// writes to an EHR.
	SyncTagSystem = "http://kapbridge.org/fhir/CodeSystem/sync"
	SyncTagCode   = "kapbridge-outbound"
	// DefaultSource prefixes meta.source: SOURCE#tenant/Type/id/_history/vid.
	DefaultSource = "urn:kapbridge"
)

// Outbound delivers one connection's rows. Build it with NewOutbound (or
// fill it by hand in tests); zero fields take the documented defaults.
type Outbound struct {
	Conn   syncstore.Connection
	Sync   syncstore.Store
	Store  search.Store // the gateway's resources
	Client *Client
	Plan   *WritePlan
	Caps   *Capabilities
	// Owner names this worker's leases; default a random id.
	Owner string
	// Source prefixes meta.source; default DefaultSource.
	Source string
	// MaxAttempts before a row is dead-lettered; default 8.
	MaxAttempts int
	// Backoff is the wait after the n-th failed attempt; default 2^n s
	// capped at 10 min, with jitter.
	Backoff func(n int) time.Duration
	// LeaseTTL: how long a lease holds if the worker dies; default 2 min.
	LeaseTTL time.Duration
	// Batch: rows leased at once; default 50. Parallel: rows of one
	// batch delivered at once; default 4.
	Batch, Parallel int
	// Single: never group creates into batch or transaction Bundles,
	// even where the EHR declares them (one request per write).
	Single bool
	// TargetWait: how soon a row waiting for a referenced resource to be
	// written is tried again; default 1 s. PatientWait: the same for a
	// patient not linked; default 10 min (ehr link wakes it at once).
	TargetWait, PatientWait time.Duration
	Now                     func() time.Time
	Logger                  *slog.Logger

	// carried: rows leased while the last round's Bundle was out, for
	// the next round; recording: that Bundle's results being recorded
	// meanwhile (runRound).
	carried   []syncstore.Delivery
	recording *flight

	// deadWaits are the dead-lettered targets ("tenant\x00Type/id") that
	// rows of this worker were left waiting for (PatientWait): each round
	// looks at them first and wakes the waiting rows once one is no
	// longer dead, whatever revived it (a replay, a discard, a new change
	// that went through), instead of leaving them the long wait.
	deadMu    sync.Mutex
	deadWaits map[string]bool

	// The plan is read again daily, and after a 405 or 404 that says the
	// EHR's statement may have changed (replan).
	planned time.Time
	replan  atomic.Bool
}

// PlanLifetime is how long a CapabilityStatement is trusted.
const PlanLifetime = 24 * time.Hour

// refreshPlan reads the statement again when due; a failure keeps the old
// plan (the next round tries again).
func (o *Outbound) refreshPlan(ctx context.Context) {
	if o.planned.IsZero() {
		o.planned = o.Now()
	}
	if !o.replan.Load() && o.Now().Sub(o.planned) < PlanLifetime {
		return
	}
	caps, err := FetchCapabilities(ctx, o.Client)
	if err != nil {
		o.Logger.Warn("ehr sync: the CapabilityStatement could not be read again; keeping the plan", "connection", o.Conn.Name, "error", err)
		return
	}
	o.Caps, o.Plan, o.planned = caps, PlanWrites(caps), o.Now()
	o.replan.Store(false)
}

// OutboundConfig is what NewOutbound needs besides the connection; zero
// fields are defaults.
type OutboundConfig struct {
	Transport http.RoundTripper // nil: a clone of http.DefaultTransport
	Policy    RetryPolicy       // of each request (the row's own backoff is Outbound.Backoff)
	Logger    *slog.Logger      // nil: slog.Default()
}

// NewOutbound builds the worker for conn: a token source from its key,
// a Client, and the plan from the EHR's CapabilityStatement (GET
// metadata).
func NewOutbound(ctx context.Context, conn syncstore.Connection, sync syncstore.Store, store search.Store, cfg OutboundConfig) (*Outbound, error) {
	client, err := ConnectionClient(conn, cfg)
	if err != nil {
		return nil, err
	}
	caps, err := FetchCapabilities(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("ehr: connection %s: read the CapabilityStatement: %w", conn.Name, err)
	}
	return &Outbound{Conn: conn, Sync: sync, Store: store, Client: client, Caps: caps, Plan: PlanWrites(caps), Logger: cfg.Logger}, nil
}

// ConnectionClient is a Client for conn, authenticating with its key.
func ConnectionClient(conn syncstore.Connection, cfg OutboundConfig) (*Client, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	tc := TokenConfig{FHIRBase: conn.BaseURL, TokenURL: conn.TokenURL, ClientID: conn.ClientID,
		Scope: conn.Scopes, Transport: cfg.Transport, Logger: log, Policy: cfg.Policy}
	if len(conn.ClientSecret) > 0 {
		tc.ClientSecret = string(conn.ClientSecret)
	} else {
		pemData := conn.Key
		if len(pemData) == 0 {
			var err error
			if pemData, err = os.ReadFile(conn.KeyFile); err != nil {
				return nil, fmt.Errorf("ehr: connection %s: key: %w", conn.Name, err)
			}
		}
		key, err := smart.ParsePrivateKeyPEM(pemData)
		if err != nil {
			return nil, fmt.Errorf("ehr: connection %s: key %s: %w", conn.Name, conn.KeyFile, err)
		}
		tc.Key = key
	}
	ts, err := NewTokenSource(tc)
	if err != nil {
		return nil, fmt.Errorf("ehr: connection %s: %w", conn.Name, err)
	}
	return NewClient(Config{BaseURL: conn.BaseURL, Tokens: ts, Transport: cfg.Transport, Logger: log, Policy: cfg.Policy})
}

// FetchCapabilities reads the EHR's CapabilityStatement (GET metadata).
func FetchCapabilities(ctx context.Context, c *Client) (*Capabilities, error) {
	resp, err := c.Do(ctx, &Request{Method: http.MethodGet, URL: "metadata"})
	if err != nil {
		return nil, err
	}
	return ReadCapabilities(resp.Body)
}

func (o *Outbound) defaults() {
	if o.Owner == "" {
		o.Owner = "worker-" + smart.NewID()
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.Backoff == nil {
		o.Backoff = func(n int) time.Duration {
			d := time.Duration(1<<min(n, 10)) * time.Second
			d = min(d, 10*time.Minute)
			return d/2 + rand.N(d/2+1)
		}
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 2 * time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 50
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.TargetWait <= 0 {
		o.TargetWait = time.Second
	}
	if o.PatientWait <= 0 {
		o.PatientWait = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// RunOnce fans new changes out, leases one batch and delivers it; it
// returns how many rows it handled.
func (o *Outbound) RunOnce(ctx context.Context) (int, error) {
	o.defaults()
	return o.runRound(ctx, false)
}

// runRound is RunOnce. With carry (Drain and Run, which go on to the next
// round anyway) the round overlaps its store work with the EHR's: while
// its last Bundle is out, the next round's rows are leased (o.carried),
// and that Bundle's results are recorded (o.recording) while the next
// round is prepared and sent (flushBundle). Whoever stops carrying waits
// for the recording (waitRecording) and gives the carried rows back
// (unleaseCarried, or Release).
func (o *Outbound) runRound(ctx context.Context, carry bool) (int, error) {
	o.refreshPlan(ctx)
	for {
		n, err := o.Sync.Fanout(ctx, o.Conn.Tenant, 1000, o.Now())
		if err != nil {
			return 0, err
		}
		if n == 0 {
			break
		}
	}
	if err := o.checkDeadWaits(ctx); err != nil {
		return 0, err
	}
	ds := o.carried
	o.carried = nil
	if len(ds) == 0 {
		var err error
		if ds, err = o.Sync.Lease(ctx, o.Conn.Name, o.Owner, o.Batch, o.Now(), o.LeaseTTL); err != nil {
			return 0, err
		}
	}
	// Targets before what refers to them, so fewer rows wait: the batch
	// goes by rank, the rows of one rank Parallel at a time (an EHR's
	// latency, not the gateway, bounds a single row).
	slices.SortStableFunc(ds, func(a, b syncstore.Delivery) int { return typeRank(a.Type) - typeRank(b.Type) })
	bundle := o.bundleType()
	rc := o.newRound(ctx, ds)
	rc.recording = o.recording
	var (
		mu   sync.Mutex
		ferr error
	)
	for start := 0; start < len(ds); {
		end := start
		for end < len(ds) && typeRank(ds[end].Type) == typeRank(ds[start].Type) {
			end++
		}
		var (
			wg     sync.WaitGroup
			staged []*stagedWrite
		)
		sem := make(chan struct{}, o.Parallel)
		for _, d := range ds[start:end] {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				r, st := o.deliver(ctx, rc, d, bundle != "")
				if ctx.Err() != nil {
					return // stopping: the row is left to Release, not half-recorded
				}
				if st != nil {
					mu.Lock()
					staged = append(staged, st)
					mu.Unlock()
					return
				}
				err := o.Sync.Finish(context.WithoutCancel(ctx), d, o.Owner, r, o.Now())
				if target, ok := deadTargetOf(r); ok && err == nil {
					o.watchDead(d.Tenant, target)
					err = o.wakeIfRevived(context.WithoutCancel(ctx), d, target)
				}
				if err != nil && !errors.Is(err, syncstore.ErrLeaseLost) {
					mu.Lock()
					ferr = errors.Join(ferr, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		// The creates staged by this rank go in Bundles before the next
		// rank, whose rows may refer to them.
		if err := o.flushBundles(ctx, bundle, staged, carry && end == len(ds)); err != nil {
			ferr = errors.Join(ferr, err)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if ferr != nil {
			return 0, ferr
		}
		start = end
	}
	return len(ds), nil
}

// Run delivers until ctx ends, polling every poll when idle; on the way
// out it releases its leases, so another worker takes the rows at once.
func (o *Outbound) Run(ctx context.Context, poll time.Duration) error {
	o.defaults()
	defer o.Sync.Release(context.WithoutCancel(ctx), o.Owner) // the carried rows too
	defer func() { o.carried = nil; o.waitRecording() }()
	for {
		had := o.recording != nil
		n, err := o.runRound(ctx, true)
		if n == 0 || err != nil {
			err = errors.Join(err, o.waitRecording())
			n = max(n, b2i(had)) // after a recording, once more: it may have left rows due now
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			o.Logger.Warn("ehr sync: delivery round failed", "connection", o.Conn.Name, "error", err)
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// Drain delivers until nothing is due (tests, `sync run --once`).
func (o *Outbound) Drain(ctx context.Context) error {
	o.defaults()
	defer o.unleaseCarried(ctx)
	for {
		had := o.recording != nil
		n, err := o.runRound(ctx, true)
		if err != nil || n == 0 {
			if werr := o.waitRecording(); err == nil {
				err = werr
			}
		}
		if err != nil || (n == 0 && !had) {
			return err // (after a recording, once more: it may have left rows due now)
		}
	}
}

// waitRecording waits for the last round's results to be recorded.
func (o *Outbound) waitRecording() error {
	err := o.recording.wait()
	o.recording = nil
	return err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// flight is a Bundle's results being recorded in the background
// (flushBundle).
type flight struct {
	refs map[string]bool // roundKey(tenant, "Type/id") of its rows
	done chan struct{}
	err  error
}

// wait waits until the flight's rows are recorded (a nil flight has
// none).
func (f *flight) wait() error {
	if f == nil {
		return nil
	}
	<-f.done
	return f.err
}

// holds reports whether the flight carries tenant's ref ("Type/id").
func (f *flight) holds(tenant, ref string) bool {
	return f != nil && f.refs[roundKey(tenant, ref)]
}

// unleaseCarried gives back the rows leased for a round that will not
// run (Drain stopped by an error): as they were, due as they were, so
// another worker (or the next Drain) takes them before their lease would
// have expired.
func (o *Outbound) unleaseCarried(ctx context.Context) {
	if len(o.carried) == 0 {
		return
	}
	fs := make([]syncstore.Finishing, len(o.carried))
	for i, d := range o.carried {
		fs[i] = syncstore.Finishing{Delivery: d, Result: syncstore.Result{State: syncstore.StatePending, NextAt: d.NextAt, Error: d.LastError, Outcome: d.Outcome}}
	}
	o.carried = nil
	if _, err := o.Sync.FinishAll(context.WithoutCancel(ctx), o.Owner, fs, o.Now()); err != nil {
		o.Logger.Warn("ehr sync: rows leased for the next round not given back (their leases expire)", "connection", o.Conn.Name, "error", err)
	}
}

var rankOrder = []string{"Condition", "Goal", "CareTeam", "Encounter", "QuestionnaireResponse", "Observation",
	"MedicationAdministration", "Flag", "CarePlan", "DocumentReference", "Consent", "Provenance"}

func typeRank(t string) int {
	if i := slices.Index(rankOrder, t); i >= 0 {
		return i
	}
	return -1 // Patient and the rest first: the patient link
}

// deadWaitNote ends the note of a row waiting for a dead-lettered target
// ("waiting for Type/id" before it); deadTargetOf reads the target back.
const deadWaitNote = ", dead-lettered, to be replayed and written to this EHR first"

func deadTargetOf(r syncstore.Result) (string, bool) {
	if r.State != syncstore.StatePending {
		return "", false
	}
	rest, ok := strings.CutPrefix(r.Error, "waiting for ")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, deadWaitNote)
}

// wakeIfRevived runs after the Finish of a row that waits for the
// dead-lettered target: such a row waits long (PatientWait), and the
// replay that requeues the target wakes it (Replay). But a replay (or a
// new change of the target) that came between this row's look at the
// target and its Finish woke the row while it was still leased, and the
// Finish then set the long wait again: nothing would wake it before
// PatientWait. So the target is looked at once more, after the Finish;
// if it is no longer dead (or was discarded), the waiting rows are woken.
func (o *Outbound) wakeIfRevived(ctx context.Context, d syncstore.Delivery, target string) error {
	typ, id, _ := syncstore.SplitRef(target)
	td, err := o.Sync.Delivery(ctx, o.Conn.Name, d.Tenant, typ, id)
	switch {
	case err == nil && td.State == syncstore.StateDead:
		return nil // still dead: the replay to come wakes the row
	case err != nil && !errors.Is(err, syncstore.ErrNotFound):
		return err
	}
	return o.Sync.Wake(ctx, o.Conn.Name, o.Now())
}

// watchDead notes a dead target a row was left waiting for.
func (o *Outbound) watchDead(tenant, target string) {
	o.deadMu.Lock()
	defer o.deadMu.Unlock()
	if o.deadWaits == nil {
		o.deadWaits = map[string]bool{}
	}
	o.deadWaits[tenant+"\x00"+target] = true
}

// checkDeadWaits wakes the connection's waiting rows when a watched dead
// target is dead no more (or gone), and stops watching it. The watch is
// this process's: after a restart a waiting row goes after PatientWait at
// the latest, as before.
func (o *Outbound) checkDeadWaits(ctx context.Context) error {
	o.deadMu.Lock()
	keys := make([]string, 0, len(o.deadWaits))
	for k := range o.deadWaits {
		keys = append(keys, k)
	}
	o.deadMu.Unlock()
	revived := false
	for _, k := range keys {
		tenant, ref, _ := strings.Cut(k, "\x00")
		typ, id, _ := syncstore.SplitRef(ref)
		td, err := o.Sync.Delivery(ctx, o.Conn.Name, tenant, typ, id)
		if err != nil && !errors.Is(err, syncstore.ErrNotFound) {
			return err
		}
		if err == nil && td.State == syncstore.StateDead {
			continue
		}
		revived = true
		o.deadMu.Lock()
		delete(o.deadWaits, k)
		o.deadMu.Unlock()
	}
	if !revived {
		return nil
	}
	return o.Sync.Wake(ctx, o.Conn.Name, o.Now())
}

// done, wait, fail and dead are the Results Deliver returns.
func done(note string) syncstore.Result {
	return syncstore.Result{State: syncstore.StateDone, Error: note}
}

func (o *Outbound) wait(d time.Duration, why string) syncstore.Result {
	return syncstore.Result{State: syncstore.StatePending, NextAt: o.Now().Add(d), Error: why}
}

func (o *Outbound) fail(d syncstore.Delivery, err error) syncstore.Result {
	r := syncstore.Result{State: syncstore.StatePending, Attempted: true, Error: err.Error()}
	if errors.As(err, new(heldError)) {
		r.State = syncstore.StateDead
		return r
	}
	var ee *Error
	if errors.As(err, &ee) {
		if ee.Outcome != nil {
			r.Outcome = ee.Body
			r.Error += ": " + clip(ee.Outcome.Text(), 2000)
		}
		if (ee.Status == http.StatusMethodNotAllowed || ee.Status == http.StatusNotImplemented) && d.Attempts == 0 {
			// The EHR no longer takes what its statement declared: read
			// the statement again before this row's next (last) try.
			o.replan.Store(true)
			r.NextAt = o.Now()
			return r
		}
		if !ee.Temporary && ee.Status != 0 && ee.Status != http.StatusConflict && ee.Status != http.StatusPreconditionFailed {
			// A refusal (400, 403, 404, 405, 422 ...) will not pass by
			// itself: dead-letter it now, for a person to look at.
			r.State = syncstore.StateDead
			return r
		}
	}
	if d.Attempts+1 >= o.MaxAttempts {
		r.State = syncstore.StateDead
		return r
	}
	wait := o.Backoff(d.Attempts + 1)
	if ee != nil && ee.RetryAfter > wait {
		wait = ee.RetryAfter
	}
	r.NextAt = o.Now().Add(wait)
	return r
}

// Deliver does one row and says how it ended; it never panics on bad
// data, and records every decision in the Result.
func (o *Outbound) Deliver(ctx context.Context, d syncstore.Delivery) syncstore.Result {
	o.defaults()
	r, _ := o.deliver(ctx, nil, d, false)
	return r
}

// deliver is Deliver, with the round's shared reads (rc; nil: none);
// with stage set, a row whose only write is a plain create of a resource
// never written before stops short of it and returns the write, for a
// Bundle (flushBundle) to carry and finish.
func (o *Outbound) deliver(ctx context.Context, rc *round, d syncstore.Delivery, stage bool) (syncstore.Result, *stagedWrite) {
	var st *stagedWrite
	r := o.deliverRow(ctx, rc, d, stage, &st)
	return r, st
}

func (o *Outbound) deliverRow(ctx context.Context, rc *round, d syncstore.Delivery, stage bool, staged **stagedWrite) syncstore.Result {
	k := fhir.Key{Tenant: d.Tenant, Type: d.Type, ID: d.ResourceID}
	v, err := o.Store.Read(ctx, k)
	switch {
	case errors.Is(err, fhir.ErrNotFound):
		return done("not in the store: nothing to send")
	case err != nil:
		return o.fail(d, err)
	case v.Deleted:
		return o.deliverDeletion(ctx, d) // outbound_delete.go
	}
	res, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
	if err != nil {
		return syncstore.Result{State: syncstore.StateDead, Attempted: true, Error: "stored resource does not parse: " + err.Error()}
	}
	art, ok := ArtifactOf(res)
	if !ok {
		return done("not a KAP artifact: not sent")
	}
	if art == ArtifactConsent {
		// A Consent may let held-back notes go (or hold new ones back):
		// the patient's notes are judged again.
		if err := o.requeueNotes(ctx, d.Tenant, consent.PatientOf(res)); err != nil {
			return o.fail(d, err)
		}
	}
	// The privacy gate, before anything about the resource leaves.
	if dec, err := o.privacy(ctx, rc, d.Tenant, res); err != nil {
		return o.fail(d, err)
	} else if !dec.Allowed {
		return done("held back by the privacy gate: " + dec.Reason)
	}
	if art == ArtifactClient {
		pl, err := o.linkPatient(ctx, d.Tenant, "Patient/"+d.ResourceID, true)
		if err != nil {
			return o.fail(d, err)
		}
		if pl.State != syncstore.PatientLinked {
			return done("patient waits for a link: " + pl.Reason)
		}
		return done("linked to the EHR's Patient/" + pl.RemoteID)
	}
	e := o.Plan.Entry(art)
	if e.Outcome != OutcomeSent {
		return done("not sent to this EHR: " + e.Reason)
	}
	var remotePatient string
	if p := consent.PatientOf(res); p != "" {
		pl, err := o.roundPatientLink(ctx, rc, d.Tenant, p)
		if err != nil {
			return o.fail(d, err)
		}
		if pl.State != syncstore.PatientLinked {
			return o.wait(o.PatientWait, "waiting for the patient link of "+p+": "+pl.Reason)
		}
		remotePatient = pl.RemoteID
	}
	writes := 0
	for _, part := range e.Route.Parts {
		if len(part.Via) == 0 {
			writes++
		}
	}
	var notes []string
	for _, part := range e.Route.Parts {
		if len(part.Via) > 0 {
			continue // written by those artifacts' own rows
		}
		body, err := o.build(ctx, d, part, res, v)
		if err != nil {
			return syncstore.Result{State: syncstore.StateDead, Attempted: true, Error: "cannot build " + string(part.Build) + ": " + err.Error()}
		}
		waitFor, dropped, err := o.rewrite(ctx, rc, d.Tenant, body, remotePatient)
		if err != nil {
			return o.fail(d, err)
		}
		if dead, ok := strings.CutSuffix(waitFor, deadSuffix); ok {
			// Until a replay (which wakes this row) or its own next change.
			return o.wait(o.PatientWait, "waiting for "+dead+deadWaitNote)
		}
		if waitFor != "" {
			return o.wait(o.TargetWait, "waiting for "+waitFor+" to be written to this EHR first")
		}
		if body.GetString("resourceType") == "Provenance" && len(elementsOf(body.Get("target"))) == 0 {
			notes = append(notes, "its Provenance names nothing this EHR holds: not sent")
			continue
		}
		if len(dropped) > 0 {
			notes = append(notes, "references left out (their targets do not go here): "+strings.Join(dropped, ", "))
		}
		note, st, err := o.write(ctx, rc, d, part, body, v, stage && writes == 1)
		if err != nil {
			return o.fail(d, err)
		}
		if st != nil {
			st.notes = notes
			*staged = st
			return syncstore.Result{}
		}
		if note != "" {
			notes = append(notes, note)
		}
	}
	return done(strings.Join(notes, "; "))
}

// requeueNotes enqueues a change of each of patient's process notes, so
// every connection's gate judges them again (unchanged content already
// sent is skipped by its hash).
func (o *Outbound) requeueNotes(ctx context.Context, tenant, patient string) error {
	if patient == "" {
		return nil
	}
	notes := o.searchLocal(ctx, tenant, "DocumentReference", url.Values{"subject": {patient}})
	if len(notes) == 0 {
		return nil
	}
	return o.Store.Update(ctx, func(tx fhir.Tx) error {
		for _, n := range notes {
			if fhir.SensitivityOf(n)&fhir.PsychotherapyNote == 0 {
				continue
			}
			if err := syncstore.Enqueue(ctx, tx, fhir.Version{Key: fhir.Key{Tenant: tenant, Type: "DocumentReference", ID: n.GetString("id")}}); err != nil {
				return err
			}
		}
		return nil
	})
}

// privacy asks fhir/consent with the patient's Consents from the store
// (read once per round: patientConsents).
func (o *Outbound) privacy(ctx context.Context, rc *round, tenant string, res *fhir.Value) (consent.Decision, error) {
	var consents []*fhir.Value
	if p := consent.PatientOf(res); p != "" {
		var err error
		if consents, err = o.patientConsents(ctx, rc, tenant, p); err != nil {
			return consent.Decision{}, err
		}
	}
	return consent.Decide(res, consents, o.Conn.Recipient, o.Now()), nil
}

// readConsents searches the store for patient's Consents.
func (o *Outbound) readConsents(ctx context.Context, tenant, patient string) ([]*fhir.Value, error) {
	q, err := search.ParseQuery("Consent", url.Values{"patient": {patient}, "_count": {"100"}}, "", false)
	if err != nil {
		return nil, err
	}
	r, err := o.Store.Search(ctx, tenant, q, nil)
	if err != nil {
		return nil, err
	}
	var consents []*fhir.Value
	for _, m := range r.Matches {
		if c, err := fhir.ParseJSON(m.JSON, fhir.StoredLimits); err == nil {
			consents = append(consents, c)
		}
	}
	return consents, nil
}

// build makes the part's body from res: the resource as mapped or a
// representation, without id (set by the write), versionId, lastUpdated
// or profiles (the EHR knows none of kapbridge's).
func (o *Outbound) build(ctx context.Context, d syncstore.Delivery, part Part, res *fhir.Value, v fhir.Version) (*fhir.Value, error) {
	date := v.LastUpdated.UTC().Format(time.RFC3339)
	var out *fhir.Value
	var err error
	switch part.Build {
	case BuildAsMapped:
		out = cloneValue(res)
	case BuildCarePlanDocument:
		var related []*fhir.Value
		for _, key := range []string{"addresses", "goal", "careTeam"} {
			for _, ref := range elementsOf(res.Get(key)) {
				if r := o.readRef(ctx, d.Tenant, ref.GetString("reference")); r != nil {
					related = append(related, r)
				}
			}
		}
		out, _, err = CarePlanDocument(res, related, date)
	case BuildQuestionnaireResponseDocument:
		out, _, err = QuestionnaireResponseDocument(res, nil, date)
	case BuildDoseObservation:
		out, _, err = DoseObservation(res)
	case BuildFlagCommunication:
		out, _, err = FlagCommunication(res, o.flagEvidence(ctx, d.Tenant, res), o.recipientRef(ctx, d.Tenant, res), date)
	default:
		return nil, fmt.Errorf("no builder %q", part.Build)
	}
	if err != nil {
		return nil, err
	}
	if meta := out.Get("meta"); meta != nil {
		meta.Delete("versionId")
		meta.Delete("lastUpdated")
		meta.Delete("profile")
	}
	return out, nil
}

// flagEvidence is what raised a Flag: the Observation that carries the
// Flag's own practice identifier value (the mappings give a signal and
// its reading one record id), else the QuestionnaireResponse whose
// identifier value the Flag's extends (screening/phq9 for
// screening/phq9/item9).
func (o *Outbound) flagEvidence(ctx context.Context, tenant string, flag *fhir.Value) []*fhir.Value {
	for _, id := range elementsOf(flag.Get("identifier")) {
		val := id.GetString("value")
		if val == "" {
			continue
		}
		if found := o.searchLocal(ctx, tenant, "Observation", url.Values{"identifier": {val}}); len(found) > 0 {
			return found
		}
		for head := val; strings.Contains(head, "/"); {
			head = head[:strings.LastIndex(head, "/")]
			if found := o.searchLocal(ctx, tenant, "QuestionnaireResponse", url.Values{"identifier": {head}}); len(found) > 0 {
				return found
			}
		}
	}
	return nil
}

func (o *Outbound) searchLocal(ctx context.Context, tenant, typ string, params url.Values) []*fhir.Value {
	q, err := search.ParseQuery(typ, params, "", false)
	if err != nil {
		return nil
	}
	r, err := o.Store.Search(ctx, tenant, q, nil)
	if err != nil {
		return nil
	}
	var out []*fhir.Value
	for _, m := range r.Matches {
		if v, err := fhir.ParseJSON(m.JSON, fhir.StoredLimits); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// recipientRef is whom a safety alert goes to on the EHR: the
// connection's recipient, else the Flag's author, else the author of the
// patient's course (the prescriber), as a logical reference (NPI, else the
// practice identifier, and the name): the EHR does not know kapbridge's
// Practitioner ids.
func (o *Outbound) recipientRef(ctx context.Context, tenant string, flag *fhir.Value) *fhir.Value {
	refs := []string{o.Conn.Recipient, flag.Get("author").GetString("reference")}
	if p := flag.Get("subject").GetString("reference"); p != "" {
		for _, cp := range o.searchLocal(ctx, tenant, "CarePlan", url.Values{"subject": {p}}) {
			refs = append(refs, cp.Get("author").GetString("reference"))
		}
	}
	for _, ref := range refs {
		if ref == "" {
			continue
		}
		if l := o.logicalRef(ctx, tenant, ref); l != nil && l.Get("identifier") != nil {
			return l
		}
	}
	return nil // the builder refuses: an alert must name whom it is for
}

func (o *Outbound) readRef(ctx context.Context, tenant, ref string) *fhir.Value {
	typ, id, ok := syncstore.SplitRef(ref)
	if !ok {
		return nil
	}
	v, err := o.Store.Read(ctx, fhir.Key{Tenant: tenant, Type: typ, ID: id})
	if err != nil || v.Deleted {
		return nil
	}
	r, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
	if err != nil {
		return nil
	}
	return r
}

// logicalRef is a Reference to a practitioner by NPI and name.
func (o *Outbound) logicalRef(ctx context.Context, tenant, ref string) *fhir.Value {
	p := o.readRef(ctx, tenant, ref)
	if p == nil {
		return nil
	}
	ms := []fhir.Member{}
	var pick *fhir.Value
	for _, id := range elementsOf(p.Get("identifier")) {
		sys := id.GetString("system")
		if sys == "http://hl7.org/fhir/sid/us-npi" {
			pick = id
			break
		}
		if pick == nil && strings.HasPrefix(sys, mappings.NSPracticeRecordIDs+"/") {
			pick = id
		}
	}
	if pick != nil && pick.GetString("value") != "" {
		ms = append(ms, jsonMember("identifier", jsonObject(jsonMember("system", jsonString(pick.GetString("system"))),
			jsonMember("value", jsonString(pick.GetString("value"))))))
	}
	if n := nameText(p.Get("name")); n != "" {
		ms = append(ms, jsonMember("display", jsonString(n)))
	}
	if len(ms) == 0 {
		return nil
	}
	return jsonObject(ms...)
}

func nameText(names *fhir.Value) string {
	for _, n := range elementsOf(names) {
		if t := n.GetString("text"); t != "" {
			return t
		}
		var parts []string
		for _, g := range elementsOf(n.Get("given")) {
			parts = append(parts, g.Str)
		}
		if f := n.GetString("family"); f != "" {
			parts = append(parts, f)
		}
		if len(parts) > 0 {
			return strings.Join(parts, " ")
		}
	}
	return ""
}

// rewrite points body's references at what the EHR holds: the linked
// patient, the remote ids of resources written before, practitioners as
// logical references. A reference to a resource this EHR will get but
// has not yet is returned as waitFor; one to a resource that never goes
// here is left out (its name returned in dropped).
func (o *Outbound) rewrite(ctx context.Context, rc *round, tenant string, body *fhir.Value, remotePatient string) (waitFor string, dropped []string, err error) {
	var walk func(v *fhir.Value) (remove bool)
	walk = func(v *fhir.Value) bool {
		if v == nil || waitFor != "" || err != nil {
			return false
		}
		switch v.Kind {
		case fhir.KindArray:
			kept := v.Array[:0]
			for _, x := range v.Array {
				if !walk(x) {
					kept = append(kept, x)
				}
			}
			v.Array = kept
		case fhir.KindObject:
			if r := v.Get("reference"); r != nil && r.Kind == fhir.KindString {
				return o.rewriteRef(ctx, rc, tenant, v, r.Str, remotePatient, &waitFor, &dropped, &err)
			}
			had := len(v.Members)
			kept := v.Members[:0]
			for _, m := range v.Members {
				if m.Key == "contained" {
					kept = append(kept, m)
					continue
				}
				if walk(m.Value) || (m.Value.Kind == fhir.KindArray && len(m.Value.Array) == 0) {
					continue
				}
				kept = append(kept, m)
			}
			v.Members = kept
			return had > 0 && len(kept) == 0 // an element left empty goes too
		}
		return false
	}
	walk(body)
	return waitFor, dropped, err
}

func (o *Outbound) rewriteRef(ctx context.Context, rc *round, tenant string, ref *fhir.Value, target, remotePatient string, waitFor *string, dropped *[]string, errp *error) bool {
	if strings.HasPrefix(target, "#") || strings.HasPrefix(target, "urn:") {
		return false
	}
	typ, id, ok := syncstore.SplitRef(target)
	if !ok {
		return false // absolute URLs are left as they are: they name themselves
	}
	switch typ {
	case "Patient":
		if remotePatient == "" {
			// A Provenance's target: linked already, or left out.
			pl, err := o.Sync.PatientLink(ctx, o.Conn.Name, tenant, id)
			if err != nil || pl.State != syncstore.PatientLinked {
				// The Patient's own row, still to run, may link it.
				if pd, err := o.Sync.Delivery(ctx, o.Conn.Name, tenant, "Patient", id); err == nil && pd.State != syncstore.StateDone {
					*waitFor = target
					if pd.State == syncstore.StateDead {
						*waitFor += deadSuffix
					}
					return false
				}
				// Linked between the two looks? (The link is written
				// before the Patient's row is marked done.)
				if pl, err = o.Sync.PatientLink(ctx, o.Conn.Name, tenant, id); err != nil || pl.State != syncstore.PatientLinked {
					*dropped = append(*dropped, target)
					return true
				}
			}
			ref.Set("reference", jsonString("Patient/"+pl.RemoteID))
			return false
		}
		ref.Set("reference", jsonString("Patient/"+remotePatient))
		return false
	case "Practitioner", "PractitionerRole":
		if l := o.logicalRef(ctx, tenant, target); l != nil {
			ref.Members = l.Members
			return false
		}
		*dropped = append(*dropped, target)
		return true
	}
	if rc != nil && rc.recording.holds(tenant, typ+"/"+id) {
		// Written by the last round's Bundle, whose results are being
		// recorded: its link comes with them.
		rc.recording.wait()
	}
	// Written before? Any part of it will do (a QuestionnaireResponse
	// may live on the EHR as a DocumentReference).
	if l, ok, err := o.linkOf(ctx, tenant, typ, id); err != nil {
		*errp = err
		return false
	} else if ok {
		ref.Set("reference", jsonString(l.RemoteType+"/"+l.RemoteID))
		return false
	}
	goes, dead := o.willGo(ctx, tenant, typ, id)
	if !goes {
		// Its row may have finished between the two looks (a row of the
		// same rank delivered beside this one): its link is written
		// before its row is marked done, so look once more.
		if l, ok, err := o.linkOf(ctx, tenant, typ, id); err != nil {
			*errp = err
			return false
		} else if ok {
			ref.Set("reference", jsonString(l.RemoteType+"/"+l.RemoteID))
			return false
		}
		*dropped = append(*dropped, target)
		return true
	}
	*waitFor = target
	if dead {
		*waitFor += deadSuffix
	}
	return false
}

// linkOf is the link of any part of a source resource.
func (o *Outbound) linkOf(ctx context.Context, tenant, typ, id string) (syncstore.Link, bool, error) {
	for _, part := range []string{"", string(BuildCarePlanDocument), string(BuildQuestionnaireResponseDocument), string(BuildDoseObservation), string(BuildFlagCommunication)} {
		l, err := o.Sync.Link(ctx, o.Conn.Name, tenant, typ, id, part)
		if errors.Is(err, syncstore.ErrNotFound) || (err == nil && l.Hash == deletedHash) {
			continue // never written, or deleted there (outbound_delete.go)
		}
		if err != nil {
			return l, false, err
		}
		return l, true, nil
	}
	return syncstore.Link{}, false, nil
}

// willGo reports whether a target not yet written is on its way: its
// artifact goes here as itself or by a builder, and its delivery is
// pending, or dead (a replay will send it; the referrer waits for that,
// not counting attempts). Anything else (held back, not sent, gone) will
// not be linked, so waiting for it would be forever.
func (o *Outbound) willGo(ctx context.Context, tenant, typ, id string) (goes, dead bool) {
	d, err := o.Sync.Delivery(ctx, o.Conn.Name, tenant, typ, id)
	if err != nil || d.State == syncstore.StateDone {
		return false, false
	}
	r := o.readRef(ctx, tenant, typ+"/"+id)
	if r == nil {
		return false, false
	}
	art, ok := ArtifactOf(r)
	if !ok {
		return false, false
	}
	e := o.Plan.Entry(art)
	return e.Outcome == OutcomeSent && len(e.Route.Parts) > 0 && len(e.Route.Parts[0].Via) == 0, d.State == syncstore.StateDead
}

// contentHash is the SHA-256 of the body as it will be written, meta.source
// aside (it names the version, which changes with no change of content).
func contentHash(body *fhir.Value) string {
	sum := sha256.Sum256(body.Encode())
	return hex.EncodeToString(sum[:])
}

// stamp adds meta.source and the sync tag.
func (o *Outbound) stamp(body *fhir.Value, d syncstore.Delivery, v fhir.Version) {
	meta := body.Get("meta")
	if meta == nil {
		meta = fhir.Object()
		body.Set("meta", meta)
	}
	meta.Set("source", jsonString(o.Source+"#"+d.Tenant+"/"+d.Type+"/"+d.ResourceID+"/_history/"+strconv.FormatInt(v.VersionID, 10)))
	tags := meta.Get("tag")
	tag := jsonObject(jsonMember("system", jsonString(SyncTagSystem)), jsonMember("code", jsonString(SyncTagCode)))
	if tags == nil || tags.Kind != fhir.KindArray {
		meta.Set("tag", jsonArray(tag))
	} else if !hasCoding(jsonObject(jsonMember("coding", tags)), SyncTagSystem, SyncTagCode) {
		tags.Array = append(tags.Array, tag)
	}
}
