package fhirpath

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// seedExpressions are the expressions of the official suite (when it is
// beside the repository) and of this package's tables.
func seedExpressions(f *testing.F) []string {
	var out []string
	for _, e := range []string{
		"dataAbsentReason.empty() or value.empty()",
		"hasValue() or (children().count() > id.count())",
		"name.where(given = 'x').exists()", "2 + 2 /", "'abc", "@2015-13-01",
		"text.`div`.htmlChecks()", "component.value.ofType(Quantity).value > 15.9 'kPa'",
		"(1 | 2 | 3).aggregate($this + $total, 0)", "%`vs-administrative-gender`",
		"@2014-01-01T08.highBoundary(17)", "1.587.lowBoundary(2)", "'a,b'.split(',').join('-')",
		"Patient.name.sort(-family, -given.first())", "subject.resolve().name",
	} {
		out = append(out, e)
	}
	dir := filepath.Join("..", "..", "..", "shared", "fhirpath-tests")
	if _, err := os.Stat(filepath.Join(dir, "tests-fhir-r4.xml")); err == nil {
		_, suite := loadSuite(f)
		for _, g := range suite.Groups {
			for _, t := range g.Tests {
				out = append(out, t.Expr.Text)
			}
		}
	}
	return out
}

// FuzzParse: no text makes the parser panic, and every refusal is an
// *Error placed inside the text.
func FuzzParse(f *testing.F) {
	for _, e := range seedExpressions(f) {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, src string) {
		// Not through the cache, which would keep every fuzzed text.
		_, err := compile(src, Options{Strict: true, ContextType: "Observation"})
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%q: error of type %T: %v", src, err, err)
		}
		if e.Pos < 0 || e.Pos > len(src) || e.Line < 1 || e.Col < 1 {
			t.Fatalf("%q: error outside the text: %+v", src, e)
		}
		if e.Kind != Syntax && e.Kind != Semantic {
			t.Fatalf("%q: compile error of kind %s", src, e.Kind)
		}
	})
}

// FuzzEvaluate: no expression makes evaluation over a sample Observation
// and Patient panic; failures are *Error.
func FuzzEvaluate(f *testing.F) {
	for _, e := range seedExpressions(f) {
		f.Add(e)
	}
	obs := mustParse(f, observationJSON)
	pat := mustParse(f, patientJSON)
	f.Fuzz(func(t *testing.T, src string) {
		e, err := compile(src, Options{})
		if err != nil {
			return // FuzzParse's business
		}
		for _, res := range []*fhir.Value{obs, pat} {
			_, err := e.Evaluate(res, nil)
			if err != nil {
				var fe *Error
				if !errors.As(err, &fe) {
					t.Fatalf("%q: error of type %T: %v", src, err, err)
				}
			}
		}
	})
}

// FuzzNarrative: what the narrative reader accepts is well-formed XML to
// encoding/xml too, with only the allowed elements and no event
// attribute or script URL, read the way a browser's XML parser would.
func FuzzNarrative(f *testing.F) {
	for _, s := range []string{
		`<div xmlns="http://www.w3.org/1999/xhtml"><p>ok <a href="http://example.org">link</a></p><img src="#x"/></div>`,
		`<div xmlns="http://www.w3.org/1999/xhtml">a &amp; b &nbsp; &#x41;<!-- c --></div>`,
		`<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>`,
		`<div xmlns="http://www.w3.org/1999/xhtml"><a href=" java&#x09;script:alert(1)">x</a></div>`,
		`<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">a</p></div>`,
		`<div xmlns="http://www.w3.org/1999/xhtml"><p>unclosed</div>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, div string) {
		if _, err := scanNarrative(div); err != nil {
			return
		}
		d := xml.NewDecoder(strings.NewReader(div))
		d.Strict = true
		d.Entity = xml.HTMLEntity
		for {
			tok, err := d.Token()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("accepted, but encoding/xml: %v\n%q", err, div)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if se.Name.Space != xhtmlNS || !narrativeElements[se.Name.Local] {
					t.Fatalf("accepted element %v\n%q", se.Name, div)
				}
				for _, a := range se.Attr {
					v := strings.ToLower(strings.Join(strings.Fields(a.Value), ""))
					if strings.HasPrefix(strings.ToLower(a.Name.Local), "on") || strings.HasPrefix(v, "javascript:") {
						t.Fatalf("accepted attribute %v=%q\n%q", a.Name, a.Value, div)
					}
				}
			}
		}
	})
}
