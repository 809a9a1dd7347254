package fhirpath

import (
	"math"
	"math/big"
	"strings"
	"unicode"

	"github.com/kapbridge/kapbridge/fhir"
)

// single returns the one item of v, failing if there are several.
func (c *evalCtx) single(n *node, v []item) item {
	if len(v) != 1 {
		c.fail(Execution, n, "expected a single item, got %d", len(v))
	}
	return v[0]
}

func (c *evalCtx) singleInt(n *node, v []item) (int64, bool) {
	x := c.single(n, v)
	i, ok := x.sv.(int64)
	return i, ok
}

// value returns the System value an item stands for: a primitive's value,
// a FHIR Quantity as a Quantity, or nil for other complex elements.
func value(it item) any {
	if it.sv != nil {
		return it.sv
	}
	if it.tname != "" && it.v != nil && fhirDerives(it.tname, "Quantity") {
		if q, ok := fhirQuantity(it.v); ok {
			return q
		}
	}
	return nil
}

// fhirQuantity reads a FHIR Quantity: its UCUM code when the system is
// UCUM, else its code or unit text.
func fhirQuantity(v *fhir.Value) (quantity, bool) {
	num := v.Get("value")
	if num == nil || num.Kind != fhir.KindNumber {
		return quantity{}, false
	}
	d, ok := parseDec(num.Str)
	if !ok {
		return quantity{}, false
	}
	unit := v.GetString("code")
	if unit == "" || (v.GetString("system") != "" && v.GetString("system") != "http://unitsofmeasure.org") {
		if u := v.GetString("unit"); u != "" && unit == "" {
			unit = u
		}
	}
	if unit == "" {
		unit = "1"
	}
	return quantity{v: d, unit: unit}, true
}

// number returns a numeric value as a dec (Integers converted).
func (c *evalCtx) number(it item) (dec, bool) {
	switch v := value(it).(type) {
	case int64:
		return decFromInt(v), true
	case dec:
		return v, true
	}
	return dec{}, false
}

func toDec(v any) dec {
	switch x := v.(type) {
	case int64:
		return decFromInt(x)
	case dec:
		return x
	}
	return decFromInt(0)
}

// toBool reads a collection as a condition (singleton evaluation): empty
// is unknown; one Boolean is itself; any other single item is true; more
// items are an error.
func (c *evalCtx) toBool(n *node, v []item) (b, known bool) {
	switch len(v) {
	case 0:
		return false, false
	case 1:
		if x, ok := value(v[0]).(bool); ok {
			return x, true
		}
		return true, true
	}
	c.fail(Execution, n, "expected a single boolean, got %d items", len(v))
	return false, false
}

func boolItems(b bool) []item { return []item{sysItem(b)} }

func (c *evalCtx) binary(n *node, in []item, sc *scope) []item {
	switch n.op {
	case "and", "or", "xor", "implies":
		return c.logic(n, in, sc)
	}
	l := c.eval(n.left, in, sc)
	r := c.eval(n.right, in, sc)
	switch n.op {
	case "|":
		return union(l, r)
	case "=":
		if len(l) == 0 || len(r) == 0 {
			return nil
		}
		eq, known := c.collectionsEqual(l, r)
		if !known {
			return nil
		}
		return boolItems(eq)
	case "!=":
		if len(l) == 0 || len(r) == 0 {
			return nil
		}
		eq, known := c.collectionsEqual(l, r)
		if !known {
			return nil
		}
		return boolItems(!eq)
	case "~":
		return boolItems(collectionsEquivalent(l, r))
	case "!~":
		return boolItems(!collectionsEquivalent(l, r))
	case "<", "<=", ">", ">=":
		if len(l) == 0 || len(r) == 0 {
			return nil
		}
		a, b := c.single(n.left, l), c.single(n.right, r)
		cmp, ok := c.compare(n, a, b)
		if !ok {
			return nil
		}
		switch n.op {
		case "<":
			return boolItems(cmp < 0)
		case "<=":
			return boolItems(cmp <= 0)
		case ">":
			return boolItems(cmp > 0)
		}
		return boolItems(cmp >= 0)
	case "in", "contains":
		elem, coll := l, r
		if n.op == "contains" {
			elem, coll = r, l
		}
		if len(elem) == 0 {
			return nil
		}
		x := c.single(n, elem)
		for _, y := range coll {
			if eq, known := itemsEqual(x, y); known && eq {
				return boolItems(true)
			}
		}
		return boolItems(false)
	case "&":
		var b strings.Builder
		for _, side := range [][]item{l, r} {
			if len(side) == 0 {
				continue
			}
			s, ok := value(c.single(n, side)).(string)
			if !ok {
				c.fail(Execution, n, "& needs strings")
			}
			b.WriteString(s)
		}
		return []item{sysItem(b.String())}
	}
	if len(l) == 0 || len(r) == 0 {
		return nil
	}
	return c.arith(n, c.single(n.left, l), c.single(n.right, r))
}

// logic is the three-valued and, or, xor and implies; the right side is
// not evaluated when the left decides.
func (c *evalCtx) logic(n *node, in []item, sc *scope) []item {
	a, aKnown := c.toBool(n.left, c.eval(n.left, in, sc))
	switch n.op {
	case "and":
		if aKnown && !a {
			return boolItems(false)
		}
	case "or":
		if aKnown && a {
			return boolItems(true)
		}
	case "implies":
		if aKnown && !a {
			return boolItems(true)
		}
	}
	b, bKnown := c.toBool(n.right, c.eval(n.right, in, sc))
	switch n.op {
	case "and":
		if bKnown && !b {
			return boolItems(false)
		}
		if aKnown && bKnown {
			return boolItems(true)
		}
	case "or":
		if bKnown && b {
			return boolItems(true)
		}
		if aKnown && bKnown {
			return boolItems(false)
		}
	case "xor":
		if aKnown && bKnown {
			return boolItems(a != b)
		}
	case "implies":
		if bKnown && b {
			return boolItems(true)
		}
		if aKnown && bKnown {
			return boolItems(false)
		}
	}
	return nil
}

// union merges two collections without duplicates, in order.
func union(l, r []item) []item {
	n := len(l) + len(r)
	out := make([]item, 0, n)
	if n <= 16 {
		for _, side := range [][]item{l, r} {
			for _, x := range side {
				if !containsItem(out, x) {
					out = append(out, x)
				}
			}
		}
		return out
	}
	// Many items (descendants().linkId.isDistinct() on a large
	// Questionnaire, que-2): a string equals only an equal string, so
	// strings are told apart by a set, in linear time; the rest are
	// compared with each other as above.
	seen := make(map[string]struct{}, n)
	var others []item
	for _, side := range [][]item{l, r} {
		for _, x := range side {
			if s, ok := value(x).(string); ok {
				if _, dup := seen[s]; !dup {
					seen[s] = struct{}{}
					out = append(out, x)
				}
				continue
			}
			if !containsItem(others, x) {
				others = append(others, x)
				out = append(out, x)
			}
		}
	}
	return out
}

func containsItem(list []item, x item) bool {
	for _, y := range list {
		if eq, known := itemsEqual(x, y); known && eq {
			return true
		}
	}
	return false
}

// collectionsEqual: same length, and equal item by item in order. An
// item pair whose equality is unknown makes the answer unknown.
func (c *evalCtx) collectionsEqual(l, r []item) (eq, known bool) {
	if len(l) != len(r) {
		return false, true
	}
	known = true
	for i := range l {
		e, k := itemsEqual(l[i], r[i])
		if k && !e {
			return false, true
		}
		if !k {
			known = false
		}
	}
	return known, known
}

// itemsEqual is FHIRPath "=" on two items; known is false when the
// answer is empty (dates of different precisions, quantities whose units
// cannot be compared).
func itemsEqual(a, b item) (eq, known bool) {
	va, vb := value(a), value(b)
	if va == nil || vb == nil {
		if va != nil || vb != nil || a.v == nil || b.v == nil {
			return false, true
		}
		if a.v == b.v {
			return true, true
		}
		return jsonEqual(a.v, b.v, false), true
	}
	switch x := va.(type) {
	case bool:
		y, ok := vb.(bool)
		return ok && x == y, true
	case string:
		y, ok := vb.(string)
		return ok && x == y, true
	case int64:
		switch y := vb.(type) {
		case int64:
			return x == y, true
		case dec:
			return decFromInt(x).cmp(y) == 0, true
		}
	case dec:
		switch y := vb.(type) {
		case int64:
			return x.cmp(decFromInt(y)) == 0, true
		case dec:
			return x.cmp(y) == 0, true
		}
	case dtv:
		y, ok := vb.(dtv)
		if !ok {
			return false, true
		}
		cmp, ok, comparable := compareDT(x, y)
		if !comparable {
			return false, true
		}
		if !ok {
			return false, false
		}
		return cmp == 0, true
	case quantity:
		y, ok := vb.(quantity)
		if !ok {
			return false, true
		}
		yc, ok := y.convertTo(x.unit)
		if !ok {
			return false, false
		}
		return x.v.cmp(yc.v) == 0, true
	case typeInfo:
		y, ok := vb.(typeInfo)
		return ok && x == y, true
	}
	return false, true
}

// itemsEquivalent is FHIRPath "~": never unknown.
func itemsEquivalent(a, b item) bool {
	va, vb := value(a), value(b)
	if va == nil || vb == nil {
		if va != nil || vb != nil || a.v == nil || b.v == nil {
			return false
		}
		return jsonEqual(a.v, b.v, true)
	}
	switch x := va.(type) {
	case string:
		y, ok := vb.(string)
		return ok && normalizeSpace(x) == normalizeSpace(y)
	case int64, dec:
		y, ok := vb.(int64)
		var yd dec
		if ok {
			yd = decFromInt(y)
		} else if yd, ok = vb.(dec); !ok {
			return false
		}
		xd := toDec(x)
		p := min(xd.scale, yd.scale)
		return xd.round(p).cmp(yd.round(p)) == 0
	case dtv:
		y, ok := vb.(dtv)
		if !ok {
			return false
		}
		cmp, ok, _ := compareDT(x, y)
		return ok && cmp == 0
	case quantity:
		y, ok := vb.(quantity)
		if !ok {
			return false
		}
		yc, ok := y.convertTo(x.unit)
		if !ok {
			return false
		}
		p := min(x.v.scale, y.v.scale)
		return x.v.round(p).cmp(yc.v.round(p)) == 0
	}
	eq, known := itemsEqual(a, b)
	return known && eq
}

// normalizeSpace lower-cases s and folds runs of white space to one
// space, for string equivalence.
func normalizeSpace(s string) string {
	return strings.ToLower(strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " "))
}

// collectionsEquivalent: same length and each item matched by an
// equivalent one, in any order.
func collectionsEquivalent(l, r []item) bool {
	if len(l) != len(r) {
		return false
	}
	used := make([]bool, len(r))
outer:
	for _, x := range l {
		for j, y := range r {
			if !used[j] && itemsEquivalent(x, y) {
				used[j] = true
				continue outer
			}
		}
		return false
	}
	return true
}

// jsonEqual compares two JSON trees as FHIR elements: members in any
// order, numbers by value, and for equivalence strings loosely.
func jsonEqual(a, b *fhir.Value, equiv bool) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case fhir.KindNull:
		return true
	case fhir.KindBool:
		return a.Bool == b.Bool
	case fhir.KindNumber:
		x, ok1 := parseDec(a.Str)
		y, ok2 := parseDec(b.Str)
		return ok1 && ok2 && x.cmp(y) == 0
	case fhir.KindString:
		if equiv {
			return normalizeSpace(a.Str) == normalizeSpace(b.Str)
		}
		return a.Str == b.Str
	case fhir.KindArray:
		if len(a.Array) != len(b.Array) {
			return false
		}
		for i := range a.Array {
			if !jsonEqual(a.Array[i], b.Array[i], equiv) {
				return false
			}
		}
		return true
	}
	count := 0
	for _, m := range a.Members {
		if equiv && m.Key == "id" {
			continue
		}
		o := b.Get(m.Key)
		if o == nil || !jsonEqual(m.Value, o, equiv) {
			return false
		}
		count++
	}
	other := len(b.Members)
	if equiv && b.Get("id") != nil {
		other--
	}
	return count == other
}

// compare orders two single items for < <= > >=; ok is false when the
// answer is empty. Values of different types are an error.
func (c *evalCtx) compare(n *node, a, b item) (int, bool) {
	va, vb := value(a), value(b)
	switch x := va.(type) {
	case int64, dec:
		switch vb.(type) {
		case int64, dec:
			return toDec(x).cmp(toDec(vb)), true
		}
	case string:
		if y, ok := vb.(string); ok {
			return strings.Compare(x, y), true
		}
	case dtv:
		if y, ok := vb.(dtv); ok {
			cmp, ok, comparable := compareDT(x, y)
			if !comparable {
				c.fail(Execution, n, "cannot compare %s with %s", a.systemTypeOf(), b.systemTypeOf())
			}
			return cmp, ok
		}
	case quantity:
		if y, ok := vb.(quantity); ok {
			yc, ok := y.convertTo(x.unit)
			if !ok {
				return 0, false
			}
			return x.v.cmp(yc.v), true
		}
	}
	c.fail(Execution, n, "cannot compare %s with %s", a.systemTypeOf(), b.systemTypeOf())
	return 0, false
}

func (it item) systemTypeOf() string {
	if v := value(it); v != nil {
		return sysItem(v).systemType()
	}
	if it.tname != "" {
		return it.tname
	}
	return "nothing"
}

func (c *evalCtx) negate(n *node, x item) item {
	switch v := value(x).(type) {
	case int64:
		return sysItem(-v)
	case dec:
		return sysItem(v.neg())
	case quantity:
		return sysItem(quantity{v: v.v.neg(), unit: v.unit})
	}
	c.fail(Execution, n, "cannot negate %s", x.systemTypeOf())
	return item{}
}

// arith is + - * / div mod on two single items.
func (c *evalCtx) arith(n *node, a, b item) []item {
	va, vb := value(a), value(b)
	switch x := va.(type) {
	case int64:
		if y, ok := vb.(int64); ok {
			return c.intArith(n, x, y)
		}
		if y, ok := vb.(dec); ok {
			return c.decArith(n, decFromInt(x), y)
		}
		if y, ok := vb.(quantity); ok && n.op == "*" {
			return []item{sysItem(quantity{v: decFromInt(x).mul(y.v), unit: y.unit})}
		}
	case dec:
		switch y := vb.(type) {
		case int64:
			return c.decArith(n, x, decFromInt(y))
		case dec:
			return c.decArith(n, x, y)
		case quantity:
			if n.op == "*" {
				return []item{sysItem(quantity{v: x.mul(y.v), unit: y.unit})}
			}
		}
	case string:
		if y, ok := vb.(string); ok && n.op == "+" {
			return []item{sysItem(x + y)}
		}
	case dtv:
		if y, ok := vb.(quantity); ok && (n.op == "+" || n.op == "-") {
			return []item{sysItem(c.addQuantity(n, x, y, n.op == "-"))}
		}
	case quantity:
		switch y := vb.(type) {
		case quantity:
			return c.quantityArith(n, x, y)
		case int64, dec:
			d := toDec(y)
			switch n.op {
			case "*":
				return []item{sysItem(quantity{v: x.v.mul(d), unit: x.unit})}
			case "/":
				q, ok := x.v.quo(d)
				if !ok {
					return nil
				}
				return []item{sysItem(quantity{v: q, unit: x.unit})}
			}
		}
	}
	c.fail(Execution, n, "cannot apply %s to %s and %s", n.op, a.systemTypeOf(), b.systemTypeOf())
	return nil
}

func (c *evalCtx) intArith(n *node, x, y int64) []item {
	var r int64
	switch n.op {
	case "+":
		r = x + y
		if (r > x) != (y > 0) {
			c.fail(Execution, n, "integer overflow")
		}
	case "-":
		r = x - y
		if (r < x) != (y > 0) {
			c.fail(Execution, n, "integer overflow")
		}
	case "*":
		if x != 0 && (x*y/x != y || (x == -1 && y == math.MinInt64) || (y == -1 && x == math.MinInt64)) {
			c.fail(Execution, n, "integer overflow")
		}
		r = x * y
	case "/":
		return c.decArith(n, decFromInt(x), decFromInt(y))
	case "div":
		if y == 0 {
			return nil
		}
		if x == math.MinInt64 && y == -1 {
			c.fail(Execution, n, "integer overflow")
		}
		r = x / y
	case "mod":
		if y == 0 {
			return nil
		}
		if y == -1 {
			return []item{sysItem(int64(0))}
		}
		r = x % y
	default:
		c.fail(Execution, n, "cannot apply %s to integers", n.op)
	}
	return []item{sysItem(r)}
}

// maxDecBits bounds the size of a computed decimal (about 4,900 digits,
// far past FHIR's 28): chained products would otherwise grow without end.
const maxDecBits = 1 << 14

func (c *evalCtx) checkDec(n *node, d dec) dec {
	if d.r.Num().BitLen()+d.r.Denom().BitLen() > maxDecBits {
		c.fail(Execution, n, "decimal out of range")
	}
	return d
}

func (c *evalCtx) decArith(n *node, x, y dec) []item {
	out := c.decArith1(n, x, y)
	if len(out) == 1 {
		if d, ok := out[0].sv.(dec); ok {
			c.checkDec(n, d)
		}
	}
	return out
}

func (c *evalCtx) decArith1(n *node, x, y dec) []item {
	switch n.op {
	case "+":
		return []item{sysItem(x.add(y))}
	case "-":
		return []item{sysItem(x.sub(y))}
	case "*":
		return []item{sysItem(x.mul(y))}
	case "/":
		q, ok := x.quo(y)
		if !ok {
			return nil
		}
		return []item{sysItem(q)}
	case "div":
		if y.sign() == 0 {
			return nil
		}
		t := truncInt(new(big.Rat).Quo(x.r, y.r))
		if !t.IsInt64() {
			c.fail(Execution, n, "integer overflow")
		}
		return []item{sysItem(t.Int64())}
	case "mod":
		if y.sign() == 0 {
			return nil
		}
		t := truncInt(new(big.Rat).Quo(x.r, y.r))
		m := new(big.Rat).Sub(x.r, new(big.Rat).Mul(y.r, new(big.Rat).SetInt(t)))
		return []item{sysItem(dec{r: m, scale: max(x.scale, y.scale)})}
	}
	c.fail(Execution, n, "cannot apply %s to decimals", n.op)
	return nil
}

func (c *evalCtx) quantityArith(n *node, x, y quantity) []item {
	switch n.op {
	case "+", "-":
		yc, ok := y.convertTo(x.unit)
		if !ok {
			c.fail(Execution, n, "cannot %s '%s' and '%s': the units differ in kind", map[string]string{"+": "add", "-": "subtract"}[n.op], x.unit, y.unit)
		}
		if n.op == "+" {
			return []item{sysItem(quantity{v: x.v.add(yc.v), unit: x.unit})}
		}
		return []item{sysItem(quantity{v: x.v.sub(yc.v), unit: x.unit})}
	case "*", "/":
		xv, xd, ok1 := x.toCanonical()
		yv, yd, ok2 := y.toCanonical()
		if !ok1 || !ok2 {
			c.fail(Execution, n, "cannot %s quantities in units '%s' and '%s'", n.op, x.unit, y.unit)
		}
		var d dims
		r := new(big.Rat)
		scale := x.v.scale + y.v.scale
		if n.op == "*" {
			r.Mul(xv, yv)
			for i := range d {
				d[i] = xd[i] + yd[i]
			}
		} else {
			if yv.Sign() == 0 {
				return nil
			}
			r.Quo(xv, yv)
			for i := range d {
				d[i] = xd[i] - yd[i]
			}
			scale = quoScale
		}
		v := c.checkDec(n, dec{r: r, scale: min(scale, maxScale)})
		if !v.scaled(v.scale).IsInt() {
			v = v.round(v.scale)
		}
		if n.op == "/" {
			v = v.trimmed()
		}
		return []item{sysItem(quantity{v: v, unit: unitString(d)})}
	}
	c.fail(Execution, n, "cannot apply %s to quantities", n.op)
	return nil
}

// addQuantity adds (or subtracts) a time quantity to a date/time. The
// quantity's value is truncated to whole units; UCUM years and months
// ('a', 'mo') are refused, being of no fixed calendar length.
func (c *evalCtx) addQuantity(n *node, x dtv, q quantity, sub bool) dtv {
	unit := calendarUnit(q.unit)
	if unit == "" {
		for cal, code := range calendarAsUCUM {
			if code == q.unit {
				unit = cal
			}
		}
	}
	if unit == "" {
		c.fail(Execution, n, "cannot add '%s' to a date or time", q.unit)
	}
	if x.kind == kTime && (unit == "year" || unit == "month" || unit == "week" || unit == "day") {
		c.fail(Execution, n, "cannot add %s to a time", unit)
	}
	t := truncInt(q.v.r)
	if !t.IsInt64() {
		c.fail(Execution, n, "duration too large")
	}
	amount := t.Int64()
	if sub {
		amount = -amount
	}
	// A date only moves by whole days: hours and smaller are counted in days.
	if x.kind == kDate {
		per := map[string]int64{"hour": 24, "minute": 24 * 60, "second": 86400, "millisecond": 86400000}[unit]
		if per > 0 {
			amount, unit = amount/per, "day"
		}
	}
	out, ok := x.addDuration(amount, unit)
	if !ok {
		c.fail(Execution, n, "date arithmetic out of range")
	}
	return out
}

// typeOp is "is" and "as" (operators and functions).
func (c *evalCtx) typeOp(n *node, op string, ts typeSpec, v []item) []item {
	if _, ok := resolveType(ts); !ok && ts.ns == "" {
		c.fail(Execution, n, "unknown type %s", ts)
	}
	if len(v) == 0 {
		return nil
	}
	if len(v) > 1 {
		if op == "as" && c.e.opts.FilterAs {
			var out []item
			for _, it := range v {
				if itemIsExactly(it, ts) {
					out = append(out, it)
				}
			}
			return out
		}
		c.fail(Execution, n, "%s needs a single item, got %d", op, len(v))
	}
	if op == "is" {
		return boolItems(itemIs(v[0], ts))
	}
	if itemIsExactly(v[0], ts) {
		return v
	}
	return nil
}
