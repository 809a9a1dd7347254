package practice

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// Importer imports files of practice records through an Applier, each
// record in its own store transaction.
type Importer struct {
	Applier *records.Applier
	Read    ReadOptions
	// Workers is how many records are applied at once (default 256).
	// Each is still its own transaction; several in flight let the SQLite
	// store commit them in one fsync and one index flush (group commit,
	// up to 256 a batch), which is where the import rate comes from: 256
	// ran ~35 % faster than 64 (BENCHMARKS.md). Records that depend on one another may then
	// commit in either order: the pending mechanism resolves that.
	Workers int
	// Rejects receives one NDJSON line per rejected record (nil: none).
	Rejects io.Writer
	// Progress, if set, is told of every record and of the bytes read.
	Progress *Progress
	// Findings, if set, receives one line per warning and alert of every
	// record, including the records an import completed (a dose that
	// waited for its clearance): severity, code, record, where, field and
	// message (FormatFinding). The summary's count alone says no more
	// than that there were some.
	Findings io.Writer

	findMu sync.Mutex
}

// FormatFinding is a finding of a record as `kapbridge import` lists it:
//
//	alert dosing.not_cleared session/s-late (visits.ndjson:12) actual_start: ...
//
// where is "file:line" of the record's input; for a record the import
// completed rather than read (it waited, and the record at where let it
// map) it is "with file:line".
func FormatFinding(p mappings.Problem, kind mappings.Kind, id, where string) string {
	s := p.Severity + " " + p.Code + " " + string(kind) + "/" + id
	if where != "" {
		s += " (" + where + ")"
	}
	if p.Field != "" {
		s += " " + p.Field
	}
	return s + ": " + p.Message
}

// findings writes the warnings of a result and of the results it
// carries.
func (im *Importer) findings(res records.Result, where string) int64 {
	var n int64
	for _, w := range res.Warnings {
		n++
		if im.Findings != nil {
			im.findMu.Lock()
			fmt.Fprintln(im.Findings, FormatFinding(w, res.Kind, res.ID, where))
			im.findMu.Unlock()
		}
	}
	for _, rel := range res.Related {
		w := where
		if !strings.HasPrefix(w, "with ") {
			w = "with " + w
		}
		n += im.findings(rel, w)
	}
	return n
}

// ImportSummary counts what an import did.
type ImportSummary struct {
	Records   int64 `json:"records"`   // records read (good and bad)
	Imported  int64 `json:"imported"`  // created or updated (including pending records completed later in the import)
	Unchanged int64 `json:"unchanged"` // already held as they are
	Pending   int64 `json:"pending"`   // stored, waiting for records not yet known (at the end of the import)
	Rejected  int64 `json:"rejected"`  // in the rejects file
	Warnings  int64 `json:"warnings"`  // warnings over all records
	Resolved  int64 `json:"resolved"`  // earlier pending records this import completed
}

// Reject is one line of the rejects file; Reasons are the record's
// problems as text (mappings.Problem.String).
type Reject struct {
	Line    int             `json:"line"`
	File    string          `json:"file"`
	Kind    mappings.Kind   `json:"kind,omitempty"`
	ID      string          `json:"id,omitempty"`
	Record  json.RawMessage `json:"record"`
	Reasons []string        `json:"reasons"`
}

// ImportFile is one input: a name for messages and the rejects file, its
// size if known (for the progress ETA) and how to open it.
type ImportFile struct {
	Name   string
	Size   int64
	Format Format
	Open   func() (io.ReadCloser, error)
}

// FileInput is an ImportFile for a path ("-" is standard input, read as
// NDJSON or JSON).
func FileInput(path string, stdin io.Reader) (ImportFile, error) {
	if path == "-" {
		return ImportFile{Name: "-", Size: -1, Format: FormatJSON, Open: func() (io.ReadCloser, error) { return io.NopCloser(stdin), nil }}, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ImportFile{}, fmt.Errorf("practice: %w", err)
	}
	if fi.IsDir() {
		return ImportFile{}, fmt.Errorf("practice: %s is a directory", path)
	}
	return ImportFile{Name: path, Size: fi.Size(), Format: FormatOf(path), Open: func() (io.ReadCloser, error) { return os.Open(path) }}, nil
}

type job struct {
	file string
	item Item
}

// Import reads every file in order and applies its records. It returns an
// error only when it could not go on (a file unreadable, the store
// failing); rejected records are counted, not errors.
func (im *Importer) Import(ctx context.Context, files []ImportFile) (ImportSummary, error) {
	var sum ImportSummary
	workers := im.Workers
	if workers <= 0 {
		workers = 256
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var rejMu sync.Mutex
	enc := (*json.Encoder)(nil)
	if im.Rejects != nil {
		enc = json.NewEncoder(im.Rejects)
		enc.SetEscapeHTML(false)
	}
	var rejErr error
	reject := func(file string, it Item, kind mappings.Kind, id string, reasons []string) {
		atomic.AddInt64(&sum.Rejected, 1)
		if enc == nil {
			return
		}
		r := Reject{Line: it.Line, File: file, Kind: kind, ID: id, Record: rawRecord(it.Raw), Reasons: reasons}
		if it.Raw == nil && file == "" {
			r.Record = json.RawMessage("null") // a stored record: see its kind and id
		}
		rejMu.Lock()
		if err := enc.Encode(r); err != nil && rejErr == nil {
			rejErr = err
			cancel(fmt.Errorf("practice: write rejects: %w", err))
		}
		rejMu.Unlock()
	}

	jobs := make(chan job, workers*4)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				im.one(ctx, cancel, j, &sum, reject)
			}
		}()
	}

	var readErr error
	for _, f := range files {
		if readErr = im.readFile(ctx, f, jobs); readErr != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if im.Progress != nil {
		im.Progress.Finish()
	}
	if err := context.Cause(ctx); err != nil && readErr == nil {
		readErr = err
	}
	if readErr != nil {
		return sum, readErr
	}
	pending, err := im.Applier.Pending(context.WithoutCancel(ctx))
	if err != nil {
		return sum, err
	}
	sum.Pending = int64(len(pending))
	return sum, nil
}

func (im *Importer) readFile(ctx context.Context, f ImportFile, jobs chan<- job) error {
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("practice: open %s: %w", f.Name, err)
	}
	defer rc.Close()
	var r io.Reader = rc
	if im.Progress != nil {
		im.Progress.StartFile(f.Name, f.Size)
		r = &countingReader{r: rc, p: im.Progress}
	}
	err = Read(r, f.Format, im.Read, func(it Item) error {
		select {
		case jobs <- job{file: f.Name, item: it}:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	if err != nil {
		return fmt.Errorf("practice: %s: %w", f.Name, err)
	}
	return nil
}

// one applies one item.
func (im *Importer) one(ctx context.Context, cancel context.CancelCauseFunc, j job, sum *ImportSummary, reject func(string, Item, mappings.Kind, string, []string)) {
	if ctx.Err() != nil {
		return
	}
	atomic.AddInt64(&sum.Records, 1)
	defer func() {
		if im.Progress != nil {
			im.Progress.Record()
		}
	}()
	it := j.item
	if it.Err != nil {
		reject(j.file, it, it.Err.Record.Kind, it.Err.Record.ID, mappings.Texts(it.Err.Problems))
		return
	}
	res, err := im.Applier.Apply(ctx, it.Record)
	if err != nil {
		cancel(err)
		return
	}
	atomic.AddInt64(&sum.Warnings, im.findings(res, fmt.Sprintf("%s:%d", j.file, it.Line)))
	switch res.Status {
	case records.StatusCreated, records.StatusUpdated:
		atomic.AddInt64(&sum.Imported, 1)
	case records.StatusUnchanged, records.StatusPending:
		// Pending is counted once, at the end, from the store.
		if res.Status == records.StatusUnchanged {
			atomic.AddInt64(&sum.Unchanged, 1)
		}
	case records.StatusRejected:
		h := it.Record.RecordHeader()
		reject(j.file, it, h.Kind, h.ID, mappings.Texts(res.Errors))
	}
	im.related(j, res.Related, sum, reject)
}

// related counts the pending records a record completed, however deep the
// chain (a course completing sessions completing observations), and
// reports the ones that failed once completed: a record that waited and
// then broke a check is stored as rejected, and would otherwise go
// unnoticed. Their line is 0: they came from an earlier line or import.
func (im *Importer) related(j job, rs []records.Result, sum *ImportSummary, reject func(string, Item, mappings.Kind, string, []string)) {
	for _, r := range rs {
		switch r.Status {
		case records.StatusCreated:
			atomic.AddInt64(&sum.Resolved, 1)
			atomic.AddInt64(&sum.Imported, 1)
		case records.StatusRejected:
			reasons := append([]string{fmt.Sprintf("completed by %s line %d, then failed:", j.file, j.item.Line)}, mappings.Texts(r.Errors)...)
			reject("", Item{}, r.Kind, r.ID, reasons)
		}
		im.related(j, r.Related, sum, reject)
	}
}

// rawRecord is the original record for the rejects file: as it was if it
// is JSON, else as a string (a truncated or non-UTF-8 record).
func rawRecord(raw []byte) json.RawMessage {
	if len(raw) > 0 && json.Valid(raw) {
		return raw
	}
	b, _ := json.Marshal(string(raw)) // invalid UTF-8 becomes U+FFFD here, in the report only
	return b
}

type countingReader struct {
	r io.Reader
	p *Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.Bytes(int64(n))
	return n, err
}
