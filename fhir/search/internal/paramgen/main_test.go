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

// TestTableUpToDate: the committed fhir/search/params.json.gz is what the
// generator makes now from the R4 core package: a changed generator that
// was not rerun (go generate ./fhir/search) fails here. It needs
// ../shared: it skips without it, except in CI, where it fails.
func TestTableUpToDate(t *testing.T) {
	core := fhirtest.SharedDir(t, "fhir-r4/core")
	tab, err := build(core)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "params.json.gz")
	if err := write(out, tab); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gunzip(t, out), gunzip(t, "../../params.json.gz")) {
		t.Error("fhir/search/params.json.gz is stale: run go generate ./fhir/search")
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
