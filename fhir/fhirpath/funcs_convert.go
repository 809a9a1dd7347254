package fhirpath

import (
	"strings"
)

// Conversion functions: toX() gives the converted value or empty;
// convertsToX() says whether toX() would give one. Both take a single
// input item.

func convBoolean(v any) (any, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case int64:
		if x == 0 || x == 1 {
			return x == 1, true
		}
	case dec:
		if x.cmp(decFromInt(0)) == 0 {
			return false, true
		}
		if x.cmp(decFromInt(1)) == 0 {
			return true, true
		}
	case string:
		switch strings.ToLower(x) {
		case "true", "t", "yes", "y", "1", "1.0":
			return true, true
		case "false", "f", "no", "n", "0", "0.0":
			return false, true
		}
	}
	return nil, false
}

func convInteger(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case bool:
		if x {
			return int64(1), true
		}
		return int64(0), true
	case string:
		s := strings.TrimPrefix(x, "+")
		if s == "" || s[0] == '+' {
			return nil, false
		}
		for i := 0; i < len(s); i++ {
			if !isDigit(s[i]) && !(i == 0 && s[i] == '-' && len(s) > 1) {
				return nil, false
			}
		}
		if n, ok := parseInt(s); ok {
			return n, true
		}
	}
	return nil, false
}

func convDecimal(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return decFromInt(x), true
	case dec:
		return x, true
	case bool:
		if x {
			return dec{r: decFromInt(1).r, scale: 1}, true
		}
		return dec{r: decFromInt(0).r, scale: 1}, true
	case string:
		if strings.ContainsAny(x, "eE") {
			return nil, false
		}
		if d, ok := parseDec(x); ok {
			return d, true
		}
	}
	return nil, false
}

// toText is toString(): the FHIRPath form of a primitive value.
func toText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case int64:
		return itoa(x), true
	case dec:
		return x.String(), true
	case dtv:
		return x.String(), true
	case quantity:
		return x.String(), true
	}
	return "", false
}

func convString(v any) (any, bool) {
	s, ok := toText(v)
	if !ok {
		return nil, false
	}
	return s, true
}

func convDate(v any) (any, bool) {
	switch x := v.(type) {
	case dtv:
		switch x.kind {
		case kDate:
			return x, true
		case kDateTime:
			x.kind = kDate
			x.prec = min(x.prec, pDay)
			x.tz, x.tzMin, x.zulu = false, 0, false
			x.h, x.mi, x.s, x.ms = 0, 0, 0, 0
			return x, true
		}
	case string:
		if d, ok := parseDatePart(x); ok {
			return d, true
		}
	}
	return nil, false
}

func convDateTime(v any) (any, bool) {
	switch x := v.(type) {
	case dtv:
		switch x.kind {
		case kDate, kDateTime:
			x.kind = kDateTime
			return x, true
		}
	case string:
		if d, ok := parseFHIRDateTime(x, kDateTime); ok {
			return d, true
		}
	}
	return nil, false
}

func convTime(v any) (any, bool) {
	switch x := v.(type) {
	case dtv:
		if x.kind == kTime {
			return x, true
		}
	case string:
		if d, ok := parseTime(x); ok {
			return d, true
		}
	}
	return nil, false
}

// convQuantity reads a number, a quantity, a boolean, or a string such as
// "4 days" or "1.5 'mg'" (an unquoted unit must be a calendar keyword).
func convQuantity(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return quantity{v: decFromInt(x), unit: "1"}, true
	case dec:
		return quantity{v: x, unit: "1"}, true
	case quantity:
		return x, true
	case bool:
		d, _ := convDecimal(x)
		return quantity{v: d.(dec), unit: "1"}, true
	case string:
		num, unit, _ := strings.Cut(strings.TrimSpace(x), " ")
		d, ok := parseDec(num)
		if !ok || strings.ContainsAny(num, "eE") {
			return nil, false
		}
		unit = strings.TrimSpace(unit)
		switch {
		case unit == "":
			unit = "1"
		case len(unit) >= 2 && unit[0] == '\'' && unit[len(unit)-1] == '\'':
			unit = unit[1 : len(unit)-1]
		case calendarUnit(unit) != "":
		default:
			return nil, false
		}
		return quantity{v: d, unit: unit}, true
	}
	return nil, false
}

func init() {
	conv := func(name string, f func(any) (any, bool)) {
		register("to"+name, 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
			it, ok := c.inputSingle(n, in)
			if !ok {
				return nil
			}
			v, ok := f(value(it))
			if !ok {
				return nil
			}
			return []item{sysItem(v)}
		})
		register("convertsTo"+name, 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
			it, ok := c.inputSingle(n, in)
			if !ok {
				return nil
			}
			_, ok = f(value(it))
			return boolItems(ok)
		})
	}
	conv("Boolean", convBoolean)
	conv("Integer", convInteger)
	conv("Decimal", convDecimal)
	conv("String", convString)
	conv("Date", convDate)
	conv("DateTime", convDateTime)
	conv("Time", convTime)

	// toQuantity and convertsToQuantity take an optional target unit.
	quantityTo := func(c *evalCtx, n *node, in []item, sc *scope) (quantity, bool, bool) {
		it, ok := c.inputSingle(n, in)
		if !ok {
			return quantity{}, false, false
		}
		v, ok := convQuantity(value(it))
		if !ok {
			return quantity{}, true, false
		}
		q := v.(quantity)
		if len(n.args) == 1 {
			unit, ok := c.argString(n, 0, sc)
			if !ok {
				return quantity{}, false, false
			}
			q, ok = q.convertTo(unit)
			if !ok {
				return quantity{}, true, false
			}
		}
		return q, true, true
	}
	register("toQuantity", 0, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		q, _, ok := quantityTo(c, n, in, sc)
		if !ok {
			return nil
		}
		return []item{sysItem(q)}
	})
	register("convertsToQuantity", 0, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		_, answered, ok := quantityTo(c, n, in, sc)
		if !answered {
			return nil
		}
		return boolItems(ok)
	})
}
