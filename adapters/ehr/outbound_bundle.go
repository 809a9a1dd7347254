package ehr

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
)

// Creates in Bundles. Where the EHR declares batch (or, failing that,
// transaction), the creates of resources never written before that one
// round of deliveries stages go to the EHR in one Bundle instead of one
// POST each. What keeps this from losing or doubling anything:
//
//   - Only fresh rows are staged (no link, first lease since last done:
//     syncstore.Delivery.Leases), and only where the route writes a
//     single resource.
//   - An entry that succeeded records its link and its row is done; an
//     entry that failed leaves its row pending, counted as an attempt,
//     due at once: it is retried alone (a row leased again is no longer
//     fresh, so it never goes in a Bundle again), and that retry searches
//     by identifier before it creates.
//   - A Bundle whose answer did not come, or could not be read, may have
//     landed in part: every row of it is such a failed attempt, so each
//     is resolved by a search before anything is sent again. The Bundle
//     itself is never repeated (a POST without a Landed check).

// stagedWrite is a create held back for a Bundle: the row, what it
// writes, the body as it would have gone (stamped), its content hash, and
// the notes its delivery made so far.
type stagedWrite struct {
	d     syncstore.Delivery
	part  Part
	typ   string
	body  *fhir.Value
	hash  string
	sent  []byte // the base of later patches, where changes go as patches
	notes []string
}

// bundleType is "batch" or "transaction" when creates go in Bundles to
// this EHR, "" when each goes alone. batch is preferred: its entries
// stand alone, so one refused entry does not hold back the others.
func (o *Outbound) bundleType() string {
	switch {
	case o.Single || o.Caps == nil:
		return ""
	case o.Caps.Allows("", InteractionBatch):
		return "batch"
	case o.Caps.Allows("", InteractionTransaction):
		return "transaction"
	}
	return ""
}

// flushBundles sends staged in Bundles of up to Batch entries and
// finishes their rows; its error is a failure to record a result (the
// rows stay leased until their lease expires, then go again, searched
// first). With leaseNext, the last Bundle's results are recorded with
// the next round's lease (flushBundle).
func (o *Outbound) flushBundles(ctx context.Context, kind string, staged []*stagedWrite, leaseNext bool) error {
	var errs error
	for len(staged) > 0 {
		n := min(len(staged), o.Batch)
		if err := o.flushBundle(ctx, kind, staged[:n], leaseNext && n == len(staged)); err != nil {
			errs = errors.Join(errs, err)
		}
		if ctx.Err() != nil {
			return errs
		}
		staged = staged[n:]
	}
	return errs
}

func (o *Outbound) flushBundle(ctx context.Context, kind string, staged []*stagedWrite, leaseNext bool) error {
	entries := make([]*fhir.Value, len(staged))
	for i, st := range staged {
		entries[i] = jsonObject(
			jsonMember("fullUrl", jsonString("urn:uuid:"+newUUID())),
			jsonMember("resource", st.body),
			jsonMember("request", jsonObject(jsonMember("method", jsonString(http.MethodPost)), jsonMember("url", jsonString(st.typ)))))
	}
	body := jsonObject(jsonMember("resourceType", jsonString("Bundle")), jsonMember("type", jsonString(kind)),
		jsonMember("entry", jsonArray(entries...)))
	var leased chan []syncstore.Delivery
	if leaseNext {
		// The next round's rows are leased while this Bundle is out.
		leased = make(chan []syncstore.Delivery, 1)
		go func() {
			ds, err := o.Sync.Lease(ctx, o.Conn.Name, o.Owner, o.Batch, o.Now(), o.LeaseTTL)
			if err != nil {
				o.Logger.Debug("ehr sync: next round not leased ahead; it leases itself", "connection", o.Conn.Name, "error", err)
			}
			leased <- ds
		}()
	}
	resp, err := o.Client.Do(ctx, &Request{Method: http.MethodPost, URL: "", Body: body.Encode(),
		LogID: fmt.Sprintf("%s of %d, first %s", kind, len(staged), staged[0].d.Ref())})
	if leased != nil {
		o.carried = <-leased
	}
	if ctx.Err() != nil {
		return nil // stopping: the rows are left to Release (and searched first when leased again)
	}
	results := make([]syncstore.Result, len(staged))
	gots := make([]remote, len(staged))
	if err != nil {
		for i, st := range staged {
			results[i] = o.bundleFailed(st, "the "+kind+" Bundle that carried it failed (it may have landed in part: searched before it goes again, alone)", err)
		}
	} else {
		o.readBundleAnswer(kind, staged, resp.Body, results, gots)
	}
	// The links and results of the whole Bundle in one store transaction.
	fs := make([]syncstore.Finishing, len(staged))
	for i, st := range staged {
		fs[i] = syncstore.Finishing{Delivery: st.d, Result: results[i]}
		if results[i].State == syncstore.StateDone {
			fs[i].Link = &syncstore.Link{Connection: o.Conn.Name, Tenant: st.d.Tenant, SourceType: st.d.Type, SourceID: st.d.ResourceID,
				Part: string(st.part.Build), RemoteType: st.typ, RemoteID: gots[i].id, RemoteVersion: gots[i].version, Hash: st.hash, Body: st.sent, Updated: o.Now()}
		}
	}
	if leaseNext {
		// Recorded while the next round is prepared and sent (Drain,
		// Run): a row of it that refers to one of these waits for the
		// recording before it looks for the link (rewriteRef). One
		// recording at a time, in order.
		prev := o.recording
		f := &flight{refs: make(map[string]bool, len(staged)), done: make(chan struct{})}
		for _, st := range staged {
			f.refs[roundKey(st.d.Tenant, st.d.Ref())] = true
		}
		o.recording = f
		go func() {
			defer close(f.done)
			f.err = errors.Join(prev.wait(), o.finishBundle(ctx, fs))
		}()
		return nil
	}
	return o.finishBundle(ctx, fs)
}

// finishBundle records a Bundle's links and results in one store
// transaction.
func (o *Outbound) finishBundle(ctx context.Context, fs []syncstore.Finishing) error {
	errs, err := o.Sync.FinishAll(context.WithoutCancel(ctx), o.Owner, fs, o.Now())
	if err != nil {
		// Nothing recorded: the rows stay leased until the lease expires,
		// then go again, resolved by search first (Leases > 1).
		return err
	}
	var lost int
	for _, e := range errs {
		if e != nil {
			lost++
		}
	}
	if lost > 0 {
		o.Logger.Warn("ehr sync: leases lost before a Bundle's results were recorded (links kept)", "connection", o.Conn.Name, "rows", lost)
	}
	return nil
}

// readBundleAnswer fills results (and gots, the remote ids) from the
// EHR's batch or transaction response, entry by entry in order.
func (o *Outbound) readBundleAnswer(kind string, staged []*stagedWrite, body []byte, results []syncstore.Result, gots []remote) {
	b, err := ParseBundle(body)
	if err == nil && len(b.Entry) != len(staged) {
		err = fmt.Errorf("the %s response has %d entries for %d sent", kind, len(b.Entry), len(staged))
	}
	if err != nil {
		for i, st := range staged {
			results[i] = o.bundleFailed(st, "the answer to the "+kind+" Bundle that carried it could not be read (it may have landed: searched before it goes again, alone)", err)
		}
		return
	}
	for i, st := range staged {
		e := b.Entry[i]
		if e.Response == nil {
			results[i] = o.bundleFailed(st, fmt.Sprintf("entry %d of the %s answer has no response (it may have landed: searched before it goes again, alone)", i, kind), nil)
			continue
		}
		status := strings.TrimSpace(e.Response.Status)
		if !strings.HasPrefix(status, "2") {
			ee := &Error{Method: http.MethodPost, URL: st.typ, Status: statusCode(status), Body: e.Response.Outcome}
			if len(e.Response.Outcome) > 0 {
				ee.Outcome, _ = ParseOperationOutcome(e.Response.Outcome)
			}
			results[i] = o.bundleFailed(st, fmt.Sprintf("entry %d of the %s was refused (%s): retried alone", i, kind, clip(status, 64)), ee)
			continue
		}
		h := http.Header{}
		if e.Response.Location != nil {
			h.Set("Location", *e.Response.Location)
		}
		if e.Response.Etag != nil {
			h.Set("ETag", *e.Response.Etag)
		}
		got := remoteOf(&Response{Header: h, Body: e.Resource}, st.typ)
		if got.id == "" {
			results[i] = o.bundleFailed(st, fmt.Sprintf("entry %d of the %s answer names no id (it may have landed: searched before it goes again, alone)", i, kind), nil)
			continue
		}
		gots[i] = got
		results[i] = done(strings.Join(st.notes, "; "))
	}
}

// bundleFailed is the Result of a staged row whose Bundle entry did not
// certainly land: a failed attempt, due at once, to go alone (and searched
// first); dead when attempts run out. The EHR's OperationOutcome is kept.
func (o *Outbound) bundleFailed(st *stagedWrite, why string, err error) syncstore.Result {
	r := syncstore.Result{State: syncstore.StatePending, Attempted: true, NextAt: o.Now(), Error: why}
	if err != nil {
		r.Error += ": " + err.Error()
	}
	var ee *Error
	if errors.As(err, &ee) {
		if ee.Outcome != nil {
			r.Outcome = ee.Body
			r.Error += ": " + clip(ee.Outcome.Text(), 2000)
		}
		if ee.Status == http.StatusMethodNotAllowed || ee.Status == http.StatusNotImplemented {
			o.replan.Store(true) // the EHR may no longer take Bundles
		}
		if ee.RetryAfter > 0 {
			r.NextAt = o.Now().Add(min(ee.RetryAfter, 10*time.Minute))
		}
	}
	if st.d.Attempts+1 >= o.MaxAttempts {
		r.State = syncstore.StateDead
	}
	return r
}

// statusCode reads the code of a Bundle entry's status ("201 Created").
func statusCode(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// newUUID is a random (version 4) UUID, for an entry's fullUrl.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
