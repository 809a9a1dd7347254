package fhirtest

import (
	"testing"

	"github.com/kapbridge/kapbridge/fhir/internal/shared"
)

// SharedDir returns the path of rel (a file or folder, e.g.
// "fhir-r4/core") in the shared folder beside the repository (../shared
// from the module root), which the official definitions and test suites
// come with and builds never read. When it is missing, a test that needs
// it cannot run: outside CI it skips, saying so; in CI (the environment
// variable CI set, as .ci/run does) it fails, so that a missing folder
// does not pass for a green run.
func SharedDir(t testing.TB, rel string) string {
	t.Helper()
	return shared.Dir(t, rel)
}
