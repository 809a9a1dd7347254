package ehr

import (
	"embed"
	"fmt"
	"slices"
)

// The EHR profiles the sandbox can play: real CapabilityStatements, as
// their vendors published them (copied unchanged from the project's
// shared ehr-capabilities folder): Epic's R4 sandbox (May 2026) and Oracle
// Health's R4 secure sandbox. They are embedded so that `kapbridge
// sandbox` and the planner's tests need no files beside the binary. The
// third profile, "full", is kapbridge's own statement, which the server
// makes itself.
//
//go:embed profiles/*.json
var profileFS embed.FS

// Profiles are the names Profile accepts, besides "full".
var Profiles = []string{"epic", "oracle"}

// Profile returns the CapabilityStatement of a named EHR profile.
func Profile(name string) ([]byte, error) {
	if !slices.Contains(Profiles, name) {
		return nil, fmt.Errorf("ehr: no EHR profile %q (have %v and full)", name, Profiles)
	}
	return profileFS.ReadFile("profiles/" + name + ".json")
}
