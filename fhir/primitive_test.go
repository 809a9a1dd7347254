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
	// date-ish strings: valid ones mutated one character at a time
	seeds := []string{"2024", "2024-02", "2024-02-29", "2024-02-29T10:30:00Z", "2024-02-29T23:59:60.123+14:00", "2024-02-29T00:00:00-13:59",
		"0001-01-01", "1000", "0000", "0100", "2024-13", "2024-00-10", "2024-01-32", "10:30:00", "23:59:60.5", "24:00:00", "12:60:00",
		"-0", "0", "1.50", "-12.5e-3", "1e5", "01", "1.", ".5", "1E+", "2024-01-01T10:30Z", "2024-01-01T10:30:00+14:01", "2024-01-01T10:30:00"}
	mut := []byte("0123456789-:TZ+.eE x")
	for _, seed := range seeds {
		samples = append(samples, seed)
		for range 2000 {
			b := []byte(seed)
			for k := rng.IntN(3) + 1; k > 0; k-- {
				switch op := rng.IntN(3); {
				case op == 0 && len(b) > 0:
					b[rng.IntN(len(b))] = mut[rng.IntN(len(mut))]
				case op == 1 && len(b) > 0:
					i := rng.IntN(len(b))
					b = append(b[:i], b[i+1:]...)
				default:
					i := rng.IntN(len(b) + 1)
					b = append(b[:i], append([]byte{mut[rng.IntN(len(mut))]}, b[i:]...)...)
				}
			}
			samples = append(samples, string(b))
		}
	}
	for _, name := range []string{"string", "markdown", "uri", "url", "canonical", "code", "id", "base64Binary", "date", "dateTime", "instant", "time", "decimal"} {
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
