package memstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// The block list against a plain sorted slice, across splits and
// removals down to nothing.
func TestIDList(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var l idList
	var want []string
	ids := func() []string {
		var out []string
		for res := range l.after("") {
			out = append(out, res.key.ID)
		}
		return out
	}
	for step := range 20000 {
		id := fmt.Sprintf("%x", r.IntN(3000))
		if _, ok := slices.BinarySearch(want, id); ok == (step%3 == 0) || step > 15000 {
			if ok {
				l.remove(id)
				want = slices.DeleteFunc(want, func(s string) bool { return s == id })
			}
		} else if !ok {
			l.insert(&resource{key: fhir.Key{ID: id}})
			want = append(want, id)
			slices.Sort(want)
		}
		if step%500 == 0 || step > 19990 {
			if got := ids(); !slices.Equal(got, want) {
				t.Fatalf("step %d: %d ids, want %d", step, len(got), len(want))
			}
			for _, b := range l.blocks {
				if len(b) == 0 || len(b) >= 2*blockSize {
					t.Fatalf("step %d: block of %d", step, len(b))
				}
			}
			from := fmt.Sprintf("%x", r.IntN(3000))
			var got []string
			for res := range l.after(from) {
				got = append(got, res.key.ID)
			}
			i, found := slices.BinarySearch(want, from)
			if found {
				i++
			}
			if !slices.Equal(got, want[i:]) {
				t.Fatalf("step %d: after %q: %d ids, want %d", step, from, len(got), len(want[i:]))
			}
		}
	}
	for _, id := range slices.Clone(want) {
		l.remove(id)
	}
	if len(l.blocks) != 0 {
		t.Errorf("%d blocks left after removing every id", len(l.blocks))
	}
}
