package fhir

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxFHIRString is the R4 rule: strings SHALL NOT exceed 1 MB
// (base64Binary excepted, and xhtml, which is not a string: official
// examples have narratives of 1.1 and 1.8 MB).
const maxFHIRString = 1 << 20

// ParseResource parses data with DefaultLimits and validates it; it returns
// the tree and its resourceType, or an *Error (IssueInvalid, status 400,
// carrying every issue found, for a resource that is not valid R4).
func ParseResource(data []byte) (*Value, string, error) { return DefaultLimits.ParseResource(data) }

// ParseResource is the package's ParseResource under limits l.
func (l Limits) ParseResource(data []byte) (*Value, string, error) {
	v, err := ParseJSON(data, l)
	if err != nil {
		return nil, "", err
	}
	if issues := Validate(v); len(issues) > 0 {
		return nil, "", &Error{Code: IssueInvalid, Issues: issues}
	}
	return v, v.GetString("resourceType"), nil
}

// Validate checks a parsed resource against the base R4 definitions:
// known elements only, cardinality, JSON kinds and formats of primitives
// (the regexes of the definitions), required code bindings that can be
// enumerated, one value per choice, reference target types, primitive
// extensions, and contained/nested resources by their own type; then,
// when those pass, the error-severity invariants of the definitions (see
// RegisterInvariants). It returns all issues found, nil if the resource is
// valid: every issue it returns is an error (the warning-severity
// invariants are Profiles.Validate's to report). Expressions use concrete
// choice names and indexes, e.g. "Observation.component[1].valueQuantity".
func Validate(root *Value) []Issue {
	issues := validateStructure(root)
	if len(issues) == 0 {
		// The invariants read a tree the structural checks passed: on a
		// malformed one they would only repeat those issues less clearly.
		issues = invariantIssues(root, SeverityError)
	}
	return issues
}

// validateStructure is Validate without the invariants.
func validateStructure(root *Value) []Issue {
	var buf [256]byte // the path, without allocating for typical depths
	v := validator{spec: r4(), path: buf[:0]}
	if root == nil || root.Kind != KindObject {
		kind := "nothing"
		if root != nil {
			kind = root.Kind.String()
		}
		v.issue(IssueStructure, "a resource must be a JSON object, not "+kind)
		return v.issues
	}
	rt := root.Get("resourceType")
	if rt != nil && rt.Kind == KindString && v.isResourceType(rt.Str) {
		v.path = append(v.path, rt.Str...)
	}
	v.resource(root, true)
	if v.omitted > 0 {
		v.issues = append(v.issues, Issue{Severity: SeverityInformation, Code: IssueInformational, Omitted: v.omitted,
			Diagnostics: strconv.Itoa(v.omitted) + " more issues were found and are not listed"})
	}
	return v.issues
}

// InvariantChecker evaluates the FHIRPath invariants of the R4
// definitions of severity sev on a resource that passed the structural
// checks, returning an issue per violation.
type InvariantChecker func(root *Value, sev Severity) []Issue

var invariantChecker InvariantChecker

// RegisterInvariants installs the invariant checker. Package fhirpath (the
// FHIRPath engine, which imports this package and so cannot be imported by
// it) calls it from its init: any program that links fhirpath (fhir/search
// does, and so every server) has Validate evaluate the invariants. Without
// it, Validate checks structure only and InvariantsChecked is false.
func RegisterInvariants(c InvariantChecker) { invariantChecker = c }

// InvariantsChecked reports whether Validate evaluates the invariants
// (whether an invariant checker is registered).
func InvariantsChecked() bool { return invariantChecker != nil }

func invariantIssues(root *Value, sev Severity) []Issue {
	if invariantChecker == nil {
		return nil
	}
	return invariantChecker(root, sev)
}

// maxValidationIssues bounds the issues one validation keeps: a document
// of many bad values (every one of a million identifiers empty) would
// otherwise cost more in issues than in its tree. The rest are counted,
// and an OperationOutcome lists fewer anyway (DefaultMaxIssues).
const maxValidationIssues = 1000

type validator struct {
	spec    *specTables
	issues  []Issue
	omitted int // issues found beyond maxValidationIssues
	path    []byte
	// container is the resource whose contained[] resolves "#id" references.
	container *Value
	// leaf, when set, is the last name of the path, pushed only for an
	// issue: a primitive's value is checked without its name appended to
	// the path and taken off again (most values have no issue).
	leaf string
}

func (v *validator) issue(code IssueType, diag string) {
	if len(v.issues) >= maxValidationIssues {
		v.omitted++
		return
	}
	is := Issue{Severity: SeverityError, Code: code, Diagnostics: diag}
	if v.leaf != "" {
		n := len(v.path)
		v.pushName(v.leaf)
		is.Expression = []string{string(v.path)}
		v.path = v.path[:n]
	} else if len(v.path) > 0 {
		is.Expression = []string{string(v.path)}
	}
	v.issues = append(v.issues, is)
}

// issueAt reports on the member name of the current path.
func (v *validator) issueAt(name string, code IssueType, diag string) {
	n := len(v.path)
	v.pushName(name)
	v.issue(code, diag)
	v.path = v.path[:n]
}

func (v *validator) pushName(name string) {
	if len(v.path) > 0 {
		v.path = append(v.path, '.')
	}
	v.path = append(v.path, name...)
}

func (v *validator) pushIndex(i int) {
	v.path = append(v.path, '[')
	v.path = strconv.AppendInt(v.path, int64(i), 10)
	v.path = append(v.path, ']')
}

// resource validates obj as a resource by its own resourceType; top says
// whether it is a container of contained resources (not itself contained).
func (v *validator) resource(obj *Value, top bool) {
	rt := obj.Get("resourceType")
	if rt == nil {
		v.issueAt("resourceType", IssueRequired, "resourceType is missing")
		return
	}
	if rt.Kind != KindString {
		v.issueAt("resourceType", IssueStructure, "resourceType must be a string")
		return
	}
	td := v.spec.types[rt.Str]
	if td == nil || td.kind != kindResource || td.abstract {
		v.issueAt("resourceType", IssueNotSupported, "unknown resource type "+strconv.Quote(rt.Str))
		return
	}
	if !top && obj.Get("contained") != nil {
		v.issueAt("contained", IssueInvalid, "a contained resource cannot contain resources (dom-2)")
	}
	if top {
		saved := v.container
		v.container = obj
		defer func() { v.container = saved }()
	}
	v.object(obj, td.node, true)
}

// object validates the members of obj against nd. v.path is obj's path.
func (v *validator) object(obj *Value, nd *node, isResource bool) {
	if len(obj.Members) == 0 {
		v.issue(IssueInvalid, "empty object")
		return
	}
	// Most objects have no "_name" partner: then no primitive needs to
	// look for its own among the members.
	partners := false
	for i := range obj.Members {
		if k := obj.Members[i].Key; k != "" && k[0] == '_' {
			partners = true
			break
		}
	}
	for i := range obj.Members {
		m := &obj.Members[i]
		key := m.Key
		if isResource && key == "resourceType" {
			continue
		}
		if m.Value == nil {
			// Only trees built in code can hold a nil; treat it as null.
			v.issueAt(key, IssueInvalid, "null is not allowed")
			continue
		}
		if strings.IndexByte(key, 0) >= 0 {
			// Named from the object, not echoed raw into the expression:
			// PostgreSQL text, among others, cannot hold U+0000.
			v.issue(IssueInvalid, "element name "+strconv.Quote(key)+" holds U+0000 (NUL), which FHIR JSON does not allow")
			continue
		}
		if len(key) > 1 && key[0] == '_' {
			ed := nd.elem(key[1:])
			if ed == nil || ed.typ == nil || ed.typ.kind != kindPrimitive {
				v.issueAt(key, IssueStructure, "unknown element "+strconv.Quote(key))
				continue
			}
			if obj.Get(ed.name) == nil {
				v.primitive(ed, nil, m.Value)
			}
			continue
		}
		ed := nd.elem(key)
		if ed == nil {
			v.issueAt(key, IssueStructure, "unknown element "+strconv.Quote(key))
			continue
		}
		if ed.choice != "" {
			v.checkChoice(obj, i, nd, ed)
		}
		if ed.typ != nil && ed.typ.kind == kindPrimitive {
			var ext *Value
			if partners {
				ext = obj.Get(ed.uname)
			}
			v.primitive(ed, m.Value, ext)
			continue
		}
		v.complex(ed, m.Value)
	}
	for _, r := range nd.required {
		if !hasAny(obj, r.names) {
			v.issueAt(r.name, IssueRequired, "missing required element "+r.name)
		}
	}
	if nd.extension && obj.Get("extension") != nil {
		for _, m := range obj.Members {
			if strings.HasPrefix(m.Key, "value") {
				v.issue(IssueInvalid, "an extension has either extensions or a value, not both (ext-1)")
				break
			}
		}
	}
}

func hasAny(obj *Value, names []string) bool {
	for _, m := range obj.Members {
		k := m.Key
		if len(k) > 0 && k[0] == '_' {
			k = k[1:]
		}
		for _, n := range names {
			if k == n {
				return true
			}
		}
	}
	return false
}

// checkChoice reports a second value of the same choice element.
func (v *validator) checkChoice(obj *Value, i int, nd *node, ed *elemDef) {
	for _, m := range obj.Members[:i] {
		if strings.HasPrefix(m.Key, ed.choice) && m.Key != ed.name {
			if o := nd.elem(m.Key); o != nil && o.choice == ed.choice {
				v.issueAt(ed.name, IssueStructure, "only one of "+ed.choice+"[x] is allowed, found "+m.Key+" and "+ed.name)
				return
			}
		}
	}
}

// complex validates a non-primitive element's value (one or an array).
func (v *validator) complex(ed *elemDef, val *Value) {
	n := len(v.path)
	v.pushName(ed.name)
	v.complexAt(ed, val)
	v.path = v.path[:n]
}

// complexAt is complex with ed's name pushed on the path.
func (v *validator) complexAt(ed *elemDef, val *Value) {
	if ed.max != 1 {
		if val.Kind != KindArray {
			v.issue(IssueStructure, ed.name+" repeats: it must be a JSON array, not "+val.Kind.String())
			return
		}
		if len(val.Array) == 0 {
			v.issue(IssueInvalid, "empty array")
			return
		}
		if ed.max > 1 && len(val.Array) > ed.max {
			v.issue(IssueStructure, "too many values: at most "+strconv.Itoa(ed.max))
		}
		m := len(v.path)
		for i, item := range val.Array {
			v.pushIndex(i)
			if item == nil {
				item = &Value{}
			}
			v.complexOne(ed, item)
			v.path = v.path[:m]
		}
		return
	}
	if val.Kind == KindArray {
		v.issue(IssueStructure, ed.name+" does not repeat: it must not be an array")
		return
	}
	v.complexOne(ed, val)
}

func (v *validator) complexOne(ed *elemDef, val *Value) {
	if val.Kind != KindObject {
		if val.Kind == KindNull {
			v.issue(IssueInvalid, "null is not allowed")
			return
		}
		v.issue(IssueStructure, "expected a JSON object, not "+val.Kind.String())
		return
	}
	if ed.typ != nil && ed.typ.kind == kindResource && ed.typ.abstract {
		// Resource-typed elements (contained, Bundle.entry.resource,
		// Parameters.parameter.resource) are checked as their own type.
		v.resource(val, ed.name != "contained")
		return
	}
	if ed.node == nil {
		return // a type without definitions: nothing more we can check
	}
	v.object(val, ed.node, false)
	if ed.targets != nil {
		v.reference(ed, val)
	}
}

// reference checks the type a Reference points to against the element's
// target types, from its literal reference or its type.
func (v *validator) reference(ed *elemDef, ref *Value) {
	if t := ref.GetString("type"); t != "" {
		// Reference.type is a type name, or an absolute StructureDefinition URL.
		t = strings.TrimPrefix(t, "http://hl7.org/fhir/StructureDefinition/")
		if v.isResourceType(t) && !contains(ed.targets, t) {
			v.issue(IssueInvalid, "reference type "+t+" is not allowed here; allowed: "+strings.Join(ed.targets, ", "))
			return
		}
	}
	t := v.referenceType(ref.GetString("reference"))
	if t != "" && !contains(ed.targets, t) {
		v.issue(IssueInvalid, "reference to a "+t+" is not allowed here; allowed: "+strings.Join(ed.targets, ", "))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// referenceType derives the resource type a literal reference names, or
// "" when it cannot tell (urn:uuid:, urn:oid:, unknown forms).
func (v *validator) referenceType(ref string) string {
	if ref == "" || strings.HasPrefix(ref, "urn:") {
		return ""
	}
	if ref[0] == '#' {
		if v.container == nil || len(ref) == 1 {
			return ""
		}
		if cs := v.container.Get("contained"); cs != nil && cs.Kind == KindArray {
			for _, c := range cs.Array {
				if c.Kind == KindObject && c.GetString("id") == ref[1:] {
					return c.GetString("resourceType")
				}
			}
		}
		return ""
	}
	if i := strings.IndexByte(ref, '?'); i >= 0 {
		// A conditional reference: Type?search.
		ref = ref[:i]
		if strings.IndexByte(ref, '/') < 0 {
			if v.isResourceType(ref) {
				return ref
			}
			return ""
		}
	}
	// [base/]Type/id[/_history/vid]: the last four segments, read from
	// the end (seg[0] is the last) without splitting the whole reference,
	// which every Reference of every resource validated would allocate.
	var seg [4]string
	n := 0
	for rest := ref; n < len(seg); {
		i := strings.LastIndexByte(rest, '/')
		if i < 0 {
			seg[n] = rest
			n++
			break
		}
		seg[n] = rest[i+1:]
		n++
		rest = rest[:i]
	}
	t := seg[1]
	switch {
	case n == 4 && seg[1] == "_history":
		t = seg[3]
	case n < 2:
		return ""
	}
	if v.isResourceType(t) {
		return t
	}
	return ""
}

func (v *validator) isResourceType(t string) bool {
	td := v.spec.types[t]
	return td != nil && td.kind == kindResource && !td.abstract
}

// primitive validates a primitive element: its value (one or an array)
// and its extension sibling "_name", either of which may be nil.
func (v *validator) primitive(ed *elemDef, val, ext *Value) {
	n := len(v.path)
	v.primitiveAt(ed, val, ext)
	v.path = v.path[:n]
}

func (v *validator) primitiveAt(ed *elemDef, val, ext *Value) {
	n := len(v.path)
	if ed.max != 1 {
		// Repeating primitives: value and extension arrays align by index,
		// null padding the side that has nothing at an index.
		if val != nil && val.Kind != KindArray {
			v.issueAt(ed.name, IssueStructure, ed.name+" repeats: it must be a JSON array, not "+val.Kind.String())
			val = nil
		}
		if ext != nil && ext.Kind != KindArray {
			v.issueAt(ed.uname, IssueStructure, ed.uname+" repeats: it must be a JSON array, not "+ext.Kind.String())
			ext = nil
		}
		if val != nil && len(val.Array) == 0 {
			v.issueAt(ed.name, IssueInvalid, "empty array")
		}
		if ext != nil && len(ext.Array) == 0 {
			v.issueAt(ed.uname, IssueInvalid, "empty array")
		}
		if val != nil && ext != nil && len(val.Array) != len(ext.Array) {
			v.issueAt(ed.uname, IssueStructure, ed.uname+" must have as many entries as "+ed.name)
			ext = nil
		}
		if val != nil {
			v.pushName(ed.name)
			m := len(v.path)
			for i, item := range val.Array {
				v.pushIndex(i)
				if item == nil || item.Kind == KindNull {
					if ext == nil || ext.Array[i] == nil || ext.Array[i].Kind == KindNull {
						v.issue(IssueInvalid, "null is not allowed")
					}
				} else {
					v.primitiveValue(ed, item)
				}
				v.path = v.path[:m]
			}
			v.path = v.path[:n]
		}
		if ext != nil {
			v.pushName(ed.uname)
			m := len(v.path)
			for i, item := range ext.Array {
				v.pushIndex(i)
				if item == nil || item.Kind == KindNull {
					if val == nil {
						v.issue(IssueInvalid, "null is not allowed")
					}
				} else {
					v.primitiveExtension(item)
				}
				v.path = v.path[:m]
			}
		}
		return
	}
	if val != nil {
		v.leaf = ed.name
		if val.Kind == KindArray {
			v.issue(IssueStructure, ed.name+" does not repeat: it must not be an array")
		} else {
			v.primitiveValue(ed, val)
		}
		v.leaf = ""
	}
	if ext != nil {
		v.pushName(ed.uname)
		if ext.Kind == KindArray {
			v.issue(IssueStructure, ed.uname+" does not repeat: it must not be an array")
		} else {
			v.primitiveExtension(ext)
		}
	}
}

// primitiveExtension checks "_name": an object with id and extension only.
func (v *validator) primitiveExtension(ext *Value) {
	if ext.Kind != KindObject {
		v.issue(IssueStructure, "a primitive's extension must be a JSON object, not "+ext.Kind.String())
		return
	}
	v.object(ext, v.spec.types["Element"].node, false)
}

// primitiveValue checks one primitive value's JSON kind and format.
func (v *validator) primitiveValue(ed *elemDef, val *Value) {
	td := ed.typ
	if val.Kind != td.json {
		if val.Kind == KindNull {
			v.issue(IssueInvalid, "null is not allowed")
			return
		}
		v.issue(IssueStructure, "a "+td.name+" must be a JSON "+td.json.String()+", not "+val.Kind.String())
		return
	}
	if td.json == KindBool {
		return
	}
	s := val.Str
	if s == "" {
		v.issue(IssueInvalid, "empty string is not allowed")
		return
	}
	if strings.IndexByte(s, 0) >= 0 {
		// FHIR strings are Unicode text, and stores differ on U+0000
		// (PostgreSQL text cannot hold it): refused on every store alike.
		v.issue(IssueValue, "U+0000 (NUL) is not allowed in a "+td.name)
		return
	}
	if td.json == KindString && len(s) > maxFHIRString && td.name != "base64Binary" && td.name != "xhtml" {
		v.issue(IssueTooLong, "string of "+strconv.Itoa(len(s))+" bytes exceeds the 1 MB limit")
		return
	}
	if !primitiveOK(td, s) {
		v.issue(IssueValue, "invalid "+td.name+" "+quoteShort(s))
		return
	}
	switch td.name {
	case "integer", "positiveInt", "unsignedInt":
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || (td.name == "positiveInt" && n < 1) || (td.name == "unsignedInt" && n < 0) {
			v.issue(IssueValue, td.name+" out of range: "+quoteShort(s))
			return
		}
	case "date", "dateTime", "instant":
		// The regex allows 31 days in every month; R4 says dates SHALL be
		// valid dates.
		if !validDay(s) {
			v.issue(IssueValue, "no such day: "+quoteShort(s))
			return
		}
	case "xhtml":
		// Narrative.div: kept simple, the XHTML is not parsed.
		if !strings.HasPrefix(s, "<div") {
			v.issue(IssueValue, "narrative must be an XHTML <div> element")
			return
		}
	}
	if ed.codes != nil {
		if _, ok := ed.codes[s]; !ok {
			v.issue(IssueCodeInvalid, "code "+quoteShort(s)+" is not in the required value set")
		}
	}
}

func quoteShort(s string) string {
	if len(s) > 64 {
		i := 64
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "..."
	}
	return strconv.Quote(s)
}

// primitiveOK matches s against the type's format.
func primitiveOK(td *typeDef, s string) bool {
	if td.fast != nil {
		return td.fast(s)
	}
	if td.re == nil {
		return true
	}
	return td.re.MatchString(s)
}

// validDay checks the day of a date that matched the regex (YYYY-MM-DD...)
// against the length of its month.
func validDay(s string) bool {
	if len(s) < 10 {
		return true // year or year-month only
	}
	year, _ := strconv.Atoi(s[:4])
	month := int(s[5]-'0')*10 + int(s[6]-'0')
	day := int(s[8]-'0')*10 + int(s[9]-'0')
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days
}
