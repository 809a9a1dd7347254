package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/kapbridge/kapbridge/adapters/practice"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/ig"
	"github.com/kapbridge/kapbridge/mappings/records"
)

const importUsage = `Usage: kapbridge import [flags] FILE...

Imports practice records (JSON, NDJSON or CSV; "-" reads standard input)
into the store, each record in its own transaction. Re-importing a file
changes nothing. Records naming records not yet imported wait (pending)
and are mapped when those arrive; the ones still waiting are listed at the
end with their age, and a safety-relevant one pending longer than
pending_max_hours raises a Flag. Every warning and alert is listed, one
line each: severity, code, record, file:line, field and message. Safety
thresholds: -threshold, KAPBRIDGE_THRESHOLDS or -settings (mappings/CHECKS.md,
"Thresholds").

Exit status: 0 all records imported (or pending); 1 some records were
rejected (see -rejects) or the import failed; 2 a usage error.

Flags:
`

// errRejected is the exit status 1 of an import that finished with
// rejected records: the summary has said so already.
type errRejected struct{ n int64 }

func (e errRejected) Error() string { return fmt.Sprintf("%d records rejected", e.n) }

// importCmd runs `kapbridge import`. progressTTY overrides terminal
// detection for tests (nil: detect from stderr).
func importCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("kapbridge import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, importUsage)
		fs.PrintDefaults()
	}
	dryRun := fs.Bool("dry-run", false, "check, map and validate every record without writing anything")
	rejects := fs.String("rejects", "", "write rejected records to this NDJSON file: {\"line\",\"file\",\"record\",\"reasons\"} per line")
	dateFormat := fs.String("date-format", "", "layout of CSV dates that are not ISO 8601: a Go layout (02/01/2006) or strftime-like (%d/%m/%Y); see adapters/practice/CSV.md")
	store := fs.String("store", env("KAPBRIDGE_STORE", "./kapbridge-data/kapbridge.db"), "store: an SQLite file path, or a postgres://... URL for PostgreSQL (KAPBRIDGE_STORE)")
	practiceName := fs.String("practice", env("KAPBRIDGE_PRACTICE", "default"), "the practice's namespace: resource ids and identifier systems derive from it (KAPBRIDGE_PRACTICE)")
	workers := fs.Int("workers", 256, "records applied at once (each still its own transaction)")
	progress := fs.String("progress", env("KAPBRIDGE_PROGRESS", "auto"), "progress display on stderr: auto (a bar on a terminal, else lines), bar, lines, none (KAPBRIDGE_PROGRESS)")
	interval := fs.Duration("progress-interval", 0, "time between progress lines (default 2s; bar: 200ms)")
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
	if fs.NArg() == 0 {
		fs.Usage()
		return usageError{"import: no files given"}
	}
	var files []practice.ImportFile
	var total int64
	for _, name := range fs.Args() {
		f, err := practice.FileInput(name, stdin)
		if err != nil {
			return err
		}
		files = append(files, f)
		if f.Size < 0 || total < 0 {
			total = -1
		} else {
			total += f.Size
		}
	}

	var prog *practice.Progress
	switch *progress {
	case "auto":
		tty := false
		if f, ok := stderr.(*os.File); ok {
			tty = practice.IsTerminal(f)
		}
		prog = &practice.Progress{W: stderr, TTY: tty}
	case "bar":
		prog = &practice.Progress{W: stderr, TTY: true}
	case "lines":
		prog = &practice.Progress{W: stderr}
	case "none":
	default:
		return usageError{fmt.Sprintf("import: -progress %q: want auto, bar, lines or none", *progress)}
	}
	if prog != nil {
		prog.Interval = *interval
	}

	// The applier validates mapped resources against these; a build whose
	// artifacts do not compile fails here, before any record is read.
	if _, err := ig.Profiles(); err != nil {
		return fmt.Errorf("import: load the conformance resources: %w", err)
	}
	st, err := sqlstore.Open(ctx, *store)
	if err != nil {
		return fmt.Errorf("import: open store: %w", err)
	}
	defer st.Close()

	var rej io.Writer
	if *rejects != "" {
		f, err := os.Create(*rejects)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		rej = f
	}

	printThresholds(stdout, lim)
	ap := &records.Applier{Store: st, Mapper: &mappings.Mapper{Practice: *practiceName, Limits: lim}, Writer: write.Writer{Changed: enqueueChanges(st)}, DryRun: *dryRun,
		Checks: mappings.CheckConfig{Limits: lim}}
	if err := ap.Check(); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	im := &practice.Importer{Applier: ap, Read: practice.ReadOptions{DateFormat: *dateFormat}, Workers: *workers, Rejects: rej, Progress: prog,
		Findings: &lockedLines{w: stdout}}
	start := time.Now()
	if prog != nil {
		prog.Start(total)
	}
	sum, err := im.Import(ctx, files)
	el := time.Since(start)
	printSummary(stdout, sum, el, *dryRun)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if sum.Pending > 0 {
		if err := listPending(ctx, stdout, ap, lim, time.Now(), !*dryRun); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	if sum.Rejected > 0 {
		if *rejects != "" {
			fmt.Fprintf(stdout, "rejected records are in %s\n", *rejects)
		}
		return errRejected{sum.Rejected}
	}
	return nil
}

func printSummary(w io.Writer, s practice.ImportSummary, el time.Duration, dry bool) {
	rate := 0.0
	if el > 0 {
		rate = float64(s.Records) / el.Seconds()
	}
	what := "imported"
	if dry {
		what = "would import (dry run)"
	}
	fmt.Fprintf(w, "%s: %d, unchanged: %d, pending: %d, rejected: %d, warnings: %d (%d records in %s, %s/s)\n",
		what, s.Imported, s.Unchanged, s.Pending, s.Rejected, s.Warnings, s.Records, el.Round(time.Millisecond), strconv.FormatFloat(rate, 'f', 0, 64))
}
