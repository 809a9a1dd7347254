package fhirpath

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// quickExamples are the official R4 examples of testdata, parsed.
func quickExamples(t *testing.T) []*fhir.Value {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "fhir-r4-examples", "*.json"))
	if len(files) < 100 {
		t.Fatalf("only %d examples in testdata/fhir-r4-examples", len(files))
	}
	var out []*fhir.Value
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := fhir.ParseJSON(raw, fhir.Limits{})
		if err != nil {
			continue
		}
		out = append(out, v)
	}
	return out
}

// TestQuickHolds: the checker gives the same issues, in the same order,
// with the quick answers (quick.go) as with the engine evaluating every
// invariant, on every official example and on thousands of variations of
// them made to reach the cases the quick answers decide (members removed,
// extensions with and without values, values emptied or nulled, primitive
// extensions, local references, codes without systems); and each quick
// "holds" on an element of the examples is the engine's answer too.
func TestQuickHolds(t *testing.T) {
	examples := quickExamples(t)
	rng := rand.New(rand.NewPCG(12, 13))
	compared, differing := 0, 0
	compare := func(name string, res *fhir.Value) {
		for _, sev := range []fhir.Severity{fhir.SeverityError, fhir.SeverityWarning} {
			quick, engine := checkInvariants(res, sev, true), checkInvariants(res, sev, false)
			compared++
			if !reflect.DeepEqual(quick, engine) {
				differing++
				if differing <= 10 {
					t.Errorf("%s (%s): with quick answers %v\n\twith the engine alone %v", name, sev, quick, engine)
				}
			}
		}
	}
	withIssues := 0
	for _, res := range examples {
		name := res.GetString("resourceType") + "/" + res.GetString("id")
		compare(name, res)
		for i := range 6 {
			m := cloneValue(res)
			for range 1 + rng.IntN(4) {
				mutate(rng, m)
			}
			if len(checkInvariants(m, fhir.SeverityError, false)) > 0 {
				withIssues++
			}
			compare(fmt.Sprintf("%s variation %d", name, i), m)
		}
	}
	if differing > 0 {
		t.Errorf("%d of %d checks differ", differing, compared)
	}
	// The variations must reach failing invariants, or the comparison
	// would show only that both agree on valid resources.
	if withIssues < 250 {
		t.Errorf("only %d variations break an invariant", withIssues)
	}
	t.Logf("%d checks compared, %d variations with invariant errors", compared, withIssues)

	// Each quick "holds" against the engine, invariant by invariant, on
	// every element of the examples (descendants() types them).
	all := MustCompile("descendants()")
	hits := map[string]int{}
	for _, res := range examples {
		items, err := all.Evaluate(res, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := evalCtx{env: &Env{Resource: res, RootResource: res}, resource: []item{resourceItem(res)}, root: []item{resourceItem(res)}}
		for _, x := range append(items, Item{resourceItem(res)}) {
			it := x.it
			for _, inv := range compileList(fhir.TypeConstraints(it.tname)) {
				if inv.quick == nil || !inv.quick(it) {
					continue
				}
				hits[inv.Key]++
				out, err := inv.expr.evalIn(&ctx, []item{it})
				holds := err == nil && (len(out) == 0 || len(out) == 1 && out[0].sv == true)
				if !holds {
					t.Errorf("%s on a %s of %s/%s: quick says it holds, the engine gives %v %v",
						inv.Key, it.tname, res.GetString("resourceType"), res.GetString("id"), out, err)
				}
			}
		}
	}
	for _, key := range []string{"ext-1", "ref-1", "qty-3", "obs-6", "obs-7"} {
		if hits[key] == 0 {
			t.Errorf("%s: never settled quickly on the examples", key)
		}
	}
	t.Logf("quick answers on the examples: %v", hits)
}

func cloneValue(v *fhir.Value) *fhir.Value {
	if v == nil {
		return nil
	}
	c := &fhir.Value{Kind: v.Kind, Str: v.Str, Bool: v.Bool}
	for _, m := range v.Members {
		c.Members = append(c.Members, fhir.Member{Key: m.Key, Value: cloneValue(m.Value)})
	}
	for _, e := range v.Array {
		c.Array = append(c.Array, cloneValue(e))
	}
	return c
}

// objects lists every object of the tree.
func objects(v *fhir.Value, out []*fhir.Value) []*fhir.Value {
	if v == nil {
		return out
	}
	if v.Kind == fhir.KindObject {
		out = append(out, v)
	}
	for _, m := range v.Members {
		out = objects(m.Value, out)
	}
	for _, e := range v.Array {
		out = objects(e, out)
	}
	return out
}

func parseValue(s string) *fhir.Value {
	v, err := fhir.ParseJSON([]byte(s), fhir.Limits{})
	if err != nil {
		panic(err)
	}
	return v
}

// mutate changes one object of the tree in one of the ways the quick
// answers are sensitive to.
func mutate(rng *rand.Rand, root *fhir.Value) {
	objs := objects(root, nil)
	o := objs[rng.IntN(len(objs))]
	pick := func() int { return rng.IntN(max(len(o.Members), 1)) }
	switch rng.IntN(12) {
	case 0: // remove a member
		if len(o.Members) > 1 {
			i := pick()
			o.Members = append(o.Members[:i:i], o.Members[i+1:]...)
		}
	case 1: // an extension without a value
		o.Set("extension", parseValue(`[{"url":"http://example.org/x"}]`))
	case 2: // an extension with a value
		o.Set("extension", parseValue(`[{"url":"http://example.org/x","valueString":"a"}]`))
	case 3: // a value added beside whatever is there
		o.Set("valueString", fhir.String("v"))
	case 4: // a value removed: every value[x]
		var keep []fhir.Member
		for _, m := range o.Members {
			if len(m.Key) < 5 || m.Key[:5] != "value" {
				keep = append(keep, m)
			}
		}
		o.Members = keep
	case 5: // a local reference, or an empty one
		refs := []string{"#", "#x", "#p1", "Patient/1", ""}
		o.Set("reference", fhir.String(refs[rng.IntN(len(refs))]))
	case 6: // a primitive's extension object, with or without its value
		if len(o.Members) > 0 {
			m := o.Members[pick()]
			if m.Value != nil && m.Value.Kind != fhir.KindObject && m.Value.Kind != fhir.KindArray && m.Key[0] != '_' {
				o.Set("_"+m.Key, parseValue(`{"extension":[{"url":"http://example.org/p","valueBoolean":true}]}`))
				if rng.IntN(2) == 0 {
					o.Members = removeKey(o.Members, m.Key)
				}
			}
		}
	case 7: // a member nulled or emptied
		if len(o.Members) > 0 {
			i := pick()
			if rng.IntN(2) == 0 {
				o.Members[i].Value = &fhir.Value{Kind: fhir.KindNull}
			} else {
				o.Members[i].Value = &fhir.Value{Kind: fhir.KindArray}
			}
		}
	case 8: // a code without a system, or a system without a code
		if rng.IntN(2) == 0 {
			o.Set("code", fhir.String("mg"))
			o.Members = removeKey(o.Members, "system")
		} else {
			o.Set("system", fhir.String("http://unitsofmeasure.org"))
			o.Members = removeKey(o.Members, "code")
		}
	case 9: // dataAbsentReason, components
		if rng.IntN(2) == 0 {
			o.Set("dataAbsentReason", parseValue(`{"text":"unknown"}`))
		} else {
			o.Set("component", parseValue(`[{"code":{"text":"c"},"valueString":"x"}]`))
		}
	case 10: // a period reversed or half-open
		o.Set("start", fhir.String("2020-02-01"))
		if rng.IntN(2) == 0 {
			o.Set("end", fhir.String("2020-01-01"))
		}
	case 11: // a member's value a string where an object was, or the reverse
		if len(o.Members) > 0 {
			i := pick()
			if o.Members[i].Value != nil && o.Members[i].Value.Kind == fhir.KindString {
				o.Members[i].Value = parseValue(`{"text":"t"}`)
			} else {
				o.Members[i].Value = fhir.String("s")
			}
		}
	}
}

func removeKey(ms []fhir.Member, key string) []fhir.Member {
	var out []fhir.Member
	for _, m := range ms {
		if m.Key != key {
			out = append(out, m)
		}
	}
	return out
}
