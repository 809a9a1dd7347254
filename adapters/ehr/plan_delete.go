package ehr

import (
	"slices"
	"strings"
)

// Deletions a plan can send: for every type the plan writes, whether the
// EHR declares delete of it (outbound_delete.go sends a DELETE there, and
// lists the others as not sent).

// deletable splits the types es write into those the EHR deletes and
// those it does not, each sorted.
func deletable(c *Capabilities, es []PlanEntry) (deletes, keeps []string) {
	seen := map[string]bool{}
	for _, e := range es {
		if e.Outcome != OutcomeSent {
			continue
		}
		for _, p := range e.Route.Parts {
			if len(p.Via) > 0 || seen[p.Type] {
				continue
			}
			seen[p.Type] = true
			if c.Allows(p.Type, InteractionDelete) {
				deletes = append(deletes, p.Type)
			} else {
				keeps = append(keeps, p.Type)
			}
		}
	}
	slices.Sort(deletes)
	slices.Sort(keeps)
	return deletes, keeps
}

// deletionText is the plan table's account of deletions.
func (p *WritePlan) deletionText() []string {
	var out []string
	if len(p.Deletes) > 0 {
		out = append(out, "sent as DELETE of what it became here: "+strings.Join(p.Deletes, ", "))
	}
	if len(p.Keeps) > 0 {
		out = append(out, "not sent (no delete declared; listed by kapbridge sync status): "+strings.Join(p.Keeps, ", "))
	}
	if len(out) == 0 {
		out = append(out, "nothing is written here, so nothing is deleted")
	}
	return out
}
