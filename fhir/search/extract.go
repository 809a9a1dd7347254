package search

import (
	"math"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/fhirpath"
)

// Extract returns every index value of res for its type's parameters, in
// parameter-code order. base is this server's base URL: absolute
// references starting with base+"/" are indexed as local Type/id.
//
// Beyond the per-type fields documented on fhir.IndexEntry:
//   - token on a CodeableConcept: one entry per coding (Text = its display,
//     normalized) and, when CodeableConcept.text is set, one more entry with
//     only Text, so :text finds either;
//   - token on an Identifier: System, Code = system, value (Text = its
//     type.text normalized), plus one entry per type coding that also sets
//     TypeSystem, TypeCode (for :of-type);
//   - reference: Reference.identifier gives an entry with System, Code =
//     the identifier and Text = "identifier" (for :identifier), beside the
//     entry for Reference.reference;
//   - a value of an unbounded Period or Range end is math.MinInt64 /
//     math.MaxInt64 (dates), -math.MaxFloat64 / math.MaxFloat64 (numbers).
//
// Values it cannot index (a contained "#id" or "urn:" reference, SampledData,
// a malformed date) are left out: the validator has already judged the
// resource; search indexes what it can read.
func Extract(res *fhir.Value, base string) []fhir.IndexEntry {
	r := r4()
	typ := res.GetString("resourceType")
	defs := r.params[typ]
	if len(defs) == 0 {
		return nil
	}
	x := &extractor{base: strings.TrimSuffix(base, "/")}
	// Sized for a typical clinical resource: growing a slice of these
	// 300-byte entries is most of the cost otherwise.
	out := make([]fhir.IndexEntry, 0, 48)
	ev := &evaluation{r: r, s: fhirpath.NewSession(res, nil)}
	var nodes []item
	for _, d := range defs {
		if len(d.p.Alias) > 0 {
			continue // its values are other parameters' (Param.Alias)
		}
		nodes = ev.eval(d.expr, nil, nodes[:0])
		if len(nodes) == 0 {
			continue
		}
		if d.p.Type == Composite {
			out = x.composite(ev, d, nodes, out)
			continue
		}
		for _, n := range nodes {
			out = x.entries(d.p.Code, d.p.Type, n, out)
		}
	}
	return out
}

var boolValue = map[bool]*fhir.Value{true: {Kind: fhir.KindBool, Bool: true}, false: {Kind: fhir.KindBool}}

// item is one node a parameter's expression selects: its JSON value, the
// type it is indexed by, and the engine's item (for a composite's
// components, evaluated relative to it).
type item struct {
	v  *fhir.Value
	t  *typeInfo
	fp fhirpath.Item
}

// evaluation runs the parameters' expressions on one resource.
type evaluation struct {
	r   *registry
	s   *fhirpath.Session
	col fhirpath.Collection // reused
}

// eval runs e on the resource (or on the node in, when set) and appends
// the elements it selects: computed values other than Booleans, and
// resolve()'s type-only items, are not indexable. An expression that
// fails on this resource (none of the R4 parameters does on any official
// example: TestEveryParameterOnEveryExample) indexes nothing for its
// parameter: the validator has judged the resource, search indexes what
// it can read.
func (ev *evaluation) eval(e *fhirpath.Expression, in *item, out []item) []item {
	var err error
	if in != nil {
		ev.col, err = ev.s.AppendOn(ev.col[:0], e, in.fp)
	} else {
		ev.col, err = ev.s.Append(ev.col[:0], e)
	}
	if err != nil {
		return out
	}
	for _, it := range ev.col {
		ft := it.FHIRType()
		v, t := it.Node(), ev.r.types[ft]
		if ft == "" {
			// A computed Boolean: Patient.deceased.exists() and
			// Patient.deceased != false is a token true/false.
			if b, ok := it.Bool(); ok {
				v, t = boolValue[b], ev.r.types["boolean"]
			}
		}
		if v == nil || t == nil {
			continue
		}
		out = append(out, item{v: v, t: t, fp: it})
	}
	return out
}

type extractor struct {
	base string
	// per holds a composite node's component values; reused, since the
	// combinations are copied out.
	per [][]fhir.IndexEntry
	// norm remembers recent NormalizeString results: the same display
	// text is indexed for several parameters (code, combo-code and the
	// composites).
	norm [8]struct{ in, out string }
	next int
}

func (x *extractor) normalize(s string) string {
	if s == "" {
		return ""
	}
	for i := range x.norm {
		if x.norm[i].in == s {
			return x.norm[i].out
		}
	}
	out := NormalizeString(s)
	x.norm[x.next] = struct{ in, out string }{s, out}
	x.next = (x.next + 1) % len(x.norm)
	return out
}

// composite evaluates each component relative to each node of the
// composite's expression and emits every combination of component values.
func (x *extractor) composite(ev *evaluation, d *paramDef, nodes []item, out []fhir.IndexEntry) []fhir.IndexEntry {
	var cnodes []item
	for _, n := range nodes {
		for len(x.per) < len(d.comps) {
			x.per = append(x.per, make([]fhir.IndexEntry, 0, 8))
		}
		per := x.per[:len(d.comps)]
		empty := false
		// Last component first: it is the value (value-quantity,
		// value-concept ...), usually the one that is absent, and then
		// the code need not be indexed at all.
		for i := len(d.comps) - 1; i >= 0; i-- {
			cx, cp := d.comps[i], d.p.Components[i].Param
			per[i] = per[i][:0]
			cnodes = ev.eval(cx, &n, cnodes[:0])
			for _, cn := range cnodes {
				per[i] = x.entries(cp.Code, cp.Type, cn, per[i])
			}
			if len(per[i]) == 0 {
				empty = true
				break
			}
		}
		if empty {
			continue
		}
		combos := 1
		for _, p := range per {
			combos *= len(p)
		}
		// One backing array for every combination's Parts.
		all := make([]fhir.IndexEntry, combos*len(per))
		idx := make([]int, len(per))
		for {
			parts := all[:len(per):len(per)]
			all = all[len(per):]
			for i := range per {
				parts[i] = per[i][idx[i]]
			}
			out = append(out, fhir.IndexEntry{Param: d.p.Code, Type: string(Composite), Parts: parts})
			k := len(idx) - 1
			for ; k >= 0; k-- {
				idx[k]++
				if idx[k] < len(per[k]) {
					break
				}
				idx[k] = 0
			}
			if k < 0 {
				break
			}
		}
	}
	return out
}

// entries appends the index entries of one node for a parameter type.
func (x *extractor) entries(code string, pt ParamType, n item, out []fhir.IndexEntry) []fhir.IndexEntry {
	v := n.v
	if v == nil || n.t == nil {
		return out
	}
	kind := n.t.extractAs
	if kind == "Extension" {
		// extension('url') selects the Extension; its value is what is
		// searched.
		for _, m := range v.Members {
			if strings.HasPrefix(m.Key, "value") {
				if ei := n.t.elems["value"]; ei != nil && ei.bySuffix != nil {
					if t := ei.bySuffix[m.Key[5:]]; t != nil {
						out = x.entries(code, pt, item{v: m.Value, t: t}, out)
					}
				}
			}
		}
		return out
	}
	e := fhir.IndexEntry{Param: code, Type: string(pt)}
	switch pt {
	case Token:
		return x.token(e, kind, v, out)
	case String:
		return x.str(e, kind, v, out)
	case Date:
		return x.date(e, kind, v, out)
	case Number, Quantity:
		return x.quantity(e, kind, v, out)
	case Reference:
		return x.reference(e, kind, v, out)
	case URI:
		if s := primitive(v); s != "" {
			e.Code = s
			out = append(out, e)
		}
	}
	return out
}

// primitive returns a primitive's JSON value as text ("" if absent).
func primitive(v *fhir.Value) string {
	switch v.Kind {
	case fhir.KindString, fhir.KindNumber:
		return v.Str
	case fhir.KindBool:
		if v.Bool {
			return "true"
		}
		return "false"
	}
	return ""
}

func (x *extractor) token(e fhir.IndexEntry, kind string, v *fhir.Value, out []fhir.IndexEntry) []fhir.IndexEntry {
	switch kind {
	case "Coding":
		return x.appendCoding(e, v, out)
	case "CodeableConcept":
		if cs := v.Get("coding"); cs != nil && cs.Kind == fhir.KindArray {
			for _, c := range cs.Array {
				out = x.appendCoding(e, c, out)
			}
		}
		if t := v.GetString("text"); t != "" {
			e.Text = x.normalize(t)
			out = append(out, e)
		}
	case "Identifier":
		e.System, e.Code = v.GetString("system"), v.GetString("value")
		if e.System == "" && e.Code == "" {
			return out
		}
		typ := v.Get("type")
		e.Text = x.normalize(typ.GetString("text"))
		out = append(out, e)
		if cs := typ.Get("coding"); cs != nil && cs.Kind == fhir.KindArray {
			for _, c := range cs.Array {
				te := e
				te.TypeSystem, te.TypeCode = c.GetString("system"), c.GetString("code")
				if te.TypeCode != "" {
					out = append(out, te)
				}
			}
		}
	case "ContactPoint":
		// The spec matches a ContactPoint token on its value alone.
		if e.Code = v.GetString("value"); e.Code != "" {
			out = append(out, e)
		}
	case "boolean", "code", "id", "string", "uri", "url", "canonical", "oid", "uuid", "markdown", "integer", "positiveInt", "unsignedInt", "decimal", "date", "dateTime", "instant", "time":
		if e.Code = primitive(v); e.Code != "" {
			out = append(out, e)
		}
	case "Quantity":
		// A few token parameters point at a Quantity; its unit code is
		// the closest thing to a token.
		e.System, e.Code = v.GetString("system"), v.GetString("code")
		if e.Code != "" {
			out = append(out, e)
		}
	case "Reference":
		// Token parameters on a Reference (rare) search its identifier.
		return x.token(e, "Identifier", v.Get("identifier"), out)
	}
	return out
}

func (x *extractor) appendCoding(e fhir.IndexEntry, c *fhir.Value, out []fhir.IndexEntry) []fhir.IndexEntry {
	e.System, e.Code = c.GetString("system"), c.GetString("code")
	e.Text = x.normalize(c.GetString("display"))
	if e.Code == "" && e.System == "" && e.Text == "" {
		return out
	}
	return append(out, e)
}

func (x *extractor) appendText(e fhir.IndexEntry, s string, out []fhir.IndexEntry) []fhir.IndexEntry {
	if s == "" {
		return out
	}
	e.Text, e.Exact = x.normalize(s), s
	return append(out, e)
}

var humanNameParts = []string{"family", "given", "prefix", "suffix", "text"}
var addressParts = []string{"line", "city", "district", "state", "postalCode", "country", "text"}

func (x *extractor) str(e fhir.IndexEntry, kind string, v *fhir.Value, out []fhir.IndexEntry) []fhir.IndexEntry {
	var parts []string
	switch kind {
	case "HumanName":
		parts = humanNameParts
	case "Address":
		parts = addressParts
	case "CodeableConcept":
		return x.appendText(e, v.GetString("text"), out)
	case "Coding":
		return x.appendText(e, v.GetString("display"), out)
	default:
		if v.Kind == fhir.KindString {
			return x.appendText(e, v.Str, out)
		}
		return out
	}
	for _, p := range parts {
		m := v.Get(p)
		if m == nil {
			continue
		}
		if m.Kind == fhir.KindArray {
			for _, s := range m.Array {
				if s.Kind == fhir.KindString {
					out = x.appendText(e, s.Str, out)
				}
			}
		} else if m.Kind == fhir.KindString {
			out = x.appendText(e, m.Str, out)
		}
	}
	return out
}

func (x *extractor) date(e fhir.IndexEntry, kind string, v *fhir.Value, out []fhir.IndexEntry) []fhir.IndexEntry {
	switch kind {
	case "date", "dateTime", "instant":
		if v.Kind != fhir.KindString {
			return out
		}
		lo, hi, ok := dateRange(v.Str)
		if !ok {
			return out
		}
		e.Lo, e.Hi = lo, hi
		return append(out, e)
	case "Period":
		return appendPeriod(e, v, out)
	case "Timing":
		if ev := v.Get("event"); ev != nil && ev.Kind == fhir.KindArray {
			for _, d := range ev.Array {
				out = x.date(e, "dateTime", d, out)
			}
		}
		if bp := v.Get("repeat").Get("boundsPeriod"); bp != nil {
			out = appendPeriod(e, bp, out)
		}
	}
	return out
}

// appendPeriod indexes start.lo .. end.hi; a missing end is ongoing.
func appendPeriod(e fhir.IndexEntry, v *fhir.Value, out []fhir.IndexEntry) []fhir.IndexEntry {
	s, en := v.GetString("start"), v.GetString("end")
	if s == "" && en == "" {
		return out
	}
	e.Lo, e.Hi = math.MinInt64, math.MaxInt64
	if s != "" {
		lo, _, ok := dateRange(s)
		if !ok {
			return out
		}
		e.Lo = lo
	}
	if en != "" {
		_, hi, ok := dateRange(en)
		if !ok {
			return out
		}
		e.Hi = hi
	}
	return append(out, e)
}

func (x *extractor) quantity(e fhir.IndexEntry, kind string, v *fhir.Value, out []fhir.IndexEntry) []fhir.IndexEntry {
	switch kind {
	case "decimal", "integer", "positiveInt", "unsignedInt":
		if v.Kind != fhir.KindNumber {
			return out
		}
		_, lo, hi, ok := numberRange(v.Str)
		if !ok {
			return out
		}
		e.NumLo, e.NumHi, e.Exact = lo, hi, v.Str
		return append(out, e)
	case "Quantity":
		val := v.Get("value")
		if val == nil || val.Kind != fhir.KindNumber {
			return out
		}
		_, lo, hi, ok := numberRange(val.Str)
		if !ok {
			return out
		}
		e.NumLo, e.NumHi, e.Exact = lo, hi, val.Str
		e.System, e.Code, e.Text = v.GetString("system"), v.GetString("code"), v.GetString("unit")
		return append(out, e)
	case "Money":
		val := v.Get("value")
		if val == nil || val.Kind != fhir.KindNumber {
			return out
		}
		_, lo, hi, ok := numberRange(val.Str)
		if !ok {
			return out
		}
		e.NumLo, e.NumHi, e.Exact = lo, hi, val.Str
		if e.Code = v.GetString("currency"); e.Code != "" {
			e.System = "urn:iso:std:iso:4217"
		}
		return append(out, e)
	case "Range":
		low, high := v.Get("low"), v.Get("high")
		e.NumLo, e.NumHi = -math.MaxFloat64, math.MaxFloat64
		unit := low
		have := false
		if lv := low.Get("value"); lv != nil && lv.Kind == fhir.KindNumber {
			if _, lo, _, ok := numberRange(lv.Str); ok {
				e.NumLo, have = lo, true
			}
		}
		if hv := high.Get("value"); hv != nil && hv.Kind == fhir.KindNumber {
			if _, _, hi, ok := numberRange(hv.Str); ok {
				e.NumHi, have = hi, true
			}
			if unit.GetString("code") == "" {
				unit = high
			}
		}
		if !have {
			return out
		}
		e.System, e.Code, e.Text = unit.GetString("system"), unit.GetString("code"), unit.GetString("unit")
		return append(out, e)
	}
	// SampledData and anything else: not indexed as a number.
	return out
}

func (x *extractor) reference(e fhir.IndexEntry, kind string, v *fhir.Value, out []fhir.IndexEntry) []fhir.IndexEntry {
	switch kind {
	case "Reference":
		if ref := v.GetString("reference"); ref != "" {
			out = x.appendRef(e, ref, out)
		}
		if id := v.Get("identifier"); id != nil {
			ie := e
			ie.System, ie.Code, ie.Text = id.GetString("system"), id.GetString("value"), "identifier"
			if ie.Code != "" {
				out = append(out, ie)
			}
		}
	case "canonical":
		if v.Kind == fhir.KindString && v.Str != "" && !strings.HasPrefix(v.Str, "#") {
			e.Code = v.Str
			if i := strings.LastIndexByte(v.Str, '|'); i >= 0 {
				e.Code, e.RefVersion = v.Str[:i], v.Str[i+1:]
			}
			out = append(out, e)
		}
	case "uri", "url", "uuid", "oid":
		if v.Kind == fhir.KindString && v.Str != "" {
			out = x.appendRef(e, v.Str, out)
		}
	}
	return out
}

// appendRef indexes a literal reference: local Type/id[/_history/v] (also
// when written as an absolute URL on this server), else the URL as Code.
// Contained (#id) and urn: references name nothing searchable.
func (x *extractor) appendRef(e fhir.IndexEntry, ref string, out []fhir.IndexEntry) []fhir.IndexEntry {
	if ref == "" || ref[0] == '#' || strings.HasPrefix(ref, "urn:") {
		return out
	}
	local := ref
	if x.base != "" && strings.HasPrefix(ref, x.base+"/") {
		local = ref[len(x.base)+1:]
	} else if strings.Contains(ref, "://") {
		e.Code = ref
		return append(out, e)
	}
	if t, id, ver, ok := splitLocalRef(local); ok {
		e.RefType, e.RefID, e.RefVersion = t, id, ver
		return append(out, e)
	}
	e.Code = ref
	return append(out, e)
}

// splitLocalRef splits "Type/id" or "Type/id/_history/v".
func splitLocalRef(s string) (typ, id, version string, ok bool) {
	i := strings.IndexByte(s, '/')
	if i <= 0 {
		return "", "", "", false
	}
	typ, rest := s[:i], s[i+1:]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		if !strings.HasPrefix(rest[j:], "/_history/") {
			return "", "", "", false
		}
		version = rest[j+len("/_history/"):]
		rest = rest[:j]
		if version == "" || strings.IndexByte(version, '/') >= 0 {
			return "", "", "", false
		}
	}
	if rest == "" || !fhir.IsResourceType(typ) {
		return "", "", "", false
	}
	return typ, rest, version, true
}
