package practice

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kapbridge/kapbridge/mappings"
)

// CSV import (documented in CSV.md). A header row names the columns; a
// column is a record field by its JSON name, nested fields joined by dots
// (name.family, dose.mg, vitals.systolic); list fields hold values
// separated by "|". Screening scores go in one column per instrument
// (phq9, gad7, ...: the items separated by "|") with phq9.total,
// phq9.difficulty and auditc.sex beside them. The kind is the kind column
// if there is one, else what the header's columns show (CSV.md). Each row
// becomes the JSON record it spells and goes through mappings.Decode, so a
// CSV row is checked exactly like a JSON record.

// kindSignatures tell a header's kind when it has no kind column: the
// first kind all of whose signature columns are present.
var kindSignatures = []struct {
	kind mappings.Kind
	cols []string
}{
	{mappings.KindClient, []string{"birth_date"}},
	{mappings.KindPractitioner, []string{"role", "credential"}},
	{mappings.KindSession, []string{"planned_start"}},
	{mappings.KindCourse, []string{"route", "start"}},
	{mappings.KindObservation, []string{"session", "time"}},
	{mappings.KindNote, []string{"author", "text"}},
	{mappings.KindConsent, []string{"recipient", "scope"}},
	{mappings.KindScreening, []string{"performed_by"}},
}

// dateFields and dateTimeFields are the columns --date-format applies to.
var (
	dateFields     = map[string]bool{"birth_date": true, "start": true, "end": true, "signed": true}
	dateTimeFields = map[string]bool{"updated": true, "planned_start": true, "planned_end": true, "actual_start": true, "actual_end": true, "time": true, "date": true}
)

func readCSV(br *bufio.Reader, opts ReadOptions, fn func(Item) error) error {
	layout := goLayout(opts.DateFormat)
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = 0 // the header sets it; short rows are ErrFieldCount
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fn(Item{Line: 1, Err: invalidAt(1, "CSV header: %v", err)})
	}
	for i, h := range header {
		header[i] = strings.TrimSpace(h)
	}
	kindCol := slices.Index(header, "kind")
	headerKind := mappings.Kind("")
	if kindCol < 0 {
		headerKind = kindOfHeader(header)
		if headerKind == "" {
			return fn(Item{Line: 1, Err: invalidAt(1, "CSV header: no kind column, and the columns %s match no column set of CSV.md", strings.Join(header, ", "))})
		}
	}
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := cr.FieldPos(0)
		var pe *csv.ParseError
		if err != nil && errors.As(err, &pe) && pe.Err != csv.ErrFieldCount {
			// A broken quote: csv resumes at the next line.
			if ferr := fn(Item{Line: pe.StartLine, Err: invalidAt(pe.StartLine, "CSV: %v", pe.Err)}); ferr != nil {
				return ferr
			}
			continue
		}
		if err != nil && !errors.As(err, &pe) {
			return fmt.Errorf("practice: read CSV: %w", err)
		}
		raw := rowJSON(header, row)
		it := Item{Line: line, Raw: raw}
		switch {
		case err != nil:
			it.Err = invalidAt(line, "row has %d columns, the header %d (a missing or extra column)", len(row), len(header))
		default:
			kind := headerKind
			if kindCol >= 0 {
				kind = mappings.Kind(strings.TrimSpace(row[kindCol]))
			}
			if rec, err := csvRecord(kind, header, row, layout); err != nil {
				it.Err = invalidAt(line, "%v", err)
			} else {
				it.Record, it.Err = decodeAt(line, rec)
			}
		}
		if ferr := fn(it); ferr != nil {
			return ferr
		}
	}
}

func kindOfHeader(header []string) mappings.Kind {
	for _, sig := range kindSignatures {
		ok := true
		for _, c := range sig.cols {
			if !slices.Contains(header, c) {
				ok = false
			}
		}
		if ok {
			return sig.kind
		}
	}
	return ""
}

// rowJSON is the row as the rejects file shows it.
func rowJSON(header, row []string) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i, cell := range row {
		name := fmt.Sprintf("column%d", i+1)
		if i < len(header) {
			name = header[i]
		}
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		v, _ := json.Marshal(cell)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// csvRecord builds the JSON record a row spells.
func csvRecord(kind mappings.Kind, header, row []string, layout string) ([]byte, error) {
	t, ok := mappings.RecordType(kind)
	if !ok {
		return nil, fmt.Errorf("kind: unknown kind %q", kind)
	}
	rec := map[string]any{"kind": string(kind)}
	var instruments []map[string]any
	instrument := func(name string) map[string]any {
		for _, in := range instruments {
			if in["instrument"] == name {
				return in
			}
		}
		in := map[string]any{"instrument": name}
		instruments = append(instruments, in)
		return in
	}
	var problems []string
	for i, col := range header {
		cell := row[i]
		if col == "kind" {
			continue
		}
		if len(cell) > MaxCellBytes {
			problems = append(problems, fmt.Sprintf("%s: cell is %d bytes, more than the limit of %d", col, len(cell), MaxCellBytes))
			continue
		}
		if !utf8.ValidString(cell) {
			problems = append(problems, fmt.Sprintf("%s: invalid UTF-8 at byte %d of the cell", col, invalidUTF8At([]byte(cell))))
			continue
		}
		cell = strings.TrimSpace(cell)
		if cell == "" {
			continue // an empty cell is an absent field
		}
		path := strings.Split(col, ".")
		if kind == mappings.KindScreening && slices.Contains(mappings.Instruments, path[0]) {
			in := instrument(path[0])
			v, err := instrumentCell(path, cell)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", col, err))
				continue
			}
			in[fieldName(path)] = v
			continue
		}
		ft := fieldType(t, path)
		v, err := cellValue(ft, path[len(path)-1], cell, layout)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", col, err))
			continue
		}
		setPath(rec, path, v)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	if len(instruments) > 0 {
		list := make([]any, len(instruments))
		for i, in := range instruments {
			list[i] = in
		}
		rec["instruments"] = list
	}
	return json.Marshal(rec)
}

func fieldName(path []string) string {
	if len(path) == 1 {
		return "items"
	}
	return path[1]
}

// instrumentCell reads phq9 (items "0|1|2"), phq9.total, phq9.difficulty
// or auditc.sex.
func instrumentCell(path []string, cell string) (any, error) {
	switch fieldName(path) {
	case "items":
		return intList(cell)
	case "total", "difficulty":
		return json.Number(cell), nil
	}
	return cell, nil
}

func intList(cell string) ([]any, error) {
	var out []any
	for _, p := range strings.Split(cell, "|") {
		p = strings.TrimSpace(p)
		if _, err := strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("%q is not a list of whole numbers separated by |", cell)
		}
		out = append(out, json.Number(p))
	}
	return out, nil
}

// fieldType follows path through t's JSON fields; nil if a segment is
// unknown (mappings.Decode then names the unknown field).
func fieldType(t reflect.Type, path []string) reflect.Type {
	for _, seg := range path {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := jsonField(t, seg)
		if !ok {
			return nil
		}
		t = f
	}
	return t
}

func jsonField(t reflect.Type, name string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if ft, ok := jsonField(f.Type, name); ok {
				return ft, true
			}
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name {
			return f.Type, true
		}
	}
	return nil, false
}

// cellValue converts a cell to the JSON value of a field of type ft.
func cellValue(ft reflect.Type, name, cell, layout string) (any, error) {
	if ft == nil {
		return cell, nil // unknown field: Decode reports it
	}
	if ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	switch ft.Kind() {
	case reflect.Slice:
		var out []any
		for _, p := range strings.Split(cell, "|") {
			v, err := cellValue(ft.Elem(), name, strings.TrimSpace(p), layout)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case reflect.Bool:
		switch strings.ToLower(cell) {
		case "true", "yes", "y", "1":
			return true, nil
		case "false", "no", "n", "0":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not true or false", cell)
	case reflect.Int, reflect.Float64:
		if _, err := strconv.ParseFloat(cell, 64); err != nil {
			return nil, fmt.Errorf("%q is not a number", cell)
		}
		return json.Number(cell), nil
	}
	if ft == reflect.TypeFor[time.Time]() || dateFields[name] || dateTimeFields[name] {
		return csvDate(name, cell, layout)
	}
	return cell, nil
}

// csvDate passes ISO 8601 through (Decode checks it) and converts a value
// in the --date-format layout. A layout without a zone reads as UTC.
func csvDate(name, cell, layout string) (string, error) {
	if layout == "" || looksISO(cell) {
		return cell, nil
	}
	t, err := time.ParseInLocation(layout, cell, time.UTC)
	if err != nil {
		return "", fmt.Errorf("%q is neither ISO 8601 nor in the date format %q", cell, layout)
	}
	if dateFields[name] {
		return t.Format(time.DateOnly), nil
	}
	if name == "date" && !strings.ContainsAny(layout, "15030405") {
		return t.Format(time.DateOnly), nil // a screening or note date without a time
	}
	return t.Format(time.RFC3339), nil
}

func looksISO(s string) bool {
	if _, err := time.Parse(time.DateOnly, s); err == nil {
		return true
	}
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// setPath sets rec[path...] = v, making the objects on the way.
func setPath(rec map[string]any, path []string, v any) {
	m := rec
	for _, seg := range path[:len(path)-1] {
		next, ok := m[seg].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[seg] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// goLayout turns a strftime-like format into a Go layout; a format
// without % is a Go layout already.
func goLayout(f string) string {
	if !strings.Contains(f, "%") {
		return f
	}
	repl := map[byte]string{
		'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'e': "_2", 'H': "15", 'I': "03", 'M': "04", 'S': "05",
		'p': "PM", 'b': "Jan", 'B': "January", 'a': "Mon", 'A': "Monday", 'z': "-0700", 'Z': "MST", 'f': "000000", '%': "%",
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] == '%' && i+1 < len(f) {
			if r, ok := repl[f[i+1]]; ok {
				b.WriteString(r)
				i++
				continue
			}
		}
		b.WriteByte(f[i])
	}
	return b.String()
}
