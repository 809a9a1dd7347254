package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// snapshotter expands differentials into snapshots over the R4 core
// StructureDefinitions.
type snapshotter struct {
	core  string
	cache map[string]*fhir.Value
}

// base loads the core StructureDefinition of a type ("CarePlan", "Meta").
func (s *snapshotter) base(typ string) (*fhir.Value, error) {
	if sd := s.cache[typ]; sd != nil {
		return sd, nil
	}
	data, err := os.ReadFile(filepath.Join(s.core, "StructureDefinition-"+typ+".json"))
	if err != nil {
		return nil, err
	}
	sd, err := fhir.ParseJSON(data, fhir.Limits{MaxBytes: 64 << 20, MaxArrayElements: -1, MaxNodes: -1})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	s.cache[typ] = sd
	return sd, nil
}

func elementsOf(sd *fhir.Value, part string) []*fhir.Value {
	if p := sd.Get(part); p != nil {
		if e := p.Get("element"); e != nil {
			return e.Array
		}
	}
	return nil
}

// snapshot merges the differential of profile over the snapshot of its
// base type: the base elements in order, each replaced where the
// differential constrains it, with the children of complex datatypes
// (Meta, Reference ...) unfolded from their own definitions where the
// differential reaches into them. Slicing is not supported: no profile of
// the project needs it, and a differential that slices is refused rather
// than expanded wrongly.
func (s *snapshotter) snapshot(profile *fhir.Value) ([]*fhir.Value, error) {
	base, err := s.base(profile.GetString("type"))
	if err != nil {
		return nil, err
	}
	var elems []*fhir.Value
	for _, e := range elementsOf(base, "snapshot") {
		elems = append(elems, clone(e))
	}
	for _, d := range elementsOf(profile, "differential") {
		id := d.GetString("id")
		if id == "" || d.GetString("path") != id {
			return nil, fmt.Errorf("differential element %q: id and path must be given and equal (no slices)", id)
		}
		if d.Get("sliceName") != nil || d.Get("slicing") != nil {
			return nil, fmt.Errorf("%s: slicing is not supported", id)
		}
		i, err := s.find(&elems, id)
		if err != nil {
			return nil, err
		}
		if err := merge(elems[i], d); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
	}
	return elems, nil
}

// find returns the index of the element id, unfolding datatypes on the
// way as needed.
func (s *snapshotter) find(elems *[]*fhir.Value, id string) (int, error) {
	for {
		if i := indexOf(*elems, id); i >= 0 {
			return i, nil
		}
		// The nearest ancestor present must be a single-typed complex
		// element whose children are not in the snapshot yet.
		anc := id
		ai := -1
		for ai < 0 {
			dot := strings.LastIndexByte(anc, '.')
			if dot < 0 {
				return 0, fmt.Errorf("%s: no such element in the base", id)
			}
			anc = anc[:dot]
			ai = indexOf(*elems, anc)
		}
		if ai+1 < len(*elems) && strings.HasPrefix((*elems)[ai+1].GetString("id"), anc+".") {
			return 0, fmt.Errorf("%s: no such element under %s", id, anc)
		}
		types := (*elems)[ai].Get("type")
		if types == nil || len(types.Array) != 1 {
			return 0, fmt.Errorf("%s: cannot unfold %s: it has no single type", id, anc)
		}
		typ := types.Array[0].GetString("code")
		tsd, err := s.base(typ)
		if err != nil {
			return 0, fmt.Errorf("%s: unfold %s: %w", id, anc, err)
		}
		var kids []*fhir.Value
		for _, e := range elementsOf(tsd, "snapshot")[1:] {
			c := clone(e)
			c.Set("id", fhir.String(anc+strings.TrimPrefix(c.GetString("id"), typ)))
			c.Set("path", fhir.String(anc+strings.TrimPrefix(c.GetString("path"), typ)))
			kids = append(kids, c)
		}
		rest := append(kids, (*elems)[ai+1:]...)
		*elems = append((*elems)[:ai+1], rest...)
	}
}

func indexOf(elems []*fhir.Value, id string) int {
	for i, e := range elems {
		if e.GetString("id") == id {
			return i
		}
	}
	return -1
}

// merge applies one differential element to its snapshot element. A
// profile may only narrow its base: min up, max down.
func merge(snap, diff *fhir.Value) error {
	bmin, bmax := cardinality(snap)
	for _, m := range diff.Members {
		switch m.Key {
		case "id", "path":
			continue
		case "constraint":
			old := snap.Get("constraint")
			if old == nil {
				old = arr()
				snap.Set("constraint", old)
			}
			for _, c := range m.Value.Array {
				old.Array = append(old.Array, clone(c))
			}
			continue
		}
		snap.Set(m.Key, clone(m.Value))
	}
	min, max := cardinality(snap)
	if min < bmin || (bmax >= 0 && (max < 0 || max > bmax)) || (max >= 0 && min > max) {
		return fmt.Errorf("cardinality %d..%s does not narrow the base %d..%s", min, maxString(max), bmin, maxString(bmax))
	}
	return nil
}

func cardinality(e *fhir.Value) (min, max int) {
	if v := e.Get("min"); v != nil {
		min, _ = strconv.Atoi(v.Str)
	}
	max = -1
	if s := e.GetString("max"); s != "*" && s != "" {
		max, _ = strconv.Atoi(s)
	}
	return min, max
}

func maxString(n int) string {
	if n < 0 {
		return "*"
	}
	return strconv.Itoa(n)
}
