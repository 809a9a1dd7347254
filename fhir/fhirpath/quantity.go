package fhirpath

import (
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// quantity is a FHIRPath Quantity: a decimal value and a unit, either a
// UCUM code ('mg', 'wk') or a calendar duration keyword (week, days).
type quantity struct {
	v    dec
	unit string // as written
}

// calendarUnit returns the calendar keyword a unit names, singular, or "".
// Quoted keywords count too: 1 'month' is a calendar month.
func calendarUnit(u string) string { return calendarUnits[u] }

func (q quantity) String() string {
	if c := calendarUnit(q.unit); c != "" {
		return q.v.String() + " " + q.unit
	}
	return q.v.String() + " '" + q.unit + "'"
}

// The UCUM subset: each unit is a factor times a product of base
// dimensions. The factor is exact (a rational), so 4.0 'g' = 4000.0 'mg'
// holds without rounding.
const (
	dimLength = iota
	dimMass
	dimTime
	dimAmount
	dimTemp
	dimCurrent
	dimLuminous
	dimAngle
	dimIU       // international units: arbitrary, only comparable among themselves
	dimCalMonth // calendar years and months: not comparable with UCUM 'a' and 'mo'
	nDims
)

type dims [nDims]int8

type unitDef struct {
	factor *big.Rat // in base units
	dim    dims
	metric bool // takes prefixes
}

func rat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("fhirpath: bad unit factor " + s)
	}
	return r
}

func base(d int) dims { var x dims; x[d] = 1; return x }

func derived(factor string, parts ...int8) unitDef {
	var x dims
	for i := 0; i+1 < len(parts); i += 2 {
		x[parts[i]] = parts[i+1]
	}
	return unitDef{factor: rat(factor), dim: x}
}

var ucumAtoms = map[string]unitDef{
	"m":       {rat("1"), base(dimLength), true},
	"g":       {rat("1"), base(dimMass), true},
	"s":       {rat("1"), base(dimTime), true},
	"mol":     {rat("602213670000000000000000"), dims{}, true},
	"K":       {rat("1"), base(dimTemp), true},
	"A":       {rat("1"), base(dimCurrent), true},
	"cd":      {rat("1"), base(dimLuminous), true},
	"rad":     {rat("1"), base(dimAngle), true},
	"L":       {rat("1/1000"), dims{dimLength: 3}, true},
	"l":       {rat("1/1000"), dims{dimLength: 3}, true},
	"min":     derived("60", dimTime, 1),
	"h":       derived("3600", dimTime, 1),
	"d":       derived("86400", dimTime, 1),
	"wk":      derived("604800", dimTime, 1),
	"mo":      derived("2629800", dimTime, 1),  // mean Julian month
	"a":       derived("31557600", dimTime, 1), // Julian year
	"[in_i]":  derived("0.0254", dimLength, 1),
	"[ft_i]":  derived("0.3048", dimLength, 1),
	"[yd_i]":  derived("0.9144", dimLength, 1),
	"[mi_i]":  derived("1609.344", dimLength, 1),
	"[lb_av]": derived("453.59237", dimMass, 1),
	"[oz_av]": derived("28.349523125", dimMass, 1),
	"[gr]":    derived("0.06479891", dimMass, 1),
	"[pi]":    derived("3.1415926535897932384626433832795028841971693993751", dimLength, 0),
	"%":       derived("1/100"),
	"[ppm]":   derived("1/1000000"),
	"deg":     derived("0.017453292519943295769236907684886127134428718885417", dimAngle, 1),
	"[iU]":    {rat("1"), base(dimIU), true},
	"[IU]":    {rat("1"), base(dimIU), true},
	"Pa":      {rat("1000"), dims{dimMass: 1, dimLength: -1, dimTime: -2}, true},
	"N":       {rat("1000"), dims{dimMass: 1, dimLength: 1, dimTime: -2}, true},
	"J":       {rat("1000"), dims{dimMass: 1, dimLength: 2, dimTime: -2}, true},
	"W":       {rat("1000"), dims{dimMass: 1, dimLength: 2, dimTime: -3}, true},
	"cal":     {rat("4184"), dims{dimMass: 1, dimLength: 2, dimTime: -2}, true},
	"bar":     {rat("100000000"), dims{dimMass: 1, dimLength: -1, dimTime: -2}, true},
	"mm[Hg]":  derived("133322", dimMass, 1, dimLength, -1, dimTime, -2),
	"Hz":      {rat("1"), dims{dimTime: -1}, true},
	"eq":      {rat("602213670000000000000000"), dims{}, true},
	"kat":     {rat("602213670000000000000000"), dims{dimTime: -1}, true},
	"U":       {rat("10036022833333333333"), dims{dimTime: -1}, true}, // umol/min
}

var ucumPrefixes = map[string]string{
	"Y": "1e24", "Z": "1e21", "E": "1e18", "P": "1e15", "T": "1e12", "G": "1e9", "M": "1e6",
	"k": "1e3", "h": "1e2", "da": "1e1", "d": "1e-1", "c": "1e-2", "m": "1e-3", "u": "1e-6",
	"n": "1e-9", "p": "1e-12", "f": "1e-15", "a": "1e-18",
}

// calendarAsUCUM are the calendar durations that equal a UCUM unit: from
// a week down (FHIRPath: a year or month is not 'a' or 'mo').
var calendarAsUCUM = map[string]string{
	"week": "wk", "day": "d", "hour": "h", "minute": "min", "second": "s", "millisecond": "ms",
}

// canonical is a unit reduced to base dimensions.
type canonical struct {
	factor *big.Rat
	dim    dims
}

// parseUnit reduces a UCUM expression or calendar keyword to base units.
func parseUnit(u string) (canonical, bool) {
	if c := calendarUnit(u); c != "" {
		if code, ok := calendarAsUCUM[c]; ok {
			return parseUnit(code)
		}
		f := rat("1")
		if c == "year" {
			f = rat("12")
		}
		return canonical{factor: f, dim: base(dimCalMonth)}, true
	}
	p := unitParser{s: u}
	c, ok := p.term()
	if !ok || p.i != len(p.s) {
		return canonical{}, false
	}
	return c, true
}

type unitParser struct {
	s     string
	i     int
	depth int
}

func mulCanon(a, b canonical, sign int8) canonical {
	out := canonical{factor: new(big.Rat)}
	if sign > 0 {
		out.factor.Mul(a.factor, b.factor)
	} else {
		out.factor.Quo(a.factor, b.factor)
	}
	for i := range out.dim {
		out.dim[i] = a.dim[i] + sign*b.dim[i]
	}
	return out
}

func one() canonical { return canonical{factor: rat("1")} }

// term: ['/'] component (('.' | '/') component)*
func (p *unitParser) term() (canonical, bool) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 20 {
		return canonical{}, false
	}
	acc := one()
	sign := int8(1)
	if p.i < len(p.s) && p.s[p.i] == '/' {
		sign = -1
		p.i++
	}
	for {
		c, ok := p.component()
		if !ok {
			return canonical{}, false
		}
		acc = mulCanon(acc, c, sign)
		if p.i >= len(p.s) || (p.s[p.i] != '.' && p.s[p.i] != '/') {
			return acc, true
		}
		sign = 1
		if p.s[p.i] == '/' {
			sign = -1
		}
		p.i++
	}
}

// component: annotation | '(' term ')' | factor | unit [exponent] [annotation]
func (p *unitParser) component() (canonical, bool) {
	if p.i >= len(p.s) {
		return canonical{}, false
	}
	if p.s[p.i] == '{' {
		if !p.annotation() {
			return canonical{}, false
		}
		return one(), true
	}
	if p.s[p.i] == '(' {
		p.i++
		c, ok := p.term()
		if !ok || p.i >= len(p.s) || p.s[p.i] != ')' {
			return canonical{}, false
		}
		p.i++
		return c, true
	}
	if isDigit(p.s[p.i]) {
		j := p.i
		for p.i < len(p.s) && isDigit(p.s[p.i]) {
			p.i++
		}
		n := p.s[j:p.i]
		f := rat(n)
		// 10*3 and 10^3: a power of ten
		if p.i < len(p.s) && (p.s[p.i] == '*' || p.s[p.i] == '^') {
			p.i++
			e, ok := p.exponent()
			if !ok || e > 30 || e < -30 {
				return canonical{}, false
			}
			f = new(big.Rat).SetFrac(pow10(0), big.NewInt(1))
			b, _ := new(big.Rat).SetString(n)
			for k := 0; k < abs(e); k++ {
				if e > 0 {
					f.Mul(f, b)
				} else {
					f.Quo(f, b)
				}
			}
		}
		if p.i < len(p.s) && p.s[p.i] == '{' && !p.annotation() {
			return canonical{}, false
		}
		if f.Sign() == 0 {
			return canonical{}, false // '0' is no unit, and would divide by zero
		}
		return canonical{factor: f}, true
	}
	j := p.i
	if p.s[p.i] == '[' {
		end := strings.IndexByte(p.s[p.i:], ']')
		if end < 0 {
			return canonical{}, false
		}
		p.i += end + 1
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '.' || c == '/' || c == '(' || c == ')' || c == '{' || isDigit(c) || c == '+' || c == '-' {
			break
		}
		if c == '[' {
			end := strings.IndexByte(p.s[p.i:], ']')
			if end < 0 {
				return canonical{}, false
			}
			p.i += end + 1
			continue
		}
		p.i++
	}
	sym := p.s[j:p.i]
	def, ok := lookupAtom(sym)
	if !ok {
		return canonical{}, false
	}
	c := canonical{factor: def.factor, dim: def.dim}
	if p.i < len(p.s) && (isDigit(p.s[p.i]) || p.s[p.i] == '+' || p.s[p.i] == '-') {
		e, ok := p.exponent()
		if !ok || e == 0 || e > 10 || e < -10 {
			return canonical{}, false
		}
		out := one()
		for k := 0; k < abs(e); k++ {
			if e > 0 {
				out = mulCanon(out, c, 1)
			} else {
				out = mulCanon(out, c, -1)
			}
		}
		c = out
	}
	if p.i < len(p.s) && p.s[p.i] == '{' && !p.annotation() {
		return canonical{}, false
	}
	return c, true
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func (p *unitParser) exponent() (int, bool) {
	j := p.i
	if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
		p.i++
	}
	for p.i < len(p.s) && isDigit(p.s[p.i]) {
		p.i++
	}
	n, err := strconv.Atoi(p.s[j:p.i])
	return n, err == nil
}

func (p *unitParser) annotation() bool {
	end := strings.IndexByte(p.s[p.i:], '}')
	if end < 0 {
		return false
	}
	p.i += end + 1
	return true
}

func lookupAtom(sym string) (unitDef, bool) {
	if sym == "" {
		return unitDef{}, false
	}
	if d, ok := ucumAtoms[sym]; ok {
		return d, true
	}
	for _, plen := range []int{2, 1} {
		if len(sym) <= plen {
			continue
		}
		pf, ok := ucumPrefixes[sym[:plen]]
		if !ok {
			continue
		}
		d, ok := ucumAtoms[sym[plen:]]
		if !ok || !d.metric {
			continue
		}
		f := new(big.Rat).Mul(d.factor, rat(pf))
		return unitDef{factor: f, dim: d.dim}, true
	}
	return unitDef{}, false
}

// toCanonical gives q's value in base units.
func (q quantity) toCanonical() (*big.Rat, dims, bool) {
	u := q.unit
	if u == "" {
		u = "1"
	}
	c, ok := parseUnit(u)
	if !ok {
		return nil, dims{}, false
	}
	return new(big.Rat).Mul(q.v.r, c.factor), c.dim, true
}

// convertTo expresses q in unit, when the two are comparable. The scale
// of the result is what the exact value needs (at least q's).
func (q quantity) convertTo(unit string) (quantity, bool) {
	if q.unit == unit || (calendarUnit(q.unit) != "" && calendarUnit(q.unit) == calendarUnit(unit)) {
		return quantity{v: q.v, unit: unit}, true
	}
	v, d, ok := q.toCanonical()
	if !ok {
		return q, false
	}
	c, ok := parseUnit(unit)
	if !ok || c.dim != d {
		return q, false
	}
	r := new(big.Rat).Quo(v, c.factor)
	out := dec{r: r, scale: q.v.scale}
	// Keep the digits the exact value needs, within reason.
	for out.scale < maxScale && !out.scaled(out.scale).IsInt() {
		out.scale++
	}
	if !out.scaled(out.scale).IsInt() {
		out = out.round(maxScale)
	}
	return quantity{v: out, unit: unit}, true
}

// unitString writes base dimensions as a UCUM unit ("g/m", "m2", "1").
func unitString(d dims) string {
	names := [nDims]string{"m", "g", "s", "mol", "K", "A", "cd", "rad", "[iU]", "mo"}
	var num, den []string
	for i, e := range d {
		switch {
		case e == 1:
			num = append(num, names[i])
		case e > 1:
			num = append(num, names[i]+strconv.Itoa(int(e)))
		case e == -1:
			den = append(den, names[i])
		case e < -1:
			den = append(den, names[i]+strconv.Itoa(int(-e)))
		}
	}
	sort.Strings(num)
	sort.Strings(den)
	s := strings.Join(num, ".")
	if s == "" {
		s = "1"
	}
	for _, x := range den {
		s += "/" + x
	}
	return s
}

// comparableUnits reports whether two units measure the same dimension.
func comparableUnits(a, b string) bool {
	ca, ok1 := parseUnit(a)
	cb, ok2 := parseUnit(b)
	return ok1 && ok2 && ca.dim == cb.dim
}
