package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// export runs `kapbridge export --course ID [--store DSN] [--out FILE]`:
// the course back as practice records (NDJSON), with what prescribers
// changed in the FHIR resources merged in (mappings/records/export.go).
// The records go to --out or stdout; the summary goes to stderr.
func export(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("kapbridge export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	course := fs.String("course", "", "id of the course to export (required)")
	store := fs.String("store", env("KAPBRIDGE_STORE", "./kapbridge-data/kapbridge.db"), "store: an SQLite file path, or a postgres://... URL (KAPBRIDGE_STORE)")
	out := fs.String("out", "", "write the NDJSON here instead of stdout")
	practiceNS := fs.String("practice", env("KAPBRIDGE_PRACTICE", defaultPractice), "the practice's namespace, as the records were imported under (KAPBRIDGE_PRACTICE)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("export takes no arguments, got %q", fs.Args())}
	}
	if *course == "" {
		return usageError{"export needs --course ID"}
	}
	st, err := sqlstore.Open(ctx, *store)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()

	w := stdout
	var file *os.File
	if *out != "" {
		// Written beside the target and renamed on success, so a failed
		// export never leaves a half file where a good one is expected.
		file, err = os.CreateTemp(filepath.Dir(*out), ".kapbridge-export-*")
		if err != nil {
			return err
		}
		defer func() {
			if file != nil {
				file.Close()
				os.Remove(file.Name())
			}
		}()
		w = file
	}
	bw := bufio.NewWriter(w)
	ex := &records.Exporter{Store: st, Mapper: &mappings.Mapper{Practice: *practiceNS}, Tenant: fhir.DefaultTenant}
	sum, err := ex.Export(ctx, *course, bw)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return err
		}
		if err := os.Rename(file.Name(), *out); err != nil {
			return err
		}
		file = nil
	}
	printExportSummary(stderr, *course, sum)
	return nil
}

func printExportSummary(w io.Writer, course string, sum records.ExportSummary) {
	total := 0
	kinds := make([]string, 0, len(sum.Records))
	for k, n := range sum.Records {
		total += n
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "exported course %s: %d records (%v)\n", course, total, kinds)
	for _, m := range sum.Merged {
		fmt.Fprintln(w, "  merged from FHIR:", m)
	}
	for _, k := range sum.Kept {
		fmt.Fprintln(w, "  not exported:", k.String())
	}
}
