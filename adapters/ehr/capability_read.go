package ehr

import (
	"encoding/json"
	"fmt"
	"iter"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// project returns the parts of a decoded statement that kapbridge reads,
// each value checked: a code the R4 models do not know, or a value of the
// wrong JSON kind, is left out with a warning (and so is the element it
// is the required code of: a resource without a known type, an
// interaction without a known code). The result always decodes with the
// models, whatever the input.
func (c *Capabilities) project(root map[string]any) map[string]any {
	p := statementReader{c: c}
	out := map[string]any{"resourceType": "CapabilityStatement"}
	if sw := p.object(root, "software", "software"); sw != nil {
		if name := p.str(sw, "name", "software.name"); name != "" {
			s := map[string]any{"name": name}
			if v := p.str(sw, "version", "software.version"); v != "" {
				s["version"] = v
			}
			out["software"] = s
		}
	}
	if im := p.object(root, "implementation", "implementation"); im != nil {
		i := map[string]any{"description": p.str(im, "description", "implementation.description")}
		if u := p.str(im, "url", "implementation.url"); u != "" {
			i["url"] = u
		}
		out["implementation"] = i
	}
	out["format"] = p.strings(root, "format", "format")
	out["patchFormat"] = p.strings(root, "patchFormat", "patchFormat")
	var rests []any
	for i, r := range p.array(root, "rest", "rest") {
		path := fmt.Sprintf("rest[%d]", i)
		rm, ok := r.(map[string]any)
		if !ok {
			p.warn(path, "not an object")
			continue
		}
		if x := p.rest(rm, path); x != nil {
			rests = append(rests, x)
		}
	}
	out["rest"] = rests
	return out
}

type statementReader struct{ c *Capabilities }

func (p statementReader) warn(path, format string, args ...any) {
	p.c.warn("%s: %s: left out", path, fmt.Sprintf(format, args...))
}

// The accessors return the member of the JSON kind wanted, or its zero
// value (with a warning when the member is there but of another kind).

func (p statementReader) str(m map[string]any, key, path string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.warn(path, "not a string")
	}
	return s
}

func (p statementReader) boolean(m map[string]any, key, path string) (value, present bool) {
	v, ok := m[key]
	if !ok || v == nil {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		p.warn(path, "not a boolean")
		return false, false
	}
	return b, true
}

func (p statementReader) object(m map[string]any, key, path string) map[string]any {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		p.warn(path, "not an object")
	}
	return o
}

func (p statementReader) array(m map[string]any, key, path string) []any {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		p.warn(path, "not an array")
	}
	return a
}

func (p statementReader) strings(m map[string]any, key, path string) []any {
	var out []any
	for i, v := range p.array(m, key, path) {
		if s, ok := v.(string); ok {
			out = append(out, s)
		} else {
			p.warn(fmt.Sprintf("%s[%d]", path, i), "not a string")
		}
	}
	return out
}

// code returns the string member key if target (a models enum) knows it.
// interactions reads the interaction list of rm (a rest or a
// rest.resource entry): the codes the R4 model knows (target) and that are
// of the level wanted (level, named by what for the warning).
func (p statementReader) interactions(rm map[string]any, path string, target json.Unmarshaler, level func(Interaction) bool, what string) []any {
	var ins []any
	for ip, xm := range p.objects(rm, "interaction", path) {
		code, ok := p.code(xm, "code", ip+".code", target)
		if !ok {
			continue
		}
		if !level(Interaction(code)) {
			p.warn(ip+".code", "%q is not a %s interaction", code, what)
			continue
		}
		ins = append(ins, map[string]any{"code": code})
	}
	return ins
}

// objects yields the elements of the array m[key] that are objects, each
// with its path; an element that is not one is skipped with a warning.
func (p statementReader) objects(m map[string]any, key, path string) iter.Seq2[string, map[string]any] {
	return func(yield func(string, map[string]any) bool) {
		for i, x := range p.array(m, key, path+"."+key) {
			xp := fmt.Sprintf("%s.%s[%d]", path, key, i)
			xm, ok := x.(map[string]any)
			if !ok {
				p.warn(xp, "not an object")
				continue
			}
			if !yield(xp, xm) {
				return
			}
		}
	}
}

func (p statementReader) code(m map[string]any, key, path string, target json.Unmarshaler) (string, bool) {
	s := p.str(m, key, path)
	if s == "" {
		return "", false
	}
	b, _ := json.Marshal(s)
	if target.UnmarshalJSON(b) != nil {
		p.warn(path, "code %q is unknown to the R4 models", s)
		return "", false
	}
	return s, true
}

func (p statementReader) rest(rm map[string]any, path string) map[string]any {
	mode, ok := p.code(rm, "mode", path+".mode", new(models.RestfulCapabilityMode))
	if !ok {
		p.warn(path, "no known mode")
		return nil
	}
	out := map[string]any{"mode": mode}
	out["interaction"] = p.interactions(rm, path, new(models.SystemRestfulInteraction), Interaction.System, "system-level")
	out["operation"] = p.operations(rm, path)
	out["searchParam"] = p.searchParams(rm, path)
	if sec := p.object(rm, "security", path+".security"); sec != nil {
		out["security"] = p.security(sec, path+".security")
	}
	var res []any
	for rp, xm := range p.objects(rm, "resource", path) {
		if r := p.resource(xm, rp); r != nil {
			res = append(res, r)
		}
	}
	out["resource"] = res
	return out
}

func (p statementReader) operations(m map[string]any, path string) []any {
	var out []any
	for op, xm := range p.objects(m, "operation", path) {
		name := p.str(xm, "name", op+".name")
		if name == "" {
			p.warn(op, "no name")
			continue
		}
		out = append(out, map[string]any{"name": name, "definition": p.str(xm, "definition", op+".definition")})
	}
	return out
}

func (p statementReader) searchParams(m map[string]any, path string) []any {
	var out []any
	for sp, xm := range p.objects(m, "searchParam", path) {
		name := p.str(xm, "name", sp+".name")
		if name == "" {
			p.warn(sp, "no name")
			continue
		}
		typ, ok := p.code(xm, "type", sp+".type", new(models.SearchParamType))
		if !ok {
			// The type is required; an untyped parameter is not relied on.
			p.warn(sp, "parameter %q has no known type", name)
			continue
		}
		out = append(out, map[string]any{"name": name, "type": typ})
	}
	return out
}

func (p statementReader) security(sec map[string]any, path string) map[string]any {
	out := map[string]any{}
	if b, ok := p.boolean(sec, "cors", path+".cors"); ok {
		out["cors"] = b
	}
	if d := p.str(sec, "description", path+".description"); d != "" {
		out["description"] = d
	}
	var svcs []any
	for sp, xm := range p.objects(sec, "service", path) {
		svc := map[string]any{}
		var codings []any
		for j, y := range p.array(xm, "coding", sp+".coding") {
			cp := fmt.Sprintf("%s.coding[%d]", sp, j)
			ym, ok := y.(map[string]any)
			if !ok {
				p.warn(cp, "not an object")
				continue
			}
			cd := map[string]any{}
			if s := p.str(ym, "system", cp+".system"); s != "" {
				cd["system"] = s
			}
			if s := p.str(ym, "code", cp+".code"); s != "" {
				cd["code"] = s
			}
			codings = append(codings, cd)
		}
		if codings != nil {
			svc["coding"] = codings
		}
		if t := p.str(xm, "text", sp+".text"); t != "" {
			svc["text"] = t
		}
		svcs = append(svcs, svc)
	}
	out["service"] = svcs
	var exts []any
	for ep, xm := range p.objects(sec, "extension", path) {
		if p.str(xm, "url", ep+".url") != oauthURIsExtension {
			continue // other extensions are not read
		}
		var subs []any
		for j, y := range p.array(xm, "extension", ep+".extension") {
			sp := fmt.Sprintf("%s.extension[%d]", ep, j)
			ym, ok := y.(map[string]any)
			if !ok {
				p.warn(sp, "not an object")
				continue
			}
			u := p.str(ym, "url", sp+".url")
			v := p.str(ym, "valueUri", sp+".valueUri")
			if v == "" {
				v = p.str(ym, "valueUrl", sp+".valueUrl")
			}
			if u == "" || v == "" {
				p.warn(sp, "an oauth-uris entry without url or value")
				continue
			}
			subs = append(subs, map[string]any{"url": u, "valueUri": v})
		}
		exts = append(exts, map[string]any{"url": oauthURIsExtension, "extension": subs})
	}
	out["extension"] = exts
	return out
}

func (p statementReader) resource(rm map[string]any, path string) map[string]any {
	typ, ok := p.code(rm, "type", path+".type", new(models.ResourceType))
	if !ok {
		p.warn(path, "no known resource type")
		return nil
	}
	path = path + " (" + typ + ")"
	out := map[string]any{"type": typ}
	out["interaction"] = p.interactions(rm, path, new(models.TypeRestfulInteraction), Interaction.typeLevel, "type-level")
	if v, ok := p.code(rm, "versioning", path+".versioning", new(models.ResourceVersionPolicy)); ok {
		out["versioning"] = v
	}
	if v, ok := p.code(rm, "conditionalRead", path+".conditionalRead", new(models.ConditionalReadStatus)); ok {
		out["conditionalRead"] = v
	}
	if v, ok := p.code(rm, "conditionalDelete", path+".conditionalDelete", new(models.ConditionalDeleteStatus)); ok {
		out["conditionalDelete"] = v
	}
	for _, k := range []string{"readHistory", "updateCreate", "conditionalCreate", "conditionalUpdate"} {
		if b, ok := p.boolean(rm, k, path+"."+k); ok {
			out[k] = b
		}
	}
	out["searchParam"] = p.searchParams(rm, path)
	out["operation"] = p.operations(rm, path)
	if s := p.str(rm, "profile", path+".profile"); s != "" {
		out["profile"] = s
	}
	out["supportedProfile"] = p.strings(rm, "supportedProfile", path+".supportedProfile")
	return out
}
