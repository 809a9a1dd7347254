// Package fhirpath owns kapbridge's FHIRPath engine: FHIRPath N1 (2.0.0,
// the version FHIR R4 uses) evaluated over the ordered JSON tree
// (*fhir.Value) every resource is parsed into, typed by the R4 model of
// package fhir. It is for invariants, profiles' constraints and search
// parameter expressions.
//
// CheckInvariants evaluates every invariant of the R4 definitions on a
// resource (the package registers it with fhir.Validate at init, and the
// evaluator of profiles' invariants with fhir.Profiles); invariants.go
// lists where it departs from R4's text, and why.
//
// Compile parses and binds an expression once and caches it by text and
// Options, so evaluating the same invariant again costs no parsing; an
// *Expression is immutable and safe for concurrent use. Evaluate runs it
// on a resource, EvaluateElement on an element of a known type, and
// Predicate reads the result as an invariant's condition. Env supplies
// %resource, %rootResource, the caller's own %variables, the clock and a
// trace sink.
//
// Supported:
//
//   - The whole N1 grammar: literals (Boolean, String with escapes,
//     Integer, Decimal, @Date, @DateTime, @Time, Quantity with a UCUM unit
//     or a calendar duration), identifiers and `delimited identifiers`,
//     invocation, indexer, every operator with N1 precedence, is/as,
//     $this, $index, $total, comments, %resource, %rootResource, %context,
//     %ucum, %sct, %loinc, %`vs-name`, %`ext-name` and user variables.
//     Errors are *Error with a kind (Syntax, Semantic, Execution,
//     NotSupported) and the position of the token at fault.
//
//   - Navigation of the R4 model: choice elements by their base name
//     (value finds valueQuantity; the typed name is a Semantic error, as
//     the specification and its test suite have it, unless
//     Options.TypedChoiceNames), contained and Bundle resources by their
//     resourceType, primitives with their extensions ("_birthDate", and
//     primitives that have only extensions), is/as/ofType with FHIR and
//     System types and the R4 type hierarchy (code is a string, Age a
//     Quantity, Patient a DomainResource), type().
//
//   - Three-valued logic, empty propagation, singleton evaluation,
//     equality and equivalence (strings, decimals to the least precise
//     operand, dates, quantities, whole elements), date/time comparison
//     with precision (an unknown answer is empty), time zones.
//
//   - Decimals are exact (big rationals): 0.1 + 0.2 = 0.3 and 1.50 keeps
//     its two digits; division keeps 8 places.
//
//   - Quantities with a UCUM subset (metric prefixes; m, g, s, L, mol, K,
//     Pa, J, cal, min, h, d, wk, mo, a, [in_i], [ft_i], [lb_av], [oz_av],
//     mm[Hg], %, [iU], annotations, products, quotients and powers) for
//     comparison, conversion, + - * / and toQuantity(unit); calendar
//     durations (a week is 'wk', a year is not 'a'); date/time arithmetic.
//
//   - Functions: the N1 set (existence, filtering, subsetting, combining,
//     conversion, string, math, tree navigation, utility, aggregate) and
//     the ones the R4 test suite takes from 2.1: sort, lowBoundary,
//     highBoundary, precision, comparable, trim, split, join, encode,
//     decode, escape, unescape, matchesFull. FHIR's: extension(url),
//     hasExtension(url), hasValue(), getValue(), resolve() (contained
//     "#id" within %resource, and Bundle entries by fullUrl or type/id
//     within %rootResource) and
//     htmlChecks() (the narrative rules: one XHTML div, only the elements
//     R4 allows, no event attributes, no javascript: URLs, some content).
//
//   - Options.Strict: a static pass against Options.ContextType that makes
//     paths the model cannot have Semantic errors (name.given1,
//     Encounter.name on a Patient, (value as Period).unit), and ordered
//     functions on children()/descendants().
//
//   - Options.FilterAs and Options.ReferenceTypes read expressions the
//     way R4's search parameters are written (as filtering a collection;
//     resolve() giving the type a reference names); fhir/search compiles
//     its parameters with both and evaluates them through a Session.
//
// Not supported, reported as an error of kind NotSupported (errors.Is
// ErrNotSupported) rather than a guess: memberOf, subsumes and subsumedBy
// (they need a terminology server), conformsTo (a profile validator),
// elementDefinition, slice and checkModifiers (profile definitions). Not
// implemented: the 2.1 functions the R4 suite does not use (defineVariable,
// coalesce, ...), UCUM beyond the subset above (Cel and [degF] are not
// comparable with anything), and reference resolution outside the
// resource and its Bundle.
//
// One evaluation is bounded (10 million steps, a million items in one
// collection, 1 MB strings, decimals of about 4,900 digits): an
// expression past a bound fails with an Execution error.
package fhirpath
