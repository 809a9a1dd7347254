package sqlstore

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
)

// ErrUnsupported is search.ErrUnsupported, which Search wraps for a query
// it cannot evaluate.
var ErrUnsupported = search.ErrUnsupported

var unsupported = search.Unsupported

// snap is the state a query reads: a snapshot of committed data (SQLite: a
// seq; PostgreSQL: a pg_snapshot text) or, inside a transaction, whatever
// the transaction sees now (current rows); and, of that state, what its
// caller may see: versions with a sensitivity in hide (the caller's
// fhir.Audience.Hidden) do not exist for the query.
type snap struct {
	tx   bool
	seq  int64  // SQLite
	pg   string // PostgreSQL
	hide fhir.Sensitivity
}

// builder accumulates one SQL statement and its arguments. Placeholders are
// numbered (?N in SQLite, $N in PostgreSQL), so fragments may be built in
// any order and an argument used twice is passed once.
type builder struct {
	pg      bool
	snap    snap
	args    []any
	snapArg string
	tenArg  string
	typArg  string
	aliases int
	now     time.Time
}

func newBuilder(pg bool, s snap, now time.Time) *builder {
	return &builder{pg: pg, snap: s, now: now}
}

func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	if b.pg {
		return "$" + strconv.Itoa(len(b.args))
	}
	return "?" + strconv.Itoa(len(b.args))
}

func (b *builder) alias(prefix string) string {
	b.aliases++
	return prefix + strconv.Itoa(b.aliases)
}

// vis is the condition that search_res row a (a version) is current in
// the state b reads and visible to its caller. Every search_res row a
// query touches passes through vis (the matches, chain targets, _has
// sources, included resources), so a hidden resource cannot influence a
// result in any way: not as a match, a count, a sort position or a
// reason for another resource to match.
func (b *builder) vis(a string) string {
	cur := b.current(a)
	if b.snap.hide != 0 {
		cur += fmt.Sprintf(" AND (%s.sensitivity & %d) = 0", a, b.snap.hide)
	}
	return cur
}

// current is the condition that search_res row a is current in the state
// b reads.
func (b *builder) current(a string) string {
	if b.snap.tx {
		if b.pg {
			return a + ".to_seq IS NULL"
		}
		return a + ".to_seq = " + strconv.FormatInt(maxSeq, 10)
	}
	if b.snapArg == "" {
		if b.pg {
			b.snapArg = b.arg(b.snap.pg) + "::text::pg_snapshot"
		} else {
			b.snapArg = b.arg(b.snap.seq)
		}
	}
	if b.pg {
		return fmt.Sprintf("pg_visible_in_snapshot(%[1]s.from_seq, %[2]s) AND (%[1]s.to_seq IS NULL OR NOT pg_visible_in_snapshot(%[1]s.to_seq, %[2]s))", a, b.snapArg)
	}
	return fmt.Sprintf("%[1]s.from_seq <= %[2]s AND %[2]s < %[1]s.to_seq", a, b.snapArg)
}

// prefixOf is the SQL for "column col starts with the text of argument p".
func (b *builder) startsWith(col, p, val string) string {
	if b.pg {
		return fmt.Sprintf("starts_with(%s, %s)", col, p)
	}
	// A range on the binary (byte-wise) collation: index-friendly and
	// exact for UTF-8, unlike LIKE, which folds ASCII case.
	return fmt.Sprintf("(%s >= %s AND %s < %s)", col, p, col, b.arg(val+"\U0010FFFF"))
}

func (b *builder) contains(col, p string) string {
	if b.pg {
		return fmt.Sprintf("strpos(%s, %s) > 0", col, p)
	}
	return fmt.Sprintf("instr(%s, %s) > 0", col, p)
}

// correlate is the condition that index row x holds a value of the
// version in search_res row r.
func correlate(x, r string) string {
	return x + ".vkey = " + r + ".vkey"
}

// clause returns the condition that resource row r (columns tenant, type,
// id, last_updated) satisfies c.
func (b *builder) clause(c *search.Clause, r string) (string, error) {
	if c.Has != nil {
		return b.hasClause(c.Has, r)
	}
	if c.Param == nil {
		return "", unsupported("clause without parameter")
	}
	switch c.Param.Code {
	case "_id":
		return b.idClause(c, r)
	case "_lastUpdated":
		return b.lastUpdatedClause(c, r)
	}
	if c.Chain != nil {
		return b.chainClause(c, r)
	}
	sub, err := b.indexed(c, func(x string) string { return correlate(x, r) }, "SELECT 1")
	if err != nil {
		return "", err
	}
	if c.Modifier == "not" || (c.Modifier == "missing" && len(c.Values) > 0 && c.Values[0].Missing) {
		return "NOT EXISTS (" + sub + ")", nil
	}
	return "EXISTS (" + sub + ")", nil
}

// driverClause is c as "r.vkey IN (uncorrelated subquery)", which SQLite
// runs first and then looks the few ids up, instead of testing every
// resource of the type. Only for clauses whose matches are few.
func (b *builder) driverClause(c *search.Clause, r string) (string, error) {
	if c.Chain != nil {
		return b.chainDriverClause(c, r)
	}
	sub, err := b.indexed(c, func(x string) string {
		return fmt.Sprintf("%s.tenant = %s AND %s.type = %s", x, b.tenArg, x, b.typArg)
	}, "SELECT x_.vkey")
	if err != nil {
		return "", err
	}
	return r + ".vkey IN (" + sub + ")", nil
}

// chainDriverClause is a chain whose inner clause is selective (a
// driverChain) as "r.vkey IN (...)" run from the inside out: the target
// versions the inner clause's index finds, the references to them
// (search_ref_target), and the referring versions of the searched type.
// Tested per row instead (chainClause), a chain costs a lookup for every
// resource of the searched type.
func (b *builder) chainDriverClause(c *search.Clause, r string) (string, error) {
	chainTyp := b.arg(c.Chain.Type)
	sub, err := b.indexed(&c.Chain.Clause, func(x string) string {
		return fmt.Sprintf("%s.tenant = %s AND %s.type = %s", x, b.tenArg, x, chainTyp)
	}, "SELECT x_.vkey")
	if err != nil {
		return "", err
	}
	t, x := b.alias("t"), b.alias("x")
	return fmt.Sprintf("%[1]s.vkey IN (SELECT %[2]s.vkey FROM search_res %[3]s JOIN search_ref %[2]s ON %[2]s.tenant = %[3]s.tenant AND %[2]s.ref_id = %[3]s.id AND %[2]s.ref_type = %[3]s.type"+
		" WHERE %[3]s.vkey IN (%[4]s) AND %[5]s AND %[2]s.type = %[6]s AND %[7]s)",
		r, x, t, sub, b.vis(t), b.typArg, b.paramIs(x, c.Param)), nil
}

// indexed builds "<sel> FROM <table> x WHERE <scope(x)> AND x.param = ...
// AND (value OR value ...)" for a plain (not chained) clause;
// for :missing and :not the value part is left out or kept for the caller
// to negate. sel may use the alias x_, replaced with the real one.
func (b *builder) indexed(c *search.Clause, scope func(x string) string, sel string) (string, error) {
	p := c.Param
	t, ok := tableOf(string(p.Type))
	if !ok {
		return "", unsupported("parameter %s of type %s", p.Code, p.Type)
	}
	x := b.alias("x")
	var sb strings.Builder
	sb.WriteString(strings.ReplaceAll(sel, "x_", x))
	fmt.Fprintf(&sb, " FROM %s %s WHERE %s AND %s", indexTables[t].name, x, scope(x), b.paramIs(x, p))
	if c.Modifier == "missing" {
		if len(c.Values) != 1 {
			return "", unsupported("%s:missing needs one value", p.Code)
		}
		return sb.String(), nil
	}
	if len(c.Values) == 0 {
		return "", unsupported("%s without a value", p.Code)
	}
	ors := make([]string, 0, len(c.Values))
	for i := range c.Values {
		var cond string
		var err error
		if t == tComposite {
			cond, err = b.compositeCond(x, p, &c.Values[i])
		} else {
			cond, err = b.valueCond(x, tableCols(t), p.Code, p.Type, c.Modifier, &c.Values[i])
		}
		if err != nil {
			return "", err
		}
		ors = append(ors, "("+cond+")")
	}
	fmt.Fprintf(&sb, " AND (%s)", strings.Join(ors, " OR "))
	return sb.String(), nil
}

func (b *builder) compositeCond(x string, p *search.Param, v *search.Value) (string, error) {
	if len(p.Components) == 0 || len(p.Components) > maxParts {
		return "", unsupported("composite %s with %d components", p.Code, len(p.Components))
	}
	if len(v.Parts) != len(p.Components) {
		return "", unsupported("composite %s: %d values for %d components", p.Code, len(v.Parts), len(p.Components))
	}
	var and []string
	for i, comp := range p.Components {
		if comp.Param == nil {
			return "", unsupported("composite %s: component %d without parameter", p.Code, i+1)
		}
		cond, err := b.valueCond(x, partCols(i+1, string(comp.Param.Type)), p.Code, comp.Param.Type, "", &v.Parts[i])
		if err != nil {
			return "", err
		}
		and = append(and, "("+cond+")")
	}
	return strings.Join(and, " AND "), nil
}

// valueCond is the condition that index row x (columns named by m) matches
// one search value.
func (b *builder) valueCond(x string, m colMap, code string, typ search.ParamType, modifier string, v *search.Value) (string, error) {
	col := func(c string) string { return x + "." + c }
	switch typ {
	case search.Token:
		switch modifier {
		case "text":
			return b.contains(col(m.text), b.arg(v.Text)), nil
		case "of-type":
			return fmt.Sprintf("%s = %s AND %s = %s AND %s = %s", col(m.typeSystem), b.arg(v.TypeSystem),
				col(m.typeCode), b.arg(v.TypeCode), col(m.code), b.arg(v.Code)), nil
		case "", "not":
		default:
			return "", unsupported("modifier :%s on token parameter %s", modifier, code)
		}
		var and []string
		if v.HasSystem {
			and = append(and, col(m.system)+" = "+b.arg(v.System))
		}
		if v.Code != "" {
			and = append(and, col(m.code)+" = "+b.arg(v.Code))
		}
		if len(and) == 0 {
			return "1 = 1", nil
		}
		return strings.Join(and, " AND "), nil
	case search.String:
		switch modifier {
		case "exact":
			return col(m.exact) + " = " + b.arg(v.Exact), nil
		case "contains":
			return b.contains(col(m.norm), b.arg(v.Text)), nil
		case "":
			return b.startsWith(col(m.norm), b.arg(v.Text), v.Text), nil
		}
		return "", unsupported("modifier :%s on string parameter %s", modifier, code)
	case search.URI:
		switch modifier {
		case "":
			return col(m.uri) + " = " + b.arg(v.Code), nil
		case "below":
			return b.startsWith(col(m.uri), b.arg(v.Code), v.Code), nil
		case "above":
			if b.pg {
				return fmt.Sprintf("starts_with(%s, %s)", b.arg(v.Code), col(m.uri)), nil
			}
			return fmt.Sprintf("substr(%s, 1, length(%s)) = %s", b.arg(v.Code), col(m.uri), col(m.uri)), nil
		}
		return "", unsupported("modifier :%s on uri parameter %s", modifier, code)
	case search.Date:
		if modifier != "" {
			return "", unsupported("modifier :%s on date parameter %s", modifier, code)
		}
		lo, hi := v.Lo, v.Hi
		if v.Prefix == search.AP {
			// Approximately: 10% of the distance between the value and
			// now, on each side (a date long ago is approximate over a
			// wider range), at least a day's worth of precision is
			// already in the value's own range.
			d := b.now.UnixMicro() - lo
			if d < 0 {
				d = -d
			}
			lo, hi = lo-d/10, hi+d/10
		}
		return b.rangeCond(col(m.lo), col(m.hi), lo, hi, v.Prefix, code)
	case search.Number, search.Quantity:
		if modifier != "" {
			return "", unsupported("modifier :%s on %s parameter %s", modifier, typ, code)
		}
		lo, hi := v.NumLo, v.NumHi
		if lo == 0 && hi == 0 && v.Num != 0 {
			lo, hi = v.Num, v.Num
		}
		if v.Prefix == search.AP {
			w := math.Abs(v.Num) / 10
			lo, hi = lo-w, hi+w
		}
		cond, err := b.rangeCond(col(m.lo), col(m.hi), lo, hi, v.Prefix, code)
		if err != nil {
			return "", err
		}
		if typ == search.Quantity {
			if v.System != "" {
				cond += " AND " + col(m.system) + " = " + b.arg(v.System)
			}
			if v.Code != "" {
				cond += " AND " + col(m.code) + " = " + b.arg(v.Code)
			}
		}
		return cond, nil
	case search.Reference:
		refType := ""
		switch {
		case modifier == "":
		case modifier == "identifier":
			return "", unsupported(":identifier on reference parameter %s", code)
		case isTypeName(modifier):
			refType = modifier
		default:
			return "", unsupported("modifier :%s on reference parameter %s", modifier, code)
		}
		if v.RefID == "" {
			if v.Code == "" {
				return "", unsupported("empty reference value for %s", code)
			}
			return col(m.url) + " = " + b.arg(v.Code), nil
		}
		if v.RefType != "" {
			if refType != "" && refType != v.RefType {
				return "1 = 0", nil
			}
			refType = v.RefType
		}
		cond := col(m.refID) + " = " + b.arg(v.RefID)
		if refType != "" {
			cond += " AND " + col(m.refType) + " = " + b.arg(refType)
		}
		return cond, nil
	}
	return "", unsupported("parameter %s of type %s", code, typ)
}

func isTypeName(s string) bool {
	return s != "" && unicode.IsUpper(rune(s[0]))
}

// rangeCond compares a target range [tlo, thi] with a search range [slo,
// shi] (all inclusive) as R4 search defines the prefixes: eq the search
// range contains the target; gt the range above the search value overlaps
// the target; ge: gt or eq; sa the target starts after the search range;
// ap the (widened) ranges overlap.
//
// Only the bounds a prefix uses become arguments: PostgreSQL rejects a
// statement with an argument it cannot type.
func (b *builder) rangeCond(tlo, thi string, sLo, sHi any, p search.Prefix, code string) (string, error) {
	var slo, shi string
	lo := func() string {
		if slo == "" {
			slo = b.arg(sLo)
		}
		return slo
	}
	hi := func() string {
		if shi == "" {
			shi = b.arg(sHi)
		}
		return shi
	}
	eq := func() string { return fmt.Sprintf("%s >= %s AND %s <= %s", tlo, lo(), thi, hi()) }
	switch p {
	case search.PrefixNone, search.EQ:
		return eq(), nil
	case search.NE:
		return "NOT (" + eq() + ")", nil
	case search.GT:
		return thi + " > " + hi(), nil
	case search.LT:
		return tlo + " < " + lo(), nil
	case search.GE:
		return fmt.Sprintf("(%s > %s OR (%s))", thi, hi(), eq()), nil
	case search.LE:
		return fmt.Sprintf("(%s < %s OR (%s))", tlo, lo(), eq()), nil
	case search.SA:
		return tlo + " > " + hi(), nil
	case search.EB:
		return thi + " < " + lo(), nil
	case search.AP:
		return fmt.Sprintf("%s <= %s AND %s >= %s", tlo, hi(), thi, lo()), nil
	}
	return "", unsupported("prefix %q on %s", p, code)
}

func (b *builder) idClause(c *search.Clause, r string) (string, error) {
	if c.Modifier == "missing" {
		if len(c.Values) > 0 && c.Values[0].Missing {
			return "1 = 0", nil
		}
		return "1 = 1", nil
	}
	if c.Modifier != "" && c.Modifier != "not" {
		return "", unsupported("modifier :%s on _id", c.Modifier)
	}
	if len(c.Values) == 0 {
		return "", unsupported("_id without a value")
	}
	ids := make([]string, len(c.Values))
	for i, v := range c.Values {
		id := v.Code
		if id == "" {
			id = v.RefID
		}
		ids[i] = b.arg(id)
	}
	op := " IN ("
	if c.Modifier == "not" {
		op = " NOT IN ("
	}
	return r + ".id" + op + strings.Join(ids, ", ") + ")", nil
}

func (b *builder) lastUpdatedClause(c *search.Clause, r string) (string, error) {
	if c.Modifier == "missing" {
		if len(c.Values) > 0 && c.Values[0].Missing {
			return "1 = 0", nil
		}
		return "1 = 1", nil
	}
	if c.Modifier != "" {
		return "", unsupported("modifier :%s on _lastUpdated", c.Modifier)
	}
	if len(c.Values) == 0 {
		return "", unsupported("_lastUpdated without a value")
	}
	var ors []string
	for i := range c.Values {
		cond, err := b.valueCond(r, colMap{lo: "last_updated", hi: "last_updated"}, "_lastUpdated", search.Date, "", &c.Values[i])
		if err != nil {
			return "", err
		}
		ors = append(ors, "("+cond+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", nil
}

// paramIs is the condition "x's rows are values of p": x.param = p's
// code, or for an alias (search.Param.Alias) its aliased parameters'
// codes, restricted to references to its type where it has one.
func (b *builder) paramIs(x string, p *search.Param) string {
	codes := p.IndexCodes()
	var c string
	if len(codes) == 1 {
		c = x + ".param = " + b.arg(codes[0])
	} else {
		c = x + ".param IN (" + b.inList(codes) + ")"
	}
	if p.AliasRefType != "" {
		c += " AND " + x + ".ref_type = " + b.arg(p.AliasRefType)
	}
	return c
}

// chainClause: some reference of r through Param points at a current
// resource (of Chain.Type) that satisfies Chain.Clause.
func (b *builder) chainClause(c *search.Clause, r string) (string, error) {
	if c.Param.Type != search.Reference {
		return "", unsupported("chain on %s parameter %s", c.Param.Type, c.Param.Code)
	}
	x, t := b.alias("x"), b.alias("t")
	cond := fmt.Sprintf("SELECT 1 FROM search_ref %[1]s JOIN search_res %[2]s ON %[2]s.tenant = %[1]s.tenant AND %[2]s.type = %[1]s.ref_type AND %[2]s.id = %[1]s.ref_id AND %[3]s WHERE %[4]s AND %[5]s",
		x, t, b.vis(t), correlate(x, r), b.paramIs(x, c.Param))
	if c.Chain.Type != "" {
		cond += fmt.Sprintf(" AND %s.ref_type = %s", x, b.arg(c.Chain.Type))
	} else if isTypeName(c.Modifier) {
		cond += fmt.Sprintf(" AND %s.ref_type = %s", x, b.arg(c.Modifier))
	}
	inner, err := b.clause(&c.Chain.Clause, t)
	if err != nil {
		return "", err
	}
	return "EXISTS (" + cond + " AND " + inner + ")", nil
}

// hasClause: some current resource of Has.Type points at r through
// Has.RefParam and satisfies Has.Clause.
func (b *builder) hasClause(h *search.Has, r string) (string, error) {
	if h.RefParam == nil || h.Type == "" {
		return "", unsupported("_has without type or reference parameter")
	}
	x, s := b.alias("h"), b.alias("hs")
	cond := fmt.Sprintf("SELECT 1 FROM search_ref %[1]s JOIN search_res %[2]s ON %[2]s.vkey = %[1]s.vkey AND %[6]s WHERE %[1]s.tenant = %[3]s.tenant AND %[1]s.ref_id = %[3]s.id AND %[1]s.ref_type = %[3]s.type AND %[1]s.type = %[4]s AND %[5]s",
		x, s, r, b.arg(h.Type), b.paramIs(x, h.RefParam), b.vis(s))
	inner, err := b.clause(&h.Clause, s)
	if err != nil {
		return "", err
	}
	return "EXISTS (" + cond + " AND " + inner + ")", nil
}

// compartment: r references the owner through one of the parameters.
func (b *builder) compartment(c *search.Compartment, r string, driver bool) string {
	if len(c.Params) == 0 {
		return "1 = 0"
	}
	var codes []string
	for _, p := range c.Params {
		if p.AliasRefType != "" && p.AliasRefType != c.Type {
			continue // its values reference another type, never the owner
		}
		for _, code := range p.IndexCodes() {
			codes = append(codes, b.arg(code))
		}
	}
	if len(codes) == 0 {
		return "1 = 0"
	}
	x := b.alias("c")
	scope := correlate(x, r)
	sel := "SELECT 1"
	if driver {
		scope = fmt.Sprintf("%s.tenant = %s AND %s.type = %s", x, b.tenArg, x, b.typArg)
		sel = "SELECT " + x + ".vkey"
	}
	sub := fmt.Sprintf("%s FROM search_ref %s WHERE %s AND %s.param IN (%s) AND %s.ref_id = %s AND %s.ref_type = %s",
		sel, x, scope, x, strings.Join(codes, ", "), x, b.arg(c.ID), x, b.arg(c.Type))
	if driver {
		return r + ".vkey IN (" + sub + ")"
	}
	return "EXISTS (" + sub + ")"
}

// sortKey is one ORDER BY key: its SQL expression and how its values are
// carried in a cursor.
type sortKey struct {
	expr string
	kind colKind
	desc bool
}

func (b *builder) sortExpr(k search.SortKey, r string) (sortKey, error) {
	if k.Param == nil || k.Param.Code == "_id" {
		return sortKey{expr: r + ".id", kind: kText, desc: k.Desc}, nil
	}
	if k.Param.Code == "_lastUpdated" {
		return sortKey{expr: r + ".last_updated", kind: kInt, desc: k.Desc}, nil
	}
	agg := "min"
	if k.Desc {
		agg = "max"
	}
	var tbl, col string
	kind := kText
	switch k.Param.Type {
	case search.Date:
		tbl, col, kind = "search_date", "lo", kInt
		if k.Desc {
			col = "hi"
		}
	case search.Number, search.Quantity:
		tbl, col, kind = "search_number", "lo", kReal
		if k.Desc {
			col = "hi"
		}
	case search.String:
		tbl, col = "search_string", "norm"
	case search.Token:
		tbl, col = "search_token", "code"
	case search.URI:
		tbl, col = "search_uri", "uri"
	case search.Reference:
		tbl, col = "search_ref", "ref_type || '/' || %s.ref_id"
	default:
		return sortKey{}, unsupported("_sort on %s parameter %s", k.Param.Type, k.Param.Code)
	}
	x := b.alias("o")
	if strings.Contains(col, "%s") {
		col = fmt.Sprintf(col, x)
	}
	expr := fmt.Sprintf("(SELECT %s(%s.%s) FROM %s %s WHERE %s AND %s)",
		agg, x, col, tbl, x, correlate(x, r), b.paramIs(x, k.Param))
	return sortKey{expr: expr, kind: kind, desc: k.Desc}, nil
}

// Cursor values: each After element is a kind letter and the value, "n"
// for NULL, so a value survives the round trip through strings with its
// type.
func encodeSortValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "n"
	case int64:
		return "i" + strconv.FormatInt(v, 10)
	case int32:
		return "i" + strconv.FormatInt(int64(v), 10)
	case float64:
		return "f" + strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return "s" + v
	case []byte:
		return "s" + string(v)
	}
	return "s" + fmt.Sprint(v)
}

func decodeSortValue(s string, kind colKind) (any, error) {
	if s == "n" {
		return nil, nil
	}
	if s == "" {
		return nil, errors.New("empty cursor value")
	}
	body := s[1:]
	switch s[0] {
	case 'i':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, err
		}
		if kind == kReal {
			return float64(n), nil
		}
		return n, nil
	case 'f':
		f, err := strconv.ParseFloat(body, 64)
		if err != nil {
			return nil, err
		}
		if kind == kInt {
			return int64(f), nil
		}
		return f, nil
	case 's':
		return body, nil
	}
	return nil, fmt.Errorf("bad cursor value %q", s)
}

// keyset is the condition that a row (sort values in columns k1..kn and
// id) comes after the cursor's, in ORDER BY (kN IS NULL), kN [DESC], ...,
// id: missing values sort last in either direction.
func (b *builder) keyset(keys []sortKey, cols []string, after []any, afterID string) string {
	cond := "id > " + b.arg(afterID)
	for i := len(keys) - 1; i >= 0; i-- {
		c := cols[i]
		if after[i] == nil {
			cond = fmt.Sprintf("(%s IS NULL AND %s)", c, cond)
			continue
		}
		op := ">"
		if keys[i].desc {
			op = "<"
		}
		a := b.arg(after[i])
		cond = fmt.Sprintf("(%[1]s %[2]s %[3]s OR %[1]s IS NULL OR (%[1]s = %[3]s AND %[4]s))", c, op, a, cond)
	}
	return cond
}
