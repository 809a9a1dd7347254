package fhir

import (
	"math/rand/v2"
	"testing"
)

// TestPrimitiveFastPaths proves the hand-written checks give the same
// answer as the regexes of the R4 definitions.
func TestPrimitiveFastPaths(t *testing.T) {
	alphabet := []byte("aZ09+/=-. \t\n\r\f\v:#é\x00")
	rng := rand.New(rand.NewPCG(1, 2))
	samples := []string{"", " ", "a", "a b", "a  b", " a", "a ", "AAAA", "AAA", "AA AA", "AAAA BBBB", " AAAA ", "AAAA\n", "====", "a\fb",
		"http://x.org/a", "urn:uuid:1", "abc.DEF-1", "ab_c", string(make([]byte, 65))}
	for range 200000 {
		n := rng.IntN(12)
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		samples = append(samples, string(b))
	}
	for _, name := range []string{"string", "markdown", "uri", "url", "canonical", "code", "id", "base64Binary"} {
		td := r4().types[name]
		if td == nil || td.re == nil || td.fast == nil {
			t.Fatalf("%s: no regex or fast path", name)
		}
		for _, s := range samples {
			if got, want := td.fast(s), td.re.MatchString(s); got != want {
				t.Errorf("%s %q: fast %v, regex %v", name, s, got, want)
			}
		}
	}
}
