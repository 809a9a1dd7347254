package records

import (
	"sync"

	"github.com/kapbridge/kapbridge/mappings"
)

// baselineCache keeps, per session, the mapped observations that can be
// its blood-pressure baseline (phase "before", with a reading): the
// checks judge every reading during a session by its rise from them.
// Scanning a session's observations for every observation made a
// session's import quadratic (the synthetic import puts 500 and more in
// one session); the cache scans a session once per Applier and is kept
// current as observations are applied. Another process applying to the
// same store meanwhile is not seen until the Applier is made again: a
// baseline it added is then missed (a rise not judged), never invented.
type baselineCache struct {
	mu sync.Mutex
	m  map[string]map[string]*mappings.Observation // tenant + session -> id -> observation
}

func baselineKey(tenant, session string) string { return tenant + "\x00" + session }

// isBaseline reports whether an observation can be its session's baseline.
func isBaseline(o *mappings.Observation) bool {
	return o.Phase == "before" && o.Vitals != nil && (o.Vitals.Systolic != nil || o.Vitals.Diastolic != nil)
}

// baselines returns the session's baseline observations, scanning the
// session once.
func (st *applyState) baselines(session string) ([]*mappings.Observation, error) {
	c := &st.a.baselines
	key := baselineKey(st.tenant, session)
	c.mu.Lock()
	got, ok := c.m[key]
	c.mu.Unlock()
	if !ok {
		kids, err := st.children(mappings.KindObservation, session)
		if err != nil {
			return nil, err
		}
		got = map[string]*mappings.Observation{}
		for _, k := range kids {
			if o, ok := k.(*mappings.Observation); ok && isBaseline(o) {
				got[o.ID] = o
			}
		}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]map[string]*mappings.Observation{}
		}
		if cur, ok := c.m[key]; ok {
			got = cur // another transaction filled it meanwhile
		} else {
			c.m[key] = got
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	out := make([]*mappings.Observation, 0, len(got))
	for _, o := range got {
		out = append(out, o)
	}
	c.mu.Unlock()
	return out, nil
}

// noteObservation keeps a cached session's baselines current after an
// observation was applied (mapped says whether it is mapped now).
func (st *applyState) noteObservation(o *mappings.Observation, mapped bool) {
	c := &st.a.baselines
	c.mu.Lock()
	defer c.mu.Unlock()
	got, ok := c.m[baselineKey(st.tenant, o.Session)]
	if !ok {
		return // not scanned yet: the scan will see it
	}
	if mapped && isBaseline(o) {
		got[o.ID] = o
	} else {
		delete(got, o.ID)
	}
}
