package search

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// NormalizeString is the form string search compares: lower-case with
// accents (combining marks after canonical decomposition) removed, so
// "Müller" matches "muller". Index and query both use it.
func NormalizeString(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		// The common case, without the transformer's allocations.
		return strings.ToLower(s)
	}
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		out = s
	}
	return strings.ToLower(out)
}

// DateRange is dateRange, for callers outside the package ($everything's
// start and end).
func DateRange(s string) (lo, hi int64, ok bool) { return dateRange(s) }

// dateRange reads a FHIR date, dateTime or instant (or a search value of
// the same form, which may stop at minutes) and returns its implicit range
// in Unix microseconds UTC, inclusive: "2024" is all of 2024. A value
// without a zone is read as UTC.
func dateRange(s string) (lo, hi int64, ok bool) {
	n := len(s)
	num := func(i, w int) (int, bool) {
		if i+w > n {
			return 0, false
		}
		v := 0
		for j := i; j < i+w; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok := num(0, 4)
	if !ok {
		return 0, 0, false
	}
	month, day := 1, 1
	var hour, minute, sec, nanos int
	loc := time.UTC
	var end func(t time.Time) time.Time // start of the next period
	i := 4
	switch {
	case n == 4:
		end = func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	case s[4] != '-':
		return 0, 0, false
	default:
		if month, ok = num(5, 2); !ok || month < 1 || month > 12 {
			return 0, 0, false
		}
		i = 7
		if n == 7 {
			end = func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
			break
		}
		if s[7] != '-' {
			return 0, 0, false
		}
		if day, ok = num(8, 2); !ok || day < 1 || day > daysIn(year, month) {
			return 0, 0, false
		}
		i = 10
		if n == 10 {
			end = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
			break
		}
		if s[10] != 'T' {
			return 0, 0, false
		}
		if hour, ok = num(11, 2); !ok || hour > 23 || n < 16 || s[13] != ':' {
			return 0, 0, false
		}
		if minute, ok = num(14, 2); !ok || minute > 59 {
			return 0, 0, false
		}
		i = 16
		step := time.Minute
		if i < n && s[i] == ':' {
			if sec, ok = num(17, 2); !ok || sec > 59 {
				return 0, 0, false
			}
			i = 19
			step = time.Second
			if i < n && s[i] == '.' {
				j := i + 1
				for j < n && s[j] >= '0' && s[j] <= '9' {
					j++
				}
				digits := j - i - 1
				if digits == 0 || digits > 9 {
					return 0, 0, false
				}
				f, _ := num(i+1, digits)
				step = time.Second
				for k := 0; k < digits; k++ {
					step /= 10
				}
				for k := digits; k < 9; k++ {
					f *= 10
				}
				nanos = f
				i = j
			}
		}
		// Zone: Z, +hh:mm, -hh:mm, or none (UTC). A '+' sent unencoded in
		// a URL arrives as a space; accept it as '+'.
		switch {
		case i == n:
		case s[i] == 'Z' && i+1 == n:
		case (s[i] == '+' || s[i] == '-' || s[i] == ' ') && n == i+6 && s[i+3] == ':':
			zh, ok1 := num(i+1, 2)
			zm, ok2 := num(i+4, 2)
			if !ok1 || !ok2 || zh > 14 || zm > 59 {
				return 0, 0, false
			}
			off := zh*3600 + zm*60
			if s[i] == '-' {
				off = -off
			}
			loc = time.FixedZone("", off)
		default:
			return 0, 0, false
		}
		end = func(t time.Time) time.Time { return t.Add(step) }
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, loc)
	lo = t.UnixMicro()
	hi = end(t).UnixMicro() - 1
	if hi < lo {
		hi = lo
	}
	return lo, hi, true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// numberRange reads a decimal literal and returns its value and implicit
// range from its significant digits: "100" is [99.5, 100.5], "100.00" is
// [99.995, 100.005], "1e2" is [50, 150].
func numberRange(s string) (v, lo, hi float64, ok bool) {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == intStart {
		return 0, 0, 0, false
	}
	decimals := 0
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == fs {
			return 0, 0, 0, false
		}
		decimals = i - fs
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		es := i
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		ds := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == ds || i-ds > 4 {
			return 0, 0, 0, false
		}
		e, err := strconv.Atoi(s[es:i])
		if err != nil {
			return 0, 0, 0, false
		}
		exp = e
	}
	if i != len(s) {
		return 0, 0, 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, 0, 0, false
	}
	scale := decimals - exp + 1 // half a unit of the last digit is 5e-scale
	if scale < -30 || scale > 30 || len(s) > 40 {
		// Beyond what a double can tell apart anyway.
		half := 0.5 * math.Pow(10, float64(exp-decimals))
		return v, v - half, v + half, true
	}
	// The bounds are computed in decimal, then rounded once: 5.4 - 0.05 in
	// floating point is 5.3500000000000005, which would put a stored 5.35
	// outside a search for 5.4. With the digits d of the literal (5.4: 54,
	// one decimal) the bounds are (10d ± 5) × 10^(exp - decimals - 1).
	var digits uint64
	nd := 0
	for j := intStart; j < len(s) && s[j] != 'e' && s[j] != 'E'; j++ {
		if s[j] == '.' {
			continue
		}
		if nd > 0 || s[j] != '0' {
			nd++
		}
		digits = digits*10 + uint64(s[j]-'0')
	}
	if nd <= 17 {
		e := strconv.Itoa(exp - decimals - 1)
		a := strconv.FormatUint(digits*10-5, 10) + "e" + e
		b := strconv.FormatUint(digits*10+5, 10) + "e" + e
		if digits == 0 {
			a = "-5e" + e
		}
		lo, _ = strconv.ParseFloat(a, 64)
		hi, _ = strconv.ParseFloat(b, 64)
		if s[0] == '-' {
			lo, hi = -hi, -lo
		}
		return v, lo, hi, true
	}
	var r, half big.Rat
	if _, ok := r.SetString(s); !ok {
		return 0, 0, 0, false
	}
	pow := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(scale))), nil)
	if scale >= 0 {
		half.SetFrac(big.NewInt(5), pow)
	} else {
		half.SetInt(pow.Mul(pow, big.NewInt(5)))
	}
	lo, _ = new(big.Rat).Sub(&r, &half).Float64()
	hi, _ = new(big.Rat).Add(&r, &half).Float64()
	return v, lo, hi, true
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
