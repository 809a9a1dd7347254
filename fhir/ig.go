package fhir

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Implementation guides: the conformance resources of an IG, read from a
// folder or an npm-style package (.tgz, its files under package/), as
// profile validation uses them.

// maxIGFile bounds one file read from an IG: the largest US Core 3.1.0
// StructureDefinition is under 1 MB, and a .tgz is read in memory.
const maxIGFile = 64 << 20

// LoadIG reads the StructureDefinitions, ValueSets and CodeSystems of the
// IG at path into a Profiles; see (*Profiles).WithIG.
func LoadIG(path string) (*Profiles, error) { return (*Profiles)(nil).WithIG(path) }

// WithIG returns a Profiles holding what p holds and the StructureDefinitions
// (with a snapshot), ValueSets and CodeSystems of the implementation guide
// at path: a folder (its *.json files, subfolders included) or an npm
// package .tgz / .tar.gz (the files under package/, as FHIR packages are
// published). Other resources (examples, SearchParameters, the
// ImplementationGuide) and files that are not FHIR JSON (package.json,
// .index.json) are left out. The error names the file at fault.
func (p *Profiles) WithIG(path string) (*Profiles, error) {
	files, err := readIG(path)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var docs [][]byte
	var from []string
	for _, n := range names {
		data := files[n]
		v, err := ParseJSON(data, Limits{MaxBytes: maxIGFile, MaxStringBytes: maxIGFile, MaxArrayElements: -1, MaxNodes: -1, MaxTotalStringBytes: -1})
		if err != nil {
			continue // not JSON FHIR reads: package.json is, and is skipped below
		}
		switch v.GetString("resourceType") {
		case "StructureDefinition":
			if v.Get("snapshot") == nil {
				return nil, fmt.Errorf("fhir: IG %s: %s: a StructureDefinition without a snapshot (profile validation reads snapshots)", path, n)
			}
		case "ValueSet", "CodeSystem":
		default:
			continue
		}
		docs = append(docs, data)
		from = append(from, n)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("fhir: IG %s: no StructureDefinition, ValueSet or CodeSystem found", path)
	}
	return p.with(docs, false, func(i int) string { return "fhir: IG " + path + ": " + from[i] })
}

// readIG returns the .json files of a folder or package, by name.
func readIG(path string) (map[string][]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("fhir: IG: %w", err)
	}
	files := map[string][]byte{}
	if st.IsDir() {
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(p, ".json") {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Size() > maxIGFile {
				return fmt.Errorf("%s: %d bytes, more than %d", p, info.Size(), maxIGFile)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(path, p)
			files[rel] = data
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("fhir: IG %s: %w", path, err)
		}
		return files, nil
	}
	if !strings.HasSuffix(path, ".tgz") && !strings.HasSuffix(path, ".tar.gz") {
		return nil, fmt.Errorf("fhir: IG %s: neither a folder nor an npm package (.tgz)", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fhir: IG: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("fhir: IG %s: %w", path, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("fhir: IG %s: %w", path, err)
		}
		name := filepath.ToSlash(h.Name)
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(name, ".json") || !strings.HasPrefix(strings.TrimPrefix(name, "./"), "package/") {
			continue // npm packages keep the IG's files under package/ (examples in package/example/ are left out below by type)
		}
		if h.Size > maxIGFile {
			return nil, fmt.Errorf("fhir: IG %s: %s: %d bytes, more than %d", path, name, h.Size, maxIGFile)
		}
		var b bytes.Buffer
		if _, err := io.Copy(&b, io.LimitReader(tr, maxIGFile+1)); err != nil {
			return nil, fmt.Errorf("fhir: IG %s: %s: %w", path, name, err)
		}
		files[name] = b.Bytes()
	}
	return files, nil
}
