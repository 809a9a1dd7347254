package memstore

import (
	"fmt"
	"io"
	"maps"
	"slices"
)

// Dump writes everything the store holds, in a fixed order, as text:
// every version of every resource with its index values, the identifiers,
// the outbox and the sequence counters. Two equal dumps mean the store is
// unchanged, which is how a test proves that a refused request wrote
// nothing. It waits for a running Update to finish.
func (s *Store) Dump(w io.Writer) error {
	s.writer <- struct{}{}
	defer func() { <-s.writer }()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("seq %d committed %d outbox %d\n", s.seq, s.committed, s.outboxSeq)
	for _, tn := range slices.Sorted(maps.Keys(s.tenants)) {
		t := s.tenants[tn]
		p("tenant %q\n", tn)
		for _, typ := range slices.Sorted(maps.Keys(t.types)) {
			p(" type %s\n", typ)
			for r := range t.types[typ].ids.after("") {
				p("  %s/%s identifiers %q\n", typ, r.key.ID, r.idents)
				for _, v := range r.versions {
					p("    v%d seq %d %s deleted=%v sensitivity=%d body %q\n", v.VersionID, v.seq,
						v.LastUpdated.Format("2006-01-02T15:04:05.000000Z"), v.Deleted, v.Sensitivity, v.JSON)
					for _, x := range v.rows {
						p("      %+v\n", x.IndexEntry)
					}
				}
			}
		}
		for _, m := range t.outbox {
			p("  outbox %d %q %q %q %s\n", m.Seq, m.Topic, m.Key, m.Payload, m.Created.Format("2006-01-02T15:04:05.000000Z"))
		}
	}
	return nil
}
