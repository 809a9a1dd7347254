package fhir

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// Kind is the JSON kind of a Value.
type Kind uint8

// JSON kinds.
const (
	KindNull Kind = iota
	KindBool
	KindNumber
	KindString
	KindArray
	KindObject
)

func (k Kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// Value is one node of a JSON document as received: objects keep their
// member order, numbers keep their exact literal text (FHIR decimals are
// precision-significant: 1.50 is not 1.5). It is the stored truth of a
// resource; the samply models are only a reading aid because they drop
// `contained`, primitive extensions (`_field`) and unknown elements.
type Value struct {
	// Str holds a string's decoded text, or a number's literal.
	Str     string
	Array   []*Value
	Members []Member
	// Kind and Bool last, side by side: 72 bytes a node instead of 80
	// with each padded to a word (a mapped course makes ~20,000 nodes).
	Kind Kind
	Bool bool
}

// Member is one name/value pair of an object.
type Member struct {
	Key   string
	Value *Value
}

// String returns a string Value.
func String(s string) *Value { return &Value{Kind: KindString, Str: s} }

// Object returns an empty object Value.
func Object() *Value { return &Value{Kind: KindObject} }

// Get returns the member named key of an object, or nil.
func (v *Value) Get(key string) *Value {
	if v == nil || v.Kind != KindObject {
		return nil
	}
	for i := range v.Members {
		if v.Members[i].Key == key {
			return v.Members[i].Value
		}
	}
	return nil
}

// GetString returns the string member named key, or "".
func (v *Value) GetString(key string) string {
	if m := v.Get(key); m != nil && m.Kind == KindString {
		return m.Str
	}
	return ""
}

// Set replaces the member named key, or appends it.
func (v *Value) Set(key string, val *Value) {
	for i := range v.Members {
		if v.Members[i].Key == key {
			v.Members[i].Value = val
			return
		}
	}
	v.Members = append(v.Members, Member{key, val})
}

// Delete removes the member named key, if present.
func (v *Value) Delete(key string) {
	for i := range v.Members {
		if v.Members[i].Key == key {
			v.Members = append(v.Members[:i], v.Members[i+1:]...)
			return
		}
	}
}

// Encode returns v as compact JSON. Object members keep their order.
func (v *Value) Encode() []byte {
	var b bytes.Buffer
	v.encode(&b)
	return b.Bytes()
}

// AppendJSON appends v as compact JSON to dst.
func (v *Value) AppendJSON(dst []byte) []byte {
	b := bytes.NewBuffer(dst)
	v.encode(b)
	return b.Bytes()
}

func (v *Value) encode(b *bytes.Buffer) {
	switch v.Kind {
	case KindNull:
		b.WriteString("null")
	case KindBool:
		if v.Bool {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case KindNumber:
		b.WriteString(v.Str)
	case KindString:
		writeJSONString(b, v.Str)
	case KindArray:
		b.WriteByte('[')
		for i, e := range v.Array {
			if i > 0 {
				b.WriteByte(',')
			}
			e.encode(b)
		}
		b.WriteByte(']')
	case KindObject:
		b.WriteByte('{')
		for i, m := range v.Members {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, m.Key)
			b.WriteByte(':')
			m.Value.encode(b)
		}
		b.WriteByte('}')
	}
}

const hexDigits = "0123456789abcdef"

// writeJSONString writes s quoted. It escapes what JSON requires, and also
// <, >, & and U+2028/2029 so the output is safe to embed in HTML/JS.
func writeJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(s[start:i])
			b.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b.WriteString(s[start:i])
			b.WriteString(`\u202`)
			b.WriteByte(hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// Number returns a number Value for an integer.
func Number(n int64) *Value { return &Value{Kind: KindNumber, Str: strconv.FormatInt(n, 10)} }
