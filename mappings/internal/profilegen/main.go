// Command profilegen writes the project's conformance artifacts, which
// package ig embeds: the CodeSystems and their ValueSets and the
// screening Questionnaires (from the tables in this command), and the
// StructureDefinition profiles, whose differentials are authored by hand
// (mappings/ig/differential) and whose snapshots it generates by
// merging each differential over the base R4 StructureDefinition from the
// core package. Every artifact must pass the base R4 validator.
//
// Run through go generate in package ig; builds never read the
// core folder.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/kapbridge/kapbridge/fhir"
)

func main() {
	core := flag.String("core", "../../../shared/fhir-r4/core", "folder of the hl7.fhir.r4.core package")
	uscore := flag.String("uscore", "../../../shared/fhir-r4/us-core-3.1.0", "folder of the US Core 3.1.0 package")
	diff := flag.String("differential", "differential", "folder of the hand-written profile differentials")
	out := flag.String("out", "artifacts", "output folder (its JSON files are replaced)")
	external := flag.String("external", "external", "output folder of the published profiles copied for validation")
	flag.StringVar(&checksPath, "checks", checksPath, "mappings/CHECKS.md, whose table of checks is the kap-check CodeSystem")
	flag.Parse()
	if err := run(*core, *diff, *out); err != nil {
		log.Fatal(err)
	}
	if err := writeExternal(*core, *uscore, *external); err != nil {
		log.Fatal(err)
	}
}

func run(core, diffDir, out string) error {
	var all []*fhir.Value
	checks, err := checkCodeSystem(checksPath)
	if err != nil {
		return err
	}
	for _, cs := range append(codeSystems(), checks) {
		all = append(all, cs.resource(), cs.allCodes())
	}
	all = append(all, boundValueSets()...)
	for _, in := range instruments() {
		all = append(all, in.resource())
	}
	files, err := filepath.Glob(filepath.Join(diffDir, "*.json"))
	if err != nil {
		return err
	}
	s := &snapshotter{core: core, cache: map[string]*fhir.Value{}}
	for _, f := range files {
		sd, err := profile(s, f)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		all = append(all, sd)
	}

	old, _ := filepath.Glob(filepath.Join(out, "*.json"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, r := range all {
		name := r.GetString("resourceType") + "-" + r.GetString("id") + ".json"
		if seen[name] {
			return fmt.Errorf("two artifacts named %s", name)
		}
		seen[name] = true
		enc := r.Encode()
		if _, _, err := fhir.ParseResource(enc); err != nil {
			return fmt.Errorf("%s is not valid R4: %w", name, err)
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, enc, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		if err := os.WriteFile(filepath.Join(out, name), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// profile reads one hand-written differential (id, name, title, status,
// description, type, for an extension its context, differential) and
// completes it into a
// StructureDefinition with the common metadata and a generated snapshot.
func profile(s *snapshotter, file string) (*fhir.Value, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	src, err := fhir.ParseJSON(data, fhir.DefaultLimits)
	if err != nil {
		return nil, err
	}
	typ := src.GetString("type")
	base, err := s.base(typ)
	if err != nil {
		return nil, err
	}
	snap, err := s.snapshot(src)
	if err != nil {
		return nil, err
	}
	url := canonicalBase + "/StructureDefinition/" + src.GetString("id")
	kv := header("StructureDefinition", url, src.GetString("name"), src.GetString("title"), src.GetString("status"), src.GetString("description"))
	kv = append(kv, "fhirVersion", "4.0.1",
		// The base's mapping declarations, which the copied elements' mappings name.
		"mapping", base.Get("mapping"),
		"kind", base.GetString("kind"), "abstract", false,
		// Where an extension may be used.
		"context", src.Get("context"),
		"type", typ,
		"baseDefinition", "http://hl7.org/fhir/StructureDefinition/"+typ, "derivation", "constraint",
		"snapshot", obj("element", snap),
		"differential", src.Get("differential"))
	return obj(kv...), nil
}
