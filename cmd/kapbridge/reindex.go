package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// reindex runs `kapbridge reindex [--store DSN] [--base-url URL] [--page N]
// [--restart]`: the search-index rows and identifiers of every live
// resource rebuilt from its stored JSON, as a write computes them today
// (write.Writer.Index), so data stored before a change to what is indexed
// (Reference.identifier for :identifier, say) is found the same way as
// data written since. A page of resources per transaction; the cursor is
// saved with each page, so a run that is stopped resumes where it was
// (--restart starts over). It may run while serve does: each resource's
// rows are replaced in one transaction.
func reindex(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("kapbridge reindex", flag.ContinueOnError)
	fs.SetOutput(stderr)
	store := fs.String("store", env("KAPBRIDGE_STORE", "./kapbridge-data/kapbridge.db"), "store: an SQLite file path, or a postgres://... URL (KAPBRIDGE_STORE)")
	// Absolute references to the server's own base index as local ones:
	// the base must be serve's.
	base := fs.String("base-url", env("KAPBRIDGE_BASE_URL", "http://"+env("KAPBRIDGE_LISTEN", "127.0.0.1:8080")),
		"the public base URL serve runs with (KAPBRIDGE_BASE_URL; default http://<KAPBRIDGE_LISTEN>, as serve's)")
	page := fs.Int("page", 500, "resources per transaction")
	restart := fs.Bool("restart", false, "start from the beginning even if a run was stopped part way")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("reindex takes no arguments, got %q", fs.Args())}
	}
	if *page < 1 {
		return usageError{fmt.Sprintf("-page %d: at least 1", *page)}
	}
	st, err := sqlstore.Open(ctx, *store)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	ri, ok := st.(sqlstore.Reindexer)
	if !ok {
		return fmt.Errorf("the store at %s cannot reindex", *store)
	}
	w := write.Writer{Base: *base}
	index := func(v fhir.Version) (fhir.Index, error) {
		res, err := fhir.ParseJSON(v.JSON, fhir.StoredLimits)
		if err != nil {
			return fhir.Index{}, err
		}
		return w.Index(res), nil
	}
	first := true
	for {
		p, err := ri.ReindexPage(ctx, *restart && first, *page, index)
		if err != nil {
			return fmt.Errorf("reindex: %w (run kapbridge reindex again to resume after the last page done)", err)
		}
		if first && p.Count > int64(p.Page) {
			fmt.Fprintf(stderr, "resuming a stopped run: %d resources were done before\n", p.Count-int64(p.Page))
		}
		first = false
		if p.Done {
			fmt.Fprintf(stdout, "reindexed %d live resources\n", p.Count)
			return nil
		}
		fmt.Fprintf(stderr, "%d resources reindexed, up to %s/%s\n", p.Count, p.After.Type, p.After.ID)
	}
}
