package search

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// This file is the FHIRPath subset that the R4 search parameter
// expressions use: paths (with choice elements), '|', 'and', '=', '!=',
// 'is'/'as' and the functions where, resolve, as, ofType, is, exists,
// extension, hasExtension, plus %resource and parentheses. Anything else
// fails to compile, so an unsupported expression is found when the
// registry loads (and by the tests), never while indexing.

// item is one node of a FHIRPath collection: a JSON value with its FHIR
// type. resolve() yields items with a type and no value.
type item struct {
	v *fhir.Value
	t *typeInfo
}

type exprKind uint8

const (
	xMember   exprKind = iota // name: child elements of the input
	xTypeName                 // Name (capitalised path start): the input if it is of that type
	xFunc                     // name(args) on the input
	xPath                     // left.right: right evaluated on left's result
	xUnion                    // left | right
	xAnd
	xEq
	xNe
	xIs // left is typ
	xAs // left as typ
	xString
	xBool
	xResource // %resource
	xThis     // $this
)

type expr struct {
	kind        exprKind
	name        string // member, function, type or string literal
	b           bool
	typ         *typeInfo
	left, right *expr
	args        []*expr
}

// compile parses src against the type table r (for type names).
func compile(src string, r *registry) (*expr, error) {
	p := &fpParser{src: src, r: r}
	p.next()
	x, err := p.parseAnd()
	if err != nil {
		return nil, fmt.Errorf("fhirpath %q: %w", src, err)
	}
	if p.tok != "" {
		return nil, fmt.Errorf("fhirpath %q: unexpected %q at %d", src, p.tok, p.pos)
	}
	return x, nil
}

type fpParser struct {
	src string
	pos int
	tok string // current token; "" at the end
	str bool   // tok is a string literal (its decoded text)
	r   *registry
}

// next reads one token: an identifier (with an optional leading % or $),
// a quoted string, a number, or an operator.
func (p *fpParser) next() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n' || p.src[p.pos] == '\r') {
		p.pos++
	}
	p.str = false
	if p.pos >= len(p.src) {
		p.tok = ""
		return
	}
	c := p.src[p.pos]
	start := p.pos
	switch {
	case c == '\'':
		var b strings.Builder
		p.pos++
		for p.pos < len(p.src) && p.src[p.pos] != '\'' {
			if p.src[p.pos] == '\\' && p.pos+1 < len(p.src) {
				p.pos++
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
		}
		p.pos++ // closing quote
		p.tok, p.str = b.String(), true
		return
	case isIdentByte(c) || c == '%' || c == '$':
		p.pos++
		for p.pos < len(p.src) && isIdentByte(p.src[p.pos]) {
			p.pos++
		}
	case c == '!' && p.pos+1 < len(p.src) && p.src[p.pos+1] == '=':
		p.pos += 2
	default:
		p.pos++
	}
	p.tok = p.src[start:p.pos]
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func (p *fpParser) expect(tok string) error {
	if p.tok != tok || p.str {
		return fmt.Errorf("expected %q, got %q at %d", tok, p.tok, p.pos)
	}
	p.next()
	return nil
}

// Precedence, loosest first: and; = !=; |; is/as; paths.
func (p *fpParser) parseAnd() (*expr, error) {
	l, err := p.parseEq()
	if err != nil {
		return nil, err
	}
	for p.tok == "and" && !p.str {
		p.next()
		r, err := p.parseEq()
		if err != nil {
			return nil, err
		}
		l = &expr{kind: xAnd, left: l, right: r}
	}
	return l, nil
}

func (p *fpParser) parseEq() (*expr, error) {
	l, err := p.parseUnion()
	if err != nil {
		return nil, err
	}
	if (p.tok == "=" || p.tok == "!=") && !p.str {
		k := xEq
		if p.tok == "!=" {
			k = xNe
		}
		p.next()
		r, err := p.parseUnion()
		if err != nil {
			return nil, err
		}
		l = &expr{kind: k, left: l, right: r}
	}
	return l, nil
}

func (p *fpParser) parseUnion() (*expr, error) {
	l, err := p.parseType()
	if err != nil {
		return nil, err
	}
	for p.tok == "|" && !p.str {
		p.next()
		r, err := p.parseType()
		if err != nil {
			return nil, err
		}
		l = &expr{kind: xUnion, left: l, right: r}
	}
	return l, nil
}

func (p *fpParser) parseType() (*expr, error) {
	l, err := p.parsePath()
	if err != nil {
		return nil, err
	}
	for (p.tok == "is" || p.tok == "as") && !p.str {
		k := xIs
		if p.tok == "as" {
			k = xAs
		}
		p.next()
		t, err := p.typeName()
		if err != nil {
			return nil, err
		}
		l = &expr{kind: k, left: l, typ: t}
	}
	return l, nil
}

// typeName reads a type specifier. R4 writes some with a capital
// (value.as(DateTime)) or a namespace (FHIR.Patient); both are accepted.
func (p *fpParser) typeName() (*typeInfo, error) {
	name := p.tok
	if p.str || name == "" {
		return nil, fmt.Errorf("expected a type name at %d", p.pos)
	}
	p.next()
	if name == "FHIR" || name == "System" {
		if err := p.expect("."); err != nil {
			return nil, err
		}
		name = p.tok
		p.next()
	}
	if t := p.r.types[name]; t != nil {
		return t, nil
	}
	if t := p.r.types[strings.ToLower(name[:1])+name[1:]]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("unknown type %q", name)
}

func (p *fpParser) parsePath() (*expr, error) {
	x, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for p.tok == "." && !p.str {
		p.next()
		r, err := p.parseInvocation()
		if err != nil {
			return nil, err
		}
		x = &expr{kind: xPath, left: x, right: r}
	}
	return x, nil
}

func (p *fpParser) parseTerm() (*expr, error) {
	switch {
	case p.str:
		x := &expr{kind: xString, name: p.tok}
		p.next()
		return x, nil
	case p.tok == "(":
		p.next()
		x, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		return x, p.expect(")")
	case p.tok == "true" || p.tok == "false":
		x := &expr{kind: xBool, b: p.tok == "true"}
		p.next()
		return x, nil
	case p.tok == "%resource":
		p.next()
		return &expr{kind: xResource}, nil
	case p.tok == "$this":
		p.next()
		return &expr{kind: xThis}, nil
	}
	return p.parseInvocation()
}

func (p *fpParser) parseInvocation() (*expr, error) {
	name := p.tok
	if p.str || name == "" || !isIdentByte(name[0]) || name[0] >= '0' && name[0] <= '9' {
		return nil, fmt.Errorf("expected a name, got %q at %d", name, p.pos)
	}
	p.next()
	if p.tok != "(" || p.str {
		if name[0] >= 'A' && name[0] <= 'Z' {
			// A path starting with a type name (Observation.code) selects
			// the input if it is of that type.
			t := p.r.types[name]
			if t == nil {
				return nil, fmt.Errorf("unknown type %q", name)
			}
			return &expr{kind: xTypeName, typ: t}, nil
		}
		return &expr{kind: xMember, name: name}, nil
	}
	p.next()
	x := &expr{kind: xFunc, name: name}
	switch name {
	case "as", "ofType", "is":
		t, err := p.typeName()
		if err != nil {
			return nil, err
		}
		x.typ = t
	case "where", "extension", "hasExtension":
		a, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		x.args = []*expr{a}
		if name != "where" && a.kind != xString {
			return nil, fmt.Errorf("%s() takes a string literal", name)
		}
	case "resolve", "exists":
	default:
		return nil, fmt.Errorf("unsupported function %s()", name)
	}
	return x, p.expect(")")
}

// evalCtx carries %resource and the type table.
type evalCtx struct {
	root item
	r    *registry
}

var (
	trueValue  = &fhir.Value{Kind: fhir.KindBool, Bool: true}
	falseValue = &fhir.Value{Kind: fhir.KindBool}
)

func (c *evalCtx) boolean(b bool) []item {
	v := falseValue
	if b {
		v = trueValue
	}
	return []item{{v: v, t: c.r.types["boolean"]}}
}

// eval evaluates x on the input collection.
func (c *evalCtx) eval(x *expr, in []item) []item {
	switch x.kind {
	case xMember:
		var out []item
		for _, it := range in {
			out = c.children(it, x.name, out)
		}
		return out
	case xTypeName:
		if len(in) == 1 && in[0].t.isA(x.typ) {
			return in // the usual case, the resource itself: no copy
		}
		var out []item
		for _, it := range in {
			if it.t.isA(x.typ) {
				out = append(out, it)
			}
		}
		return out
	case xPath:
		l := c.eval(x.left, in)
		if len(l) == 0 {
			return nil
		}
		return c.eval(x.right, l)
	case xUnion:
		// FHIRPath's | removes duplicates; the parts of a search
		// expression select disjoint nodes, and Extract tolerates
		// duplicates anyway, so no pass to remove them.
		l := c.eval(x.left, in)
		return append(l, c.eval(x.right, in)...)
	case xAnd:
		l, r := c.truth(c.eval(x.left, in)), c.truth(c.eval(x.right, in))
		switch {
		case l == 0 || r == 0:
			return c.boolean(false)
		case l == 1 && r == 1:
			return c.boolean(true)
		}
		return nil
	case xEq, xNe:
		l, r := c.eval(x.left, in), c.eval(x.right, in)
		if len(l) == 0 || len(r) == 0 {
			return nil
		}
		eq := len(l) == len(r)
		for i := 0; eq && i < len(l); i++ {
			eq = sameValue(l[i].v, r[i].v)
		}
		return c.boolean(eq == (x.kind == xEq))
	case xIs:
		l := c.eval(x.left, in)
		if len(l) != 1 {
			return nil
		}
		return c.boolean(l[0].t.isA(x.typ))
	case xAs:
		return filterType(c.eval(x.left, in), x.typ)
	case xString:
		return []item{{v: fhir.String(x.name), t: c.r.types["string"]}}
	case xBool:
		return c.boolean(x.b)
	case xResource:
		return []item{c.root}
	case xThis:
		return in
	case xFunc:
		return c.call(x, in)
	}
	return nil
}

// truth is a collection's boolean: 1 true, 0 false, -1 empty (or not a
// single boolean).
func (c *evalCtx) truth(in []item) int {
	if len(in) != 1 || in[0].v == nil || in[0].v.Kind != fhir.KindBool {
		return -1
	}
	if in[0].v.Bool {
		return 1
	}
	return 0
}

func filterType(in []item, t *typeInfo) []item {
	var out []item
	for _, it := range in {
		if it.t.isA(t) {
			out = append(out, it)
		}
	}
	return out
}

func sameValue(a, b *fhir.Value) bool {
	if a == nil || b == nil || a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case fhir.KindString:
		return a.Str == b.Str
	case fhir.KindBool:
		return a.Bool == b.Bool
	case fhir.KindNumber:
		x, err1 := strconv.ParseFloat(a.Str, 64)
		y, err2 := strconv.ParseFloat(b.Str, 64)
		return err1 == nil && err2 == nil && x == y
	}
	return false
}

func (c *evalCtx) call(x *expr, in []item) []item {
	switch x.name {
	case "as", "ofType":
		return filterType(in, x.typ)
	case "is":
		if len(in) != 1 {
			return nil
		}
		return c.boolean(in[0].t.isA(x.typ))
	case "exists":
		return c.boolean(len(in) > 0)
	case "where":
		var out []item
		for _, it := range in {
			if c.truth(c.eval(x.args[0], []item{it})) == 1 {
				out = append(out, it)
			}
		}
		return out
	case "extension":
		var out []item
		for _, it := range in {
			out = c.extensions(it, x.args[0].name, out)
		}
		return out
	case "hasExtension":
		var found []item
		for _, it := range in {
			if found = c.extensions(it, x.args[0].name, found); len(found) > 0 {
				break
			}
		}
		return c.boolean(len(found) > 0)
	case "resolve":
		// Search expressions only ask what type a reference points at
		// (resolve() is Patient); the literal reference says it, without
		// reading the target.
		var out []item
		for _, it := range in {
			if t := c.r.types[refTargetType(it)]; t != nil && t.resource {
				out = append(out, item{t: t})
			}
		}
		return out
	}
	return nil
}

// refTargetType is the resource type a Reference (or canonical/uri) item
// names: the segment before the id in "Type/id", ".../Type/id" or
// ".../Type/id/_history/n"; else Reference.type.
func refTargetType(it item) string {
	var ref string
	if it.v == nil {
		return ""
	}
	switch it.v.Kind {
	case fhir.KindString:
		ref = it.v.Str
	case fhir.KindObject:
		ref = it.v.GetString("reference")
		if ref == "" {
			return it.v.GetString("type")
		}
	}
	if i := strings.IndexByte(ref, '|'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	segs := strings.Split(ref, "/")
	if len(segs) < 2 {
		if it.v.Kind == fhir.KindObject {
			return it.v.GetString("type")
		}
		return ""
	}
	return segs[len(segs)-2]
}

func (c *evalCtx) extensions(it item, url string, out []item) []item {
	if it.v == nil || it.v.Kind != fhir.KindObject {
		return out
	}
	ext := it.v.Get("extension")
	if ext == nil || ext.Kind != fhir.KindArray {
		return out
	}
	t := c.r.types["Extension"]
	for _, e := range ext.Array {
		if e.GetString("url") == url {
			out = append(out, item{v: e, t: t})
		}
	}
	return out
}

// children appends it's elements named name: each array member, and for a
// choice every present type variant (valueQuantity, valueString ...)
// typed by its suffix.
func (c *evalCtx) children(it item, name string, out []item) []item {
	if it.v == nil || it.v.Kind != fhir.KindObject || it.t == nil {
		return out
	}
	ei := it.t.elems[name]
	if ei == nil {
		return out
	}
	if ei.bySuffix != nil {
		for _, m := range it.v.Members {
			if len(m.Key) > len(name) && strings.HasPrefix(m.Key, name) {
				if t := ei.bySuffix[m.Key[len(name):]]; t != nil {
					out = c.appendValue(out, m.Value, t)
				}
			}
		}
		return out
	}
	if v := it.v.Get(name); v != nil {
		out = c.appendValue(out, v, ei.typ)
	}
	return out
}

func (c *evalCtx) appendValue(out []item, v *fhir.Value, t *typeInfo) []item {
	if v.Kind == fhir.KindArray {
		for _, e := range v.Array {
			if e != nil && e.Kind != fhir.KindNull {
				out = append(out, item{v: e, t: c.dynamic(e, t)})
			}
		}
		return out
	}
	if v.Kind == fhir.KindNull {
		return out
	}
	return append(out, item{v: v, t: c.dynamic(v, t)})
}

// dynamic refines an abstract Resource element (contained, Bundle entry)
// to the type its resourceType names.
func (c *evalCtx) dynamic(v *fhir.Value, t *typeInfo) *typeInfo {
	if t.resource && v.Kind == fhir.KindObject && (t.name == "Resource" || t.name == "DomainResource") {
		if rt := c.r.types[v.GetString("resourceType")]; rt != nil && rt.resource {
			return rt
		}
	}
	return t
}
