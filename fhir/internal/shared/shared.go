// Package shared finds the shared folder of official definitions and test
// suites beside the repository, for tests. It imports nothing of the
// project, so the FHIRPath engine's tests can use it (fhirtest links the
// engine through fhir/search).
package shared

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the path of rel (a file or folder, e.g.
// "fhir-r4/core") in the shared folder beside the repository (../shared
// from the module root), which the official definitions and test suites
// come with and builds never read. When it is missing, a test that needs
// it cannot run: outside CI it skips, saying so; in CI (the environment
// variable CI set, as .ci/run does) it fails, so that a missing folder
// does not pass for a green run.
func Dir(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (%v): in CI (CI=%q) the tests that need ../shared beside the repository must run, not skip", p, err, os.Getenv("CI"))
		}
		t.Skipf("%s is missing (%v): it comes with ../shared beside the repository; this test runs where it is (and fails in CI without it)", p, err)
	}
	return p
}
