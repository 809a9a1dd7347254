package memstore

import (
	"iter"
	"slices"
	"sort"
	"strings"
)

// blockSize is how many resources an idList block holds after a split;
// a block splits when it doubles.
const blockSize = 256

// idList is the resources of one type in id order: the default search
// order. It is kept in blocks, so that an insert (ids are often random
// UUIDs) moves at most one block rather than half the type.
type idList struct {
	blocks [][]*resource
}

func byID(r *resource, id string) int { return strings.Compare(r.key.ID, id) }

// locate returns the block that holds id or would (len(blocks) when id
// sorts after every id), and the position in it.
func (l *idList) locate(id string) (b, i int, found bool) {
	b = sort.Search(len(l.blocks), func(b int) bool {
		blk := l.blocks[b]
		return blk[len(blk)-1].key.ID >= id
	})
	if b == len(l.blocks) {
		return b, 0, false
	}
	i, found = slices.BinarySearchFunc(l.blocks[b], id, byID)
	return b, i, found
}

func (l *idList) insert(r *resource) {
	b, i, _ := l.locate(r.key.ID)
	if b == len(l.blocks) {
		if b == 0 {
			l.blocks = [][]*resource{{r}}
			return
		}
		b--
		i = len(l.blocks[b])
	}
	blk := slices.Insert(l.blocks[b], i, r)
	if len(blk) >= 2*blockSize {
		tail := slices.Clone(blk[blockSize:])
		clear(blk[blockSize:])
		blk = blk[:blockSize]
		l.blocks = slices.Insert(l.blocks, b+1, tail)
	}
	l.blocks[b] = blk
}

func (l *idList) remove(id string) {
	b, i, found := l.locate(id)
	if !found {
		return
	}
	blk := slices.Delete(l.blocks[b], i, i+1)
	if len(blk) == 0 {
		l.blocks = slices.Delete(l.blocks, b, b+1)
		return
	}
	l.blocks[b] = blk
}

// after yields the resources with an id greater than id, in id order;
// after("") yields them all.
func (l *idList) after(id string) iter.Seq[*resource] {
	return func(yield func(*resource) bool) {
		b, i, found := l.locate(id)
		if found {
			i++
		}
		for ; b < len(l.blocks); b, i = b+1, 0 {
			for _, r := range l.blocks[b][i:] {
				if !yield(r) {
					return
				}
			}
		}
	}
}
