package search

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// Result-parameter limits.
const (
	DefaultCount = 50
	MaxCount     = 1000
)

// serverKeys belong to the HTTP layer, not to the search.
var serverKeys = map[string]bool{"_format": true, "_pretty": true, "_cursor": true}

// Limits bound the work one search may ask for. A zero field means its
// DefaultLimits value. ParseQuery refuses a search over any of them with a
// 400 naming the limit; each is named as the kapbridge serve flag that
// sets it.
type Limits struct {
	// MaxParams bounds the search criteria (name=value pairs, AND-ed;
	// result parameters such as _sort and _count are not criteria):
	// max-search-params.
	MaxParams int
	// MaxValues bounds the comma-separated (OR-ed) values of one
	// criterion (max-search-values), MaxTotalValues those of all
	// criteria together (max-search-total-values).
	MaxValues, MaxTotalValues int
	// MaxSortKeys bounds the keys of _sort (max-sort-keys).
	MaxSortKeys int
	// MaxIncludes bounds _include and _revinclude together, once
	// identical ones are merged (max-includes).
	MaxIncludes int
	// MaxChains bounds the chained and _has criteria (max-search-chains).
	MaxChains int
}

// DefaultLimits keep every search of the test suites and of the clients
// we know (at most 4 criteria, 2 values a criterion, 4 sort keys, 4
// includes and 2 chains in the fhir/fhirtest suites)
// working with room to spare, while keeping the SQL well inside what the
// stores plan quickly and SQLite accepts at all:
//
//   - 16 criteria: each is an EXISTS the PostgreSQL planner weighs against
//     the others, and planning grows steeply with them (measured on an
//     empty store: 16 AND-ed string criteria 0.16 s, 32 0.84 s, 100 4.4 s);
//     SQLite nests one expression level per criterion.
//   - 100 values a criterion, 300 in all: a value set's worth of codes.
//     SQLite nests about two expression levels per OR-ed value, so its
//     depth limit of 1,000 refused 500 (measured: 400 ran, 499 did not);
//     100 stays at a fifth of it whatever else the query nests.
//   - 8 sort keys: each is a correlated subquery per candidate row, and
//     the paging condition nests three levels per key.
//   - 16 includes: each runs one query per level (up to 4 with :iterate).
//   - 4 chains or _has: each joins the reference index per candidate row.
var DefaultLimits = Limits{MaxParams: 16, MaxValues: 100, MaxTotalValues: 300, MaxSortKeys: 8, MaxIncludes: 16, MaxChains: 4}

func (l Limits) withDefaults() Limits {
	f := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	f(&l.MaxParams, DefaultLimits.MaxParams)
	f(&l.MaxValues, DefaultLimits.MaxValues)
	f(&l.MaxTotalValues, DefaultLimits.MaxTotalValues)
	f(&l.MaxSortKeys, DefaultLimits.MaxSortKeys)
	f(&l.MaxIncludes, DefaultLimits.MaxIncludes)
	f(&l.MaxChains, DefaultLimits.MaxChains)
	return l
}

// overLimit is the 400 for a search beyond one of its Limits.
func overLimit(what string, n int, name string, value int) error {
	return fhir.Errorf(fhir.IssueTooCostly, "", "%s: %d exceeds %s", what, n, fhir.LimitText(name, int64(value))).
		WithStatus(http.StatusBadRequest)
}

// RefuseNUL returns a 400 *fhir.Error if a parameter name or value holds
// U+0000 (sent as %00): no FHIR string can hold it, and PostgreSQL text
// cannot even be compared with it, so the answer would differ by store.
func RefuseNUL(params url.Values) error {
	for k, vs := range params {
		if strings.IndexByte(k, 0) >= 0 {
			return fhir.Errorf(fhir.IssueInvalid, "", "search parameter name %q holds U+0000 (NUL, %%00), which no FHIR string can hold", k)
		}
		for _, v := range vs {
			if strings.IndexByte(v, 0) >= 0 {
				return fhir.Errorf(fhir.IssueInvalid, "", "search parameter %q: the value %q holds U+0000 (NUL, %%00), which no FHIR string can hold", k, v)
			}
		}
	}
	return nil
}

// ParseQuery parses search parameters for typ. Keys _format, _pretty and
// _cursor belong to the server and are skipped. Unknown or unsupported
// parameters (and unsupported modifiers): with strict, a 400 *fhir.Error
// naming the parameter; else listed in Query.Ignored. Malformed values
// (bad date, unknown prefix, non-numeric number, bad _count/_sort/_include)
// are always a 400 *fhir.Error naming the parameter and value. Absolute
// reference values starting with base+"/" are local.
//
// Clauses come in key order (sorted), then value order, so equal requests
// give equal Queries. An empty value (name=) is ignored, as the spec asks.
//
// Chains (subject:Patient.organization.name=x) and _has
// (_has:Observation:patient:_has:AuditEvent:entity:agent=y, whose last
// parameter may be chained too) nest to any depth, each link counting
// toward Limits.MaxChains, which bounds the joins of one search.
//
// Not supported (ignored, or 400 when strict): token :above, :below, :in,
// :not-in (they need a terminology server), _contained, _query, _text,
// _content, _list, _filter.
//
// A U+0000 in any name or value (RefuseNUL), and a search over
// DefaultLimits, are a 400 *fhir.Error.
func ParseQuery(typ string, params url.Values, base string, strict bool) (*Query, error) {
	return DefaultLimits.ParseQuery(typ, params, base, strict)
}

// ParseQuery is the package's ParseQuery under limits l.
func (l Limits) ParseQuery(typ string, params url.Values, base string, strict bool) (*Query, error) {
	r := r4()
	if r.byCode[typ] == nil {
		return nil, fhir.Errorf(fhir.IssueNotSupported, "", "resource type %q is not searchable", typ)
	}
	if err := RefuseNUL(params); err != nil {
		return nil, err
	}
	l = l.withDefaults()
	p := &queryParser{q: &Query{Type: typ, Count: DefaultCount}, r: r, base: strings.TrimSuffix(base, "/"), strict: strict, lim: l}
	keys := make([]string, 0, len(params))
	criteria := 0
	for k, vs := range params {
		keys = append(keys, k)
		if name, _, _ := strings.Cut(k, ":"); !serverKeys[k] && !resultParams[name] {
			for _, v := range vs {
				if v != "" {
					criteria++
				}
			}
		}
	}
	// Counted before any is parsed, so a flood of them costs nothing
	// (ignored ones too: each still costs a line of the answer).
	if criteria > l.MaxParams {
		return nil, overLimit("search criteria (name=value pairs)", criteria, "max-search-params", l.MaxParams)
	}
	sort.Strings(keys)
	countSet := false
	for _, key := range keys {
		if serverKeys[key] {
			continue
		}
		for _, raw := range params[key] {
			if raw == "" {
				continue
			}
			var err error
			switch name, mod, _ := strings.Cut(key, ":"); name {
			case "_count":
				if countSet {
					continue
				}
				countSet = true
				err = p.count(key, mod, raw)
			case "_sort":
				err = p.sort(key, mod, raw)
			case "_include", "_revinclude":
				err = p.include(key, name, mod, raw)
			case "_summary":
				err = p.oneOf(key, mod, raw, &p.q.Summary, "true", "text", "data", "count", "false")
			case "_total":
				err = p.oneOf(key, mod, raw, &p.q.Total, "none", "estimate", "accurate")
			case "_elements":
				err = p.elements(key, mod, raw)
			default:
				err = p.clause(key, raw)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if p.q.Summary == "count" {
		p.q.Count = 0
	}
	return p.q, nil
}

// resultParams shape the answer rather than select resources: they are
// not criteria, and have limits of their own.
var resultParams = map[string]bool{"_count": true, "_sort": true, "_include": true, "_revinclude": true,
	"_summary": true, "_total": true, "_elements": true}

type queryParser struct {
	q      *Query
	r      *registry
	base   string
	strict bool
	lim    Limits
	values int // OR-ed values of all criteria so far
	chains int // chained and _has criteria so far
}

// errIgnored tells the caller of parseKey that the parameter was dropped
// (and recorded in Query.Ignored): not a failure of the search.
type errIgnored struct{}

func (*errIgnored) Error() string { return "parameter ignored" }

// unsupported handles a parameter kapbridge does not know or implement:
// strict, a 400 naming it; lenient, recorded in Query.Ignored.
func (p *queryParser) unsupported(key, format string, args ...any) error {
	if p.strict {
		args = append([]any{key}, args...)
		return fhir.Errorf(fhir.IssueNotSupported, "", "search parameter %q: "+format, args...)
	}
	for _, k := range p.q.Ignored {
		if k == key {
			return nil
		}
	}
	p.q.Ignored = append(p.q.Ignored, key)
	return nil
}

// malformed is the always-400 error for a value that cannot be read.
func malformed(key, format string, args ...any) error {
	args = append([]any{key}, args...)
	return fhir.Errorf(fhir.IssueInvalid, "", "search parameter %q: "+format, args...)
}

func (p *queryParser) count(key, mod, raw string) error {
	if mod != "" {
		return p.unsupported(key, "has no modifiers")
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 {
		return malformed(key, "%q is not a non-negative integer", raw)
	}
	if n > MaxCount {
		n = MaxCount
	}
	p.q.Count = n
	return nil
}

func (p *queryParser) oneOf(key, mod, raw string, dst *string, allowed ...string) error {
	if mod != "" {
		return p.unsupported(key, "has no modifiers")
	}
	if *dst != "" {
		return nil // the first one wins, as for _count
	}
	for _, a := range allowed {
		if raw == a {
			*dst = raw
			return nil
		}
	}
	return malformed(key, "%q is not one of %s", raw, strings.Join(allowed, ", "))
}

func (p *queryParser) elements(key, mod, raw string) error {
	if mod != "" {
		return p.unsupported(key, "has no modifiers")
	}
	for _, e := range strings.Split(raw, ",") {
		e = strings.TrimPrefix(strings.TrimSpace(e), p.q.Type+".")
		if e == "" {
			continue
		}
		if !isName(e) {
			return malformed(key, "%q is not an element name", e)
		}
		p.q.Elements = append(p.q.Elements, e)
	}
	return nil
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentByte(s[i]) {
			return false
		}
	}
	return true
}

// sortable are the parameter types _sort accepts: each has one natural
// order on its index values.
var sortable = map[ParamType]bool{Date: true, String: true, Token: true, Number: true, Quantity: true, URI: true, Reference: true}

func (p *queryParser) sort(key, mod, raw string) error {
	if mod != "" {
		return p.unsupported(key, "has no modifiers")
	}
	for _, k := range strings.Split(raw, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		sk := SortKey{}
		if strings.HasPrefix(k, "-") {
			sk.Desc, k = true, k[1:]
		}
		if k != "_id" {
			sk.Param = Lookup(p.q.Type, k)
			if sk.Param == nil || !sortable[sk.Param.Type] {
				return malformed(key, "cannot sort %s by %q", p.q.Type, k)
			}
		}
		if len(p.q.Sort) == p.lim.MaxSortKeys {
			return overLimit("_sort keys", len(p.q.Sort)+1, "max-sort-keys", p.lim.MaxSortKeys)
		}
		p.q.Sort = append(p.q.Sort, sk)
	}
	return nil
}

// include reads Type:param[:TargetType] or *. The wildcard leaves Param nil:
// for _include its SourceType is the searched type, for _revinclude it is
// empty (any type pointing at the matches).
func (p *queryParser) include(key, name, mod, raw string) error {
	inc := Include{}
	switch mod {
	case "":
	case "iterate", "recurse": // recurse is R3's name for iterate
		inc.Iterate = true
	default:
		return malformed(key, "unknown modifier %q", mod)
	}
	if raw == "*" {
		if name == "_include" {
			inc.SourceType = p.q.Type
		}
	} else {
		parts := strings.Split(raw, ":")
		if len(parts) < 2 || len(parts) > 3 || !fhir.IsResourceType(parts[0]) {
			return malformed(key, "%q is not Type:param, Type:param:TargetType or *", raw)
		}
		inc.SourceType = parts[0]
		if parts[1] != "*" {
			inc.Param = Lookup(parts[0], parts[1])
			if inc.Param == nil || inc.Param.Type != Reference {
				return malformed(key, "%q: %s has no reference parameter %q", raw, parts[0], parts[1])
			}
		}
		if len(parts) == 3 {
			if !fhir.IsResourceType(parts[2]) || inc.Param != nil && !hasTarget(inc.Param, parts[2]) {
				return malformed(key, "%q: %q is not a target type of %s", raw, parts[2], parts[1])
			}
			inc.TargetType = parts[2]
		}
	}
	list := &p.q.RevInclude
	if name == "_include" {
		list = &p.q.Include
	}
	for _, x := range *list {
		if x == inc {
			return nil // the same include twice includes the same resources
		}
	}
	if n := len(p.q.Include) + len(p.q.RevInclude); n == p.lim.MaxIncludes {
		return overLimit("_include and _revinclude (distinct ones)", n+1, "max-includes", p.lim.MaxIncludes)
	}
	*list = append(*list, inc)
	return nil
}

func hasTarget(p *Param, typ string) bool {
	if len(p.Targets) == 0 {
		return true
	}
	for _, t := range p.Targets {
		if t == typ {
			return true
		}
	}
	return false
}

// clause parses one search criterion key=raw and appends it to the query.
func (p *queryParser) clause(key, raw string) error {
	c, err := p.parseKey(p.q.Type, key, key, raw, true)
	if err != nil {
		if _, ok := err.(*errIgnored); ok {
			return nil
		}
		return err
	}
	p.q.Clauses = append(p.q.Clauses, c)
	return nil
}

// link counts one link of a chain or _has (each joins the reference
// index per candidate row) against Limits.MaxChains.
func (p *queryParser) link(key string) error {
	if p.chains++; p.chains > p.lim.MaxChains {
		return overLimit("chain and _has links (a.b.c counts 2)", p.chains, "max-search-chains", p.lim.MaxChains)
	}
	return nil
}

// parseKey reads key (name[:modifier], a chain name[:Type].param, or _has)
// and its value on type typ. full is the whole key as sent, which errors
// and Query.Ignored name; top is false inside a chain or _has (which may
// nest further: each link counts toward MaxChains, link).
func (p *queryParser) parseKey(typ, key, full, raw string, top bool) (Clause, error) {
	ignore := func(format string, args ...any) (Clause, error) {
		if err := p.unsupported(full, format, args...); err != nil {
			return Clause{}, err
		}
		return Clause{}, &errIgnored{}
	}
	orig := key
	key = full
	if strings.HasPrefix(orig, "_has:") {
		if err := p.link(full); err != nil {
			return Clause{}, err
		}
		return p.has(typ, orig, full, raw, ignore)
	}
	if left, right, ok := strings.Cut(orig, "."); ok {
		if err := p.link(full); err != nil {
			return Clause{}, err
		}
		return p.chain(typ, key, left, right, raw, ignore)
	}
	name, mod, _ := strings.Cut(orig, ":")
	par := Lookup(typ, name)
	if par == nil {
		return ignore("is not a search parameter of %s", typ)
	}
	c := Clause{Param: par, Modifier: mod}
	if mod == "missing" {
		switch raw {
		case "true", "false":
			c.Values = []Value{{Missing: raw == "true"}}
			return c, nil
		}
		return Clause{}, malformed(key, "%q is not true or false", raw)
	}
	switch par.Type {
	case Token:
		switch mod {
		case "", "not", "text", "of-type":
		case "above", "below", "in", "not-in":
			// These need a terminology server (subsumption, value set
			// expansion), which kapbridge does not have.
			return ignore("modifier :%s needs terminology support", mod)
		default:
			return ignore("unknown modifier :%s", mod)
		}
	case String:
		if mod != "" && mod != "exact" && mod != "contains" {
			return ignore("unknown modifier :%s", mod)
		}
	case URI:
		if mod != "" && mod != "above" && mod != "below" {
			return ignore("unknown modifier :%s", mod)
		}
	case Reference:
		if mod != "" && mod != "identifier" {
			if !fhir.IsResourceType(mod) {
				return ignore("unknown modifier :%s", mod)
			}
			if !hasTarget(par, mod) {
				return Clause{}, malformed(key, "%s is not a target type of %s", mod, name)
			}
		}
	default:
		if mod != "" {
			return ignore("unknown modifier :%s", mod)
		}
	}
	parts := splitEscaped(raw, ',')
	if n := len(parts); n > p.lim.MaxValues {
		return Clause{}, overLimit(fmt.Sprintf("search parameter %q: comma-separated (OR-ed) values", full), n, "max-search-values", p.lim.MaxValues)
	}
	if p.values += len(parts); p.values > p.lim.MaxTotalValues {
		return Clause{}, overLimit("comma-separated (OR-ed) values of all search parameters", p.values, "max-search-total-values", p.lim.MaxTotalValues)
	}
	for _, part := range parts {
		if part == "" {
			continue
		}
		v, err := p.value(key, par, mod, part)
		if err != nil {
			return Clause{}, err
		}
		c.Values = append(c.Values, v)
	}
	if len(c.Values) == 0 {
		return Clause{}, &errIgnored{}
	}
	if par.Type == Reference && mod == "identifier" {
		// A token search of the references' identifiers (identifier.go).
		c.Param, c.Modifier = IdentifierParam(par), ""
	}
	return c, nil
}

// chain reads name[:Type].param: the reference parameter name must point
// at a resource of Type (or of its only target type) matching param.
func (p *queryParser) chain(typ, key, left, right, raw string, ignore func(string, ...any) (Clause, error)) (Clause, error) {
	name, mod, _ := strings.Cut(left, ":")
	par := Lookup(typ, name)
	if par == nil {
		return ignore("is not a search parameter of %s", typ)
	}
	if par.Type != Reference {
		return Clause{}, malformed(key, "%s is not a reference parameter and cannot be chained", name)
	}
	target := mod
	switch {
	case target != "":
		if !fhir.IsResourceType(target) || !hasTarget(par, target) {
			return Clause{}, malformed(key, "%q is not a target type of %s", target, name)
		}
	case len(par.Targets) == 1:
		target = par.Targets[0]
	default:
		return Clause{}, malformed(key, "%s may point at several types; name one, as in %s:Patient.%s", name, name, right)
	}
	inner, err := p.parseKey(target, right, key, raw, false)
	if err != nil {
		return Clause{}, err
	}
	return Clause{Param: par, Chain: &Chain{Type: target, Clause: inner}}, nil
}

// has reads _has:Type:refParam:param[:modifier], where param may be a
// chain or another _has. rel is this level's part of the key, key the
// whole key as sent.
func (p *queryParser) has(typ, rel, key, raw string, ignore func(string, ...any) (Clause, error)) (Clause, error) {
	parts := strings.SplitN(rel, ":", 4)
	if len(parts) < 4 || parts[3] == "" {
		return Clause{}, malformed(key, "expected _has:Type:reference:parameter")
	}
	src, refName, rest := parts[1], parts[2], parts[3]
	if !fhir.IsResourceType(src) {
		return Clause{}, malformed(key, "%q is not a resource type", src)
	}
	ref := Lookup(src, refName)
	if ref == nil || ref.Type != Reference {
		return Clause{}, malformed(key, "%s has no reference parameter %q", src, refName)
	}
	if !hasTarget(ref, typ) {
		return Clause{}, malformed(key, "%s.%s cannot point at %s", src, refName, typ)
	}
	inner, err := p.parseKey(src, rest, key, raw, false)
	if err != nil {
		return Clause{}, err
	}
	return Clause{Has: &Has{Type: src, RefParam: ref, Clause: inner}}, nil
}

// value parses one OR-ed value (still escaped) for par.
func (p *queryParser) value(key string, par *Param, mod, s string) (Value, error) {
	switch par.Type {
	case Token:
		return tokenValue(key, mod, s)
	case String:
		u := unescape(s)
		return Value{Text: NormalizeString(u), Exact: u}, nil
	case URI:
		return Value{Code: unescape(s)}, nil
	case Date:
		pre, rest, err := prefix(key, s)
		if err != nil {
			return Value{}, err
		}
		lo, hi, ok := dateRange(rest)
		if !ok {
			return Value{}, malformed(key, "%q is not a date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm])", rest)
		}
		return Value{Prefix: pre, Lo: lo, Hi: hi}, nil
	case Number, Quantity:
		pre, rest, err := prefix(key, s)
		if err != nil {
			return Value{}, err
		}
		v := Value{Prefix: pre}
		num := rest
		if par.Type == Quantity {
			parts := splitEscaped(rest, '|')
			switch len(parts) {
			case 1:
			case 3:
				num, v.System, v.Code = parts[0], unescape(parts[1]), unescape(parts[2])
			default:
				return Value{}, malformed(key, "%q is not number, number|system|code or number||code", s)
			}
		}
		n, lo, hi, ok := numberRange(num)
		if !ok {
			return Value{}, malformed(key, "%q is not a number", num)
		}
		v.Num, v.NumLo, v.NumHi = n, lo, hi
		return v, nil
	case Reference:
		return p.refValue(key, par, mod, s)
	case Composite:
		parts := splitEscaped(s, '$')
		if len(parts) != len(par.Components) {
			return Value{}, malformed(key, "%q: expected %d values joined by $", s, len(par.Components))
		}
		v := Value{Parts: make([]Value, len(parts))}
		for i, part := range parts {
			cv, err := p.value(key, par.Components[i].Param, "", part)
			if err != nil {
				return Value{}, err
			}
			v.Parts[i] = cv
		}
		return v, nil
	}
	return Value{}, malformed(key, "parameters of type %s are not searchable", par.Type)
}

func tokenValue(key, mod, s string) (Value, error) {
	switch mod {
	case "text":
		return Value{Text: NormalizeString(unescape(s))}, nil
	case "of-type":
		parts := splitEscaped(s, '|')
		if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
			return Value{}, malformed(key, "%q is not type-system|type-code|value", s)
		}
		return Value{TypeSystem: unescape(parts[0]), TypeCode: unescape(parts[1]), Code: unescape(parts[2])}, nil
	}
	var v Value
	if i := indexUnescaped(s, '|'); i >= 0 {
		v.HasSystem, v.System, v.Code = true, unescape(s[:i]), unescape(s[i+1:])
	} else {
		v.Code = unescape(s)
	}
	if v.System == "" && v.Code == "" {
		return Value{}, malformed(key, "%q names neither a system nor a code", s)
	}
	return v, nil
}

func (p *queryParser) refValue(key string, par *Param, mod, s string) (Value, error) {
	if mod == "identifier" {
		return tokenValue(key, "", s)
	}
	u := unescape(s)
	local := u
	if p.base != "" && strings.HasPrefix(u, p.base+"/") {
		local = u[len(p.base)+1:]
	} else if strings.Contains(u, "://") || strings.HasPrefix(u, "urn:") {
		// Another server's resource, or a canonical: matched as written
		// (a canonical's |version is not part of the match).
		if i := strings.LastIndexByte(u, '|'); i >= 0 {
			u = u[:i]
		}
		return Value{Code: u}, nil
	}
	if strings.Contains(local, "/") {
		t, id, _, ok := splitLocalRef(local)
		if !ok || !validID(id) {
			return Value{}, malformed(key, "%q is not a reference (Type/id, id or an absolute URL)", s)
		}
		if mod != "" && t != mod {
			return Value{}, malformed(key, "%q is not a %s", s, mod)
		}
		return Value{RefType: t, RefID: id}, nil
	}
	if !validID(local) {
		return Value{}, malformed(key, "%q is not a resource id", s)
	}
	v := Value{RefType: mod, RefID: local}
	if v.RefType == "" && len(par.Targets) == 1 {
		// patient=x means Patient/x: the parameter can point nowhere else.
		v.RefType = par.Targets[0]
	}
	return v, nil
}

// validID is the R4 id format: 1 to 64 of [A-Za-z0-9-.].
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

var prefixes = map[string]Prefix{"eq": EQ, "ne": NE, "gt": GT, "lt": LT, "ge": GE, "le": LE, "sa": SA, "eb": EB, "ap": AP}

// prefix splits a comparison prefix off a date, number or quantity value.
// Those values start with a digit or sign, so two leading letters can only
// be a prefix: unknown ones are an error, not part of the value.
func prefix(key, s string) (Prefix, string, error) {
	if len(s) >= 2 && isLetter(s[0]) && isLetter(s[1]) {
		if pre, ok := prefixes[s[:2]]; ok {
			return pre, s[2:], nil
		}
		return "", "", malformed(key, "unknown prefix %q in %q (eq, ne, gt, lt, ge, le, sa, eb, ap)", s[:2], s)
	}
	if len(s) >= 1 && isLetter(s[0]) {
		return "", "", malformed(key, "unknown prefix in %q", s)
	}
	return PrefixNone, s, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// splitEscaped splits s at each sep not preceded by a backslash; the parts
// keep their escapes (unescape them once they are split for good).
func splitEscaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func indexUnescaped(s string, sep byte) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return i
		}
	}
	return -1
}

// unescape removes the search escapes \, \$ \| and \\.
func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case ',', '$', '|', '\\':
				i++
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
