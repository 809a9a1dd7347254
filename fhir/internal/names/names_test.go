package names

import (
	"strconv"
	"testing"
)

// TestIndex: every name indexed is found with its value (but "", which
// is never found), and names not indexed (prefixes, extensions, same length and ends) are not, for
// tables of every size up to a few hundred names.
func TestIndex(t *testing.T) {
	var zero Index[int]
	if _, ok := zero.Get("x"); ok {
		t.Error("the zero Index found a name")
	}
	base := []string{"value", "valueQuantity", "valueString", "valueCodeableConcept", "id", "extension",
		"modifierExtension", "code", "system", "display", "", "_value", "a", "b", "ab", "ba"}
	for n := 0; n <= 300; n += 7 {
		var names []string
		for i := 0; i < n; i++ {
			if i < len(base) {
				names = append(names, base[i])
			} else {
				names = append(names, "member"+strconv.Itoa(i))
			}
		}
		vals := make([]int, len(names))
		for i := range vals {
			vals[i] = i + 1
		}
		x := New(names, vals)
		for i, name := range names {
			if name == "" {
				if _, ok := x.Get(name); ok {
					t.Errorf("%d names: the empty name found", n)
				}
				continue
			}
			if v, ok := x.Get(name); !ok || v != i+1 {
				t.Errorf("%d names: %q gives %d %v, want %d", n, name, v, ok, i+1)
			}
		}
		for _, miss := range []string{"valu", "valueX", "valueQuantityy", "Value", "member" + strconv.Itoa(n), "memberX", "x", "_id"} {
			known := false
			for _, name := range names {
				known = known || name == miss
			}
			if _, ok := x.Get(miss); ok != known {
				t.Errorf("%d names: %q found %v", n, miss, ok)
			}
		}
	}
}
