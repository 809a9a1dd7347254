package fhirpath

import (
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// BenchmarkSuite evaluates every test of the official suite once per
// iteration (expressions compiled beforehand, as a server holding its
// invariants would); the budget is 1 s for the whole suite.
func BenchmarkSuite(b *testing.B) {
	dir, suite := loadSuite(b)
	in := &inputs{dir: dir, cache: map[string]*fhir.Value{}}
	type job struct {
		e   *Expression
		res *fhir.Value
	}
	var jobs []job
	for _, g := range suite.Groups {
		for _, st := range g.Tests {
			res, err := in.get(st.Input)
			if err != nil {
				continue
			}
			opts := Options{Strict: st.Mode == "strict"}
			if res != nil {
				opts.ContextType = res.GetString("resourceType")
			}
			e, err := CompileWith(st.Expr.Text, opts)
			if err != nil {
				continue
			}
			jobs = append(jobs, job{e, res})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, j := range jobs {
			_, _ = j.e.Evaluate(j.res, nil)
		}
	}
	b.ReportMetric(float64(len(jobs)), "expressions")
}

// BenchmarkSuiteWithParsing is BenchmarkSuite compiling each expression
// anew every time (no cache): the cost a cache saves.
func BenchmarkSuiteWithParsing(b *testing.B) {
	dir, suite := loadSuite(b)
	in := &inputs{dir: dir, cache: map[string]*fhir.Value{}}
	b.ReportAllocs()
	for b.Loop() {
		for _, g := range suite.Groups {
			for _, st := range g.Tests {
				res, err := in.get(st.Input)
				if err != nil {
					continue
				}
				e, err := compile(st.Expr.Text, Options{})
				if err != nil {
					continue
				}
				_, _ = e.Evaluate(res, nil)
			}
		}
	}
}

// BenchmarkInvariant is one R4 invariant on a blood-pressure Observation,
// through Compile (a cache hit) and Predicate, as a validator would run it.
func BenchmarkInvariant(b *testing.B) {
	obs := mustParse(b, observationJSON)
	for _, tc := range []struct{ name, expr string }{
		{"obs-6", "dataAbsentReason.empty() or value.empty()"},
		{"obs-7", "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()"},
		{"ele-1", "hasValue() or (children().count() > id.count())"},
		{"txt-1", "text.`div`.htmlChecks()"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e, err := Compile(tc.expr)
				if err != nil {
					b.Fatal(err)
				}
				ok, err := e.Predicate(obs, nil)
				if err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkCompile is the parse and bind of an invariant, uncached.
func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := compile("hasValue() or (children().count() > id.count())", Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
