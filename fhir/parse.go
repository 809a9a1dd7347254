package fhir

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits bound what ParseJSON accepts. A zero field means its DefaultLimits
// value; a negative one, no limit.
type Limits struct {
	MaxBytes, MaxDepth, MaxStringBytes int
	// MaxArrayElements bounds the elements of any one JSON array (limit
	// max-array-elements), MaxNodes the JSON values of the whole document,
	// objects, arrays and scalars alike (limit max-nodes). The tree costs
	// about 100 bytes a value, and validation an issue per bad value, so
	// these bound the memory a body of MaxBytes can make a request take.
	MaxArrayElements, MaxNodes int
	// MaxTotalStringBytes bounds the bytes of all the document's strings
	// together (limit max-total-string-bytes). MaxStringBytes bounds one
	// string but leaves out base64Binary values and narratives (Narrative.div,
	// XHTML, which FHIR's 1 MB string rule does not cover: official examples
	// carry narratives of 1.1 and 1.8 MB); this bounds those with the rest.
	MaxTotalStringBytes int
}

// DefaultLimits: FHIR says strings SHALL NOT exceed 1 MB; base64Binary is
// exempt from the string limit but not from MaxBytes.
//
// The largest array among the official R4 examples (which the tests
// round-trip) has 1,375 elements (Bundle-searchParams.json, its entries)
// and the largest document 63,220 values (the same Bundle): the defaults
// leave 7x and 4.7x headroom over them, and refuse the shape of an attack,
// a 14 MB Observation holding a million identifiers, which took 1.2 GB to
// accept (BENCHMARKS.md).
//
// MaxDepth: the deepest official R4 example nests 21 levels (objects and
// arrays, the root object being 1: QuestionnaireResponse-ussg-fht-answers;
// TestDefaultDepthAcceptsExamples measures it), so 100 leaves 4.7x; MaxDepthBound is the most an
// operator may set (kapbridge serve -max-depth).
var DefaultLimits = Limits{MaxBytes: 16 << 20, MaxDepth: 100, MaxStringBytes: 1 << 20,
	MaxArrayElements: 10_000, MaxNodes: 300_000, MaxTotalStringBytes: 16 << 20}

// MaxDepthBound is the largest MaxDepth a server may be configured with:
// stored versions are re-read under it (StoredLimits), whatever depth they
// were written under, and the recursive walks over a tree (validation,
// encoding, FHIRPath) stay cheap at it.
const MaxDepthBound = 1000

// StoredLimits are for re-reading JSON the store already holds: it was
// checked when written, perhaps under other limits (or before a limit
// existed), so only the string limit, which no version ever escaped, and
// the nesting bound, which no server setting exceeds, still apply. A stored version may exceed MaxBytes by the meta
// the server stamped on it.
var StoredLimits = Limits{MaxBytes: -1, MaxDepth: MaxDepthBound, MaxArrayElements: -1, MaxNodes: -1, MaxTotalStringBytes: -1}

// withDefaults resolves zero fields to DefaultLimits and negative ones to
// no limit.
func (l Limits) withDefaults() Limits {
	f := func(v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = math.MaxInt
		}
	}
	f(&l.MaxBytes, DefaultLimits.MaxBytes)
	f(&l.MaxDepth, DefaultLimits.MaxDepth)
	f(&l.MaxStringBytes, DefaultLimits.MaxStringBytes)
	f(&l.MaxArrayElements, DefaultLimits.MaxArrayElements)
	f(&l.MaxNodes, DefaultLimits.MaxNodes)
	f(&l.MaxTotalStringBytes, DefaultLimits.MaxTotalStringBytes)
	return l
}

// LimitText names a configurable limit in a message to a client: its name,
// which is also the kapbridge serve flag that sets it, its value, and the
// environment variable, so whoever reads the error knows which knob an
// operator would turn.
func LimitText(name string, value int64) string {
	env := "KAPBRIDGE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	return "the server's limit " + name + " = " + strconv.FormatInt(value, 10) + " (kapbridge serve -" + name + ", " + env + ")"
}

// ParseJSON parses one JSON document into an ordered tree, strictly: no
// duplicate keys, no trailing data, valid UTF-8 only, the JSON number
// grammar, and the limits (a leading UTF-8 byte order mark is skipped).
//
// Errors are *Error: a body over MaxBytes, an array over MaxArrayElements
// or a document over MaxNodes is too-long with status 413; too deep
// nesting or an over-long string is a too-long issue with status 400;
// anything else is a structure issue whose diagnostics give the line and
// column and whose expression is the path reached; all strings together
// over MaxTotalStringBytes are too-long with status 413. MaxStringBytes
// does not bound the values of members that R4 defines as base64Binary
// (such as "data") nor narratives ("div"): Validate checks string lengths
// by their actual type.
func ParseJSON(data []byte, lim Limits) (*Value, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes {
		return nil, Errorf(IssueTooLong, "", "body of %d bytes exceeds the limit of %d bytes", len(data), lim.MaxBytes).
			WithStatus(http.StatusRequestEntityTooLarge)
	}
	// One copy of the input: every unescaped string and every number in
	// the tree is then a substring of it, with no further allocation.
	p := parser{s: string(data), lim: lim}
	if strings.HasPrefix(p.s, "\xEF\xBB\xBF") {
		p.pos = 3
	}
	// About one value per 32 bytes of pretty-printed FHIR JSON; more chunks
	// follow if needed.
	p.slab = make([]Value, 0, min(len(data)/32+8, 4096))
	root := p.alloc()
	p.root = root
	p.ws()
	if p.pos >= len(p.s) {
		return nil, p.errorOf(&parseError{pos: p.pos, msg: "empty document"}, nil)
	}
	if err := p.value(root, ""); err != nil {
		return nil, p.errorOf(err, root)
	}
	p.ws()
	if p.pos < len(p.s) {
		return nil, p.errorOf(&parseError{pos: p.pos, msg: "unexpected data after the JSON value"}, root)
	}
	return root, nil
}

type parser struct {
	s        string
	pos      int
	depth    int
	nodes    int // values allocated so far, for MaxNodes
	strBytes int // string bytes so far, for MaxTotalStringBytes
	lim      Limits
	slab     []Value
	mstk     []Member // members of the objects being parsed, a stack
	astk     []*Value // elements of the arrays being parsed, a stack
	buf      []byte   // for strings with escapes
	root     *Value
	rootType string // resourceType of a root that failed to parse
}

// parseError collects the path on its way up the recursion, so the
// success path never builds one.
type parseError struct {
	pos      int
	msg      string
	tooLong  bool
	tooLarge bool     // over a size limit of the document: 413
	path     []string // innermost first: "foo", "[0]", "name"
}

func (p *parser) alloc() *Value {
	p.nodes++
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]Value, 0, min(2*cap(p.slab)+16, 4096))
	}
	p.slab = p.slab[:len(p.slab)+1]
	return &p.slab[len(p.slab)-1]
}

func (p *parser) fail(msg string) *parseError { return &parseError{pos: p.pos, msg: msg} }

func (p *parser) tooManyNodes() *parseError {
	return &parseError{pos: p.pos, tooLarge: true, msg: "a document of more than " + strconv.Itoa(p.lim.MaxNodes) +
		" JSON values exceeds " + LimitText("max-nodes", int64(p.lim.MaxNodes))}
}

// errorOf turns a parseError into the *Error callers see. root, when given,
// may already hold the resourceType, which starts the expression.
func (p *parser) errorOf(e *parseError, root *Value) *Error {
	line, col := 1, 1
	for i := 0; i < e.pos && i < len(p.s); i++ {
		if p.s[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	var b strings.Builder
	if root != nil {
		rt := p.rootType
		if root.Kind == KindObject {
			rt = root.GetString("resourceType")
		}
		if rt != "" && IsResourceType(rt) {
			b.WriteString(rt)
		}
	}
	for i := len(e.path) - 1; i >= 0; i-- {
		if (e.path[i] == "" || e.path[i][0] != '[') && b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e.path[i])
	}
	code, status := IssueStructure, http.StatusBadRequest
	if e.tooLong || e.tooLarge {
		code = IssueTooLong
	}
	if e.tooLarge {
		status = http.StatusRequestEntityTooLarge
	}
	err := Errorf(code, b.String(), "%s at line %d, column %d", e.msg, line, col)
	return err.WithStatus(status)
}

func (p *parser) ws() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value parses the value at p.pos into v; key is the member name it is the
// value of ("" in arrays and at the root), for the base64Binary exemption.
func (p *parser) value(v *Value, key string) *parseError {
	if p.pos >= len(p.s) {
		return p.fail("unexpected end of input")
	}
	switch c := p.s[p.pos]; {
	case c == '{':
		return p.object(v)
	case c == '[':
		return p.array(v, key)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return err
		}
		if len(s) > p.lim.MaxStringBytes && key != "div" && (key == "" || !r4().b64Names[key]) {
			return &parseError{pos: p.pos, tooLong: true,
				msg: "string of " + strconv.Itoa(len(s)) + " bytes exceeds " + LimitText("max-string-bytes", int64(p.lim.MaxStringBytes))}
		}
		if p.strBytes += len(s); p.strBytes > p.lim.MaxTotalStringBytes {
			return &parseError{pos: p.pos, tooLarge: true, msg: "the document's strings, more than " + strconv.Itoa(p.lim.MaxTotalStringBytes) +
				" bytes together, exceed " + LimitText("max-total-string-bytes", int64(p.lim.MaxTotalStringBytes))}
		}
		v.Kind, v.Str = KindString, s
		return nil
	case c == 't':
		return p.literal(v, "true", KindBool, true)
	case c == 'f':
		return p.literal(v, "false", KindBool, false)
	case c == 'n':
		return p.literal(v, "null", KindNull, false)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(v)
	}
	return p.fail("unexpected character " + strconv.QuoteRune(p.rune()))
}

func (p *parser) rune() rune {
	r, _ := utf8.DecodeRuneInString(p.s[p.pos:])
	return r
}

func (p *parser) literal(v *Value, lit string, k Kind, b bool) *parseError {
	if !strings.HasPrefix(p.s[p.pos:], lit) {
		return p.fail("invalid literal, expected " + lit)
	}
	p.pos += len(lit)
	v.Kind, v.Bool = k, b
	return nil
}

// number checks the JSON number grammar and keeps the literal text.
func (p *parser) number(v *Value) *parseError {
	s, start := p.s, p.pos
	i := start
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
		if i < len(s) && s[i] >= '0' && s[i] <= '9' {
			p.pos = i
			return p.fail("invalid number: leading zero")
		}
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return p.fail("invalid number: digit expected")
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.pos = i
			return p.fail("invalid number: digit expected after the decimal point")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.pos = i
			return p.fail("invalid number: digit expected in the exponent")
		}
	}
	p.pos = i
	v.Kind, v.Str = KindNumber, s[start:i]
	return nil
}

func (p *parser) enter() *parseError {
	p.depth++
	if p.depth > p.lim.MaxDepth {
		return &parseError{pos: p.pos, tooLong: true, msg: "nesting deeper than " + strconv.Itoa(p.lim.MaxDepth) + " levels exceeds " + LimitText("max-depth", int64(p.lim.MaxDepth))}
	}
	return nil
}

func (p *parser) object(v *Value) *parseError {
	if err := p.enter(); err != nil {
		return err
	}
	p.pos++ // {
	base := len(p.mstk)
	defer func() {
		if v == p.root && v.Kind != KindObject {
			// Failed inside the root: remember its resourceType, if read
			// already, to start the error's expression.
			for _, m := range p.mstk[base:] {
				if m.Key == "resourceType" && m.Value.Kind == KindString {
					p.rootType = m.Value.Str
				}
			}
		}
		p.mstk = p.mstk[:base]
	}()
	var seen map[string]struct{} // only for large objects
	p.ws()
	if p.pos < len(p.s) && p.s[p.pos] == '}' {
		p.pos++
		p.depth--
		v.Kind = KindObject
		return nil
	}
	for {
		if p.pos >= len(p.s) {
			return p.fail("unexpected end of input in an object")
		}
		if p.s[p.pos] != '"' {
			return p.fail("expected a member name in double quotes")
		}
		keyPos := p.pos
		key, err := p.str()
		if err != nil {
			return err
		}
		if len(key) > p.lim.MaxStringBytes {
			return &parseError{pos: keyPos, tooLong: true, msg: "member name exceeds " + LimitText("max-string-bytes", int64(p.lim.MaxStringBytes))}
		}
		// Duplicate names are ambiguous (which one wins differs between
		// parsers), so they are refused.
		dup := false
		if n := len(p.mstk) - base; n < 16 {
			for _, m := range p.mstk[base:] {
				if m.Key == key {
					dup = true
					break
				}
			}
		} else {
			if seen == nil {
				seen = make(map[string]struct{}, 2*n)
				for _, m := range p.mstk[base:] {
					seen[m.Key] = struct{}{}
				}
			}
			_, dup = seen[key]
			seen[key] = struct{}{}
		}
		if dup {
			e := &parseError{pos: keyPos, msg: "duplicate member " + strconv.Quote(key)}
			e.path = append(e.path, key)
			return e
		}
		p.ws()
		if p.pos >= len(p.s) || p.s[p.pos] != ':' {
			e := p.fail("expected ':' after a member name")
			e.path = append(e.path, key)
			return e
		}
		p.pos++
		p.ws()
		child := p.alloc()
		if p.nodes > p.lim.MaxNodes {
			e := p.tooManyNodes()
			e.path = append(e.path, key)
			return e
		}
		if err := p.value(child, key); err != nil {
			err.path = append(err.path, key)
			return err
		}
		p.mstk = append(p.mstk, Member{key, child})
		p.ws()
		if p.pos >= len(p.s) {
			return p.fail("unexpected end of input in an object")
		}
		switch p.s[p.pos] {
		case ',':
			p.pos++
			p.ws()
			continue
		case '}':
			p.pos++
		default:
			return p.fail("expected ',' or '}' in an object")
		}
		break
	}
	v.Kind = KindObject
	v.Members = append(make([]Member, 0, len(p.mstk)-base), p.mstk[base:]...)
	p.depth--
	return nil
}

func (p *parser) array(v *Value, key string) *parseError {
	if err := p.enter(); err != nil {
		return err
	}
	p.pos++ // [
	base := len(p.astk)
	defer func() { p.astk = p.astk[:base] }()
	p.ws()
	if p.pos < len(p.s) && p.s[p.pos] == ']' {
		p.pos++
		p.depth--
		v.Kind = KindArray
		return nil
	}
	for {
		if n := len(p.astk) - base; n >= p.lim.MaxArrayElements {
			return &parseError{pos: p.pos, tooLarge: true, msg: "an array of more than " + strconv.Itoa(n) +
				" elements exceeds " + LimitText("max-array-elements", int64(p.lim.MaxArrayElements))}
		}
		child := p.alloc()
		if p.nodes > p.lim.MaxNodes {
			e := p.tooManyNodes()
			e.path = append(e.path, "["+strconv.Itoa(len(p.astk)-base)+"]")
			return e
		}
		if err := p.value(child, key); err != nil {
			err.path = append(err.path, "["+strconv.Itoa(len(p.astk)-base)+"]")
			return err
		}
		p.astk = append(p.astk, child)
		p.ws()
		if p.pos >= len(p.s) {
			return p.fail("unexpected end of input in an array")
		}
		switch p.s[p.pos] {
		case ',':
			p.pos++
			p.ws()
			continue
		case ']':
			p.pos++
		default:
			return p.fail("expected ',' or ']' in an array")
		}
		break
	}
	v.Kind = KindArray
	v.Array = append(make([]*Value, 0, len(p.astk)-base), p.astk[base:]...)
	p.depth--
	return nil
}

// str parses a string at p.pos (on its opening quote). Strings without
// escapes are substrings of the input.
func (p *parser) str() (string, *parseError) {
	s := p.s
	start := p.pos + 1
	i := start
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return s[start:i], nil
		case c == '\\':
			return p.strEscaped(start, i)
		case c < 0x20:
			p.pos = i
			return "", p.fail("control character in a string (must be escaped)")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				p.pos = i
				return "", p.fail("invalid UTF-8 in a string")
			}
			i += size
		}
	}
	p.pos = i
	return "", p.fail("unterminated string")
}

func (p *parser) strEscaped(start, i int) (string, *parseError) {
	s := p.s
	b := append(p.buf[:0], s[start:i]...)
	defer func() { p.buf = b[:0] }()
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(b), nil
		case c == '\\':
			if i+1 >= len(s) {
				p.pos = i
				return "", p.fail("unterminated escape")
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(s, i+2)
				if !ok {
					p.pos = i
					return "", p.fail(`invalid \u escape`)
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// A high surrogate must be followed by an escaped low one.
					r2, ok2 := rune(0), false
					if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r2, ok2 = hex4(s, i+2)
					}
					dec := utf16.DecodeRune(r, r2)
					if !ok2 || dec == utf8.RuneError {
						p.pos = i - 6
						return "", p.fail("unpaired UTF-16 surrogate in a \\u escape")
					}
					r = dec
					i += 6
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				p.pos = i
				return "", p.fail("invalid escape \\" + string(rune(e)))
			}
			i += 2
		case c < 0x20:
			p.pos = i
			return "", p.fail("control character in a string (must be escaped)")
		case c < utf8.RuneSelf:
			// Copy the run of plain ASCII at once.
			j := i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] < utf8.RuneSelf && s[j] != '"' && s[j] != '\\' {
				j++
			}
			b = append(b, s[i:j]...)
			i = j
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				p.pos = i
				return "", p.fail("invalid UTF-8 in a string")
			}
			b = append(b, s[i:i+size]...)
			i += size
		}
	}
	p.pos = i
	return "", p.fail("unterminated string")
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}
