package fhirpath

import (
	"strings"
)

type nodeKind uint8

const (
	nLiteral  nodeKind = iota // lit
	nEmpty                    // {}
	nMember                   // name: a child element, or at a path's start possibly a type name
	nFunc                     // name(args), invoked on the input
	nPath                     // left.right: right evaluated with left's result as input
	nIndex                    // left[right]
	nUnary                    // op left
	nBinary                   // left op right
	nType                     // left is/as typ
	nThis                     // $this
	nIndexVar                 // $index
	nTotal                    // $total
	nVar                      // %name
)

// node is one node of the syntax tree; compile fills the fields after
// "resolved at compile time".
type node struct {
	kind        nodeKind
	pos         int
	op          string // operator, or "is"/"as"
	name        string // member, function or variable name
	start       bool   // a member that begins a path: may name the input's type
	lit         item
	left, right *node
	args        []*node
	typ         typeSpec

	// resolved at compile time
	fn      *function
	argType typeSpec // the type argument of is(), as(), ofType()
}

// typeSpec is a type name as written: FHIR.Patient, System.String, or a
// bare name (namespace "").
type typeSpec struct{ ns, name string }

func (t typeSpec) String() string {
	if t.ns == "" {
		return t.name
	}
	return t.ns + "." + t.name
}

// parser is a precedence-climbing parser over the lexer's tokens.
type parser struct {
	lx  lexer
	tok token
	src string
	// depth bounds nesting so hostile input cannot exhaust the stack.
	depth int
}

const maxDepth = 200

// parse turns src into a syntax tree, or a Syntax error with a position.
func parse(src string) (*node, error) {
	p := &parser{lx: lexer{src: src}, src: src}
	p.advance()
	n := p.expr(0)
	if p.lx.err == nil && p.tok.kind != tEOF {
		p.failf(p.tok.pos, "unexpected %s", p.describe(p.tok))
	}
	if p.lx.err != nil {
		return nil, p.lx.err
	}
	return n, nil
}

func (p *parser) advance() { p.tok = p.lx.next() }

func (p *parser) failf(pos int, format string, args ...any) {
	if p.lx.err == nil {
		p.lx.err = newError(Syntax, p.src, pos, format, args...)
	}
	p.tok = token{kind: tEOF, pos: pos}
}

func (p *parser) describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return "string '" + t.text + "'"
	}
	return "'" + p.src[t.pos:min(len(p.src), t.pos+max(1, len(t.text)))] + "'"
}

func (p *parser) isSym(s string) bool { return p.tok.kind == tSym && p.tok.text == s }

func (p *parser) expect(s string) {
	if !p.isSym(s) {
		p.failf(p.tok.pos, "expected '%s', found %s", s, p.describe(p.tok))
		return
	}
	p.advance()
}

// Binary operator precedence, loosest first; 0 means "not an operator".
func binaryPrec(t token) int {
	switch t.kind {
	case tIdent:
		switch t.text {
		case "implies":
			return 1
		case "or", "xor":
			return 2
		case "and":
			return 3
		case "in", "contains":
			return 4
		case "is", "as":
			return 8
		case "div", "mod":
			return 10
		}
	case tSym:
		switch t.text {
		case "=", "~", "!=", "!~":
			return 5
		case "<", "<=", ">", ">=":
			return 6
		case "|":
			return 7
		case "+", "-", "&":
			return 9
		case "*", "/":
			return 10
		}
	}
	return 0
}

const unaryPrec = 11

// expr parses operators binding tighter than minPrec.
func (p *parser) expr(minPrec int) *node {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		p.failf(p.tok.pos, "expression nested too deeply")
		return &node{kind: nEmpty}
	}
	left := p.unary()
	for p.lx.err == nil {
		prec := binaryPrec(p.tok)
		if prec == 0 || prec <= minPrec {
			return left
		}
		op := p.tok
		p.advance()
		if op.text == "is" || op.text == "as" {
			ts := p.typeSpecifier()
			left = &node{kind: nType, pos: op.pos, op: op.text, left: left, typ: ts}
			continue
		}
		right := p.expr(prec)
		left = &node{kind: nBinary, pos: op.pos, op: op.text, left: left, right: right}
	}
	return left
}

func (p *parser) unary() *node {
	if p.isSym("+") || p.isSym("-") {
		op := p.tok
		p.advance()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			p.failf(op.pos, "expression nested too deeply")
			return &node{kind: nEmpty}
		}
		operand := p.unary()
		return &node{kind: nUnary, pos: op.pos, op: op.text, left: operand}
	}
	return p.postfix(p.term())
}

func (p *parser) postfix(n *node) *node {
	for p.lx.err == nil {
		switch {
		case p.isSym("."):
			p.advance()
			inv := p.invocation(false)
			n = &node{kind: nPath, pos: inv.pos, left: n, right: inv}
		case p.isSym("["):
			pos := p.tok.pos
			p.advance()
			idx := p.expr(0)
			p.expect("]")
			n = &node{kind: nIndex, pos: pos, left: n, right: idx}
		default:
			return n
		}
	}
	return n
}

// identifier reads an identifier, a delimited identifier, or one of the
// keywords the grammar allows as names (as, contains, in, is). After a
// dot any keyword is a name: R4 writes text.`div`, but text.div is what
// people (and other engines) write, and it cannot mean anything else.
func (p *parser) identifier() (string, int, bool) { return p.name(false) }

func (p *parser) name(afterDot bool) (string, int, bool) {
	t := p.tok
	switch t.kind {
	case tDelim:
		p.advance()
		return t.text, t.pos, true
	case tIdent:
		if reserved[t.text] && !afterDot {
			return "", t.pos, false
		}
		p.advance()
		return t.text, t.pos, true
	}
	return "", t.pos, false
}

// reserved words cannot name members or functions.
var reserved = map[string]bool{
	"and": true, "or": true, "xor": true, "implies": true, "div": true, "mod": true,
	"true": true, "false": true,
}

// invocation: identifier, function call or $this/$index/$total.
func (p *parser) invocation(start bool) *node {
	if p.tok.kind == tSpecial {
		t := p.tok
		p.advance()
		switch t.text {
		case "$this":
			return &node{kind: nThis, pos: t.pos}
		case "$index":
			return &node{kind: nIndexVar, pos: t.pos}
		}
		return &node{kind: nTotal, pos: t.pos}
	}
	delimited := p.tok.kind == tDelim
	name, pos, ok := p.name(!start)
	if !ok {
		p.failf(pos, "expected a name, found %s", p.describe(p.tok))
		return &node{kind: nEmpty, pos: pos}
	}
	if !delimited && p.isSym("(") {
		p.advance()
		n := &node{kind: nFunc, pos: pos, name: name}
		if !p.isSym(")") {
			for p.lx.err == nil {
				n.args = append(n.args, p.expr(0))
				if !p.isSym(",") {
					break
				}
				p.advance()
			}
		}
		p.expect(")")
		return n
	}
	return &node{kind: nMember, pos: pos, name: name, start: start}
}

func (p *parser) term() *node {
	t := p.tok
	switch t.kind {
	case tEOF:
		p.failf(t.pos, "expression expected, found end of expression")
		return &node{kind: nEmpty, pos: t.pos}
	case tNumber:
		p.advance()
		return p.number(t)
	case tString:
		p.advance()
		return &node{kind: nLiteral, pos: t.pos, lit: sysItem(t.text)}
	case tDateTime:
		p.advance()
		v, ok := parseDateLiteral(t.text)
		if !ok {
			p.failf(t.pos, "invalid date/time literal @%s", t.text)
			return &node{kind: nEmpty, pos: t.pos}
		}
		return &node{kind: nLiteral, pos: t.pos, lit: sysItem(v)}
	case tIdent:
		switch t.text {
		case "true", "false":
			p.advance()
			return &node{kind: nLiteral, pos: t.pos, lit: sysItem(t.text == "true")}
		}
	case tSym:
		switch t.text {
		case "(":
			p.advance()
			n := p.expr(0)
			p.expect(")")
			return n
		case "{":
			p.advance()
			p.expect("}")
			return &node{kind: nEmpty, pos: t.pos}
		case "%":
			p.advance()
			var name string
			switch p.tok.kind {
			case tIdent, tDelim, tString:
				name = p.tok.text
				p.advance()
			default:
				p.failf(p.tok.pos, "expected a variable name after %%")
			}
			return &node{kind: nVar, pos: t.pos, name: name}
		}
	}
	return p.invocation(true)
}

// calendarUnits are the duration keywords a quantity literal may use
// unquoted, singular and plural.
var calendarUnits = map[string]string{
	"year": "year", "years": "year", "month": "month", "months": "month",
	"week": "week", "weeks": "week", "day": "day", "days": "day",
	"hour": "hour", "hours": "hour", "minute": "minute", "minutes": "minute",
	"second": "second", "seconds": "second", "millisecond": "millisecond", "milliseconds": "millisecond",
}

// number makes an Integer or Decimal literal, or a Quantity when a unit
// follows.
func (p *parser) number(t token) *node {
	var it item
	if strings.IndexByte(t.text, '.') >= 0 {
		d, ok := parseDec(t.text)
		if !ok {
			p.failf(t.pos, "invalid number %s", t.text)
			return &node{kind: nEmpty, pos: t.pos}
		}
		it = sysItem(d)
	} else {
		n, ok := parseInt(t.text)
		if !ok {
			// Too big for an Integer: still a valid number, as a Decimal.
			d, _ := parseDec(t.text)
			it = sysItem(d)
		} else {
			it = sysItem(n)
		}
	}
	unit := ""
	switch {
	case p.tok.kind == tString:
		unit = p.tok.text
		p.advance()
	case p.tok.kind == tIdent && calendarUnits[p.tok.text] != "":
		unit = p.tok.text
		p.advance()
	default:
		return &node{kind: nLiteral, pos: t.pos, lit: it}
	}
	return &node{kind: nLiteral, pos: t.pos, lit: sysItem(quantity{v: toDec(it.sv), unit: unit})}
}

// typeSpecifier: a qualified identifier after is/as.
func (p *parser) typeSpecifier() typeSpec {
	name, pos, ok := p.identifier()
	if !ok {
		p.failf(pos, "expected a type name, found %s", p.describe(p.tok))
		return typeSpec{}
	}
	if p.isSym(".") {
		p.advance()
		second, pos2, ok := p.identifier()
		if !ok {
			p.failf(pos2, "expected a type name, found %s", p.describe(p.tok))
			return typeSpec{}
		}
		return typeSpec{ns: name, name: second}
	}
	return typeSpec{name: name}
}

// typeSpecOf reads a function's type argument (ofType(FHIR.Patient)),
// which the grammar parses as an ordinary expression.
func typeSpecOf(n *node) (typeSpec, bool) {
	switch n.kind {
	case nMember:
		return typeSpec{name: n.name}, true
	case nPath:
		if n.left.kind == nMember && n.right.kind == nMember {
			return typeSpec{ns: n.left.name, name: n.right.name}, true
		}
	}
	return typeSpec{}, false
}
