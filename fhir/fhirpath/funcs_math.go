package fhirpath

import (
	"math"
	"math/big"
)

// inputNumber is the single numeric input of a math function; ok is
// false for empty input.
func (c *evalCtx) inputNumber(n *node, in []item) (any, bool) {
	it, ok := c.inputSingle(n, in)
	if !ok {
		return nil, false
	}
	switch v := value(it).(type) {
	case int64, dec:
		return v, true
	case quantity:
		if n.name == "abs" {
			return v, true
		}
	}
	c.fail(Execution, n, "%s() needs a number, got %s", n.name, it.systemTypeOf())
	return nil, false
}

func intOrEmpty(b *big.Int) []item {
	if !b.IsInt64() {
		return nil
	}
	return []item{sysItem(b.Int64())}
}

// floatResult wraps a float answer; NaN and infinities are empty.
func floatResult(f float64) []item {
	d, ok := decFromFloat(f)
	if !ok {
		return nil
	}
	return []item{sysItem(d)}
}

func init() {
	register("abs", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		v, ok := c.inputNumber(n, in)
		if !ok {
			return nil
		}
		switch x := v.(type) {
		case int64:
			if x < 0 {
				x = -x
			}
			return []item{sysItem(x)}
		case dec:
			return []item{sysItem(x.abs())}
		case quantity:
			return []item{sysItem(quantity{v: x.v.abs(), unit: x.unit})}
		}
		return nil
	})
	rounding := func(name string, f func(*big.Rat) *big.Int) {
		register(name, 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
			v, ok := c.inputNumber(n, in)
			if !ok {
				return nil
			}
			if x, ok := v.(int64); ok {
				return []item{sysItem(x)}
			}
			return intOrEmpty(f(v.(dec).r))
		})
	}
	rounding("ceiling", ceilInt)
	rounding("floor", floorInt)
	rounding("truncate", truncInt)
	register("round", 0, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		v, ok := c.inputNumber(n, in)
		if !ok {
			return nil
		}
		places := int64(0)
		if len(n.args) == 1 {
			p, ok := c.argInt(n, 0, sc)
			if !ok {
				return nil
			}
			if p < 0 || p > maxScale {
				c.fail(Execution, n, "round() precision must be 0 to %d", maxScale)
			}
			places = p
		}
		return []item{sysItem(toDec(v).round(int(places)))}
	})
	floatFn := func(name string, f func(float64) float64) {
		register(name, 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
			v, ok := c.inputNumber(n, in)
			if !ok {
				return nil
			}
			return floatResult(f(toDec(v).float()))
		})
	}
	floatFn("exp", math.Exp)
	floatFn("ln", math.Log)
	register("sqrt", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		v, ok := c.inputNumber(n, in)
		if !ok {
			return nil
		}
		d := toDec(v)
		if d.sign() < 0 {
			return nil
		}
		// Exact roots stay exact: 81.sqrt() = 9.0.
		if d.isInt() {
			r := new(big.Int).Sqrt(d.r.Num())
			if new(big.Int).Mul(r, r).Cmp(d.r.Num()) == 0 {
				return []item{sysItem(dec{r: new(big.Rat).SetInt(r)})}
			}
		}
		return floatResult(math.Sqrt(d.float()))
	})
	register("log", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		v, ok := c.inputNumber(n, in)
		if !ok {
			return nil
		}
		b := c.arg(n, 0, sc)
		if len(b) == 0 {
			return nil
		}
		base, ok := c.number(c.single(n.args[0], b))
		if !ok {
			c.fail(Execution, n.args[0], "log() needs a numeric base")
		}
		return floatResult(math.Log(toDec(v).float()) / math.Log(base.float()))
	})
	register("power", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		v, ok := c.inputNumber(n, in)
		if !ok {
			return nil
		}
		e := c.arg(n, 0, sc)
		if len(e) == 0 {
			return nil
		}
		ev := value(c.single(n.args[0], e))
		if x, ok := v.(int64); ok {
			if y, ok := ev.(int64); ok && y >= 0 {
				if y > 64 && x != 0 && x != 1 && x != -1 {
					return nil // beyond any Integer
				}
				r := new(big.Int).Exp(big.NewInt(x), big.NewInt(y), nil)
				return intOrEmpty(r)
			}
		}
		exp, ok := c.number(c.single(n.args[0], e))
		if !ok {
			c.fail(Execution, n.args[0], "power() needs a numeric exponent")
		}
		base := toDec(v)
		if y, ok := exp.int64(); ok && y >= 0 && y <= 1000 {
			r := new(big.Rat).SetInt64(1)
			for i := int64(0); i < y; i++ {
				r.Mul(r, base.r)
				if r.Num().BitLen()+r.Denom().BitLen() > maxDecBits {
					return nil // beyond any Decimal
				}
			}
			return []item{sysItem(dec{r: r, scale: min(base.scale*int(y), maxScale)})}
		}
		return floatResult(math.Pow(base.float(), exp.float()))
	})

	register("precision", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		it, ok := c.inputSingle(n, in)
		if !ok {
			return nil
		}
		switch v := value(it).(type) {
		case dec:
			return []item{sysItem(int64(v.scale))}
		case int64:
			return []item{sysItem(int64(0))}
		case dtv:
			return []item{sysItem(int64(v.precisionDigits()))}
		}
		c.fail(Execution, n, "precision() needs a decimal, date or time, got %s", it.systemTypeOf())
		return nil
	})
	boundary := func(name string, high bool) {
		register(name, 0, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
			it, ok := c.inputSingle(n, in)
			if !ok {
				return nil
			}
			p, given := int64(8), false
			if len(n.args) == 1 {
				x, ok := c.argInt(n, 0, sc)
				if !ok {
					return nil
				}
				p, given = x, true
			}
			switch v := value(it).(type) {
			case int64:
				return decBoundary(decFromInt(v), high, p)
			case dec:
				return decBoundary(v, high, p)
			case quantity:
				out := decBoundary(v.v, high, p)
				if len(out) == 0 {
					return nil
				}
				return []item{sysItem(quantity{v: out[0].sv.(dec), unit: v.unit})}
			case dtv:
				if !given {
					p = map[dtKind]int64{kDate: 8, kDateTime: 17, kTime: 9}[v.kind]
				}
				b, ok := v.boundary(high, int(p))
				if !ok {
					return nil
				}
				return []item{sysItem(b)}
			}
			c.fail(Execution, n, "%s() needs a number, quantity, date or time, got %s", name, it.systemTypeOf())
			return nil
		})
	}
	boundary("lowBoundary", false)
	boundary("highBoundary", true)
	register("comparable", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		it, ok := c.inputSingle(n, in)
		if !ok {
			return nil
		}
		o := c.arg(n, 0, sc)
		if len(o) == 0 {
			return nil
		}
		a, ok1 := value(it).(quantity)
		b, ok2 := value(c.single(n.args[0], o)).(quantity)
		if !ok1 || !ok2 {
			c.fail(Execution, n, "comparable() needs quantities")
		}
		return boolItems(comparableUnits(a.unit, b.unit))
	})
}

// decBoundary is the least (high false) or greatest value a decimal
// written with d.scale digits may stand for, given to p digits. The
// half-unit of the
// last written digit is the uncertainty. The test suite truncates the low
// boundary of a positive value and rounds the high one; a negative value
// mirrors its absolute value's.
func decBoundary(d dec, high bool, p int64) []item {
	if p < 0 || p > maxScale {
		return nil
	}
	if d.sign() < 0 {
		out := decBoundary(d.abs(), !high, p)
		if len(out) == 0 {
			return nil
		}
		return []item{sysItem(out[0].sv.(dec).neg())}
	}
	half := dec{r: new(big.Rat).SetFrac(big.NewInt(5), pow10(d.scale+1)), scale: d.scale + 1}
	if high {
		return []item{sysItem(d.add(half).round(int(p)))}
	}
	return []item{sysItem(d.sub(half).truncTo(int(p)))}
}
