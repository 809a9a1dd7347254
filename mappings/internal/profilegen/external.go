package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// The published profiles the mappings claim besides the project's own:
// the R4 vital-signs profiles and the US Core 3.1.1 profiles of the
// resource types the mappings make (mappings.TestUSCore proves each
// claim against the full definition). They are copied
// for validation only (package ig registers them, the server does
// not publish them), cut down to what profile validation reads, so the
// build embeds kilobytes instead of megabytes.
var externalProfiles = []struct{ dir, name string }{
	{"core", "vitalsigns"}, {"core", "vitalspanel"}, {"core", "bp"}, {"core", "heartrate"}, {"core", "oxygensat"},
	{"core", "resprate"}, {"core", "bodyweight"}, {"core", "bodytemp"},
	{"uscore", "us-core-pulse-oximetry"},
	{"uscore", "us-core-patient"}, {"uscore", "us-core-practitioner"}, {"uscore", "us-core-practitionerrole"},
	{"uscore", "us-core-condition"}, {"uscore", "us-core-careplan"}, {"uscore", "us-core-careteam"},
	{"uscore", "us-core-goal"}, {"uscore", "us-core-encounter"}, {"uscore", "us-core-provenance"},
	{"uscore", "us-core-documentreference"}, {"uscore", "us-core-medicationrequest"},
}

// externalKeep are the StructureDefinition and ElementDefinition members
// profile validation reads (fixed* and pattern* are kept by prefix).
var (
	sdKeep      = []string{"resourceType", "id", "url", "version", "name", "status", "publisher", "fhirVersion", "kind", "abstract", "type", "baseDefinition", "derivation"}
	elementKeep = []string{"id", "path", "sliceName", "min", "max", "type", "binding"}
)

func writeExternal(core, uscore, out string) error {
	old, _ := filepath.Glob(filepath.Join(out, "*.json"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	for _, x := range externalProfiles {
		dir := core
		if x.dir == "uscore" {
			dir = uscore
		}
		data, err := os.ReadFile(filepath.Join(dir, "StructureDefinition-"+x.name+".json"))
		if err != nil {
			return err
		}
		sd, err := fhir.ParseJSON(data, fhir.Limits{MaxBytes: 64 << 20, MaxArrayElements: -1, MaxNodes: -1})
		if err != nil {
			return fmt.Errorf("%s: %w", x.name, err)
		}
		cut := fhir.Object()
		for _, k := range sdKeep {
			if v := sd.Get(k); v != nil {
				cut.Members = append(cut.Members, fhir.Member{Key: k, Value: v})
			}
		}
		var elems []*fhir.Value
		for _, e := range elementsOf(sd, "snapshot") {
			ce := fhir.Object()
			for _, m := range e.Members {
				keep := strings.HasPrefix(m.Key, "fixed") || strings.HasPrefix(m.Key, "pattern")
				for _, k := range elementKeep {
					keep = keep || m.Key == k
				}
				if !keep {
					continue
				}
				v := m.Value
				switch m.Key {
				case "type":
					v = cutTypes(v)
				case "binding":
					if v.GetString("strength") != "required" {
						continue
					}
					v = obj("strength", "required", "valueSet", v.GetString("valueSet"))
				}
				ce.Members = append(ce.Members, fhir.Member{Key: m.Key, Value: v})
			}
			elems = append(elems, ce)
		}
		cut.Members = append(cut.Members, fhir.Member{Key: "snapshot", Value: obj("element", elems)})
		enc := cut.Encode()
		if _, _, err := fhir.ParseResource(enc); err != nil {
			return fmt.Errorf("%s cut down is not valid R4: %w", x.name, err)
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, enc, "", " "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		if err := os.WriteFile(filepath.Join(out, "StructureDefinition-"+x.name+".json"), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cutTypes keeps a type's code, profile and targetProfile, with a
// FHIRPath system type named by its FHIR type as the validator expects.
func cutTypes(types *fhir.Value) *fhir.Value {
	out := arr()
	for _, t := range types.Array {
		code := t.GetString("code")
		if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
			code = "string"
		}
		out.Array = append(out.Array, obj("code", code, "profile", t.Get("profile"), "targetProfile", t.Get("targetProfile")))
	}
	return out
}
