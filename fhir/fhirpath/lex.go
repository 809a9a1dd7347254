package fhirpath

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF      tokKind = iota
	tIdent            // name, or a keyword (and, or, is, true ...): the parser decides
	tDelim            // `delimited identifier`, text decoded
	tString           // 'string', text decoded
	tNumber           // 12, 1.5
	tDateTime         // @2015-02-04T14:34, text after the @
	tSpecial          // $this, $index, $total
	tSym              // punctuation and operators
)

type token struct {
	kind tokKind
	text string
	pos  int
}

// lexer reads one token at a time; an error stops it.
type lexer struct {
	src string
	pos int
	err *Error
}

func (l *lexer) fail(pos int, format string, args ...any) token {
	if l.err == nil {
		l.err = newError(Syntax, l.src, pos, format, args...)
	}
	return token{kind: tEOF, pos: pos}
}

// skip passes white space and comments.
func (l *lexer) skip() {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f':
			l.pos++
		case strings.HasPrefix(l.src[l.pos:], "//"):
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		case strings.HasPrefix(l.src[l.pos:], "/*"):
			end := strings.Index(l.src[l.pos+2:], "*/")
			if end < 0 {
				l.fail(l.pos, "comment not closed")
				l.pos = len(l.src)
				return
			}
			l.pos += end + 4
		default:
			return
		}
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (l *lexer) next() token {
	l.skip()
	if l.err != nil || l.pos >= len(l.src) {
		return token{kind: tEOF, pos: l.pos}
	}
	start := l.pos
	c := l.src[l.pos]
	switch {
	case isIdentStart(c):
		for l.pos < len(l.src) && (isIdentStart(l.src[l.pos]) || isDigit(l.src[l.pos])) {
			l.pos++
		}
		return token{kind: tIdent, text: l.src[start:l.pos], pos: start}
	case isDigit(c):
		for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
			l.pos++
		}
		// A fraction needs a digit after the point: 1.is(Integer) is an
		// integer with a function call.
		if l.pos+1 < len(l.src) && l.src[l.pos] == '.' && isDigit(l.src[l.pos+1]) {
			l.pos++
			for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
				l.pos++
			}
		}
		return token{kind: tNumber, text: l.src[start:l.pos], pos: start}
	case c == '\'' || c == '`':
		s, ok := l.quoted(c)
		if !ok {
			return token{kind: tEOF, pos: start}
		}
		k := tString
		if c == '`' {
			k = tDelim
		}
		return token{kind: k, text: s, pos: start}
	case c == '@':
		return l.dateTime()
	case c == '$':
		l.pos++
		for l.pos < len(l.src) && (isIdentStart(l.src[l.pos]) || isDigit(l.src[l.pos])) {
			l.pos++
		}
		switch s := l.src[start:l.pos]; s {
		case "$this", "$index", "$total":
			return token{kind: tSpecial, text: s, pos: start}
		default:
			return l.fail(start, "unknown special variable %q", s)
		}
	}
	for _, op := range [...]string{"<=", ">=", "!=", "!~"} {
		if strings.HasPrefix(l.src[l.pos:], op) {
			l.pos += 2
			return token{kind: tSym, text: op, pos: start}
		}
	}
	if strings.IndexByte(".,()[]{}+-*/&|=~<>%", c) >= 0 {
		l.pos++
		return token{kind: tSym, text: l.src[start:l.pos], pos: start}
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	return l.fail(start, "unexpected character %q", r)
}

// quoted decodes a 'string' or `identifier` with the FHIRPath escapes.
func (l *lexer) quoted(q byte) (string, bool) {
	start := l.pos
	l.pos++
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == q:
			l.pos++
			return b.String(), true
		case c == '\\':
			if l.pos+1 >= len(l.src) {
				l.fail(l.pos, "unfinished escape")
				return "", false
			}
			e := l.src[l.pos+1]
			l.pos += 2
			switch e {
			case '\'', '"', '`', '\\', '/':
				b.WriteByte(e)
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				if l.pos+4 > len(l.src) {
					l.fail(l.pos-2, "bad \\u escape")
					return "", false
				}
				n, err := strconv.ParseUint(l.src[l.pos:l.pos+4], 16, 32)
				if err != nil {
					l.fail(l.pos-2, "bad \\u escape")
					return "", false
				}
				l.pos += 4
				r := rune(n)
				// A UTF-16 surrogate pair written as two escapes.
				if utf16.IsSurrogate(r) && strings.HasPrefix(l.src[l.pos:], "\\u") && l.pos+6 <= len(l.src) {
					if lo, err := strconv.ParseUint(l.src[l.pos+2:l.pos+6], 16, 32); err == nil {
						if d := utf16.DecodeRune(r, rune(lo)); d != utf8.RuneError {
							r = d
							l.pos += 6
						}
					}
				}
				b.WriteRune(r)
			default:
				l.fail(l.pos-2, "unknown escape \\%c", e)
				return "", false
			}
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	what := "string"
	if q == '`' {
		what = "delimited identifier"
	}
	l.fail(start, "%s not closed", what)
	return "", false
}

// dateTime reads @date, @dateTime or @Ttime; the token text is what
// follows the @, checked for shape here and for ranges by parseDateTime.
func (l *lexer) dateTime() token {
	start := l.pos
	l.pos++
	digits := func(n int) bool {
		if l.pos+n > len(l.src) {
			return false
		}
		for i := 0; i < n; i++ {
			if !isDigit(l.src[l.pos+i]) {
				return false
			}
		}
		l.pos += n
		return true
	}
	peek := func(c byte) bool { return l.pos < len(l.src) && l.src[l.pos] == c }
	timePart := func() bool {
		if !digits(2) {
			return false
		}
		if peek(':') {
			l.pos++
			if !digits(2) {
				return false
			}
			if peek(':') {
				l.pos++
				if !digits(2) {
					return false
				}
				if l.pos+1 < len(l.src) && l.src[l.pos] == '.' && isDigit(l.src[l.pos+1]) {
					l.pos++
					for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
						l.pos++
					}
				}
			}
		}
		return true
	}
	if peek('T') {
		l.pos++
		if !timePart() {
			return l.fail(start, "malformed time literal")
		}
		return token{kind: tDateTime, text: l.src[start+1 : l.pos], pos: start}
	}
	if !digits(4) {
		return l.fail(start, "malformed date literal")
	}
	if l.pos+1 < len(l.src) && l.src[l.pos] == '-' && isDigit(l.src[l.pos+1]) {
		l.pos++
		if !digits(2) {
			return l.fail(start, "malformed date literal")
		}
		if l.pos+1 < len(l.src) && l.src[l.pos] == '-' && isDigit(l.src[l.pos+1]) {
			l.pos++
			if !digits(2) {
				return l.fail(start, "malformed date literal")
			}
		}
	}
	if peek('T') {
		l.pos++
		if l.pos < len(l.src) && isDigit(l.src[l.pos]) {
			if !timePart() {
				return l.fail(start, "malformed time in date/time literal")
			}
			switch {
			case peek('Z'):
				l.pos++
			case peek('+') || peek('-'):
				save := l.pos
				l.pos++
				if !digits(2) || !peek(':') {
					l.pos = save
					break
				}
				l.pos++
				if !digits(2) {
					return l.fail(start, "malformed time zone")
				}
			}
		}
	}
	return token{kind: tDateTime, text: l.src[start+1 : l.pos], pos: start}
}
