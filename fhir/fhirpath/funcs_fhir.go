package fhirpath

import (
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// The functions FHIR adds to FHIRPath (R4 "FHIRPath in FHIR" section).

func init() {
	register("extension", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		url, ok := c.argString(n, 0, sc)
		if !ok {
			return nil
		}
		var out []item
		for _, it := range in {
			for _, x := range c.children(n, it, "extension", nil) {
				if x.v != nil && x.v.GetString("url") == url {
					out = append(out, x)
				}
			}
		}
		return out
	})
	// hasExtension(url) is extension(url).exists(): not in FHIRPath N1,
	// but R4's QuestionnaireResponse subject parameter uses it (it was in
	// FHIR's list of FHIRPath functions of earlier versions).
	register("hasExtension", 1, 1, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		url, ok := c.argString(n, 0, sc)
		if !ok {
			return nil
		}
		for _, it := range in {
			for _, x := range c.children(n, it, "extension", nil) {
				if x.v != nil && x.v.GetString("url") == url {
					return boolItems(true)
				}
			}
		}
		return boolItems(false)
	})
	register("hasValue", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		return boolItems(len(in) == 1 && in[0].tname != "" && in[0].sv != nil)
	})
	register("getValue", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		if len(in) != 1 || in[0].tname == "" || in[0].sv == nil {
			return nil
		}
		return []item{sysItem(in[0].sv)}
	})
	register("resolve", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		var out []item
		for _, it := range in {
			ref := ""
			switch {
			case it.isComplex():
				ref = it.v.GetString("reference")
			default:
				ref, _ = value(it).(string)
			}
			if c.e.opts.ReferenceTypes {
				if t := referenceType(it, ref); t != "" {
					out = append(out, item{tname: t, node: fhir.TypeNode(t)})
				}
				continue
			}
			if ref == "" {
				continue
			}
			if r, ok := c.resolveReference(ref); ok {
				out = append(out, r)
			}
		}
		return out
	})
	register("htmlChecks", 0, 0, func(c *evalCtx, n *node, in []item, sc *scope) []item {
		it, ok := c.inputSingle(n, in)
		if !ok {
			return nil
		}
		s, ok := value(it).(string)
		if !ok {
			c.fail(Execution, n, "htmlChecks() needs xhtml, got %s", it.systemTypeOf())
		}
		return boolItems(checkNarrative(s) == nil)
	})
	notSupported := func(name string, minArgs, maxArgs int, why string) {
		register(name, minArgs, maxArgs, func(c *evalCtx, n *node, in []item, sc *scope) []item {
			if len(in) == 0 && name != "conformsTo" {
				return nil // nothing to ask a server about
			}
			c.fail(NotSupported, n, "%s() is not supported: %s", name, why)
			return nil
		})
	}
	const terminology = "it needs a terminology server"
	notSupported("memberOf", 1, 1, terminology)
	notSupported("subsumes", 1, 1, terminology)
	notSupported("subsumedBy", 1, 1, terminology)
	notSupported("conformsTo", 1, 1, "it needs a profile validator, which this engine does not call")
	notSupported("elementDefinition", 0, 0, "element definitions are not part of the engine's type model")
	notSupported("slice", 2, 2, "slicing needs the profile's element definitions")
	notSupported("checkModifiers", 1, 1, "it needs the profiles' modifier extension definitions")
}

// resolveReference finds the resource a reference names: "#id" among the
// contained resources of %resource ("#" alone is %resource itself), or an
// entry of the Bundle that is %rootResource, matched by fullUrl or by
// type and id. Anything else (a server would have to fetch it) resolves
// to nothing.
// referenceType is the resource type a reference names: the segment
// before the id in "Type/id", ".../Type/id" or ".../Type/id/_history/n"
// (a canonical's "|version" aside), else Reference.type; "" when that is
// no resource type.
func referenceType(it item, ref string) string {
	if i := strings.IndexByte(ref, '|'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	t := ""
	if i := strings.LastIndexByte(ref, '/'); i > 0 {
		seg := ref[:i]
		t = seg[strings.LastIndexByte(seg, '/')+1:]
	} else if it.isComplex() {
		t = it.v.GetString("type")
	}
	if fhir.TypeCategory(t) != "resource" {
		return ""
	}
	return t
}

func (c *evalCtx) resolveReference(ref string) (item, bool) {
	if id, ok := strings.CutPrefix(ref, "#"); ok {
		for _, res := range c.resource {
			if id == "" {
				return res, true
			}
			if r := containedByID(res.v, id); r != nil {
				return resourceItem(r), true
			}
		}
		for _, res := range c.root {
			if r := containedByID(res.v, id); r != nil {
				return resourceItem(r), true
			}
		}
		return item{}, false
	}
	for _, root := range c.root {
		if root.v.GetString("resourceType") != "Bundle" {
			continue
		}
		entries := root.v.Get("entry")
		if entries == nil || entries.Kind != fhir.KindArray {
			continue
		}
		for _, e := range entries.Array {
			res := e.Get("resource")
			if res == nil || res.Kind != fhir.KindObject {
				continue
			}
			full := e.GetString("fullUrl")
			typeID := res.GetString("resourceType") + "/" + res.GetString("id")
			if full == ref || typeID == ref {
				return resourceItem(res), true
			}
		}
	}
	return item{}, false
}

func containedByID(res *fhir.Value, id string) *fhir.Value {
	list := res.Get("contained")
	if list == nil || list.Kind != fhir.KindArray {
		return nil
	}
	for _, r := range list.Array {
		if r.GetString("id") == id {
			return r
		}
	}
	return nil
}
