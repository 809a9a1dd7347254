package records

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records/recordstore"
)

// PendingRecord is a record waiting for others, as the listings show it
// (GET /practice/v1/records?state=pending, `kapbridge records`): what it
// waits for and since when, and whether it is safety-relevant (a dose, a
// vital sign, a screening: mappings.SafetyRelevant) and overdue (waiting
// longer than the limit, so it raises a Flag: FlagOverdue).
type PendingRecord struct {
	Kind           mappings.Kind `json:"kind"`
	ID             string        `json:"id"`
	Waiting        []string      `json:"waiting"`
	Since          time.Time     `json:"since"`
	AgeSeconds     int64         `json:"age_seconds"`
	Age            string        `json:"age"`
	SafetyRelevant bool          `json:"safety_relevant"`
	Overdue        bool          `json:"overdue"`
	// Flag is the Flag the overdue record raised ("Flag/id/version"), if
	// it has raised one.
	Flag string `json:"flag,omitempty"`
}

// PendingRecords lists the records waiting for others, oldest first, with
// their age at now; max is how long a safety-relevant record may wait
// (mappings.Limits.PendingMax).
func (a *Applier) PendingRecords(ctx context.Context, now time.Time, max time.Duration) ([]PendingRecord, error) {
	rows, err := a.Pending(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PendingRecord, 0, len(rows))
	for _, r := range rows {
		out = append(out, a.pendingRecord(r, now, max))
	}
	slices.SortStableFunc(out, func(x, y PendingRecord) int { return x.Since.Compare(y.Since) })
	return out, nil
}

func (a *Applier) pendingRecord(r recordstore.Row, now time.Time, max time.Duration) PendingRecord {
	age := max0(now.Sub(r.Updated))
	p := PendingRecord{Kind: mappings.Kind(r.Kind), ID: r.ID, Waiting: r.Pending, Since: r.Updated.UTC(),
		AgeSeconds: int64(age / time.Second), Age: age.Round(time.Second).String()}
	if rec, err := a.cache.decode(r); err == nil {
		p.SafetyRelevant = mappings.SafetyRelevant(rec)
	}
	p.Overdue = p.SafetyRelevant && age > max
	for _, s := range r.Resources {
		if strings.HasPrefix(s, "Flag/") && strings.Contains(s, overdueFlagMark(a, r)) {
			p.Flag = s
		}
	}
	return p
}

func max0(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}

// overdueFlagMark is the id of a record's overdue Flag.
func overdueFlagMark(a *Applier, r recordstore.Row) string {
	return mappings.ResourceID(a.Mapper.Practice, mappings.Kind(r.Kind), r.ID, "Flag", "pending-overdue")
}

// FlagOverdue raises a Flag (mappings.Mapper.OverdueFlag) for every
// safety-relevant record that has waited longer than max, so a dose given
// or a vital sign taken is seen on the prescriber's side even while the
// records it names are missing. The Flag is kept among the pending row's
// resources, so the record's own mapping, once it can map, deletes it.
// A record whose patient cannot be found yet (an observation of a session
// the gateway has not seen) raises its Flag on the practice's
// Organization instead (mappings.Mapper.OverdueFlag with no client). It
// returns the records it flagged, and those it could not (none unless a
// mapping fails).
func (a *Applier) FlagOverdue(ctx context.Context, now time.Time, max time.Duration) (flagged, unflagged []PendingRecord, err error) {
	list, err := a.PendingRecords(ctx, now, max)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range list {
		if !p.Overdue {
			continue
		}
		var ref string
		err := a.update(ctx, func(tx fhir.Tx, rtx recordstore.Tx) error {
			ref = ""
			st := &applyState{a: a, ctx: ctx, tx: tx, rtx: rtx, tenant: a.tenant(), rows: map[string]*loaded{}, done: map[string]bool{}}
			if err := rtx.LockRecords(ctx, st.tenant); err != nil {
				return err
			}
			l, err := st.get(p.Kind, p.ID)
			if err != nil || l == nil || l.row.State != recordstore.StatePending {
				return err // resolved meanwhile
			}
			client, _ := st.clientOf(l.rec) // "" if not known: the Flag goes on the practice
			if err := st.err; err != nil {
				return err
			}
			age := max0(now.Sub(l.row.Updated))
			flag, err := a.Mapper.OverdueFlag(st.lookup(), l.rec, client, l.row.Pending, l.row.Updated, age)
			if err != nil || st.err != nil {
				if st.err != nil {
					return st.err
				}
				return nil // the client is not mapped yet: listed as unflagged
			}
			if msg := validate(flag); msg != "" {
				return fmt.Errorf("records: overdue flag of %s %q: %s", p.Kind, p.ID, msg)
			}
			var old, keep []string
			mark := "Flag/" + flag.GetString("id") + "/"
			for _, s := range l.row.Resources {
				if strings.HasPrefix(s, mark) {
					old = append(old, s)
				} else {
					keep = append(keep, s)
				}
			}
			refs, _, err := st.write([]*fhir.Value{flag}, old)
			if err != nil {
				return err
			}
			row := l.row
			row.Resources = append(keep, refs[0].String())
			ref = refs[0].String()
			return st.put(row) // Updated unchanged: the age still counts from the record's arrival
		})
		if err != nil {
			return flagged, unflagged, fmt.Errorf("records: flag overdue %s %q: %w", p.Kind, p.ID, err)
		}
		if ref == "" {
			unflagged = append(unflagged, p)
			continue
		}
		p.Flag = ref
		flagged = append(flagged, p)
	}
	return flagged, unflagged, nil
}

// clientOf finds the client a record is about through the mapped records
// it hangs under (a session's course, an observation's session and its
// course).
func (st *applyState) clientOf(rec mappings.Record) (string, bool) {
	switch r := rec.(type) {
	case *mappings.Screening:
		_, ok := st.mapped(mappings.KindClient, r.Client)
		return r.Client, ok
	case *mappings.Session:
		if c, ok := st.mapped(mappings.KindCourse, r.Course); ok {
			return c.(*mappings.Course).Client, true
		}
	case *mappings.Observation:
		if s, ok := st.mapped(mappings.KindSession, r.Session); ok {
			return st.clientOf(s)
		}
	}
	return "", false
}
