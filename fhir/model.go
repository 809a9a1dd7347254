package fhir

import (
	"slices"
	"strings"
	"sync"

	"github.com/kapbridge/kapbridge/fhir/internal/names"
)

// This file is a read-only view of the R4 type tables for code that walks
// resources by their definitions (the FHIRPath engine): which members an
// object level has, their types, and the choice elements (value[x]) they
// expand to. The tables themselves stay private to this package.

// Element is one JSON member of an object level of an R4 type.
type Element struct {
	Name   string // JSON member name, choices expanded: "valueQuantity"
	Choice string // base name of a choice element ("value"), else ""
	// Type is the R4 type code: "Quantity", "string", "Resource";
	// "BackboneElement" (or "Element") for a backbone defined inline, and
	// "" for one defined by reference to another (Questionnaire.item.item).
	Type string
	Many bool  // may repeat (max above 1)
	Node *Node // the children of a complex element; nil for primitives
	// Constraints are the invariants the definitions put on this element
	// (obs-3 on Observation.referenceRange), not those of its type
	// (TypeConstraints). The slice is shared: do not modify it.
	Constraints []Constraint
}

// Constraint is one invariant of the R4 definitions
// (ElementDefinition.constraint): a FHIRPath expression that must be true
// of every element it is defined on.
type Constraint struct {
	Key        string `json:"k"` // "obs-6"
	Severity   string `json:"s"` // "error" or "warning"
	Human      string `json:"h"` // the definition's human text
	Expression string `json:"x"` // FHIRPath
}

// TypeConstraints returns the invariants of the R4 type name wherever it
// occurs: a data type's (qty-3 on every Quantity, Age and Duration too), a
// resource's own and those of DomainResource (dom-*), ele-1 on Element.
// The slice is shared: do not modify it.
func TypeConstraints(name string) []Constraint {
	if t := r4().types[name]; t != nil {
		return t.inv
	}
	return nil
}

// Node is one object level of an R4 type: a type's root or a backbone
// element. Its methods are safe for concurrent use.
type Node struct {
	byName  names.Index[*Element]
	choices map[string][]*Element
	all     []*Element // byName's values, by name
}

// Elements returns every member of n, by name. The slice is shared: do
// not modify it.
func (n *Node) Elements() []*Element {
	if n == nil {
		return nil
	}
	return n.all
}

// Element returns the member named name (a JSON name, choices expanded),
// or nil.
func (n *Node) Element(name string) *Element {
	if n == nil {
		return nil
	}
	el, _ := n.byName.Get(name)
	return el
}

// ChoiceElements returns the typed members of the choice element base
// ("value" gives valueQuantity, valueString, ...), or nil when base is not
// a choice of n.
func (n *Node) ChoiceElements(base string) []*Element {
	if n == nil {
		return nil
	}
	return n.choices[base]
}

// TypeCategory says what the R4 type name is: "primitive", "complex",
// "resource", or "" for a name R4 does not define. Abstract types
// (Resource, DomainResource, Element, BackboneElement) are included.
func TypeCategory(name string) string {
	t := r4().types[name]
	if t == nil {
		return ""
	}
	switch t.kind {
	case kindPrimitive:
		return "primitive"
	case kindResource:
		return "resource"
	}
	return "complex"
}

// TypeNode returns the root object level of the complex type or resource
// name, or nil for primitives and unknown names.
func TypeNode(name string) *Node {
	t := r4().types[name]
	if t == nil || t.node == nil {
		return nil
	}
	return modelView().nodes[t.node]
}

type modelTables struct{ nodes map[*node]*Node }

var (
	modelOnce sync.Once
	model     *modelTables
)

// modelView builds the exported view of every node once, on first use.
func modelView() *modelTables {
	modelOnce.Do(func() {
		m := &modelTables{nodes: map[*node]*Node{}}
		for _, t := range r4().types {
			if t.node != nil {
				m.view(t.node)
			}
		}
		model = m
	})
	return model
}

func (m *modelTables) view(n *node) *Node {
	if n == nil {
		return nil
	}
	if v := m.nodes[n]; v != nil {
		return v
	}
	v := &Node{choices: map[string][]*Element{}}
	m.nodes[n] = v // before the children: content references make cycles
	for name, ed := range n.elems {
		e := &Element{Name: name, Choice: ed.choice, Many: ed.max < 0 || ed.max > 1, Constraints: ed.inv}
		switch {
		case ed.typ != nil:
			e.Type = ed.typ.name
		case ed.code != "":
			e.Type = ed.code
		}
		e.Node = m.view(ed.node)
		v.all = append(v.all, e)
		if ed.choice != "" {
			v.choices[ed.choice] = append(v.choices[ed.choice], e)
		}
	}
	slices.SortFunc(v.all, func(a, b *Element) int { return strings.Compare(a.Name, b.Name) })
	keys := make([]string, len(v.all))
	for i, e := range v.all {
		keys[i] = e.Name
	}
	v.byName = names.New(keys, v.all)
	return v
}
