package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// checksPath is mappings/CHECKS.md as seen from mappings/ig, where go
// generate runs the command.
var checksPath = "../CHECKS.md"

// checkRow is a row of CHECKS.md's table of checks: | `code` | severity |
// applies to | rule | why / source |.
var checkRow = regexp.MustCompile("(?m)^\\| `([a-z0-9_.]+)` \\| ([a-z]+)[^|]*\\| ([^|]+)\\| ([^|]+)\\|")

// checkCodeSystem is kap-check: one concept per row of CHECKS.md's table
// of checks, so the code of a finding's Flag resolves to the rule it
// names, written once (in CHECKS.md).
func checkCodeSystem(path string) (codeSystem, error) {
	doc, err := os.ReadFile(path)
	if err != nil {
		return codeSystem{}, fmt.Errorf("the table of checks: %w", err)
	}
	table, _, _ := strings.Cut(string(doc), "\n## Thresholds")
	var cs []concept
	for _, m := range checkRow.FindAllStringSubmatch(table, -1) {
		rule := strings.TrimSpace(m[4])
		rule = strings.NewReplacer("`", "").Replace(rule)
		cs = append(cs, concept{m[1], m[1], strings.TrimSpace(m[2]) + " (" + strings.TrimSpace(m[3]) + "): " + rule})
	}
	if len(cs) == 0 {
		return codeSystem{}, fmt.Errorf("%s: no table of checks found", path)
	}
	return codeSystem{csCheck, "KAPCheck", "KAP checks", "The checks the gateway runs on practice records (mappings/CHECKS.md); a Flag coded here says which rule a record broke, and its text states the value.", cs}, nil
}
