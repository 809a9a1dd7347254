package practice

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/kapbridge/kapbridge/mappings"
)

// Item is one record an import file or request body yields: the record,
// or why the text at Line is not one. Raw is the original text of the
// record (for the rejects file); for CSV it is the row as a JSON object
// of column names to cells.
type Item struct {
	Line   int
	Record mappings.Record
	Raw    []byte
	// Err, when the text is not a record, lists its problems (each of
	// code mappings.CodeInvalidRecord, with Line set): Decode's, or the
	// reader's own (too long, not UTF-8, not JSON, a broken CSV row).
	Err *mappings.RecordError
}

// invalidAt is a reader's own problem with the text at line.
func invalidAt(line int, format string, args ...any) *mappings.RecordError {
	return mappings.InvalidRecord(format, args...).At(line)
}

// decodeAt decodes one record's text starting at line.
func decodeAt(line int, raw []byte) (mappings.Record, *mappings.RecordError) {
	rec, err := mappings.Decode(raw)
	if err == nil {
		return rec, nil
	}
	var re *mappings.RecordError
	if !errors.As(err, &re) { // Decode's errors are all *RecordError
		re = mappings.InvalidRecord("%v", err)
	}
	return nil, re.At(line)
}

// Format is an import file format.
type Format string

// The formats.
const (
	FormatJSON   Format = "json"   // one record, an array of records, or records one after another
	FormatNDJSON Format = "ndjson" // one record per line
	FormatCSV    Format = "csv"    // a header row, then one record per row (CSV.md)
)

// Limits of one record. A record is a few KB; far beyond is an export
// gone wrong (a file attached to a note), and reading it whole would let
// one line of a 2 GB file take the memory of the import.
const (
	MaxRecordBytes = 1 << 20   // one JSON record or CSV row
	MaxCellBytes   = 256 << 10 // one CSV cell or one JSON string
)

// ReadOptions tune the readers.
type ReadOptions struct {
	// DateFormat is the layout of CSV date and date-time cells when they
	// are not ISO 8601: a Go layout ("02/01/2006 15:04") or strftime-like
	// ("%d/%m/%Y %H:%M"); see CSV.md. Empty: ISO 8601 only.
	DateFormat string
}

// FormatOf picks a format from a file name: .csv is CSV, .ndjson and
// .jsonl NDJSON, anything else JSON, which the reader also recognises as
// NDJSON when the first line is a whole record.
func FormatOf(name string) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return FormatCSV
	case ".ndjson", ".jsonl":
		return FormatNDJSON
	}
	return FormatJSON
}

// Read reads records from r in format f, calling fn for each in file
// order. It is the one reader of the practice record format: `kapbridge
// import` reads files with it and the practice API request bodies, so a
// record's checks (size, UTF-8, mappings.Decode) and its line number do
// not depend on how it arrived. A bad record is an Item with Err set and reading goes on, except
// where the framing is lost (a JSON document cut short): then the last
// Item says so and Read stops. Read returns fn's first error or a read
// error. Memory is bounded by one record, not the file.
func Read(r io.Reader, f Format, opts ReadOptions, fn func(Item) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	// A byte order mark is common in files Windows programs export.
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	switch f {
	case FormatCSV:
		return readCSV(br, opts, fn)
	case FormatNDJSON:
		return readLines(br, 0, fn)
	case FormatJSON:
		return readJSON(br, fn)
	}
	return fmt.Errorf("practice: unknown format %q", f)
}

// decodeItem decodes one record's text, checking what mappings.Decode
// does not: size and UTF-8 (encoding/json would quietly replace invalid
// bytes with U+FFFD, changing a name or a note without anyone knowing).
func decodeItem(line int, raw []byte) Item {
	it := Item{Line: line, Raw: raw}
	if len(raw) > MaxRecordBytes {
		it.Err = invalidAt(line, "record is %d bytes, more than the limit of %d", len(raw), MaxRecordBytes)
		return it
	}
	if !utf8.Valid(raw) {
		it.Err = invalidAt(line, "invalid UTF-8 at byte %d of the record", invalidUTF8At(raw))
		return it
	}
	if n := longestString(raw); n > MaxCellBytes {
		it.Err = invalidAt(line, "a string of %d bytes, more than the limit of %d", n, MaxCellBytes)
		return it
	}
	it.Record, it.Err = decodeAt(line, raw)
	return it
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// longestString approximates the longest JSON string in raw (escapes
// counted as written): cheap, and only its order of magnitude matters.
func longestString(raw []byte) int {
	longest, cur, in, esc := 0, 0, false, false
	for _, c := range raw {
		switch {
		case !in:
			if c == '"' {
				in, cur = true, 0
			}
		case esc:
			esc = false
			cur++
		case c == '\\':
			esc = true
			cur++
		case c == '"':
			in = false
			longest = max(longest, cur)
		default:
			cur++
		}
	}
	return max(longest, cur)
}

// readLines reads NDJSON: every non-blank line is one record. A line
// longer than MaxRecordBytes is skipped without being held in memory.
func readLines(br *bufio.Reader, line int, fn func(Item) error) error {
	var buf []byte
	for {
		line++
		buf = buf[:0]
		tooLong := false
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if !tooLong {
				if len(buf)+len(chunk) > MaxRecordBytes+2 {
					tooLong = true
					buf = append(buf[:0], chunk[:min(len(chunk), 256)]...)
				} else {
					buf = append(buf, chunk...)
				}
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("practice: read line %d: %w", line, err)
		}
		var it Item
		switch t := bytes.TrimSpace(buf); {
		case tooLong:
			it = Item{Line: line, Raw: bytes.Clone(buf), Err: invalidAt(line, "line longer than the record limit of %d bytes", MaxRecordBytes)}
		case len(t) == 0:
			if err == io.EOF {
				return nil
			}
			continue
		default:
			it = decodeItem(line, bytes.Clone(t))
		}
		if ferr := fn(it); ferr != nil {
			return ferr
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readJSON reads a JSON array of records, one record, or records one
// after another; a first line that is a whole record means NDJSON.
func readJSON(br *bufio.Reader, fn func(Item) error) error {
	// Skip blank lines to the first non-blank one, counting them.
	line := 0
skip:
	for {
		b, err := br.Peek(1)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("practice: read: %w", err)
		}
		switch b[0] {
		case '\n':
			line++
			br.Discard(1)
			continue
		case ' ', '\t', '\r':
			br.Discard(1)
			continue
		}
		break skip
	}
	if b, _ := br.Peek(1); b[0] == '{' {
		// NDJSON when the first line alone is a complete object.
		first, _ := peekLine(br)
		if json.Valid(bytes.TrimSpace(first)) {
			return readLines(br, line, fn)
		}
	}
	lc := &newlineCounter{r: br, line: line + 1}
	dec := json.NewDecoder(lc)
	for {
		start := lc.lineAt(dec.InputOffset() + leadingSkip(dec))
		tok, err := peekDelim(dec)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fn(Item{Line: start, Err: invalidAt(start, "not JSON: %v", err)})
		}
		if tok != '[' {
			if stop, err := readValue(dec, lc, fn); stop || err != nil {
				return err
			}
			continue
		}
		if _, err := dec.Token(); err != nil {
			return fn(Item{Line: start, Err: invalidAt(start, "not JSON: %v", err)})
		}
		for dec.More() {
			if stop, err := readValue(dec, lc, fn); stop || err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			at := lc.lineAt(dec.InputOffset())
			return fn(Item{Line: at, Err: invalidAt(at, "the array does not end properly (a truncated file?): %v", err)})
		}
	}
}

// readValue decodes the next value of dec as a record. stop is set when
// the document is broken and where the next record starts is unknown.
func readValue(dec *json.Decoder, lc *newlineCounter, fn func(Item) error) (stop bool, err error) {
	start := lc.lineAt(dec.InputOffset() + leadingSkip(dec))
	var raw json.RawMessage
	if derr := dec.Decode(&raw); derr != nil {
		msg := derr.Error()
		if derr == io.EOF || errors.Is(derr, io.ErrUnexpectedEOF) {
			msg = "unexpected end of file (a truncated file?)"
		}
		return true, fn(Item{Line: start, Err: invalidAt(start, "invalid JSON: %s", msg)})
	}
	return false, fn(decodeItem(start, bytes.Clone(raw)))
}

// peekLine returns the buffered first line (without consuming it), up to
// the reader's buffer size.
func peekLine(br *bufio.Reader) ([]byte, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(min(n*4096, br.Size()))
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return b[:i], nil
		}
		if err != nil || len(b) == br.Size() {
			return b, err
		}
	}
}

// newlineCounter maps decoder offsets to line numbers, forgetting line
// starts once passed so memory stays bounded.
type newlineCounter struct {
	r      io.Reader
	line   int
	starts []int64
	off    int64
}

func (c *newlineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i, b := range p[:n] {
		if b == '\n' {
			c.starts = append(c.starts, c.off+int64(i)+1)
		}
	}
	c.off += int64(n)
	return n, err
}

func (c *newlineCounter) lineAt(off int64) int {
	i := 0
	for i < len(c.starts) && c.starts[i] <= off {
		i++
	}
	c.line += i
	c.starts = c.starts[i:]
	return c.line
}

// leadingSkip counts the bytes of whitespace and at most one comma the
// decoder will skip before its next value. It reads the decoder's buffer
// byte by byte, copying nothing.
func leadingSkip(dec *json.Decoder) int64 {
	br, _ := dec.Buffered().(io.ByteReader)
	var n int64
	comma := false
	for br != nil {
		c, err := br.ReadByte()
		switch {
		case err != nil:
			return n
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			n++
		case c == ',' && !comma:
			comma = true
			n++
		default:
			return n
		}
	}
	return n
}

// peekDelim returns the first byte of the next top-level value without
// consuming it ('[' for an array), or io.EOF at the end of input.
func peekDelim(dec *json.Decoder) (byte, error) {
	if !dec.More() {
		// More is false at the end of input or before a stray closing
		// bracket; Token tells the two apart.
		if _, err := dec.Token(); err != nil {
			return 0, err
		}
		return 0, errors.New("unexpected closing bracket")
	}
	// More has buffered the next non-space byte.
	br, _ := dec.Buffered().(io.ByteReader)
	for br != nil {
		c, err := br.ReadByte()
		if err != nil {
			break
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return c, nil
		}
	}
	return 0, nil
}
