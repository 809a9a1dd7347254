package fhirpath

import (
	"github.com/kapbridge/kapbridge/fhir"
)

// item is one member of a FHIRPath collection: an element of the
// resource (v, with its FHIR type tname and children node), or a System
// value (tname ""). A FHIR primitive carries both: its element, its
// extension object (the JSON "_name" member) and its System value sv.
type item struct {
	v     *fhir.Value // the JSON node; nil for System values and value-less primitives
	ext   *fhir.Value // a primitive's "_name" object, or nil
	tname string      // FHIR type name; "" for a System value
	node  *fhir.Node  // children of a complex element or resource
	sv    any         // bool, string, int64, dec, dtv, quantity, typeInfo; nil for complex elements
}

// typeInfo is what type() returns: its namespace and name are members.
type typeInfo struct{ ns, name string }

func sysItem(v any) item { return item{sv: v} }

// systemType names the System type of sv.
func (it item) systemType() string {
	switch v := it.sv.(type) {
	case bool:
		return "Boolean"
	case string:
		return "String"
	case int64:
		return "Integer"
	case dec:
		return "Decimal"
	case quantity:
		return "Quantity"
	case dtv:
		switch v.kind {
		case kDate:
			return "Date"
		case kDateTime:
			return "DateTime"
		}
		return "Time"
	case typeInfo:
		return "TypeInfo"
	}
	return "Any"
}

// isComplex reports whether it is a FHIR element with children (not a
// primitive, not a System value).
func (it item) isComplex() bool {
	return it.tname != "" && it.sv == nil && it.v != nil && it.v.Kind == fhir.KindObject
}

// resourceItem makes the item of a resource.
func resourceItem(v *fhir.Value) item {
	rt := v.GetString("resourceType")
	return item{v: v, tname: rt, node: fhir.TypeNode(rt)}
}

// elementItem makes the item of a JSON value of FHIR type typ; ext is the
// primitive's "_name" object.
func elementItem(v, ext *fhir.Value, typ string, n *fhir.Node) item {
	if v != nil && v.Kind == fhir.KindNull {
		v = nil
	}
	if ext != nil && ext.Kind != fhir.KindObject {
		ext = nil
	}
	if v != nil && v.Kind == fhir.KindObject {
		if rt := v.GetString("resourceType"); rt != "" && (typ == "Resource" || typ == "DomainResource" || typ == "") {
			return resourceItem(v)
		}
		if typ == "" {
			typ = "Element"
		}
		return item{v: v, tname: typ, node: n}
	}
	it := item{v: v, ext: ext, tname: typ}
	if v != nil {
		it.sv = primitiveValue(v, typ)
	}
	return it
}

// primitiveValue turns a FHIR primitive's JSON into its System value.
func primitiveValue(v *fhir.Value, typ string) any {
	switch v.Kind {
	case fhir.KindBool:
		return v.Bool
	case fhir.KindNumber:
		if typ != "decimal" {
			if n, ok := parseInt(v.Str); ok {
				return n
			}
		}
		if d, ok := parseDec(v.Str); ok {
			return d
		}
		return v.Str
	case fhir.KindString:
		switch typ {
		case "date":
			if d, ok := parseFHIRDateTime(v.Str, kDate); ok {
				return d
			}
		case "dateTime", "instant":
			if d, ok := parseFHIRDateTime(v.Str, kDateTime); ok {
				return d
			}
		case "time":
			if d, ok := parseTime(v.Str); ok {
				return d
			}
		}
		return v.Str
	}
	return nil
}

// memberAndPartner finds the JSON member name of object o and its
// primitive partner "_name" in one pass, with no string built for the
// partner's name.
func memberAndPartner(o *fhir.Value, name string) (v, ext *fhir.Value) {
	for i := range o.Members {
		k := o.Members[i].Key
		switch {
		case k == name:
			v = o.Members[i].Value
		case len(k) == len(name)+1 && k[0] == '_' && k[1:] == name:
			ext = o.Members[i].Value
		}
	}
	return v, ext
}

// appendMember appends the values of the JSON member name of object o
// (and of its "_name" partner), typed by el when known.
func appendMember(out []item, o *fhir.Value, name string, el *fhir.Element) []item {
	v, ext := memberAndPartner(o, name)
	if v == nil && ext == nil {
		return out
	}
	typ, n := "", (*fhir.Node)(nil)
	if el != nil {
		typ, n = el.Type, el.Node
	}
	if (v != nil && v.Kind == fhir.KindArray) || (ext != nil && ext.Kind == fhir.KindArray) {
		count := 0
		if v != nil && v.Kind == fhir.KindArray {
			count = len(v.Array)
		}
		if ext != nil && ext.Kind == fhir.KindArray {
			count = max(count, len(ext.Array))
		}
		for i := 0; i < count; i++ {
			var e, x *fhir.Value
			if v != nil && v.Kind == fhir.KindArray && i < len(v.Array) {
				e = v.Array[i]
			}
			if ext != nil && ext.Kind == fhir.KindArray && i < len(ext.Array) {
				x = ext.Array[i]
			}
			it := elementItem(e, x, typ, n)
			if it.v == nil && it.ext == nil {
				continue
			}
			out = append(out, it)
		}
		return out
	}
	it := elementItem(v, ext, typ, n)
	if it.v == nil && it.ext == nil {
		return out
	}
	return append(out, it)
}
