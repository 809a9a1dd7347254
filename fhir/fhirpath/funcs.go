package fhirpath

import (
	"fmt"
	"sort"
	"strconv"
)

// function is one FHIRPath function: its arity and implementation. impl
// gets the call node (for its arguments and position), the input
// collection and the caller's scope.
type function struct {
	name             string
	minArgs, maxArgs int
	typeArg          bool // the argument is a type name (is, as, ofType)
	impl             func(c *evalCtx, n *node, in []item, sc *scope) []item
}

func (f *function) arity() string {
	switch {
	case f.minArgs == f.maxArgs && f.maxArgs == 1:
		return "1 argument"
	case f.minArgs == f.maxArgs:
		return fmt.Sprintf("%d arguments", f.maxArgs)
	}
	return fmt.Sprintf("%d to %d arguments", f.minArgs, f.maxArgs)
}

// functions is filled by init functions of the files that define them,
// by topic.
var functions = map[string]*function{}

func register(name string, minArgs, maxArgs int, impl func(c *evalCtx, n *node, in []item, sc *scope) []item) *function {
	f := &function{name: name, minArgs: minArgs, maxArgs: maxArgs, impl: impl}
	functions[name] = f
	return f
}

// arg evaluates argument i in the caller's scope (the input of the
// function is not the argument's input: name.given.combine(name.family)
// takes name.family from $this).
func (c *evalCtx) arg(n *node, i int, sc *scope) []item {
	return c.eval(n.args[i], sc.this, sc)
}

// argOpt is arg for an optional argument: nil, false when absent.
func (c *evalCtx) argOpt(n *node, i int, sc *scope) ([]item, bool) {
	if i >= len(n.args) {
		return nil, false
	}
	return c.arg(n, i, sc), true
}

// each evaluates argument i once per input item, with $this the item and
// $index its position.
func (c *evalCtx) each(n *node, i int, in []item, sc *scope, f func(idx int, it item, res []item) bool) {
	for idx, it := range in {
		s := &scope{this: []item{it}, index: idx, hasIndex: true, total: sc.total, hasTotal: sc.hasTotal}
		if !f(idx, it, c.eval(n.args[i], s.this, s)) {
			return
		}
	}
}

// argString evaluates a single String argument; ok is false when it is
// empty.
func (c *evalCtx) argString(n *node, i int, sc *scope) (string, bool) {
	v := c.arg(n, i, sc)
	if len(v) == 0 {
		return "", false
	}
	s, ok := value(c.single(n.args[i], v)).(string)
	if !ok {
		c.fail(Execution, n.args[i], "%s() needs a string argument", n.name)
	}
	return s, true
}

// argInt evaluates a single Integer argument; ok is false when empty.
func (c *evalCtx) argInt(n *node, i int, sc *scope) (int64, bool) {
	v := c.arg(n, i, sc)
	if len(v) == 0 {
		return 0, false
	}
	x, ok := value(c.single(n.args[i], v)).(int64)
	if !ok {
		c.fail(Execution, n.args[i], "%s() needs an integer argument", n.name)
	}
	return x, true
}

// inputSingle is the function's single input item; ok is false for empty.
func (c *evalCtx) inputSingle(n *node, in []item) (item, bool) {
	if len(in) == 0 {
		return item{}, false
	}
	if len(in) > 1 {
		c.fail(Execution, n, "%s() needs a single input item, got %d", n.name, len(in))
	}
	return in[0], true
}

func init() {
	// Existence
	register("empty", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		return boolItems(len(in) == 0)
	})
	register("exists", 0, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		if len(n.args) == 0 {
			return boolItems(len(in) > 0)
		}
		found := false
		c.each(n, 0, in, sc, func(_ int, _ item, res []item) bool {
			b, known := c.toBool(n.args[0], res)
			found = known && b
			return !found
		})
		return boolItems(found)
	})
	register("all", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		all := true
		c.each(n, 0, in, sc, func(_ int, _ item, res []item) bool {
			b, known := c.toBool(n.args[0], res)
			all = known && b
			return all
		})
		return boolItems(all)
	})
	boolAgg := func(name string, want bool, any bool) {
		register(name, 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
			for _, it := range in {
				b, ok := value(it).(bool)
				if !ok {
					c.fail(Execution, n, "%s() needs booleans, got %s", name, it.systemTypeOf())
				}
				if any && b == want {
					return boolItems(true)
				}
				if !any && b != want {
					return boolItems(false)
				}
			}
			return boolItems(!any)
		})
	}
	boolAgg("allTrue", true, false)
	boolAgg("anyTrue", true, true)
	boolAgg("allFalse", false, false)
	boolAgg("anyFalse", false, true)
	register("subsetOf", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		other := c.arg(n, 0, sc)
		for _, x := range in {
			if !containsItem(other, x) {
				return boolItems(false)
			}
		}
		return boolItems(true)
	})
	register("supersetOf", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		other := c.arg(n, 0, sc)
		for _, x := range other {
			if !containsItem(in, x) {
				return boolItems(false)
			}
		}
		return boolItems(true)
	})
	register("count", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		return []item{sysItem(int64(len(in)))}
	})
	register("distinct", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		return union(in, nil)
	})
	register("isDistinct", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		return boolItems(len(union(in, nil)) == len(in))
	})

	// Filtering and projection
	register("where", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		var out []item
		c.each(n, 0, in, sc, func(_ int, it item, res []item) bool {
			if b, known := c.toBool(n.args[0], res); known && b {
				out = append(out, it)
			}
			return true
		})
		return out
	})
	register("select", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		var out []item
		c.each(n, 0, in, sc, func(_ int, _ item, res []item) bool {
			out = append(out, res...)
			return true
		})
		return out
	})
	register("repeat", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		var out []item
		queue := in
		for len(queue) > 0 {
			var next []item
			c.each(n, 0, queue, sc, func(_ int, _ item, res []item) bool {
				c.steps += len(out)
				if c.steps > maxSteps || len(out) > maxItems {
					c.fail(Execution, n, "repeat() does not end")
				}
				for _, r := range res {
					if !containsItem(out, r) {
						out = append(out, r)
						next = append(next, r)
					}
				}
				return true
			})
			queue = next
		}
		return out
	})
	register("ofType", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		if _, ok := resolveType(n.argType); !ok && n.argType.ns == "" {
			c.fail(Execution, n, "unknown type %s", n.argType)
		}
		var out []item
		for _, it := range in {
			if itemIsExactly(it, n.argType) {
				out = append(out, it)
			}
		}
		return out
	}).typeArg = true
	register("is", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		return c.typeOp(n, "is", n.argType, in)
	}).typeArg = true
	register("as", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		return c.typeOp(n, "as", n.argType, in)
	}).typeArg = true
	register("type", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		out := make([]item, len(in))
		for i, it := range in {
			t := it.typeName()
			out[i] = sysItem(typeInfo{ns: t.ns, name: t.name})
		}
		return out
	})

	// Subsetting
	register("single", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		if len(in) > 1 {
			c.fail(Execution, n, "single() on %d items", len(in))
		}
		return in
	})
	register("first", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		if len(in) == 0 {
			return nil
		}
		return in[:1]
	})
	register("last", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		if len(in) == 0 {
			return nil
		}
		return in[len(in)-1:]
	})
	register("tail", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		if len(in) == 0 {
			return nil
		}
		return in[1:]
	})
	register("skip", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		k, ok := c.argInt(n, 0, sc)
		if !ok {
			return nil
		}
		if k <= 0 {
			return in
		}
		if k >= int64(len(in)) {
			return nil
		}
		return in[k:]
	})
	register("take", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		k, ok := c.argInt(n, 0, sc)
		if !ok || k <= 0 {
			return nil
		}
		if k >= int64(len(in)) {
			return in
		}
		return in[:k]
	})
	register("intersect", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		other := c.arg(n, 0, sc)
		var out []item
		for _, x := range in {
			if containsItem(other, x) && !containsItem(out, x) {
				out = append(out, x)
			}
		}
		return out
	})
	register("exclude", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		other := c.arg(n, 0, sc)
		var out []item
		for _, x := range in {
			if !containsItem(other, x) {
				out = append(out, x)
			}
		}
		return out
	})
	register("union", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		return union(in, c.arg(n, 0, sc))
	})
	register("combine", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		other := c.arg(n, 0, sc)
		out := make([]item, 0, len(in)+len(other))
		return append(append(out, in...), other...)
	})

	// Utility
	register("iif", 2, 3, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		if len(in) > 1 {
			c.fail(Execution, n, "iif() on %d items", len(in))
		}
		// With an input, the criterion and branches see it as $this.
		s := sc
		if len(in) == 1 {
			s = &scope{this: in, index: sc.index, hasIndex: sc.hasIndex, total: sc.total, hasTotal: sc.hasTotal}
		}
		cond := c.eval(n.args[0], s.this, s)
		if len(cond) > 1 {
			c.fail(Execution, n.args[0], "iif() criterion gives %d items", len(cond))
		}
		b, known := false, false
		if len(cond) == 1 {
			x, ok := value(cond[0]).(bool)
			if !ok {
				c.fail(Execution, n.args[0], "iif() criterion is %s, not a boolean", cond[0].systemTypeOf())
			}
			b, known = x, true
		}
		if known && b {
			return c.eval(n.args[1], s.this, s)
		}
		if len(n.args) == 3 {
			return c.eval(n.args[2], s.this, s)
		}
		return nil
	})
	register("not", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		b, known := c.toBool(n, in)
		if !known {
			return nil
		}
		// A single non-boolean item reads as true (singleton evaluation).
		return boolItems(!b)
	})
	register("trace", 1, 2, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		name, _ := c.argString(n, 0, sc)
		shown := in
		if len(n.args) == 2 {
			shown = nil
			c.each(n, 1, in, sc, func(_ int, _ item, res []item) bool {
				shown = append(shown, res...)
				return true
			})
		}
		if c.env.Trace != nil {
			out := make(Collection, len(shown))
			for i, it := range shown {
				out[i] = Item{it}
			}
			c.env.Trace(name, out)
		}
		return in
	})
	register("now", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		t := c.clock()
		return []item{sysItem(dtv{kind: kDateTime, prec: pMilli}.fromTime(t).withZone(t))}
	})
	register("today", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		return []item{sysItem(dtv{kind: kDate, prec: pDay}.fromTime(c.clock()))}
	})
	register("timeOfDay", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		v := dtv{kind: kTime, prec: pMilli}.fromTime(c.clock())
		v.y, v.mo, v.d = 0, 0, 0
		return []item{sysItem(v)}
	})
	register("aggregate", 1, 2, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		var total []item
		if len(n.args) == 2 {
			total = c.arg(n, 1, sc)
		}
		for idx, it := range in {
			s := &scope{this: []item{it}, index: idx, hasIndex: true, total: total, hasTotal: true}
			total = c.eval(n.args[0], s.this, s)
		}
		return total
	})
	register("sort", 0, 16, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		return c.sortItems(n, in, sc)
	})

	// Tree navigation
	register("children", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		var out []item
		for _, it := range in {
			out = allChildren(it, out)
		}
		return out
	})
	register("descendants", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		var out []item
		level := in
		for len(level) > 0 {
			var next []item
			for _, it := range level {
				next = allChildren(it, next)
			}
			c.steps += len(next)
			if c.steps > maxSteps {
				c.fail(Execution, n, "evaluation exceeded %d steps", maxSteps)
			}
			out = append(out, next...)
			level = next
		}
		return out
	})
}

// sortItems is sort() with optional key expressions; a key written with
// a leading minus sorts descending.
func (c *evalCtx) sortItems(n *node, in []item, sc *scope) []item {
	type keyed struct {
		it   item
		keys [][]item
	}
	rows := make([]keyed, len(in))
	desc := make([]bool, len(n.args))
	for i, it := range in {
		rows[i].it = it
		for k, a := range n.args {
			expr := a
			if a.kind == nUnary && a.op == "-" {
				expr, desc[k] = a.left, true
			}
			s := &scope{this: []item{it}, index: i, hasIndex: true}
			rows[i].keys = append(rows[i].keys, c.eval(expr, s.this, s))
		}
		if len(n.args) == 0 {
			rows[i].keys = [][]item{{it}}
			desc = []bool{false}
		}
	}
	// Empty keys come first, whichever the direction.
	cmp := func(a, b []item, desc bool) int {
		switch {
		case len(a) == 0 && len(b) == 0:
			return 0
		case len(a) == 0:
			return -1
		case len(b) == 0:
			return 1
		}
		if desc {
			a, b = b, a
		}
		r, ok := c.compare(n, c.single(n, a), c.single(n, b))
		if !ok {
			return 0
		}
		return r
	}
	sort.SliceStable(rows, func(i, j int) bool {
		for k := range rows[i].keys {
			r := cmp(rows[i].keys[k], rows[j].keys[k], desc[k])
			if r != 0 {
				return r < 0
			}
		}
		return false
	})
	out := make([]item, len(rows))
	for i, r := range rows {
		out[i] = r.it
	}
	return out
}

// itoa is strconv.Itoa for int64.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
