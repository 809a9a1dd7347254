package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/ig"
	"github.com/kapbridge/kapbridge/mappings/records"
)

const recordsUsage = `Usage: kapbridge records -state pending [flags]

Lists the practice records waiting for records the gateway has not seen
(pending), oldest first: what each waits for, since when, and whether it is
safety-relevant (a dose, a vital sign, a screening) and overdue (pending
longer than pending_max_hours). An overdue record raises a Flag for the
prescriber where its patient is known (the listing says which cannot).

Flags:
`

// recordsCmd runs `kapbridge records`.
func recordsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("kapbridge records", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, recordsUsage)
		fs.PrintDefaults()
	}
	state := fs.String("state", "", "which records: pending (the one state listed)")
	store := fs.String("store", env("KAPBRIDGE_STORE", "./kapbridge-data/kapbridge.db"), "store: an SQLite file path, or a postgres://... URL (KAPBRIDGE_STORE)")
	practiceName := fs.String("practice", env("KAPBRIDGE_PRACTICE", defaultPractice), "the practice's namespace (KAPBRIDGE_PRACTICE)")
	noFlags := fs.Bool("no-flags", false, "list only: raise no Flags for overdue records")
	var lim mappings.Limits
	thrErr := thresholdFlags(fs, getenv, &lim)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if err := thrErr(); err != nil {
		return err
	}
	if *state != "pending" || fs.NArg() > 0 {
		fs.Usage()
		return usageError{"records: want -state pending and no arguments"}
	}
	if _, err := ig.Profiles(); err != nil {
		return fmt.Errorf("records: load the conformance resources: %w", err)
	}
	st, err := sqlstore.Open(ctx, *store)
	if err != nil {
		return fmt.Errorf("records: open store: %w", err)
	}
	defer st.Close()
	printThresholds(stdout, lim)
	ap := &records.Applier{Store: st, Mapper: &mappings.Mapper{Practice: *practiceName, Limits: lim}, Writer: write.Writer{}, Checks: mappings.CheckConfig{Limits: lim}}
	if err := ap.Check(); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	return listPending(ctx, stdout, ap, lim, time.Now(), !*noFlags)
}

// listPending prints the pending records with their age, raising first
// (when raise) the Flags of the safety-relevant ones overdue.
func listPending(ctx context.Context, w io.Writer, ap *records.Applier, lim mappings.Limits, now time.Time, raise bool) error {
	max := lim.PendingMax()
	if raise {
		if _, _, err := ap.FlagOverdue(ctx, now, max); err != nil {
			return err
		}
	}
	list, err := ap.PendingRecords(ctx, now, max)
	if err != nil {
		return err
	}
	overdue := 0
	for _, p := range list {
		if p.Overdue {
			overdue++
		}
	}
	fmt.Fprintf(w, "pending: %d records waiting for records not imported yet (%d safety-relevant past %s):\n", len(list), overdue, max)
	for _, p := range list {
		note := ""
		switch {
		case p.Overdue && p.Flag != "":
			note = " OVERDUE, flagged " + p.Flag
		case p.Overdue:
			note = " OVERDUE, no Flag raised yet"
		case p.SafetyRelevant:
			note = " (safety-relevant)"
		}
		fmt.Fprintf(w, "  %s/%s waits for %s since %s (%s)%s\n", p.Kind, p.ID, strings.Join(p.Waiting, ", "), p.Since.Format(time.RFC3339), p.Age, note)
	}
	return nil
}

// lockedLines serializes writes from the import's workers.
type lockedLines struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
