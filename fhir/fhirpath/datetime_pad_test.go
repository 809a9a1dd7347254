package fhirpath

import (
	"fmt"
	"testing"
)

// TestAppendPadded: the hand-written padding dtv.String uses reads as
// fmt's %0*d would, for every width it is called with.
func TestAppendPadded(t *testing.T) {
	for _, width := range []int{2, 3, 4} {
		for n := -120; n <= 120_000; n++ {
			if got, want := string(appendPadded(nil, n, width)), fmt.Sprintf("%0*d", width, n); got != want {
				t.Fatalf("appendPadded(%d, %d) = %q, want %q", n, width, got, want)
			}
		}
	}
}
