package ehr

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// String says how m writes, in a few words.
func (m WriteMethod) String() string {
	switch {
	case m.Conditional:
		return "PUT " + m.Type + "?identifier=system|value (conditional update)"
	case m.PutByID:
		s := "PUT " + m.Type + "/{id} (update creates)"
		if m.IfMatch {
			s += ", If-Match on change"
		}
		return s
	case !m.Create:
		return "not written"
	}
	var s string
	switch m.Find {
	case FindIdentifier:
		s = "identifier search, then "
	case FindPatient:
		s = "patient search (identifier matched), then "
	case FindTarget:
		s = "target search, then "
	}
	s += "POST"
	switch m.Update {
	case UpdatePut:
		s += " or PUT"
	case UpdatePatch:
		// Patches always carry If-Match when the version is known: one
		// computed from another version must not apply (outbound_patch.go).
		return s + " or PATCH (JSON Patch) with If-Match"
	default:
		return s + "; no updates"
	}
	if m.IfMatch {
		return s + " with If-Match"
	}
	return s + " (no If-Match)"
}

func (t Transport) describe() string {
	switch t {
	case TransportTransaction:
		return "transaction Bundles: each change's resources together, all or nothing"
	case TransportBatch:
		return "batch Bundles (no transaction): the finds in one batch, then the writes in another; each entry succeeds or fails alone"
	}
	return "one request at a time (neither transaction nor batch is declared)"
}

// Column widths of the plan table; longer cells wrap.
const (
	tableGoesAsWidth = 50
	tableWriteWidth  = 52
	tableReasonWidth = 104
)

// WriteTable prints the plan for people (`kapbridge ehr plan NAME`): what
// goes how, what cannot go at all and why, and what is never written by
// design.
func (p *WritePlan) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "Write plan for %s\n", p.EHR)
	if p.BaseURL != "" {
		fmt.Fprintf(bw, "Base URL: %s\n", p.BaseURL)
	}
	fmt.Fprintf(bw, "Requests: %s\n", p.Transport.describe())
	for _, wn := range p.Warnings {
		fmt.Fprintf(bw, "Statement warning: %s\n", wn)
	}

	var sent, cannot, never []PlanEntry
	for _, e := range p.Entries {
		switch e.Outcome {
		case OutcomeSent:
			sent = append(sent, e)
		case OutcomeCannotGo:
			cannot = append(cannot, e)
		default:
			never = append(never, e)
		}
	}
	w1, w2 := len("ARTIFACT"), len("FROM")
	for _, e := range p.Entries {
		w1, w2 = max(w1, len(e.Artifact)), max(w2, len(e.Resource))
	}
	row := func(cells ...string) {
		widths := []int{w1, w2, tableGoesAsWidth, tableWriteWidth}
		if len(cells) == 3 {
			widths = []int{w1, w2, tableReasonWidth}
		}
		writeRow(bw, widths, cells)
	}

	fmt.Fprintf(bw, "\nWhat goes how (%d)\n", len(sent))
	if len(sent) == 0 {
		fmt.Fprintln(bw, "  nothing")
	} else {
		row("ARTIFACT", "FROM", "GOES AS", "WRITE")
	}
	for _, e := range sent {
		for i, part := range e.Route.Parts {
			a, from := string(e.Artifact), e.Resource
			goes, how := part.Type+" (as mapped)", part.Method.String()
			if part.What != "" {
				goes = part.Type + ": " + part.What
			}
			if i > 0 {
				a, from, goes = "", "", "+ "+goes
			}
			if len(part.Via) > 0 {
				how = "see " + joinArtifacts(part.Via)
			}
			row(a, from, goes, how)
		}
		for _, n := range e.Route.Notes {
			row("", "", "· "+n)
		}
	}

	fmt.Fprintf(bw, "\nWhat cannot go at all, and why (%d)\n", len(cannot))
	if len(cannot) == 0 {
		fmt.Fprintln(bw, "  nothing")
	} else {
		row("ARTIFACT", "FROM", "WHY")
	}
	for _, e := range cannot {
		row(string(e.Artifact), e.Resource, e.Reason)
	}

	fmt.Fprintf(bw, "\nNever written, by design (%d)\n", len(never))
	for _, e := range never {
		row(string(e.Artifact), e.Resource, e.Reason)
	}

	fmt.Fprintf(bw, "\nDeletions at the practice\n")
	for _, line := range p.deletionText() {
		row("", "", "· "+line)
	}
	return bw.Flush()
}

func joinArtifacts(as []Artifact) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// writeRow writes cells in columns of the widths given, two spaces
// apart, wrapping every cell but the first two at its width.
func writeRow(w io.Writer, widths []int, cells []string) {
	cols := make([][]string, len(cells))
	lines := 1
	for i, c := range cells {
		if i < 2 {
			cols[i] = []string{c}
		} else {
			cols[i] = wrapText(c, widths[i])
		}
		lines = max(lines, len(cols[i]))
	}
	for l := 0; l < lines; l++ {
		var b strings.Builder
		b.WriteString("  ")
		for i := range cells {
			s := ""
			if l < len(cols[i]) {
				s = cols[i][l]
			}
			if i == len(cells)-1 {
				b.WriteString(s)
				break
			}
			b.WriteString(s)
			b.WriteString(strings.Repeat(" ", max(0, widths[i]-len([]rune(s)))+2))
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// wrapText breaks s into lines of at most width runes at spaces (a word
// longer than width gets a line of its own); continuation lines of a
// "· " note are indented under its text.
func wrapText(s string, width int) []string {
	indent := ""
	if strings.HasPrefix(s, "· ") || strings.HasPrefix(s, "+ ") {
		indent = "  "
	}
	var lines []string
	var cur []rune
	for _, word := range strings.Fields(s) {
		wr := []rune(word)
		switch {
		case len(cur) == 0:
			cur = append(cur, wr...)
		case len(cur)+1+len(wr) <= width:
			cur = append(append(cur, ' '), wr...)
		default:
			lines = append(lines, string(cur))
			cur = append([]rune(indent), wr...)
		}
	}
	if len(cur) > 0 || len(lines) == 0 {
		lines = append(lines, string(cur))
	}
	return lines
}
