package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// The published profiles the mappings claim besides the project's own:
// the R4 vital-signs profiles and the US Core 3.1.1 profiles of the
// resource types the mappings make (mappings.TestUSCore proves each
// claim). Package ig registers them for validation (the server does not
// publish them), with every definition they lean on: the profiles their
// elements' types and reference targets name (US Core's race, ethnicity
// and birth-sex extensions, the profiles of referenced resources), and
// the ValueSets their bindings name, with the ValueSets and CodeSystems
// those include, where the two packages hold them. They are copied whole
// (slicing, invariants, every binding), as published, so the server
// judges the real profiles; compressed, they are a few hundred kilobytes
// of the binary instead of megabytes.
var externalProfiles = []struct{ dir, name string }{
	{"core", "vitalsigns"}, {"core", "vitalspanel"}, {"core", "bp"}, {"core", "heartrate"}, {"core", "oxygensat"},
	{"core", "resprate"}, {"core", "bodyweight"}, {"core", "bodytemp"},
	{"uscore", "us-core-pulse-oximetry"},
	{"uscore", "us-core-patient"}, {"uscore", "us-core-practitioner"}, {"uscore", "us-core-practitionerrole"},
	{"uscore", "us-core-condition"}, {"uscore", "us-core-careplan"}, {"uscore", "us-core-careteam"},
	{"uscore", "us-core-goal"}, {"uscore", "us-core-encounter"}, {"uscore", "us-core-provenance"},
	{"uscore", "us-core-documentreference"}, {"uscore", "us-core-medicationrequest"},
}

// ExternalFile is the name of the generated file in the external folder:
// gzip-compressed NDJSON, one definition a line, in a stable order.
const ExternalFile = "definitions.ndjson.gz"

// definitions finds the conformance resources of the two packages by
// canonical URL: the US Core folder's by reading them all (it is small),
// the core folder's by the file name its URL gives (ValueSet-<id>.json),
// checked against the url inside.
type definitions struct {
	core   string
	uscore map[string]string // url -> file
	cache  map[string]*fhir.Value
}

var parseLimits = fhir.Limits{MaxBytes: 64 << 20, MaxArrayElements: -1, MaxNodes: -1}

func newDefinitions(core, uscore string) (*definitions, error) {
	d := &definitions{core: core, uscore: map[string]string{}, cache: map[string]*fhir.Value{}}
	files, err := filepath.Glob(filepath.Join(uscore, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		base := filepath.Base(f)
		if !strings.HasPrefix(base, "StructureDefinition-") && !strings.HasPrefix(base, "ValueSet-") && !strings.HasPrefix(base, "CodeSystem-") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var head struct{ URL string }
		if err := json.Unmarshal(data, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		d.uscore[head.URL] = f
	}
	if len(d.uscore) == 0 {
		return nil, fmt.Errorf("no definitions in %s", uscore)
	}
	return d, nil
}

// lookup returns the resource with canonical url (its |version dropped),
// or nil when neither package holds it.
func (d *definitions) lookup(url string) (*fhir.Value, error) {
	url, _, _ = strings.Cut(url, "|")
	if v, ok := d.cache[url]; ok {
		return v, nil
	}
	file := d.uscore[url]
	if file == "" {
		for _, typ := range []string{"StructureDefinition", "ValueSet", "CodeSystem"} {
			if i := strings.Index(url, "/"+typ+"/"); i >= 0 {
				file = filepath.Join(d.core, typ+"-"+url[i+len(typ)+2:]+".json")
			}
		}
	}
	var v *fhir.Value
	if file != "" {
		data, err := os.ReadFile(file)
		if err == nil {
			v, err = fhir.ParseJSON(data, parseLimits)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if v.GetString("url") != url {
				v = nil // another resource's file name
			}
		} else if !os.IsNotExist(err) {
			return nil, err
		}
	}
	d.cache[url] = v
	return v, nil
}

// externalDefinitions collects the profiles of externalProfiles and what
// they lean on, in a stable order (the list's, then as found).
func externalDefinitions(core, uscore string) ([]*fhir.Value, error) {
	d, err := newDefinitions(core, uscore)
	if err != nil {
		return nil, err
	}
	var out []*fhir.Value
	seen := map[string]bool{}
	var queue []string
	for _, x := range externalProfiles {
		if x.dir == "uscore" {
			queue = append(queue, "http://hl7.org/fhir/us/core/StructureDefinition/"+x.name)
		} else {
			queue = append(queue, "http://hl7.org/fhir/StructureDefinition/"+x.name)
		}
	}
	for len(queue) > 0 {
		url, _, _ := strings.Cut(queue[0], "|")
		queue = queue[1:]
		if seen[url] {
			continue
		}
		seen[url] = true
		v, err := d.lookup(url)
		if err != nil {
			return nil, err
		}
		if v == nil {
			continue // not in the packages (LOINC, SNOMED ...): not judged
		}
		switch v.GetString("resourceType") {
		case "StructureDefinition":
			if v.GetString("derivation") != "constraint" {
				continue // a base type or resource: the base validator's
			}
			for _, e := range elementsOf(v, "snapshot") {
				for _, t := range arrayOf(e.Get("type")) {
					for _, k := range []string{"profile", "targetProfile"} {
						for _, u := range arrayOf(t.Get(k)) {
							queue = append(queue, u.Str)
						}
					}
				}
				if b := e.Get("binding"); b != nil && (b.GetString("strength") == "required" || b.GetString("strength") == "extensible") && b.GetString("valueSet") != "" {
					queue = append(queue, b.GetString("valueSet"))
				}
			}
		case "ValueSet":
			for _, part := range []string{"include", "exclude"} {
				for _, inc := range arrayOf(v.Get("compose").Get(part)) {
					if s := inc.GetString("system"); s != "" {
						queue = append(queue, s)
					}
					for _, u := range arrayOf(inc.Get("valueSet")) {
						queue = append(queue, u.Str)
					}
				}
			}
		case "CodeSystem":
		default:
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

func arrayOf(v *fhir.Value) []*fhir.Value {
	if v == nil {
		return nil
	}
	if v.Kind == fhir.KindArray {
		return v.Array
	}
	return []*fhir.Value{v}
}

// writeExternal writes external/definitions.ndjson.gz, replacing what
// the folder held.
func writeExternal(core, uscore, out string) error {
	data, err := externalNDJSON(core, uscore)
	if err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(out, "*"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, ExternalFile), buf.Bytes(), 0o644)
}

// externalNDJSON is the content of the external file, uncompressed: each
// definition re-encoded compactly on a line, after checking it is valid
// R4 as the server's registry reads it.
func externalNDJSON(core, uscore string) ([]byte, error) {
	defs, err := externalDefinitions(core, uscore)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	var urls []string
	for _, v := range defs {
		enc := v.Encode()
		if _, err := fhir.NewProfiles(enc); err != nil {
			return nil, fmt.Errorf("%s: %w", v.GetString("url"), err)
		}
		buf.Write(enc)
		buf.WriteByte('\n')
		urls = append(urls, v.GetString("url"))
	}
	sort.Strings(urls)
	for i := 1; i < len(urls); i++ {
		if urls[i] == urls[i-1] {
			return nil, fmt.Errorf("%s twice", urls[i])
		}
	}
	return buf.Bytes(), nil
}
