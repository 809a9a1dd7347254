package sqlstore

import (
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// The index tables and how fhir.IndexEntry values map onto their rows.
// Both dialects share the table and column names; only the column types
// and the MVCC columns (from_seq, to_seq) differ.

// maxSeq is to_seq of a current row in SQLite (PostgreSQL uses NULL).
const maxSeq = int64(9223372036854775807)

// colKind is the Go type of a value column: text, integer or real.
type colKind byte

const (
	kText colKind = 't'
	kInt  colKind = 'i'
	kReal colKind = 'f'
)

// indexTable is one search_* table: its value columns (after tenant and
// type, before id and version_id), param first.
type indexTable struct {
	name  string
	cols  []string
	kinds []colKind
}

const (
	tToken = iota
	tString
	tDate
	tNumber
	tRef
	tURI
	tComposite
	numTables
)

// maxParts is how many components of a composite the table flattens.
const maxParts = 3

var indexTables = func() [numTables]indexTable {
	var t [numTables]indexTable
	t[tToken] = indexTable{name: "search_token", cols: []string{"param", "code", "system", "type_system", "type_code", "text"}}
	t[tString] = indexTable{name: "search_string", cols: []string{"param", "norm", "exact"}}
	t[tDate] = indexTable{name: "search_date", cols: []string{"param", "lo", "hi"}}
	t[tNumber] = indexTable{name: "search_number", cols: []string{"param", "lo", "hi", "system", "code"}}
	t[tRef] = indexTable{name: "search_ref", cols: []string{"param", "ref_id", "ref_type", "url", "ref_version"}}
	t[tURI] = indexTable{name: "search_uri", cols: []string{"param", "uri"}}
	comp := []string{"param"}
	for i := 1; i <= maxParts; i++ {
		n := strconv.Itoa(i)
		comp = append(comp, "s"+n, "c"+n, "e"+n, "nlo"+n, "nhi"+n, "dlo"+n, "dhi"+n)
	}
	t[tComposite] = indexTable{name: "search_composite", cols: comp}
	for i := range t {
		t[i].kinds = make([]colKind, len(t[i].cols))
		for j, c := range t[i].cols {
			switch {
			case c == "lo" || c == "hi":
				if i == tDate {
					t[i].kinds[j] = kInt
				} else {
					t[i].kinds[j] = kReal
				}
			case strings.HasPrefix(c, "nlo") || strings.HasPrefix(c, "nhi"):
				t[i].kinds[j] = kReal
			case strings.HasPrefix(c, "dlo") || strings.HasPrefix(c, "dhi"):
				t[i].kinds[j] = kInt
			default:
				t[i].kinds[j] = kText
			}
		}
	}
	return t
}()

// tableOf maps a parameter or entry type to its table.
func tableOf(typ string) (int, bool) {
	switch typ {
	case "token":
		return tToken, true
	case "string":
		return tString, true
	case "date":
		return tDate, true
	case "number", "quantity":
		return tNumber, true
	case "reference":
		return tRef, true
	case "uri":
		return tURI, true
	case "composite":
		return tComposite, true
	}
	return 0, false
}

// eachIndexRow calls fn with the table and row (prefix followed by the
// table's columns, in order) of each entry that has a table. Entries of
// types without a table (special) are skipped. A resource may carry one
// value twice: the rows are not deduplicated here (see indexRows).
func eachIndexRow(entries []fhir.IndexEntry, prefix []any, fn func(t int, row []any)) {
	for i := range entries {
		e := &entries[i]
		if e.Param == "_id" || e.Param == "_lastUpdated" {
			// Answered from search_res's own columns (see clause); rows for
			// them would be written on every version and never read.
			continue
		}
		if e.Type == "reference" && e.Text == "identifier" {
			// A Reference.identifier (for :identifier, which this store
			// does not support yet): stored as a reference row it would
			// look like an absolute URL equal to the identifier value.
			continue
		}
		t, ok := tableOf(e.Type)
		if !ok {
			continue
		}
		row := entryRow(append(make([]any, 0, len(prefix)+len(indexTables[t].cols)), prefix...), t, e)
		if row == nil {
			continue
		}
		fn(t, row)
	}
}

// indexRows turns a version's entries into rows per table, in the tables'
// column order, without duplicates (PostgreSQL would store a repeated
// value twice for nothing).
func indexRows(entries []fhir.IndexEntry) [numTables][][]any {
	var out [numTables][][]any
	seen := map[string]bool{}
	var key strings.Builder
	eachIndexRow(entries, nil, func(t int, row []any) {
		key.Reset()
		key.WriteString(strconv.Itoa(t))
		for _, v := range row {
			key.WriteByte(0)
			switch v := v.(type) {
			case string:
				key.WriteString(v)
			case int64:
				key.WriteString(strconv.FormatInt(v, 10))
			case float64:
				key.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
		if seen[key.String()] {
			return
		}
		seen[key.String()] = true
		out[t] = append(out[t], row)
	})
	return out
}

// entryRow appends e's values for table t to dst; nil if e cannot be
// stored.
func entryRow(dst []any, t int, e *fhir.IndexEntry) []any {
	switch t {
	case tToken:
		return append(dst, e.Param, e.Code, e.System, e.TypeSystem, e.TypeCode, e.Text)
	case tString:
		return append(dst, e.Param, e.Text, e.Exact)
	case tDate:
		return append(dst, e.Param, e.Lo, e.Hi)
	case tNumber:
		return append(dst, e.Param, e.NumLo, e.NumHi, e.System, e.Code)
	case tRef:
		return append(dst, e.Param, e.RefID, e.RefType, e.Code, e.RefVersion)
	case tURI:
		return append(dst, e.Param, e.Code)
	case tComposite:
		if len(e.Parts) == 0 || len(e.Parts) > maxParts {
			return nil // cannot be matched; better absent than wrong
		}
		row := append(dst, e.Param)
		for i := range maxParts {
			var p fhir.IndexEntry
			if i < len(e.Parts) {
				p = e.Parts[i]
			}
			row = append(row, partValues(&p)...)
		}
		return row
	}
	return nil
}

// partValues flattens one composite component into s, c, e, nlo, nhi, dlo,
// dhi (see the migration for which type uses which column).
func partValues(p *fhir.IndexEntry) []any {
	c := p.Columns()
	return []any{c.S, c.C, c.E, c.NumLo, c.NumHi, c.DateLo, c.DateHi}
}

// colMap names, for one table or composite component, the columns a value
// condition compares with.
type colMap struct {
	system, code, text, typeSystem, typeCode string // token
	norm, exact                              string // string
	uri                                      string
	lo, hi                                   string // date, number, quantity
	refType, refID, url                      string
}

func tableCols(t int) colMap {
	switch t {
	case tToken:
		return colMap{system: "system", code: "code", text: "text", typeSystem: "type_system", typeCode: "type_code"}
	case tString:
		return colMap{norm: "norm", exact: "exact"}
	case tDate:
		return colMap{lo: "lo", hi: "hi"}
	case tNumber:
		return colMap{lo: "lo", hi: "hi", system: "system", code: "code"}
	case tRef:
		return colMap{refType: "ref_type", refID: "ref_id", url: "url"}
	case tURI:
		return colMap{uri: "uri"}
	}
	return colMap{}
}

// partCols maps component i (1-based) of a composite of type typ.
func partCols(i int, typ string) colMap {
	n := strconv.Itoa(i)
	s, c, e := "s"+n, "c"+n, "e"+n
	switch typ {
	case "token":
		return colMap{system: s, code: c, text: e}
	case "string":
		return colMap{norm: c, exact: e}
	case "uri":
		return colMap{uri: c}
	case "reference":
		return colMap{refType: s, refID: c, url: e}
	case "date":
		return colMap{lo: "dlo" + n, hi: "dhi" + n}
	case "number", "quantity":
		return colMap{lo: "nlo" + n, hi: "nhi" + n, system: s, code: c}
	}
	return colMap{}
}
