// Package names finds the members of an object level of the R4 tables by
// their JSON names. The validators look up every member of every
// resource they check, and a Go map hashes the whole name each time: an
// Index hashes its length and three of its bytes, and compares.
package names

// Index maps names to values; built once (New), then read-only, safe
// for concurrent use. The zero value finds nothing, and so does "".
type Index[T any] struct {
	slots []slot[T] // open addressing, at most half full; len a power of two
	shift uint
}

// slot is empty when its name is "". The tables index every object level
// of R4 and stay live for the process (the garbage collector marks them
// on every cycle), so a slot carries nothing more.
type slot[T any] struct {
	name string
	val  T
}

// New indexes the values by the names; the names must be distinct. An
// empty name is left out.
func New[T any](names []string, vals []T) Index[T] {
	size, shift := 8, uint(32-3)
	for size < 2*len(names) {
		size *= 2
		shift--
	}
	x := Index[T]{slots: make([]slot[T], size), shift: shift}
	for i, n := range names {
		if n == "" {
			continue
		}
		h := x.start(n)
		for x.slots[h].name != "" {
			h = (h + 1) & (len(x.slots) - 1)
		}
		x.slots[h] = slot[T]{name: n, val: vals[i]}
	}
	return x
}

// start is the slot a name's probe begins at.
func (x *Index[T]) start(s string) int {
	n := len(s)
	h := uint32(n)
	if n > 0 {
		h ^= uint32(s[0])<<8 ^ uint32(s[n-1])<<16 ^ uint32(s[n/2])<<24
	}
	return int((h * 0x9E3779B1) >> x.shift)
}

// Get returns the value of name, and whether there is one.
func (x *Index[T]) Get(name string) (T, bool) {
	var zero T
	if len(x.slots) == 0 || name == "" {
		return zero, false
	}
	mask := len(x.slots) - 1
	for h := x.start(name); ; h = (h + 1) & mask {
		s := &x.slots[h]
		if s.name == name {
			return s.val, true
		}
		if s.name == "" {
			return zero, false
		}
	}
}
