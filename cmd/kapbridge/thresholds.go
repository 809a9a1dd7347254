package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// The safety thresholds (mappings.Limits, CHECKS.md "Thresholds") of
// `kapbridge serve` and `kapbridge import`: a practice settings file, the
// environment and flags, each over the one before.

// settingsFile is a practice settings file: {"thresholds": {"name": value}}.
// Unknown keys are errors, so a misspelt threshold is never silently the
// default.
type settingsFile struct {
	Thresholds map[string]float64 `json:"thresholds"`
}

// parseSettings reads a practice settings file's JSON into lim.
func parseSettings(data []byte, lim *mappings.Limits) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s settingsFile
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("settings: more than one JSON value")
	}
	names := make([]string, 0, len(s.Thresholds))
	for name := range s.Thresholds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := lim.Set(name, s.Thresholds[name]); err != nil {
			return fmt.Errorf("settings: %w", err)
		}
	}
	return nil
}

// thresholdList collects repeated -threshold flags.
type thresholdList []string

func (t *thresholdList) String() string     { return strings.Join(*t, ",") }
func (t *thresholdList) Set(s string) error { *t = append(*t, s); return nil }

// thresholdFlags defines -settings and -threshold on fs. The function it
// returns, to call after parsing, applies the settings file
// (KAPBRIDGE_SETTINGS), then KAPBRIDGE_THRESHOLDS, then the flags, and
// reports a bad value as a usage error naming where it came from.
func thresholdFlags(fs *flag.FlagSet, getenv func(string) string, lim *mappings.Limits) func() error {
	settings := fs.String("settings", getenv("KAPBRIDGE_SETTINGS"), `practice settings file: {"thresholds": {"name": value}} (KAPBRIDGE_SETTINGS); see mappings/CHECKS.md, "Thresholds"`)
	var list thresholdList
	fs.Var(&list, "threshold", "a safety threshold, name=value[,name=value]; repeatable; over KAPBRIDGE_THRESHOLDS and the settings file (names: "+strings.Join(mappings.LimitNames(), ", ")+")")
	return func() error {
		if *settings != "" {
			data, err := os.ReadFile(*settings)
			if err != nil {
				return usageError{fmt.Sprintf("-settings: %v", err)}
			}
			if err := parseSettings(data, lim); err != nil {
				return usageError{fmt.Sprintf("-settings %s: %v", *settings, err)}
			}
		}
		if env := getenv("KAPBRIDGE_THRESHOLDS"); env != "" {
			if err := lim.Parse(env); err != nil {
				return usageError{fmt.Sprintf("KAPBRIDGE_THRESHOLDS: %v", err)}
			}
		}
		for _, s := range list {
			if err := lim.Parse(s); err != nil {
				return usageError{fmt.Sprintf("-threshold %s: %v", s, err)}
			}
		}
		return nil
	}
}

// printThresholds says which thresholds differ from the defaults, so the
// output of a run shows what it was judged by.
func printThresholds(w io.Writer, lim mappings.Limits) {
	if c := lim.Changed(); len(c) > 0 {
		fmt.Fprintf(w, "safety thresholds set: %s (others at their defaults, mappings/CHECKS.md)\n", strings.Join(c, ", "))
	}
}

// overdueSweep is how often `kapbridge serve` raises the Flags of
// safety-relevant records pending too long.
const overdueSweep = 15 * time.Minute

// sweepOverdue raises, every interval until ctx is done, the Flag of each
// safety-relevant record pending longer than lim allows
// (records.Applier.FlagOverdue). It logs ids and counts only (no PHI).
// Every practice's records are swept (appliers lists them).
func sweepOverdue(ctx context.Context, appliers func(context.Context) []*records.Applier, lim mappings.Limits, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, ap := range appliers(ctx) {
			flagged, unflagged, err := ap.FlagOverdue(ctx, time.Now(), lim.PendingMax())
			switch {
			case err != nil && ctx.Err() == nil:
				log.Error("overdue pending records: raising their flags failed", "practice", ap.Tenant, "error", err)
			case len(flagged)+len(unflagged) > 0:
				ids := make([]string, 0, len(flagged)+len(unflagged))
				for _, p := range append(flagged, unflagged...) {
					ids = append(ids, string(p.Kind)+"/"+p.ID)
				}
				log.Warn("safety-relevant records pending past the limit", "practice", ap.Tenant, "flagged", len(flagged), "not_flagged", len(unflagged), "records", ids,
					"listing", "GET /practice/v1/records?state=pending")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
