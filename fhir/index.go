package fhir

// IndexEntry is one search-parameter value extracted from a resource at
// write time (by package fhir/search) and stored beside the version in the
// same transaction. Which fields are set depends on Type:
//
//	token      System, Code; Text = display / CodeableConcept.text, normalized (for :text);
//	           a CodeableConcept.text is an entry of its own with only Text set;
//	           for an Identifier, one more entry per Identifier.type coding with
//	           TypeSystem, TypeCode set as well (for :of-type)
//	string     Text = the value normalized (lower-case, accents removed); Exact = as written
//	uri        Code = the URI as written
//	date       Lo, Hi: the value's implicit range, Unix microseconds UTC, inclusive
//	number     NumLo, NumHi: the value's implicit range from its precision; Exact = the literal
//	quantity   NumLo, NumHi as number; System, Code = the unit (e.g. http://unitsofmeasure.org, mm[Hg]); Text = the unit text
//	reference  RefType, RefID for a local reference (Type/id); Code = the reference as written (absolute URL, canonical); RefVersion when versioned;
//	           Reference.identifier is an entry of its own: System, Code = the identifier, Text = "identifier" (for :identifier)
//	composite  Parts: one entry per component, in component order
type IndexEntry struct {
	Param string // the search parameter code, e.g. "code", "subject", "_tag"
	Type  string // token, string, uri, date, number, quantity, reference, composite

	System string
	Code   string
	Text   string
	Exact  string

	// TypeSystem, TypeCode: an Identifier's type coding (token :of-type).
	TypeSystem, TypeCode string

	Lo, Hi       int64
	NumLo, NumHi float64

	RefType    string
	RefID      string
	RefVersion string

	Parts []IndexEntry
}

// CompositeColumns is one component of a composite value flattened as the
// stores keep it, whatever the component's type: S (system, or reference
// type), C (code, normalized string, uri, or reference id), E (text,
// exact string, or reference URL), a number range and a date range. A
// component is compared by the type of the parameter it belongs to, which
// reads its columns back (both stores do it the same way).
type CompositeColumns struct {
	S, C, E        string
	NumLo, NumHi   float64
	DateLo, DateHi int64
}

// Columns flattens e, one component of a composite value, by its own type.
func (e *IndexEntry) Columns() CompositeColumns {
	var c CompositeColumns
	switch e.Type {
	case "token":
		c.S, c.C, c.E = e.System, e.Code, e.Text
	case "string":
		c.C, c.E = e.Text, e.Exact
	case "uri":
		c.C = e.Code
	case "reference":
		c.S, c.C, c.E = e.RefType, e.RefID, e.Code
	case "date":
		c.DateLo, c.DateHi = e.Lo, e.Hi
	case "number", "quantity":
		c.NumLo, c.NumHi, c.S, c.C = e.NumLo, e.NumHi, e.System, e.Code
	}
	return c
}
