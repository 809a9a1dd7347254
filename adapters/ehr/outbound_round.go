package ehr

import (
	"context"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/fhir"
)

// A round's shared reads. The rows of one leased round mostly belong to
// few patients: each row used to search the patient's Consents, read the
// patient's link and its own links on its own, which against a fast EHR
// cost more than the writes. A round reads its rows' own links in one
// query (where the store is a syncstore.LinkBatcher), and each patient's
// Consents and link once. Nothing is weakened by it:
//
//   - The privacy gate still decides every row, before its write, on
//     Consents read at most consentReuse before (a round, or a part of a
//     slow one): the same as a row reading them a moment earlier.
//   - A patient link is kept only once linked (a waiting patient is asked
//     again by each row, as before).
//   - A row's own links can change only by the holder of its lease, that
//     is this round, which reads each before its own write of that part.

// consentReuse is how long a round reuses a patient's Consents.
const consentReuse = time.Second

type round struct {
	// recording is the last round's Bundle being recorded (or nil);
	// set before the rows are delivered.
	recording *flight

	mu         sync.Mutex
	consents   map[string]*consentRead
	patients   map[string]syncstore.PatientLink // linked only
	links      map[string]syncstore.Link        // tenant, type, id, part
	prefetched map[string]bool                  // tenant, type, id: every link known
}

type consentRead struct {
	once sync.Once
	at   time.Time
	cs   []*fhir.Value
	err  error
}

func roundKey(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, 0)
	}
	return string(b)
}

// newRound starts the round of ds, reading their links at once where
// the store can; a failure to (a storage error) leaves each row to read
// its own, as without.
func (o *Outbound) newRound(ctx context.Context, ds []syncstore.Delivery) *round {
	rc := &round{consents: map[string]*consentRead{}, patients: map[string]syncstore.PatientLink{}}
	lb, ok := o.Sync.(syncstore.LinkBatcher)
	if !ok || len(ds) == 0 {
		return rc
	}
	srcs := make([]syncstore.Source, len(ds))
	for i, d := range ds {
		srcs[i] = syncstore.Source{Tenant: d.Tenant, Type: d.Type, ID: d.ResourceID}
	}
	ls, err := lb.LinksOf(ctx, o.Conn.Name, srcs)
	if err != nil {
		o.Logger.Debug("ehr sync: links of the round not read at once; row by row", "connection", o.Conn.Name, "error", err)
		return rc
	}
	rc.links = make(map[string]syncstore.Link, len(ls))
	rc.prefetched = make(map[string]bool, len(ds))
	for _, l := range ls {
		rc.links[roundKey(l.Tenant, l.SourceType, l.SourceID, l.Part)] = l
	}
	for _, s := range srcs {
		rc.prefetched[roundKey(s.Tenant, s.Type, s.ID)] = true
	}
	return rc
}

// ownLink is the link of part of d's resource: from the round's read
// when it made one, else from the store.
func (o *Outbound) ownLink(ctx context.Context, rc *round, d syncstore.Delivery, part string) (syncstore.Link, error) {
	if rc != nil {
		rc.mu.Lock()
		known := rc.prefetched[roundKey(d.Tenant, d.Type, d.ResourceID)]
		l, ok := rc.links[roundKey(d.Tenant, d.Type, d.ResourceID, part)]
		rc.mu.Unlock()
		switch {
		case ok:
			return l, nil
		case known:
			return syncstore.Link{}, syncstore.ErrNotFound
		}
	}
	return o.Sync.Link(ctx, o.Conn.Name, d.Tenant, d.Type, d.ResourceID, part)
}

// patientConsents are the Consents of patient ("Patient/id"), read once
// per round (and again after consentReuse).
func (o *Outbound) patientConsents(ctx context.Context, rc *round, tenant, patient string) ([]*fhir.Value, error) {
	if rc == nil {
		return o.readConsents(ctx, tenant, patient)
	}
	k := roundKey(tenant, patient)
	rc.mu.Lock()
	cr := rc.consents[k]
	if cr == nil || o.Now().Sub(cr.at) > consentReuse {
		cr = &consentRead{at: o.Now()} // at: set under mu, read under mu
		rc.consents[k] = cr
	}
	rc.mu.Unlock()
	cr.once.Do(func() { cr.cs, cr.err = o.readConsents(ctx, tenant, patient) })
	if cr.err != nil {
		rc.mu.Lock()
		if rc.consents[k] == cr {
			delete(rc.consents, k) // the next row asks again
		}
		rc.mu.Unlock()
	}
	return cr.cs, cr.err
}

// roundPatientLink is linkPatient without force, kept for the round once
// linked.
func (o *Outbound) roundPatientLink(ctx context.Context, rc *round, tenant, patient string) (syncstore.PatientLink, error) {
	if rc == nil {
		return o.linkPatient(ctx, tenant, patient, false)
	}
	k := roundKey(tenant, patient)
	rc.mu.Lock()
	pl, ok := rc.patients[k]
	rc.mu.Unlock()
	if ok {
		return pl, nil
	}
	pl, err := o.linkPatient(ctx, tenant, patient, false)
	if err == nil && pl.State == syncstore.PatientLinked {
		rc.mu.Lock()
		rc.patients[k] = pl
		rc.mu.Unlock()
	}
	return pl, err
}
