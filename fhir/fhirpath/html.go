package fhirpath

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// narrativeElements are the XHTML elements an R4 narrative may use
// (Narrative.div: "basic html formatting elements ... <a> elements,
// images and internally contained style attributes").
var narrativeElements = map[string]bool{
	"a": true, "abbr": true, "acronym": true, "b": true, "big": true, "blockquote": true,
	"br": true, "caption": true, "cite": true, "code": true, "col": true, "colgroup": true,
	"dd": true, "dfn": true, "div": true, "dl": true, "dt": true, "em": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "hr": true,
	"i": true, "img": true, "li": true, "ol": true, "p": true, "pre": true, "q": true,
	"samp": true, "small": true, "span": true, "strong": true, "sub": true, "sup": true,
	"table": true, "tbody": true, "td": true, "tfoot": true, "th": true, "thead": true,
	"tr": true, "tt": true, "ul": true, "var": true,
}

const xhtmlNS = "http://www.w3.org/1999/xhtml"

// checkNarrative applies the R4 narrative rules (txt-1, txt-2) to the
// text of a Narrative.div: well-formed XHTML whose root is a div in the
// XHTML namespace, only the permitted elements, no event-handler
// attributes, no javascript: URLs, and some content.
func checkNarrative(div string) error {
	content, err := scanNarrative(div)
	if err != nil {
		return err
	}
	if !content {
		return errNoContent
	}
	return nil
}

var errNoContent = errors.New("the narrative has no content")

// narrativeMarkup is txt-1: the markup rules of checkNarrative.
func narrativeMarkup(div string) error {
	_, err := scanNarrative(div)
	return err
}

// narrativeContent is txt-2: some non-whitespace content (text or an
// image). Markup that cannot be read is txt-1's to report.
func narrativeContent(div string) error {
	if content, err := scanNarrative(div); err == nil && !content {
		return errNoContent
	}
	return nil
}

// scanNarrative reads div, reporting whether it has content and the
// first markup rule it breaks. It is a strict reader of the XML a
// narrative may hold (elements, attributes, text, character and HTML
// entity references, comments), faster than encoding/xml by the
// allocations it does not make: every write of a resource with a
// narrative runs it.
func scanNarrative(div string) (content bool, err error) {
	if !utf8.ValidString(div) {
		return false, errors.New("not well-formed XHTML: invalid UTF-8")
	}
	x := xhtmlScanner{s: div}
	return x.run()
}

type xhtmlScanner struct {
	s       string
	i       int
	stack   []string
	roots   int
	content bool
	arr     [16]string
}

func (x *xhtmlScanner) run() (bool, error) {
	x.stack = x.arr[:0]
	for x.i < len(x.s) {
		c := x.s[x.i]
		if c != '<' {
			if err := x.text(); err != nil {
				return false, err
			}
			continue
		}
		rest := x.s[x.i:]
		switch {
		case strings.HasPrefix(rest, "<!--"):
			end := strings.Index(rest[4:], "-->")
			if end < 0 {
				return false, errors.New("not well-formed XHTML: unclosed comment")
			}
			if strings.Contains(rest[4:4+end], "--") {
				return false, errors.New("not well-formed XHTML: -- inside a comment")
			}
			x.i += 4 + end + 3
		case strings.HasPrefix(rest, "</"):
			if err := x.endTag(); err != nil {
				return false, err
			}
		case strings.HasPrefix(rest, "<!") || strings.HasPrefix(rest, "<?"):
			return false, errors.New("processing instructions, CDATA and directives are not allowed")
		default:
			if err := x.startTag(); err != nil {
				return false, err
			}
		}
	}
	if len(x.stack) != 0 {
		return false, errors.New("unclosed element <" + x.stack[len(x.stack)-1] + ">")
	}
	if x.roots == 0 {
		return false, errors.New("the narrative must be one XHTML div")
	}
	return x.content, nil
}

// text reads character data up to the next '<'.
func (x *xhtmlScanner) text() error {
	if x.content && len(x.stack) > 0 {
		// Content already seen: only what makes the text ill-formed
		// (control characters, bad references) matters, so a tight loop.
		end := strings.IndexByte(x.s[x.i:], '<')
		if end < 0 {
			end = len(x.s)
		} else {
			end += x.i
		}
		for j := x.i; j < end; j++ {
			c := x.s[j]
			if c == '&' {
				x.i = j
				break
			}
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return errors.New("not well-formed XHTML: control character in text")
			}
			if j == end-1 {
				x.i = end
				return nil
			}
		}
		if x.i == end {
			return nil
		}
	}
	for x.i < len(x.s) && x.s[x.i] != '<' {
		c := x.s[x.i]
		switch {
		case c == '&':
			r, n, err := entity(x.s[x.i:])
			if err != nil {
				return err
			}
			if len(x.stack) > 0 && !unicode.IsSpace(r) {
				x.content = true
			}
			x.i += n
			continue
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
			return errors.New("not well-formed XHTML: control character in text")
		}
		if !isXMLSpace(c) {
			if len(x.stack) == 0 {
				return errors.New("text outside the div")
			}
			if c < utf8.RuneSelf {
				x.content = true
			} else {
				r, n := utf8.DecodeRuneInString(x.s[x.i:])
				if r == utf8.RuneError && n == 1 {
					return errors.New("not well-formed XHTML: invalid UTF-8")
				}
				if !unicode.IsSpace(r) {
					x.content = true
				}
				x.i += n
				continue
			}
		}
		x.i++
	}
	return nil
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isNameByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':', c >= utf8.RuneSelf:
		return true
	case c >= '0' && c <= '9', c == '-', c == '.':
		return !first
	}
	return false
}

func (x *xhtmlScanner) name() (string, error) {
	start := x.i
	for x.i < len(x.s) && isNameByte(x.s[x.i], x.i == start) {
		x.i++
	}
	if x.i == start {
		return "", errors.New("not well-formed XHTML: a name is expected")
	}
	return x.s[start:x.i], nil
}

func (x *xhtmlScanner) skipSpace() bool {
	start := x.i
	for x.i < len(x.s) && isXMLSpace(x.s[x.i]) {
		x.i++
	}
	return x.i > start
}

func (x *xhtmlScanner) endTag() error {
	x.i += 2
	name, err := x.name()
	if err != nil {
		return err
	}
	x.skipSpace()
	if x.i >= len(x.s) || x.s[x.i] != '>' {
		return errors.New("not well-formed XHTML: unterminated end tag </" + name + ">")
	}
	x.i++
	if len(x.stack) == 0 || x.stack[len(x.stack)-1] != name {
		return errors.New("not well-formed XHTML: unexpected end tag </" + name + ">")
	}
	x.stack = x.stack[:len(x.stack)-1]
	return nil
}

func (x *xhtmlScanner) startTag() error {
	x.i++
	name, err := x.name()
	if err != nil {
		return err
	}
	depth := len(x.stack)
	if depth == 0 {
		if x.roots++; x.roots > 1 || name != "div" {
			return errors.New("the narrative must be one XHTML div")
		}
	}
	if !narrativeElements[name] {
		return fmt.Errorf("element <%s> is not allowed in a narrative", name)
	}
	if name == "img" {
		x.content = true
	}
	xmlns, hasXmlns := "", false
	var seen [8]string
	nseen := 0
	for {
		sp := x.skipSpace()
		if x.i >= len(x.s) {
			return errors.New("not well-formed XHTML: unterminated tag <" + name + ">")
		}
		c := x.s[x.i]
		if c == '>' || c == '/' {
			break
		}
		if !sp {
			return errors.New("not well-formed XHTML: attributes of <" + name + "> must be separated by spaces")
		}
		attr, err := x.name()
		if err != nil {
			return err
		}
		for _, a := range seen[:min(nseen, len(seen))] {
			if a == attr {
				return errors.New("not well-formed XHTML: attribute " + attr + " given twice")
			}
		}
		if nseen < len(seen) {
			seen[nseen] = attr
		}
		nseen++
		x.skipSpace()
		if x.i >= len(x.s) || x.s[x.i] != '=' {
			return errors.New("not well-formed XHTML: attribute " + attr + " has no value")
		}
		x.i++
		x.skipSpace()
		val, err := x.attrValue()
		if err != nil {
			return err
		}
		lower := strings.ToLower(attr)
		if strings.HasPrefix(lower, "on") {
			return fmt.Errorf("event attribute %s is not allowed", attr)
		}
		if attr == "xmlns" {
			xmlns, hasXmlns = val, true
		}
		v := strings.ToLower(strings.Join(strings.Fields(val), ""))
		if strings.HasPrefix(v, "javascript:") || strings.HasPrefix(v, "vbscript:") {
			return fmt.Errorf("attribute %s holds a script URL", attr)
		}
	}
	if depth == 0 && xmlns != xhtmlNS || depth > 0 && hasXmlns && xmlns != xhtmlNS {
		return errors.New("the narrative must be one XHTML div")
	}
	if strings.IndexByte(name, ':') >= 0 {
		return fmt.Errorf("element <%s> is not allowed in a narrative", name)
	}
	if x.s[x.i] == '/' {
		if x.i+1 >= len(x.s) || x.s[x.i+1] != '>' {
			return errors.New("not well-formed XHTML: bad empty-element tag <" + name + ">")
		}
		x.i += 2
		return nil
	}
	x.i++
	x.stack = append(x.stack, name)
	return nil
}

// attrValue reads a quoted attribute value, entities decoded.
func (x *xhtmlScanner) attrValue() (string, error) {
	if x.i >= len(x.s) || x.s[x.i] != '"' && x.s[x.i] != '\'' {
		return "", errors.New("not well-formed XHTML: an attribute value must be quoted")
	}
	q := x.s[x.i]
	x.i++
	start := x.i
	var b []byte // only when an entity needs decoding
	for x.i < len(x.s) && x.s[x.i] != q {
		c := x.s[x.i]
		switch {
		case c == '<':
			return "", errors.New("not well-formed XHTML: < in an attribute value")
		case c == '&':
			if b == nil {
				b = append(make([]byte, 0, 64), x.s[start:x.i]...)
			}
			r, n, err := entity(x.s[x.i:])
			if err != nil {
				return "", err
			}
			b = utf8.AppendRune(b, r)
			x.i += n
			continue
		}
		if b != nil {
			b = append(b, c)
		}
		x.i++
	}
	if x.i >= len(x.s) {
		return "", errors.New("not well-formed XHTML: unterminated attribute value")
	}
	val := x.s[start:x.i]
	if b != nil {
		val = string(b)
	}
	x.i++
	return val, nil
}

// entity decodes the reference at the start of s ("&amp;", "&#10;",
// "&#x9;", or an HTML entity name), returning the rune and its length.
func entity(s string) (rune, int, error) {
	end := strings.IndexByte(s, ';')
	if end < 2 {
		return 0, 0, errors.New("not well-formed XHTML: & that does not start an entity reference")
	}
	ref := s[1:end]
	if ref[0] == '#' {
		var n uint64
		var err error
		if len(ref) > 1 && (ref[1] == 'x' || ref[1] == 'X') {
			n, err = strconv.ParseUint(ref[2:], 16, 32)
		} else {
			n, err = strconv.ParseUint(ref[1:], 10, 32)
		}
		r := rune(n)
		if err != nil || !isXMLChar(r) {
			return 0, 0, errors.New("not well-formed XHTML: bad character reference &" + ref + ";")
		}
		return r, end + 1, nil
	}
	switch ref {
	case "amp":
		return '&', end + 1, nil
	case "lt":
		return '<', end + 1, nil
	case "gt":
		return '>', end + 1, nil
	case "quot":
		return '"', end + 1, nil
	case "apos":
		return '\'', end + 1, nil
	}
	if v, ok := xml.HTMLEntity[ref]; ok {
		r, _ := utf8.DecodeRuneInString(v)
		return r, end + 1, nil
	}
	return 0, 0, errors.New("not well-formed XHTML: unknown entity &" + ref + ";")
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
