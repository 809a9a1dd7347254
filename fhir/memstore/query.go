package memstore

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// A search.Query is compiled into predicates before it touches any data,
// so an unsupported query fails whatever the store holds (as sqlstore's
// SQL builder does). The predicates mirror sqlstore's conditions one for
// one: where this file says "as sqlstore", the SQL is in
// adapters/sqlstore/searchsql.go.

// ErrUnsupported is search.ErrUnsupported, which Search wraps for a query
// it cannot evaluate.
var ErrUnsupported = search.ErrUnsupported

var unsupported = search.Unsupported

// table is the kind of index value an entry or a parameter type is (one
// of sqlstore's index tables): a parameter's clauses look only at entries
// of its own kind.
type table int8

const (
	tNone table = iota
	tToken
	tString
	tDate
	tNumber // number and quantity
	tRef
	tURI
	tComposite
)

func tableOf(typ string) table {
	switch typ {
	case "token":
		return tToken
	case "string":
		return tString
	case "date":
		return tDate
	case "number", "quantity":
		return tNumber
	case "reference":
		return tRef
	case "uri":
		return tURI
	case "composite":
		return tComposite
	}
	return tNone
}

// row is one stored index value.
type row struct {
	fhir.IndexEntry
	t table
}

// paramSel selects the rows holding a parameter's values: its code, or
// for an alias the aliased codes, restricted to references to
// AliasRefType where it has one (sqlstore's paramIs).
type paramSel struct {
	codes   []string
	t       table
	refType string
}

func selOf(p *search.Param) paramSel {
	return paramSel{codes: p.IndexCodes(), t: tableOf(string(p.Type)), refType: p.AliasRefType}
}

// any reports whether f holds for some row of v that sel selects.
func (v *version) any(sel *paramSel, f func(*row) bool) bool {
	for _, code := range sel.codes {
		i, j := 0, len(v.rows) // the first row with Param >= code
		for i < j {
			if h := int(uint(i+j) >> 1); v.rows[h].Param < code {
				i = h + 1
			} else {
				j = h
			}
		}
		for ; i < len(v.rows) && v.rows[i].Param == code; i++ {
			r := &v.rows[i]
			if r.t != sel.t || sel.refType != "" && r.RefType != sel.refType {
				continue
			}
			if f(r) {
				return true
			}
		}
	}
	return false
}

// pred is a compiled clause: does the resource version v, read in w,
// satisfy it?
type pred func(w *view, v *version) bool

// entryPred is a compiled search value: does an index value match it?
type entryPred func(e *fhir.IndexEntry) bool

// compiler holds what compiling needs besides the query: the time the ap
// prefix measures from.
type compiler struct {
	now time.Time
}

func (c *compiler) clause(cl *search.Clause) (pred, error) {
	if cl.Has != nil {
		return c.has(cl.Has)
	}
	if cl.Param == nil {
		return nil, unsupported("clause without parameter")
	}
	switch cl.Param.Code {
	case "_id":
		return c.idClause(cl)
	case "_lastUpdated":
		return c.lastUpdatedClause(cl)
	}
	if cl.Chain != nil {
		return c.chain(cl)
	}
	sel, match, err := c.indexed(cl)
	if err != nil {
		return nil, err
	}
	if cl.Modifier == "missing" {
		if cl.Values[0].Missing {
			return func(_ *view, v *version) bool { return !v.any(&sel, func(*row) bool { return true }) }, nil
		}
		return func(_ *view, v *version) bool { return v.any(&sel, func(*row) bool { return true }) }, nil
	}
	if cl.Modifier == "not" {
		return func(_ *view, v *version) bool { return !v.any(&sel, match) }, nil
	}
	return func(_ *view, v *version) bool { return v.any(&sel, match) }, nil
}

// indexed compiles a plain clause into the rows it looks at and the test
// one of them must pass (any of the OR-ed values); for :missing the test
// is nil.
func (c *compiler) indexed(cl *search.Clause) (paramSel, func(*row) bool, error) {
	p := cl.Param
	sel := selOf(p)
	if sel.t == tNone {
		return sel, nil, unsupported("parameter %s of type %s", p.Code, p.Type)
	}
	if cl.Modifier == "missing" {
		if len(cl.Values) != 1 {
			return sel, nil, unsupported("%s:missing needs one value", p.Code)
		}
		return sel, nil, nil
	}
	if len(cl.Values) == 0 {
		return sel, nil, unsupported("%s without a value", p.Code)
	}
	ors := make([]entryPred, 0, len(cl.Values))
	for i := range cl.Values {
		var f entryPred
		var err error
		if sel.t == tComposite {
			f, err = c.composite(p, &cl.Values[i])
		} else {
			f, err = c.value(p.Code, p.Type, cl.Modifier, &cl.Values[i])
		}
		if err != nil {
			return sel, nil, err
		}
		ors = append(ors, f)
	}
	return sel, func(r *row) bool {
		for _, f := range ors {
			if f(&r.IndexEntry) {
				return true
			}
		}
		return false
	}, nil
}

// composite: every component matches its part of the same entry, so
// values pair up as they were written (code 8480-6 with its own value).
func (c *compiler) composite(p *search.Param, v *search.Value) (entryPred, error) {
	if len(p.Components) == 0 {
		return nil, unsupported("composite %s with %d components", p.Code, len(p.Components))
	}
	if len(v.Parts) != len(p.Components) {
		return nil, unsupported("composite %s: %d values for %d components", p.Code, len(v.Parts), len(p.Components))
	}
	parts := make([]entryPred, len(p.Components))
	types := make([]search.ParamType, len(p.Components))
	for i, comp := range p.Components {
		if comp.Param == nil {
			return nil, unsupported("composite %s: component %d without parameter", p.Code, i+1)
		}
		f, err := c.value(p.Code, comp.Param.Type, "", &v.Parts[i])
		if err != nil {
			return nil, err
		}
		parts[i], types[i] = f, comp.Param.Type
	}
	return func(e *fhir.IndexEntry) bool {
		for i, f := range parts {
			var part fhir.IndexEntry
			if i < len(e.Parts) {
				part = partAs(&e.Parts[i], types[i])
			}
			if !f(&part) {
				return false
			}
		}
		return true
	}, nil
}

// partAs reads a composite's part as a value of the component's type,
// as sqlstore does: the part is flattened by its own type into the
// columns s, c, e, nlo, nhi, dlo, dhi, which the component's type then
// reads.
func partAs(p *fhir.IndexEntry, typ search.ParamType) fhir.IndexEntry {
	col := p.Columns()
	s, c, e, nlo, nhi, dlo, dhi := col.S, col.C, col.E, col.NumLo, col.NumHi, col.DateLo, col.DateHi
	switch typ {
	case search.Token:
		return fhir.IndexEntry{System: s, Code: c, Text: e}
	case search.String:
		return fhir.IndexEntry{Text: c, Exact: e}
	case search.URI:
		return fhir.IndexEntry{Code: c}
	case search.Reference:
		return fhir.IndexEntry{RefType: s, RefID: c, Code: e}
	case search.Date:
		return fhir.IndexEntry{Lo: dlo, Hi: dhi}
	case search.Number, search.Quantity:
		return fhir.IndexEntry{NumLo: nlo, NumHi: nhi, System: s, Code: c}
	}
	return fhir.IndexEntry{}
}

// value compiles one search value of a parameter of type typ (as
// sqlstore's valueCond). Entries are read in their plain layout: token
// System, Code, Text, TypeSystem, TypeCode; string Text (normalized) and
// Exact; uri Code; date Lo, Hi; number and quantity NumLo, NumHi, System,
// Code; reference RefType, RefID and Code (the URL).
func (c *compiler) value(code string, typ search.ParamType, modifier string, v *search.Value) (entryPred, error) {
	switch typ {
	case search.Token:
		switch modifier {
		case "text":
			text := v.Text
			return func(e *fhir.IndexEntry) bool { return strings.Contains(e.Text, text) }, nil
		case "of-type":
			ts, tc, cd := v.TypeSystem, v.TypeCode, v.Code
			return func(e *fhir.IndexEntry) bool { return e.TypeSystem == ts && e.TypeCode == tc && e.Code == cd }, nil
		case "", "not":
		default:
			return nil, unsupported("modifier :%s on token parameter %s", modifier, code)
		}
		hasSystem, system, cd := v.HasSystem, v.System, v.Code
		return func(e *fhir.IndexEntry) bool {
			return (!hasSystem || e.System == system) && (cd == "" || e.Code == cd)
		}, nil
	case search.String:
		switch modifier {
		case "exact":
			exact := v.Exact
			return func(e *fhir.IndexEntry) bool { return e.Exact == exact }, nil
		case "contains":
			text := v.Text
			return func(e *fhir.IndexEntry) bool { return strings.Contains(e.Text, text) }, nil
		case "":
			text := v.Text
			return func(e *fhir.IndexEntry) bool { return strings.HasPrefix(e.Text, text) }, nil
		}
		return nil, unsupported("modifier :%s on string parameter %s", modifier, code)
	case search.URI:
		uri := v.Code
		switch modifier {
		case "":
			return func(e *fhir.IndexEntry) bool { return e.Code == uri }, nil
		case "below":
			return func(e *fhir.IndexEntry) bool { return strings.HasPrefix(e.Code, uri) }, nil
		case "above":
			return func(e *fhir.IndexEntry) bool { return strings.HasPrefix(uri, e.Code) }, nil
		}
		return nil, unsupported("modifier :%s on uri parameter %s", modifier, code)
	case search.Date:
		if modifier != "" {
			return nil, unsupported("modifier :%s on date parameter %s", modifier, code)
		}
		lo, hi := c.dateRange(v)
		p := v.Prefix
		if !validPrefix(p) {
			return nil, unsupported("prefix %q on %s", p, code)
		}
		return func(e *fhir.IndexEntry) bool { return inRange(e.Lo, e.Hi, lo, hi, p) }, nil
	case search.Number, search.Quantity:
		if modifier != "" {
			return nil, unsupported("modifier :%s on %s parameter %s", modifier, typ, code)
		}
		lo, hi := v.NumLo, v.NumHi
		if lo == 0 && hi == 0 && v.Num != 0 {
			lo, hi = v.Num, v.Num
		}
		if v.Prefix == search.AP {
			w := math.Abs(v.Num) / 10
			lo, hi = lo-w, hi+w
		}
		p := v.Prefix
		if !validPrefix(p) {
			return nil, unsupported("prefix %q on %s", p, code)
		}
		system, unit := "", ""
		if typ == search.Quantity {
			system, unit = v.System, v.Code
		}
		return func(e *fhir.IndexEntry) bool {
			return inRange(e.NumLo, e.NumHi, lo, hi, p) && (system == "" || e.System == system) && (unit == "" || e.Code == unit)
		}, nil
	case search.Reference:
		refType := ""
		switch {
		case modifier == "":
		case modifier == "identifier":
			return nil, unsupported(":identifier on reference parameter %s", code)
		case isTypeName(modifier):
			refType = modifier
		default:
			return nil, unsupported("modifier :%s on reference parameter %s", modifier, code)
		}
		if v.RefID == "" {
			if v.Code == "" {
				return nil, unsupported("empty reference value for %s", code)
			}
			url := v.Code
			return func(e *fhir.IndexEntry) bool { return e.Code == url }, nil
		}
		if v.RefType != "" {
			if refType != "" && refType != v.RefType {
				return func(*fhir.IndexEntry) bool { return false }, nil
			}
			refType = v.RefType
		}
		id := v.RefID
		return func(e *fhir.IndexEntry) bool { return e.RefID == id && (refType == "" || e.RefType == refType) }, nil
	}
	return nil, unsupported("parameter %s of type %s", code, typ)
}

// dateRange is a date value's range; with ap, widened on each side by a
// tenth of the distance between the value and now (a date long ago is
// approximate over a wider range).
func (c *compiler) dateRange(v *search.Value) (int64, int64) {
	lo, hi := v.Lo, v.Hi
	if v.Prefix == search.AP {
		d := c.now.UnixMicro() - lo
		if d < 0 {
			d = -d
		}
		lo, hi = lo-d/10, hi+d/10
	}
	return lo, hi
}

func isTypeName(s string) bool {
	return s != "" && unicode.IsUpper(rune(s[0]))
}

func validPrefix(p search.Prefix) bool {
	switch p {
	case search.PrefixNone, search.EQ, search.NE, search.GT, search.LT, search.GE, search.LE, search.SA, search.EB, search.AP:
		return true
	}
	return false
}

// inRange compares a target range [tlo, thi] with a search range [slo,
// shi] (all inclusive) as R4 search defines the prefixes: eq the search
// range contains the target; gt the range above the search value overlaps
// the target; ge: gt or eq; sa the target starts after the search range;
// ap the (widened) ranges overlap.
func inRange[T cmp.Ordered](tlo, thi, slo, shi T, p search.Prefix) bool {
	eq := tlo >= slo && thi <= shi
	switch p {
	case search.NE:
		return !eq
	case search.GT:
		return thi > shi
	case search.LT:
		return tlo < slo
	case search.GE:
		return thi > shi || eq
	case search.LE:
		return tlo < slo || eq
	case search.SA:
		return tlo > shi
	case search.EB:
		return thi < slo
	case search.AP:
		return tlo <= shi && thi >= slo
	}
	return eq
}

func (c *compiler) idClause(cl *search.Clause) (pred, error) {
	if cl.Modifier == "missing" {
		missing := len(cl.Values) > 0 && cl.Values[0].Missing
		return func(*view, *version) bool { return !missing }, nil
	}
	if cl.Modifier != "" && cl.Modifier != "not" {
		return nil, unsupported("modifier :%s on _id", cl.Modifier)
	}
	if len(cl.Values) == 0 {
		return nil, unsupported("_id without a value")
	}
	ids := make([]string, len(cl.Values))
	for i, v := range cl.Values {
		ids[i] = v.Code
		if ids[i] == "" {
			ids[i] = v.RefID
		}
	}
	not := cl.Modifier == "not"
	return func(_ *view, v *version) bool { return slices.Contains(ids, v.ID) != not }, nil
}

func (c *compiler) lastUpdatedClause(cl *search.Clause) (pred, error) {
	if cl.Modifier == "missing" {
		missing := len(cl.Values) > 0 && cl.Values[0].Missing
		return func(*view, *version) bool { return !missing }, nil
	}
	if cl.Modifier != "" {
		return nil, unsupported("modifier :%s on _lastUpdated", cl.Modifier)
	}
	if len(cl.Values) == 0 {
		return nil, unsupported("_lastUpdated without a value")
	}
	ors := make([]entryPred, len(cl.Values))
	for i := range cl.Values {
		f, err := c.value("_lastUpdated", search.Date, "", &cl.Values[i])
		if err != nil {
			return nil, err
		}
		ors[i] = f
	}
	return func(_ *view, v *version) bool {
		lu := v.LastUpdated.UnixMicro()
		e := fhir.IndexEntry{Lo: lu, Hi: lu}
		for _, f := range ors {
			if f(&e) {
				return true
			}
		}
		return false
	}, nil
}

// chain: some reference of the resource through the parameter points at
// a resource (of the chain's type) that the view shows and that satisfies
// the chained clause.
func (c *compiler) chain(cl *search.Clause) (pred, error) {
	if cl.Param.Type != search.Reference {
		return nil, unsupported("chain on %s parameter %s", cl.Param.Type, cl.Param.Code)
	}
	sel := selOf(cl.Param)
	typ := cl.Chain.Type
	if typ == "" && isTypeName(cl.Modifier) {
		typ = cl.Modifier
	}
	inner, err := c.clause(&cl.Chain.Clause)
	if err != nil {
		return nil, err
	}
	return func(w *view, v *version) bool {
		return v.any(&sel, func(r *row) bool {
			if typ != "" && r.RefType != typ {
				return false
			}
			t := w.lookup(r.RefType, r.RefID)
			return t != nil && inner(w, t)
		})
	}, nil
}

// has: some resource of Has.Type that the view shows points at the
// resource through Has.RefParam and satisfies Has.Clause. The resources
// pointed at are found once per search (view.hasTargets).
func (c *compiler) has(h *search.Has) (pred, error) {
	if h.RefParam == nil || h.Type == "" {
		return nil, unsupported("_has without type or reference parameter")
	}
	inner, err := c.clause(&h.Clause)
	if err != nil {
		return nil, err
	}
	n := &hasNode{typ: h.Type, sel: selOf(h.RefParam), inner: inner}
	return func(w *view, v *version) bool {
		_, ok := w.hasTargets(n)[refKey{v.Type, v.ID}]
		return ok
	}, nil
}

type hasNode struct {
	typ   string
	sel   paramSel
	inner pred
}

type refKey struct{ typ, id string }

// compartment: the resource references the owner through one of the
// parameters.
func (c *compiler) compartment(cp *search.Compartment) pred {
	var codes []string
	for _, p := range cp.Params {
		if p.AliasRefType != "" && p.AliasRefType != cp.Type {
			continue // its values reference another type, never the owner
		}
		codes = append(codes, p.IndexCodes()...)
	}
	if len(codes) == 0 {
		return func(*view, *version) bool { return false }
	}
	sel := paramSel{codes: codes, t: tRef}
	typ, id := cp.Type, cp.ID
	return func(_ *view, v *version) bool {
		return v.any(&sel, func(r *row) bool { return r.RefID == id && r.RefType == typ })
	}
}

// sortKey is one _sort key: how to get a resource's value for it.
type sortKey struct {
	kind byte // 'i' int64, 'f' float64, 's' string
	desc bool
	val  func(v *version) sortVal
}

// sortVal is a sort value; null sorts last in either direction.
type sortVal struct {
	null bool
	i    int64
	f    float64
	s    string
}

func compareVal(kind byte, a, b sortVal) int {
	switch kind {
	case 'i':
		return cmp.Compare(a.i, b.i)
	case 'f':
		return cmp.Compare(a.f, b.f)
	}
	return strings.Compare(a.s, b.s)
}

// sortKeys compiles q.Sort as sqlstore does: a key on _id ends the list
// (id ascending is the final tie-breaker anyway), a parameter sorts by
// its smallest value ascending and its largest descending (a date's or
// number's low end ascending, high end descending).
func sortKeys(q *search.Query) ([]sortKey, error) {
	keys := make([]sortKey, 0, len(q.Sort))
	for _, k := range q.Sort {
		if k.Param == nil || k.Param.Code == "_id" {
			if k.Desc {
				keys = append(keys, sortKey{kind: 's', desc: true, val: func(v *version) sortVal { return sortVal{s: v.ID} }})
			}
			break
		}
		if k.Param.Code == "_lastUpdated" {
			keys = append(keys, sortKey{kind: 'i', desc: k.Desc, val: func(v *version) sortVal {
				return sortVal{i: v.LastUpdated.UnixMicro()}
			}})
			continue
		}
		sel := selOf(k.Param)
		desc := k.Desc
		better := func(c int) bool { // min ascending, max descending
			if desc {
				return c > 0
			}
			return c < 0
		}
		sk := sortKey{desc: desc}
		var get func(r *row) sortVal
		switch k.Param.Type {
		case search.Date:
			sk.kind = 'i'
			get = func(r *row) sortVal {
				if desc {
					return sortVal{i: r.Hi}
				}
				return sortVal{i: r.Lo}
			}
		case search.Number, search.Quantity:
			sk.kind = 'f'
			get = func(r *row) sortVal {
				if desc {
					return sortVal{f: r.NumHi}
				}
				return sortVal{f: r.NumLo}
			}
		case search.String:
			sk.kind = 's'
			get = func(r *row) sortVal { return sortVal{s: r.Text} }
		case search.Token, search.URI:
			sk.kind = 's'
			get = func(r *row) sortVal { return sortVal{s: r.Code} }
		case search.Reference:
			sk.kind = 's'
			get = func(r *row) sortVal { return sortVal{s: r.RefType + "/" + r.RefID} }
		default:
			return nil, unsupported("_sort on %s parameter %s", k.Param.Type, k.Param.Code)
		}
		kind := sk.kind
		sk.val = func(v *version) sortVal {
			best := sortVal{null: true}
			v.any(&sel, func(r *row) bool {
				if x := get(r); best.null || better(compareVal(kind, x, best)) {
					best = x
				}
				return false
			})
			return best
		}
		keys = append(keys, sk)
	}
	return keys, nil
}
