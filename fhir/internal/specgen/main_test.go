package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kapbridge/kapbridge/fhir/fhirtest"
)

// TestTableUpToDate: the committed fhir/r4spec.json.gz is what the
// generator makes now from the R4 core package: a changed generator that
// was not rerun (go generate ./fhir) fails here. It needs ../shared: it
// skips without it, except in CI, where it fails.
func TestTableUpToDate(t *testing.T) {
	core := fhirtest.SharedDir(t, "fhir-r4/core")
	out := filepath.Join(t.TempDir(), "r4spec.json.gz")
	if err := run(core, out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gunzip(t, out), gunzip(t, "../../r4spec.json.gz")) {
		t.Error("fhir/r4spec.json.gz is stale: run go generate ./fhir")
	}
}

// gunzip is the content of a gzip file (the compressed bytes may differ
// between Go versions; the table may not).
func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
