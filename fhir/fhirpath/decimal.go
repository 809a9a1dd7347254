package fhirpath

import (
	"math"
	"math/big"
	"strconv"
	"strings"
)

// dec is a FHIRPath Decimal: an exact rational value and the number of
// digits after the point it was written or computed with. Exact values
// keep 1.2 + 1.8 = 3.0 and 1.2 * 1.8 = 2.16 free of binary float error;
// the scale gives precision() and toString() their answers (1.50 is not
// written 1.5). A dec is never mutated once made.
type dec struct {
	r     *big.Rat
	scale int
}

// quoScale is how many decimal places a division keeps: FHIRPath asks
// for at least 8.
const quoScale = 8

// maxScale bounds the precision arguments of the boundary functions and
// round(): beyond it the answer is empty rather than a huge number.
const maxScale = 28

func parseDec(s string) (dec, bool) {
	if !decimalShape(s) {
		return dec{}, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return dec{}, false
	}
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	scale := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		scale = len(mant) - i - 1
	}
	if exp != "" {
		e, err := strconv.Atoi(exp)
		if err != nil || e > 1000 || e < -1000 {
			return dec{}, false
		}
		scale = max(0, scale-e)
	}
	return dec{r: r, scale: scale}, true
}

func decFromInt(n int64) dec { return dec{r: new(big.Rat).SetInt64(n)} }

// decFromFloat rounds f to quoScale places and drops trailing zeros.
func decFromFloat(f float64) (dec, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dec{}, false
	}
	d, ok := parseDec(strconv.FormatFloat(f, 'f', quoScale, 64))
	if !ok {
		return dec{}, false
	}
	return d.trimmed(), true
}

func (d dec) float() float64 { f, _ := d.r.Float64(); return f }

func (d dec) sign() int { return d.r.Sign() }

func (d dec) cmp(e dec) int { return d.r.Cmp(e.r) }

func (d dec) add(e dec) dec {
	return dec{r: new(big.Rat).Add(d.r, e.r), scale: max(d.scale, e.scale)}
}

func (d dec) sub(e dec) dec {
	return dec{r: new(big.Rat).Sub(d.r, e.r), scale: max(d.scale, e.scale)}
}

func (d dec) mul(e dec) dec {
	return dec{r: new(big.Rat).Mul(d.r, e.r), scale: min(d.scale+e.scale, maxScale)}
}

// quo divides, rounding to quoScale places; ok is false for a zero divisor.
func (d dec) quo(e dec) (dec, bool) {
	if e.r.Sign() == 0 {
		return dec{}, false
	}
	q := dec{r: new(big.Rat).Quo(d.r, e.r), scale: quoScale}
	return q.round(quoScale).trimmed(), true
}

func (d dec) neg() dec { return dec{r: new(big.Rat).Neg(d.r), scale: d.scale} }

func (d dec) abs() dec { return dec{r: new(big.Rat).Abs(d.r), scale: d.scale} }

func (d dec) isInt() bool { return d.r.IsInt() }

var ten = big.NewInt(10)

func pow10(n int) *big.Int { return new(big.Int).Exp(ten, big.NewInt(int64(n)), nil) }

// scaled returns d * 10^places as a rational.
func (d dec) scaled(places int) *big.Rat {
	f := new(big.Rat).SetInt(pow10(places))
	return f.Mul(f, d.r)
}

func unscale(n *big.Int, places int) dec {
	return dec{r: new(big.Rat).SetFrac(n, pow10(places)), scale: places}
}

// floorInt is the largest integer not above r. DivMod is Euclidean
// division, whose quotient is the floor when the divisor (a Rat's
// denominator) is positive.
func floorInt(r *big.Rat) *big.Int {
	q, _ := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	return q
}

func ceilInt(r *big.Rat) *big.Int {
	f := floorInt(r)
	if !r.IsInt() {
		f.Add(f, big.NewInt(1))
	}
	return f
}

func truncInt(r *big.Rat) *big.Int { return new(big.Int).Quo(r.Num(), r.Denom()) }

// round rounds half away from zero to places digits.
func (d dec) round(places int) dec {
	s := d.scaled(places)
	neg := s.Sign() < 0
	s.Abs(s)
	s.Add(s, big.NewRat(1, 2))
	n := floorInt(s)
	if neg {
		n.Neg(n)
	}
	return unscale(n, places)
}

func (d dec) truncTo(places int) dec { return unscale(truncInt(d.scaled(places)), places) }

// trimmed drops trailing zero digits from the scale (not below 0).
func (d dec) trimmed() dec {
	for d.scale > 0 {
		if !d.scaled(d.scale - 1).IsInt() {
			break
		}
		d.scale--
	}
	return d
}

// String writes d with exactly scale digits after the point.
func (d dec) String() string {
	if d.r == nil {
		return "0"
	}
	if d.r.IsInt() && d.scale == 0 {
		return d.r.Num().String()
	}
	return d.r.FloatString(d.scale)
}

// int64 returns d as an integer when it is one and fits.
func (d dec) int64() (int64, bool) {
	if !d.r.IsInt() || !d.r.Num().IsInt64() {
		return 0, false
	}
	return d.r.Num().Int64(), true
}

func parseInt(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// decimalShape accepts [+-]digits[.digits][e[+-]digits]: the FHIRPath
// decimal and the JSON number, and nothing else big.Rat would take
// (fractions, hexadecimal).
func decimalShape(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		return i > j
	}
	if !digits() {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}
