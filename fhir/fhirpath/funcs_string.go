package fhirpath

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// inputString is the function's single String input; ok is false when
// the input is empty. Anything but a string is an error: startsWith() on
// an Identifier is a mistake in the expression, not an empty answer.
func (c *evalCtx) inputString(n *node, in []item) (string, bool) {
	it, ok := c.inputSingle(n, in)
	if !ok {
		return "", false
	}
	s, ok := value(it).(string)
	if !ok {
		c.fail(Execution, n, "%s() needs a string input, got %s", n.name, it.systemTypeOf())
	}
	return s, true
}

// htmlEscaper names the quote as &quot;, as the test suite expects
// (html.EscapeString writes &#34;).
var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

var regexCache sync.Map // pattern -> *regexp.Regexp

// regex compiles a FHIRPath regular expression. Patterns run in
// single-line mode (. matches a newline), as the specification says.
func (c *evalCtx) regex(n *node, pattern string) *regexp.Regexp {
	if re, ok := regexCache.Load(pattern); ok {
		return re.(*regexp.Regexp)
	}
	re, err := regexp.Compile("(?s)" + pattern)
	if err != nil {
		c.fail(Execution, n, "invalid regular expression %q: %v", pattern, err)
	}
	regexCache.Store(pattern, re)
	return re
}

func strItems(s string) []item { return []item{sysItem(s)} }

// checkLen refuses to build a string longer than maxString.
func (c *evalCtx) checkLen(n *node, size float64) {
	if size > maxString {
		c.fail(Execution, n, "%s() would make a string of more than %d bytes", n.name, maxString)
	}
}

func init() {
	// stringFn registers a function of a string input and string arguments;
	// any empty argument makes the answer empty.
	stringFn := func(name string, nargs int, f func(c *evalCtx, n *node, s string, args []string) []item) {
		register(name, nargs, nargs, func(c *evalCtx, n *node, in []item, sc *scope) []item {
			s, ok := c.inputString(n, in)
			if !ok {
				return nil
			}
			args := make([]string, nargs)
			for i := range args {
				a, ok := c.argString(n, i, sc)
				if !ok {
					return nil
				}
				args[i] = a
			}
			return f(c, n, s, args)
		})
	}
	register("indexOf", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		s, ok := c.inputString(n, in)
		if !ok {
			return nil
		}
		sub, ok := c.argString(n, 0, sc)
		if !ok {
			return nil
		}
		i := strings.Index(s, sub)
		if i < 0 {
			return []item{sysItem(int64(-1))}
		}
		return []item{sysItem(int64(utf8.RuneCountInString(s[:i])))}
	})
	register("substring", 1, 2, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		s, ok := c.inputString(n, in)
		if !ok {
			return nil
		}
		start, ok := c.argInt(n, 0, sc)
		if !ok {
			return nil
		}
		r := []rune(s)
		if start < 0 || start >= int64(len(r)) {
			return nil
		}
		end := int64(len(r))
		if len(n.args) == 2 {
			l, ok := c.argInt(n, 1, sc)
			if ok {
				if l < 0 {
					l = 0
				}
				end = min(end, start+l)
			}
		}
		return strItems(string(r[start:end]))
	})
	stringFn("startsWith", 1, func(c *evalCtx, n *node, s string, a []string) []item {
		return boolItems(strings.HasPrefix(s, a[0]))
	})
	stringFn("endsWith", 1, func(c *evalCtx, n *node, s string, a []string) []item {
		return boolItems(strings.HasSuffix(s, a[0]))
	})
	stringFn("contains", 1, func(c *evalCtx, n *node, s string, a []string) []item {
		return boolItems(strings.Contains(s, a[0]))
	})
	stringFn("upper", 0, func(c *evalCtx, n *node, s string, a []string) []item {
		return strItems(strings.ToUpper(s))
	})
	stringFn("lower", 0, func(c *evalCtx, n *node, s string, a []string) []item {
		return strItems(strings.ToLower(s))
	})
	stringFn("replace", 2, func(c *evalCtx, n *node, s string, a []string) []item {
		count := utf8.RuneCountInString(s) + 1
		if a[0] != "" {
			count = strings.Count(s, a[0])
		}
		c.checkLen(n, float64(len(s))+float64(count)*float64(len(a[1])))
		return strItems(strings.ReplaceAll(s, a[0], a[1]))
	})
	stringFn("matches", 1, func(c *evalCtx, n *node, s string, a []string) []item {
		return boolItems(c.regex(n, a[0]).MatchString(s))
	})
	stringFn("matchesFull", 1, func(c *evalCtx, n *node, s string, a []string) []item {
		return boolItems(c.regex(n, "^(?:"+a[0]+")$").MatchString(s))
	})
	stringFn("replaceMatches", 2, func(c *evalCtx, n *node, s string, a []string) []item {
		if a[0] == "" {
			return strItems(s)
		}
		// At most len(s)+1 matches, each giving the replacement with each
		// group reference ($1) expanded to at most len(s) bytes.
		ls, lr := float64(len(s)), float64(len(a[1]))
		c.checkLen(n, ls+(ls+1)*lr*(1+float64(strings.Count(a[1], "$"))*ls))
		return strItems(c.regex(n, a[0]).ReplaceAllString(s, a[1]))
	})
	stringFn("length", 0, func(c *evalCtx, n *node, s string, a []string) []item {
		return []item{sysItem(int64(utf8.RuneCountInString(s)))}
	})
	stringFn("toChars", 0, func(c *evalCtx, n *node, s string, a []string) []item {
		var out []item
		for _, r := range s {
			out = append(out, sysItem(string(r)))
		}
		return out
	})
	stringFn("trim", 0, func(c *evalCtx, n *node, s string, a []string) []item {
		return strItems(strings.TrimSpace(s))
	})
	stringFn("split", 1, func(c *evalCtx, n *node, s string, a []string) []item {
		var out []item
		for _, p := range strings.Split(s, a[0]) {
			out = append(out, sysItem(p))
		}
		return out
	})
	register("join", 0, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		sep := ""
		if len(n.args) == 1 {
			s, ok := c.argString(n, 0, sc)
			if !ok {
				return nil
			}
			sep = s
		}
		parts := make([]string, 0, len(in))
		size := 0
		for _, it := range in {
			s, ok := value(it).(string)
			if !ok {
				c.fail(Execution, n, "join() needs strings, got %s", it.systemTypeOf())
			}
			parts = append(parts, s)
			size += len(s) + len(sep)
			c.checkLen(n, float64(size))
		}
		return strItems(strings.Join(parts, sep))
	})
	stringFn("encode", 1, func(c *evalCtx, n *node, s string, a []string) []item {
		switch a[0] {
		case "base64":
			return strItems(base64.StdEncoding.EncodeToString([]byte(s)))
		case "urlbase64":
			return strItems(base64.URLEncoding.EncodeToString([]byte(s)))
		case "hex":
			return strItems(hex.EncodeToString([]byte(s)))
		}
		c.fail(Execution, n, "unknown encoding %q", a[0])
		return nil
	})
	stringFn("decode", 1, func(c *evalCtx, n *node, s string, a []string) []item {
		var b []byte
		var err error
		switch a[0] {
		case "base64":
			b, err = base64.StdEncoding.DecodeString(s)
		case "urlbase64":
			b, err = base64.URLEncoding.DecodeString(s)
		case "hex":
			b, err = hex.DecodeString(s)
		default:
			c.fail(Execution, n, "unknown encoding %q", a[0])
		}
		if err != nil || !utf8.Valid(b) {
			return nil
		}
		return strItems(string(b))
	})
	stringFn("escape", 1, func(c *evalCtx, n *node, s string, a []string) []item {
		switch a[0] {
		case "html":
			return strItems(htmlEscaper.Replace(s))
		case "json":
			b, _ := json.Marshal(s)
			out := string(b[1 : len(b)-1])
			// encoding/json escapes <, > and & for HTML; JSON does not need it.
			out = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(out)
			return strItems(out)
		}
		c.fail(Execution, n, "unknown escape %q", a[0])
		return nil
	})
	stringFn("unescape", 1, func(c *evalCtx, n *node, s string, a []string) []item {
		switch a[0] {
		case "html":
			return strItems(html.UnescapeString(s))
		case "json":
			out, ok := unescapeJSON(s)
			if !ok {
				return nil
			}
			return strItems(out)
		}
		c.fail(Execution, n, "unknown escape %q", a[0])
		return nil
	})
}

// unescapeJSON undoes JSON string escapes; other characters (a bare
// quote) pass through.
func unescapeJSON(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		i++
		switch s[i] {
		case '"', '\\', '/':
			b.WriteByte(s[i])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if i+5 > len(s) {
				return "", false
			}
			n, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
			if err != nil {
				return "", false
			}
			b.WriteRune(rune(n))
			i += 4
		default:
			return "", false
		}
	}
	return b.String(), true
}
