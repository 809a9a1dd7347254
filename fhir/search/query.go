// Package search owns FHIR search: the R4 search-parameter registry
// generated from the official SearchParameter definitions, the extraction
// of index values from a resource at write time (the parameters'
// expressions run on the FHIRPath engine, fhir/fhirpath), the
// parsed form of a search request (Query) that a store executes, and the
// store capabilities that execute it (Searcher, HistoryPager, Store:
// store.go).
package search

import "github.com/kapbridge/kapbridge/fhir"

// ParamType is a search parameter type.
type ParamType string

// The R4 search parameter types.
const (
	Number    ParamType = "number"
	Date      ParamType = "date"
	String    ParamType = "string"
	Token     ParamType = "token"
	Reference ParamType = "reference"
	Composite ParamType = "composite"
	Quantity  ParamType = "quantity"
	URI       ParamType = "uri"
	Special   ParamType = "special"
)

// Param is one search parameter as it applies to one resource type.
type Param struct {
	Code       string    // e.g. "subject", "_lastUpdated"
	URL        string    // canonical URL of the SearchParameter definition
	Type       ParamType //
	Expression string    // the FHIRPath for this resource type
	Targets    []string  // reference: allowed target types
	// Components of a composite: each names its parameter (for its type)
	// and an expression relative to the composite's own expression.
	Components []Component
	// Alias, when set, names the parameters of the same type whose values
	// are exactly this one's: its expression is the union of theirs
	// (Observation combo-code is code | component-code), or, with
	// AliasRefType, theirs restricted to references to that type
	// (Observation patient is subject.where(resolve() is Patient)). Such a
	// parameter has no index values of its own (Extract skips it); a store
	// answers it from the aliased parameters' values.
	Alias        []string
	AliasRefType string
}

// IndexCodes returns the parameter codes whose index values answer p: its
// Alias, or its own code.
func (p *Param) IndexCodes() []string {
	if len(p.Alias) > 0 {
		return p.Alias
	}
	return []string{p.Code}
}

// Component is one part of a composite parameter.
type Component struct {
	Param      *Param
	Expression string
}

// Prefix is a comparison prefix of number, date and quantity values.
type Prefix string

// The R4 prefixes; PrefixNone is read as eq.
const (
	PrefixNone Prefix = ""
	EQ         Prefix = "eq"
	NE         Prefix = "ne"
	GT         Prefix = "gt"
	LT         Prefix = "lt"
	GE         Prefix = "ge"
	LE         Prefix = "le"
	SA         Prefix = "sa"
	EB         Prefix = "eb"
	AP         Prefix = "ap"
)

// Query is a parsed search on one resource type: AND of Clauses, each an
// OR of values, plus the result parameters.
type Query struct {
	Type    string
	Clauses []Clause

	Sort       []SortKey // empty: the store's stable default order
	Count      int       // page size: default 50, capped at 1000; 0 with Summary "count"
	Include    []Include
	RevInclude []Include
	Summary    string   // "", "true", "text", "data", "count", "false"
	Elements   []string // _elements, top-level element names
	Total      string   // "", "none", "accurate", "estimate"

	// Compartment, when set, limits matches to one compartment (GET
	// /Patient/{id}/Observation): a match must reference the compartment
	// owner through at least one of Compartment.Params.
	Compartment *Compartment

	// Ignored lists the parameters a lenient search dropped (unknown or
	// unsupported), to report in an OperationOutcome entry and to leave
	// out of the self link.
	Ignored []string

	// Hide is the caller's fhir.Audience.Hidden(): resources with any of
	// these sensitivities do not exist for this search, anywhere in it
	// (matches, total, sort, chains, _has, includes).
	Hide fhir.Sensitivity
}

// Clause is one search criterion: a parameter with its values, OR-ed.
type Clause struct {
	Param *Param
	// Modifier: "", "missing", "exact", "contains", "text", "not",
	// "of-type", "identifier", "above", "below", or, for a reference, a
	// resource type (subject:Patient=...).
	Modifier string
	// Chain, when set, means: the reference Param points at a resource of
	// Chain.Type that matches Chain.Clause (subject:Patient.name=Rivera).
	Chain *Chain
	// Has, when set (for _has), means: some resource of Has.Type whose
	// reference parameter Has.RefParam points at this one matches
	// Has.Clause. Param is nil then.
	Has *Has
	// Values are OR-ed; for :missing there is one value with Missing set.
	Values []Value
}

// Compartment is the owner of a compartment and, for the searched type,
// the reference parameters that place a resource in it (from the R4
// CompartmentDefinition).
type Compartment struct {
	Type   string // "Patient"
	ID     string
	Params []*Param
}

// Chain is a one-level chained parameter.
type Chain struct {
	Type   string
	Clause Clause
}

// Has is a one-level reverse chain (_has:Type:refParam:param=value).
type Has struct {
	Type     string
	RefParam *Param
	Clause   Clause
}

// Value is one search value, parsed for its parameter's type.
type Value struct {
	Prefix Prefix

	// :missing=true or false
	Missing bool

	// token: System with HasSystem (system|code, |code, system|); Code.
	// :of-type: TypeSystem|TypeCode|Code. :text and string: Text
	// normalized like IndexEntry.Text; Exact as given. uri: Code.
	System     string
	HasSystem  bool
	Code       string
	TypeSystem string
	TypeCode   string
	Text       string
	Exact      string

	// date: the value's implicit range, Unix microseconds UTC, inclusive.
	Lo, Hi int64
	// number, quantity: the value's implicit range from its precision and
	// the value itself; quantity unit in System/Code (either may be empty).
	Num          float64
	NumLo, NumHi float64

	// reference: RefType (may be empty: id only), RefID; or Code for an
	// absolute URL or canonical that is not this server's.
	RefType string
	RefID   string

	// composite: one value per component.
	Parts []Value
}

// SortKey is one _sort key. Param is nil for _id; _lastUpdated is the
// registry's Resource parameter.
type SortKey struct {
	Param *Param
	Desc  bool
}

// Include is one _include or _revinclude: resources of SourceType whose
// reference parameter Param points at (include) or is pointed at by
// (revinclude) the matches, optionally only of TargetType.
type Include struct {
	SourceType string
	Param      *Param // nil for the wildcard "*"
	TargetType string
	Iterate    bool
}

// Cursor is where a page starts. Snapshot pins the store state of the
// first page so paging is stable under concurrent writes; After is the
// last match's sort values and id. The server serializes it opaquely
// into next links.
type Cursor struct {
	Snapshot int64
	After    []string
	AfterID  string
}

// Result is one page of a search.
type Result struct {
	Matches  []fhir.Version
	Included []fhir.Version
	// Next is the cursor of the next page, nil on the last page.
	Next *Cursor
	// Total is the number of matches at Snapshot, or -1 when not counted.
	Total int
	// Snapshot the page was read at.
	Snapshot int64
}

// HistoryQuery asks for type history (Type set, ID empty) or system
// history (both empty), newest first.
type HistoryQuery struct {
	Type  string
	Since int64 // Unix microseconds; 0: unset. Versions with lastUpdated >= Since.
	At    int64 // Unix microseconds; 0: unset. Only versions current at At.
	Count int   // page size: default 50, capped at 1000
	// Cursor continues a previous page (its Snapshot pins the state).
	Cursor *Cursor
	// Hide: versions of resources with any of these sensitivities are left
	// out, deletions included (see Query.Hide).
	Hide fhir.Sensitivity
}

// HistoryResult is one page of history, newest first.
type HistoryResult struct {
	Versions []fhir.Version
	Next     *Cursor
	Total    int // -1 when not counted
	Snapshot int64
}
