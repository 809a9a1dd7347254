package fhirpath

import (
	"sync"
	"sync/atomic"

	"github.com/kapbridge/kapbridge/fhir/internal/names"

	"github.com/kapbridge/kapbridge/fhir"
)

// The invariant checker walks every element of every resource validated.
// What it needs of an element's definition (its invariants compiled, its
// own and its type's; whether it holds resources; its children) is
// worked out once per object level of the R4 tables and kept here, so the
// walk does one map lookup per member instead of several lookups by name
// in the tables and the compiled-list cache.

// typePlan is what the checker needs of a type it checks as a resource.
type typePlan struct {
	name    string
	node    *fhir.Node
	inv     []*invariant // the type's (a resource's own and DomainResource's)
	members *nodePlan    // nil for a type without children
}

// nodePlan is one object level: its members by JSON name.
type nodePlan struct {
	elems names.Index[*elemPlan]
}

func (p *nodePlan) elem(name string) *elemPlan {
	e, _ := p.elems.Get(name)
	return e
}

// elemPlan is one member of an object level.
type elemPlan struct {
	*fhir.Element
	// inv: the element's own invariants, then its type's (ele-1 left out:
	// the checker runs it on every element).
	inv []*invariant
	// hasError, hasWarning: inv holds one of that severity.
	hasError, hasWarning bool
	primitive            bool // no children: a primitive, whose "_name" partner goes with it
	// resource: the element holds resources (contained, Bundle.entry.resource);
	// complex: its type is a data type, which never does.
	resource, complex bool
	child             atomic.Pointer[nodePlan] // Node's plan, made on first use
}

func (e *elemPlan) has(sev fhir.Severity) bool {
	if sev == fhir.SeverityError {
		return e.hasError
	}
	return e.hasWarning
}

// children is the plan of the element's children.
func (e *elemPlan) children() *nodePlan {
	if p := e.child.Load(); p != nil {
		return p
	}
	p := planOf(e.Node)
	e.child.Store(p)
	return p
}

var (
	typePlans sync.Map // type name -> *typePlan
	nodePlans sync.Map // *fhir.Node -> *nodePlan
)

// resourcePlan is the plan of the R4 type name, nil for a name R4 does
// not define.
func resourcePlan(name string) *typePlan {
	if p, ok := typePlans.Load(name); ok {
		return p.(*typePlan)
	}
	if fhir.TypeCategory(name) == "" {
		return nil
	}
	n := fhir.TypeNode(name)
	p := &typePlan{name: name, node: n, inv: compileList(fhir.TypeConstraints(name))}
	if n != nil {
		p.members = planOf(n)
	}
	got, _ := typePlans.LoadOrStore(name, p)
	return got.(*typePlan)
}

// planOf is the plan of an object level. The levels make cycles (content
// references, Extension.extension): a level's plan holds its members'
// child plans only once they are first asked for.
func planOf(n *fhir.Node) *nodePlan {
	if p, ok := nodePlans.Load(n); ok {
		return p.(*nodePlan)
	}
	els := n.Elements()
	keys, plans := make([]string, len(els)), make([]*elemPlan, len(els))
	for i, el := range els {
		e := &elemPlan{Element: el, primitive: el.Node == nil, resource: el.Type == "Resource",
			complex: fhir.TypeCategory(el.Type) == "complex"}
		own := compileList(el.Constraints)
		e.inv = append(own[:len(own):len(own)], compileList(fhir.TypeConstraints(el.Type))...)
		for _, inv := range e.inv {
			switch inv.severity {
			case fhir.SeverityError:
				e.hasError = true
			case fhir.SeverityWarning:
				e.hasWarning = true
			}
		}
		keys[i], plans[i] = el.Name, e
	}
	p := &nodePlan{elems: names.New(keys, plans)}
	got, _ := nodePlans.LoadOrStore(n, p)
	return got.(*nodePlan)
}

// elementPlan is the plan of Element, the type of a primitive's "_name"
// object.
var elementPlan = sync.OnceValue(func() *nodePlan { return planOf(fhir.TypeNode("Element")) })

// ele1List is ele-1 alone, for the elements whose ele-1 holdsEle1 cannot
// settle.
var ele1List = sync.OnceValue(func() []*invariant { return []*invariant{ele1()} })
