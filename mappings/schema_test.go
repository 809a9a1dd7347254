package mappings

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

var updateSchema = flag.Bool("update-schema", false, "rewrite schema/practice-record.schema.json from record.go")

// schemaObj is a JSON object that keeps its key order, so the generated
// schema reads top-down like record.go.
type schemaObj []schemaKV

type schemaKV struct {
	K string
	V any
}

func (m schemaObj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.K)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(e.V)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func schemaRef(name string) schemaObj { return schemaObj{{"$ref", "#/$defs/" + name}} }

var formatDefs = map[string]string{fmtID: "id", fmtDate: "date", fmtDateTime: "dateTime", fmtDateOr: "dateOrDateTime", fmtNPI: "npi"}

// dateTimePattern is RFC 3339 with a zone and upper-case T and Z, as
// isRecordDateTime (Go's time.RFC3339) accepts it; "format" alone is only
// an annotation in 2020-12.
const dateTimePattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`

var kindDescriptions = map[Kind]string{
	KindClient:       "The person receiving KAP.",
	KindPractitioner: "A prescriber, therapist or administrator.",
	KindCourse:       "One KAP course: consultation, preparation, dosing with integration between, maintenance.",
	KindSession:      "One appointment of a course; dosing and maintenance sessions carry the dose.",
	KindScreening:    "Medical clearance and instrument answers (PHQ-9, GAD-7, PCL-5, C-SSRS screener with 7 items, AUDIT-C, DAST-10 with item 3 as answered).",
	KindObservation:  "What was observed at one time in a session: vitals, dissociation (0-10), side effects, red flags.",
	KindNote:         "A therapist's process note (psychotherapy note, 45 CFR 164.501): never exported without a consent that permits it.",
	KindConsent:      "What of a client's record may be shared with whom.",
}

// genSchema builds the schema from the Go structs and the vocabularies
// Decode uses.
func genSchema() []byte {
	defs := schemaObj{
		{"id", schemaObj{{"description", "A practice-assigned id: 1-64 characters from A-Z a-z 0-9 . _ -"}, {"type", "string"}, {"pattern", idPatternText}}},
		{"date", schemaObj{{"description", "A calendar date, YYYY-MM-DD."}, {"type", "string"}, {"format", "date"}, {"pattern", datePatternText}}},
		{"dateTime", schemaObj{{"description", "An RFC 3339 date-time with a zone (Z or an offset)."}, {"type", "string"}, {"format", "date-time"}, {"pattern", dateTimePattern}}},
		{"dateOrDateTime", schemaObj{{"anyOf", []any{schemaRef("date"), schemaRef("dateTime")}}}},
		{"npi", schemaObj{{"description", "A National Provider Identifier: 10 digits, the last a Luhn check digit over 80840 and the first nine (checked by the decoder, not by this schema)."}, {"type", "string"}, {"pattern", npiPatternText}}},
	}
	var oneOf []any
	for _, k := range Kinds {
		defs = append(defs, schemaKV{string(k), genObject(k, recordTypes[k], "")})
		oneOf = append(oneOf, schemaRef(string(k)))
	}
	root := schemaObj{
		{"$schema", "https://json-schema.org/draft/2020-12/schema"},
		{"$id", SchemaURL},
		{"title", "kapbridge practice record"},
		{"description", "One record of the practice record format in which a therapy practice describes its ketamine-assisted psychotherapy work. Records carry a kind and a practice-assigned id and refer to each other by id. Unknown fields are errors. Generated from mappings/record.go; do not edit by hand."},
		{"oneOf", oneOf},
		{"$defs", defs},
	}
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

func genObject(kind Kind, t reflect.Type, spec string) schemaObj {
	var props schemaObj
	required := []string{}
	for _, f := range jsonFields(t) {
		props = append(props, schemaKV{f.Name, genValue(kind, f, join(spec, f.Name))})
		if f.Required {
			required = append(required, f.Name)
		}
	}
	o := schemaObj{}
	if spec == "" {
		o = append(o, schemaKV{"description", kindDescriptions[kind]})
	}
	return append(o, schemaKV{"type", "object"}, schemaKV{"additionalProperties", false}, schemaKV{"required", required}, schemaKV{"properties", props})
}

func genValue(kind Kind, f jsonField, spec string) any {
	t := f.Type
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	key := (&walker{kind: kind}).key(spec)
	switch {
	case spec == "kind":
		return schemaObj{{"const", string(kind)}}
	case t == timeType:
		return schemaRef("dateTime")
	case t.Kind() == reflect.Struct:
		return genObject(kind, t, spec)
	case t.Kind() == reflect.Slice:
		a := schemaObj{{"type", "array"}}
		if f.Required {
			a = append(a, schemaKV{"minItems", 1})
		}
		return append(a, schemaKV{"items", genValue(kind, jsonField{Name: f.Name, Type: t.Elem(), Required: true}, spec)})
	case t.Kind() == reflect.String:
		if e, ok := recordEnums[key]; ok {
			return schemaObj{{"type", "string"}, {"enum", e}}
		}
		if fm, ok := recordFormats[key]; ok {
			return schemaRef(formatDefs[fm])
		}
		if f.Required {
			return schemaObj{{"type", "string"}, {"minLength", 1}}
		}
		return schemaObj{{"type", "string"}}
	case t.Kind() == reflect.Bool:
		return schemaObj{{"type", "boolean"}}
	case t.Kind() == reflect.Int, t.Kind() == reflect.Float64:
		typ := "number"
		if t.Kind() == reflect.Int {
			typ = "integer"
		}
		o := schemaObj{{"type", typ}}
		if r, ok := recordRanges[key]; ok {
			o = append(o, schemaKV{"minimum", r.Min})
			if r.Max != nil {
				o = append(o, schemaKV{"maximum", *r.Max})
			}
		}
		return o
	}
	panic(fmt.Sprintf("genValue: unsupported type %s at %s", t, spec))
}

func TestSchemaUpToDate(t *testing.T) {
	got := genSchema()
	if *updateSchema {
		if err := os.WriteFile("schema/practice-record.schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, Schema()) {
		t.Error("schema/practice-record.schema.json is stale: run go test ./mappings -run TestSchemaUpToDate -update-schema")
	}
}

// TestSchemaAgreesWithStructs reads the embedded schema as plain JSON and
// walks it beside the Go structs: the same kinds, properties, required
// fields, types, enums and formats. It shares no code with genSchema, so
// a hand edit of the file or a bug in the generator shows up here.
func TestSchemaAgreesWithStructs(t *testing.T) {
	var s map[string]any
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatal(err)
	}
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" || s["$id"] != CanonicalBase+"/schema/practice-record.schema.json" {
		t.Errorf("$schema %v, $id %v", s["$schema"], s["$id"])
	}
	defs := s["$defs"].(map[string]any)
	resolve := func(v any) map[string]any {
		m := v.(map[string]any)
		if r, ok := m["$ref"].(string); ok {
			return defs[strings.TrimPrefix(r, "#/$defs/")].(map[string]any)
		}
		return m
	}
	oneOf := s["oneOf"].([]any)
	if len(oneOf) != len(Kinds) {
		t.Fatalf("oneOf has %d branches, want %d", len(oneOf), len(Kinds))
	}
	used := map[string]bool{}
	for i, k := range Kinds {
		def := resolve(oneOf[i])
		if c := def["properties"].(map[string]any)["kind"].(map[string]any)["const"]; c != string(k) {
			t.Errorf("oneOf[%d] kind const %v, want %s", i, c, k)
		}
		w := &walker{kind: k}
		var walk func(def map[string]any, typ reflect.Type, spec string)
		walk = func(def map[string]any, typ reflect.Type, spec string) {
			where := string(k) + ":" + spec
			if def["type"] != "object" || def["additionalProperties"] != false {
				t.Errorf("%s: type %v additionalProperties %v, want object and false", where, def["type"], def["additionalProperties"])
			}
			props := def["properties"].(map[string]any)
			var goNames, goReq, schemaReq []string
			for _, r := range def["required"].([]any) {
				schemaReq = append(schemaReq, r.(string))
			}
			for _, f := range jsonFields(typ) {
				goNames = append(goNames, f.Name)
				if f.Required {
					goReq = append(goReq, f.Name)
				}
				p, ok := props[f.Name]
				if !ok {
					t.Errorf("%s: field %s missing from the schema", where, f.Name)
					continue
				}
				fspec := join(spec, f.Name)
				key := w.key(fspec)
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				pm := p.(map[string]any)
				if ft.Kind() == reflect.Slice {
					if pm["type"] != "array" {
						t.Errorf("%s.%s: schema type %v, want array", where, f.Name, pm["type"])
						continue
					}
					pm = pm["items"].(map[string]any)
					ft = ft.Elem()
				}
				if r, ok := pm["$ref"].(string); ok {
					want := "#/$defs/" + formatDefs[recordFormats[key]]
					if ft == timeType {
						want = "#/$defs/dateTime"
					}
					if r != want {
						t.Errorf("%s.%s: $ref %s, want %s", where, f.Name, r, want)
					}
					used["format:"+key] = true
					continue
				}
				if _, ok := recordFormats[key]; ok {
					t.Errorf("%s.%s: the decoder checks a %s format the schema does not", where, f.Name, recordFormats[key])
				}
				var wantType string
				switch ft.Kind() {
				case reflect.Struct:
					walk(pm, ft, fspec)
					continue
				case reflect.String:
					wantType = "string"
				case reflect.Bool:
					wantType = "boolean"
				case reflect.Int:
					wantType = "integer"
				case reflect.Float64:
					wantType = "number"
				}
				if fspec == "kind" {
					continue
				}
				if pm["type"] != wantType {
					t.Errorf("%s.%s: schema type %v, want %s", where, f.Name, pm["type"], wantType)
				}
				var schemaEnum []string
				if e, ok := pm["enum"].([]any); ok {
					for _, v := range e {
						schemaEnum = append(schemaEnum, v.(string))
					}
				}
				if goEnum := recordEnums[key]; !slices.Equal(schemaEnum, goEnum) {
					t.Errorf("%s.%s: schema enum %v, decoder enum %v", where, f.Name, schemaEnum, goEnum)
				}
				if _, ok := recordEnums[key]; ok {
					used["enum:"+key] = true
				}
				if r, ok := recordRanges[key]; ok {
					used["range:"+key] = true
					if pm["minimum"] != r.Min {
						t.Errorf("%s.%s: minimum %v, want %v", where, f.Name, pm["minimum"], r.Min)
					}
					if r.Max != nil && pm["maximum"] != *r.Max {
						t.Errorf("%s.%s: maximum %v, want %v", where, f.Name, pm["maximum"], *r.Max)
					}
				}
			}
			var schemaNames []string
			for n := range props {
				schemaNames = append(schemaNames, n)
			}
			sort.Strings(goNames)
			sort.Strings(schemaNames)
			sort.Strings(goReq)
			sort.Strings(schemaReq)
			if !slices.Equal(goNames, schemaNames) {
				t.Errorf("%s: properties %v, Go fields %v", where, schemaNames, goNames)
			}
			if !slices.Equal(goReq, schemaReq) {
				t.Errorf("%s: required %v, Go required (no omitempty) %v", where, schemaReq, goReq)
			}
		}
		walk(def, recordTypes[k], "")
	}
	// Every vocabulary entry is reachable from some field: a stale key
	// would be a rule nobody enforces.
	for key := range recordEnums {
		if !used["enum:"+key] {
			t.Errorf("enum %s matches no field", key)
		}
	}
	for key := range recordFormats {
		if !used["format:"+key] {
			t.Errorf("format %s matches no field", key)
		}
	}
	for key := range recordRanges {
		if !used["range:"+key] {
			t.Errorf("range %s matches no field", key)
		}
	}
}

// schemaValidate is a small JSON Schema validator for exactly the
// keywords the record schema uses; it lets the tests hold the schema to
// the same examples and rejects as Decode without a dependency. It
// returns the first violation found, "" when v is valid.
func schemaValidate(root map[string]any, s map[string]any, v any, path string) string {
	if r, ok := s["$ref"].(string); ok {
		return schemaValidate(root, root["$defs"].(map[string]any)[strings.TrimPrefix(r, "#/$defs/")].(map[string]any), v, path)
	}
	if c, ok := s["const"]; ok && c != v {
		return path + ": not the const " + fmt.Sprint(c)
	}
	if e, ok := s["enum"].([]any); ok && !slices.Contains(e, v) {
		return path + ": not in the enum"
	}
	if alts, ok := s["anyOf"].([]any); ok {
		ok := false
		for _, a := range alts {
			ok = ok || schemaValidate(root, a.(map[string]any), v, path) == ""
		}
		if !ok {
			return path + ": matches no anyOf branch"
		}
	}
	if alts, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, a := range alts {
			if schemaValidate(root, a.(map[string]any), v, path) == "" {
				n++
			}
		}
		if n != 1 {
			return fmt.Sprintf("%s: matches %d oneOf branches", path, n)
		}
	}
	switch typ, _ := s["type"].(string); typ {
	case "":
	case "object":
		o, ok := v.(map[string]any)
		if !ok {
			return path + ": not an object"
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range s["required"].([]any) {
			if _, ok := o[r.(string)]; !ok {
				return path + "." + r.(string) + ": required"
			}
		}
		for k, pv := range o {
			ps, ok := props[k]
			if !ok {
				if s["additionalProperties"] == false {
					return path + "." + k + ": additional property"
				}
				continue
			}
			if msg := schemaValidate(root, ps.(map[string]any), pv, path+"."+k); msg != "" {
				return msg
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return path + ": not an array"
		}
		if m, ok := s["minItems"].(float64); ok && float64(len(a)) < m {
			return path + ": too few items"
		}
		for i, e := range a {
			if msg := schemaValidate(root, s["items"].(map[string]any), e, fmt.Sprintf("%s[%d]", path, i)); msg != "" {
				return msg
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return path + ": not a string"
		}
		if m, ok := s["minLength"].(float64); ok && float64(len([]rune(str))) < m {
			return path + ": too short"
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			return path + ": does not match " + p
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return path + ": not a boolean"
		}
	case "integer", "number":
		n, ok := v.(float64)
		if !ok {
			return path + ": not a number"
		}
		if typ == "integer" && n != math.Trunc(n) {
			return path + ": not an integer"
		}
		if m, ok := s["minimum"].(float64); ok && n < m {
			return path + ": below the minimum"
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			return path + ": above the maximum"
		}
	default:
		return path + ": the test validator does not know type " + typ
	}
	return ""
}

func loadSchema(t *testing.T) map[string]any {
	var s map[string]any
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// Every documented example is valid under the schema.
func TestSchemaAcceptsExamples(t *testing.T) {
	root := loadSchema(t)
	for _, path := range recordFiles(t) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var docs []any
		if strings.HasSuffix(path, ".ndjson") {
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var v any
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Fatal(err)
				}
				docs = append(docs, v)
			}
		} else {
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			if a, ok := v.([]any); ok {
				docs = a
			} else {
				docs = []any{v}
			}
		}
		for i, d := range docs {
			if msg := schemaValidate(root, root, d, "$"); msg != "" {
				t.Errorf("%s record %d: %s", path, i+1, msg)
			}
		}
	}
}

// The schema rejects what Decode rejects, except the problems only a
// decoder can see: these are listed, so any other disagreement fails.
func TestSchemaRejectsWhatDecodeRejects(t *testing.T) {
	decoderOnly := map[string]string{
		"not json":          "not JSON at all",
		"trailing data":     "framing, below the schema",
		"duplicate field":   "a JSON parser keeps one value",
		"date or date-time": "2026-02-30 matches the pattern; the calendar is the decoder's",
		"npi luhn":          "the Luhn check digit",
		"NUL in text":       "U+0000: a JSON Schema string may hold any character",
	}
	root := loadSchema(t)
	for _, tt := range decodeProblemCases {
		var v any
		if err := json.Unmarshal([]byte(tt.in), &v); err != nil {
			if _, ok := decoderOnly[tt.name]; !ok {
				t.Errorf("%s: not JSON, but not listed as decoder-only", tt.name)
			}
			continue
		}
		msg := schemaValidate(root, root, v, "$")
		_, only := decoderOnly[tt.name]
		switch {
		case msg == "" && !only:
			t.Errorf("%s: Decode rejects %s but the schema accepts it", tt.name, tt.in)
		case msg != "" && only:
			t.Errorf("%s: listed as decoder-only, but the schema rejects it too (%s)", tt.name, msg)
		}
	}
}
