package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The R4 packages, in ../shared beside the repository: builds never read
// them, only the generator and these tests do.
const (
	corePackage   = "../../../../shared/fhir-r4/core"
	usCorePackage = "../../../../shared/fhir-r4/us-core-3.1.0"
)

// needCore returns the R4 core package's folder. Without it the tests
// below cannot run: in CI (CI set, as .ci/run sets it) that fails, since
// a check that silently skips there checks nothing; elsewhere they skip,
// saying why.
func needCore(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(corePackage, "StructureDefinition-CarePlan.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but the R4 core package is not at %s (../shared beside the repository): %v", corePackage, err)
		}
		t.Skipf("the R4 core package is not at %s (it comes with ../shared beside the repository; CI fails here instead): %v", corePackage, err)
	}
	return corePackage
}

// The committed artifacts are what the generator makes now: a changed
// table, differential or generator that was not regenerated fails here.
func TestArtifactsUpToDate(t *testing.T) {
	core := needCore(t)
	out, ext := t.TempDir(), t.TempDir()
	checksPath = "../../CHECKS.md"
	if err := run(core, "../../ig/differential", out); err != nil {
		t.Fatal(err)
	}
	if err := writeExternal(core, usCorePackage, ext); err != nil {
		t.Fatal(err)
	}
	a, errA := gunzip(filepath.Join("../../ig/external", ExternalFile))
	b, errB := gunzip(filepath.Join(ext, ExternalFile))
	if errA != nil || errB != nil || !bytes.Equal(a, b) || len(b) == 0 {
		t.Errorf("../../ig/external/%s is stale (%v, %v): run go generate ./mappings/ig", ExternalFile, errA, errB)
	}
	for committed, generated := range map[string]string{"../../ig/artifacts": out} {
		want, _ := filepath.Glob(filepath.Join(committed, "*.json"))
		got, _ := filepath.Glob(filepath.Join(generated, "*.json"))
		if len(got) != len(want) {
			t.Errorf("generated %d files, %d committed in %s: run go generate ./mappings/ig", len(got), len(want), committed)
		}
		for _, w := range want {
			a, _ := os.ReadFile(w)
			b, err := os.ReadFile(filepath.Join(generated, filepath.Base(w)))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s is stale: run go generate ./mappings/ig", w)
			}
		}
	}
}

func gunzip(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// A differential that loosens its base, slices, or names no element is
// refused.
func TestSnapshotRefuses(t *testing.T) {
	core := needCore(t)
	for name, elem := range map[string]string{
		"min below base": `{"id":"CarePlan.status","path":"CarePlan.status","min":0}`,
		"max above base": `{"id":"CarePlan.subject","path":"CarePlan.subject","max":"*"}`,
		"slice":          `{"id":"CarePlan.category:kap","path":"CarePlan.category","sliceName":"kap"}`,
		"no element":     `{"id":"CarePlan.nothing","path":"CarePlan.nothing"}`,
		"no such child":  `{"id":"CarePlan.meta.nothing","path":"CarePlan.meta.nothing"}`,
	} {
		dir := t.TempDir()
		src := `{"id":"x","name":"X","status":"draft","type":"CarePlan","differential":{"element":[` + elem + `]}}`
		if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := run(core, dir, t.TempDir()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
