package fhirpath

import (
	"sync"
	"sync/atomic"
)

// Options change how an expression is compiled. The zero value is the
// default: FHIRPath as the R4 specification uses it, lenient about paths
// the model does not know (they are empty).
type Options struct {
	// Strict makes a path that cannot exist in the R4 model a Semantic
	// error at compile time (name.given1, Encounter.name on a Patient,
	// (value as Period).unit), and so are ordered functions such as
	// skip() applied to the unordered children() and descendants().
	// It needs ContextType.
	Strict bool
	// ContextType is the FHIR type the expression will be evaluated on:
	// a resource or data type name ("Patient", "HumanName"). Only Strict
	// uses it; without it strict mode checks only what follows an as.
	ContextType string
	// TypedChoiceNames allows a choice element by its typed name
	// (Observation.valueQuantity), which FHIRPath makes an error: the
	// element is Observation.value, narrowed with ofType(Quantity).
	TypedChoiceNames bool
	// FilterAs makes "x as T" (and as(T)) on several items keep those of
	// type T, as ofType(T) does, instead of failing as FHIRPath N1 asks:
	// the R4 search parameters' expressions are written for it,
	// "(Observation.component.value as Quantity)" on every component.
	FilterAs bool
	// ReferenceTypes makes resolve() give, for each reference, an item of
	// the type it names ("Patient/1", ".../Patient/1/_history/2", or
	// Reference.type) and no content, rather than the resource found in
	// the resource or its Bundle: "subject.where(resolve() is Patient)"
	// then tests a reference's type, as a server indexing the search
	// parameters does.
	ReferenceTypes bool
}

// Expression is a compiled FHIRPath expression. It is immutable and safe
// for concurrent use.
type Expression struct {
	src  string
	root *node
	opts Options
}

// String returns the expression's text.
func (e *Expression) String() string { return e.src }

type cacheKey struct {
	src  string
	opts Options
}

// cache holds the expressions compiled so far, by text and options. The
// expressions a server evaluates (invariants, search parameters) are a
// fixed set of a few thousand; past maxCached entries (text from callers,
// say) Compile still works but keeps nothing. Text that does not compile
// is never kept.
var (
	cache       sync.Map // cacheKey -> *Expression
	cachedCount atomic.Int64
)

const maxCached = 50_000

// Compile parses src with the default options, or returns the expression
// already compiled from the same text. Errors are *Error of kind Syntax
// or Semantic.
func Compile(src string) (*Expression, error) { return CompileWith(src, Options{}) }

// MustCompile is Compile for expressions fixed in the program text.
func MustCompile(src string) *Expression {
	e, err := Compile(src)
	if err != nil {
		panic(err)
	}
	return e
}

// CompileWith is Compile with options; the cache keys on both.
func CompileWith(src string, opts Options) (*Expression, error) {
	k := cacheKey{src, opts}
	if e, ok := cache.Load(k); ok {
		return e.(*Expression), nil
	}
	e, err := compile(src, opts)
	if err != nil {
		return nil, err
	}
	if cachedCount.Load() >= maxCached {
		return e, nil
	}
	actual, loaded := cache.LoadOrStore(k, e)
	if !loaded {
		cachedCount.Add(1)
	}
	return actual.(*Expression), nil
}

// compile is CompileWith without the cache.
func compile(src string, opts Options) (*Expression, error) {
	root, err := parse(src)
	if err != nil {
		return nil, err
	}
	c := &compiler{src: src, opts: opts}
	c.resolve(root)
	if c.err == nil && opts.Strict {
		c.checkStrict(root)
	}
	if c.err != nil {
		return nil, c.err
	}
	return &Expression{src: src, root: root, opts: opts}, nil
}

// compiler binds functions and type names once, so evaluation never
// looks a name up by string.
type compiler struct {
	src  string
	opts Options
	err  *Error
}

func (c *compiler) fail(kind ErrorKind, n *node, format string, args ...any) {
	if c.err == nil {
		c.err = newError(kind, c.src, n.pos, format, args...)
	}
}

func (c *compiler) resolve(n *node) {
	if n == nil || c.err != nil {
		return
	}
	switch n.kind {
	case nFunc:
		f := functions[n.name]
		if f == nil {
			c.fail(Semantic, n, "unknown function %s()", n.name)
			return
		}
		if len(n.args) < f.minArgs || len(n.args) > f.maxArgs {
			c.fail(Semantic, n, "%s() takes %s, not %d", n.name, f.arity(), len(n.args))
			return
		}
		n.fn = f
		if f.typeArg {
			ts, ok := typeSpecOf(n.args[0])
			if !ok {
				c.fail(Semantic, n.args[0], "%s() needs a type name", n.name)
				return
			}
			r, ok := resolveType(ts)
			if !ok {
				// Unknown types fail when evaluated: the suite has them as
				// execution errors, and a path that never reaches the call
				// should not fail.
				r = ts
			}
			n.argType = r
			return
		}
	case nType:
		if r, ok := resolveType(n.typ); ok {
			n.typ = r
		}
	}
	c.resolve(n.left)
	c.resolve(n.right)
	for _, a := range n.args {
		c.resolve(a)
	}
}
