package fhirpath

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// narrativeElements are the XHTML elements an R4 narrative may use
// (Narrative.div: "basic html formatting elements ... <a> elements,
// images and internally contained style attributes").
var narrativeElements = map[string]bool{
	"a": true, "abbr": true, "acronym": true, "b": true, "big": true, "blockquote": true,
	"br": true, "caption": true, "cite": true, "code": true, "col": true, "colgroup": true,
	"dd": true, "dfn": true, "div": true, "dl": true, "dt": true, "em": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "hr": true,
	"i": true, "img": true, "li": true, "ol": true, "p": true, "pre": true, "q": true,
	"samp": true, "small": true, "span": true, "strong": true, "sub": true, "sup": true,
	"table": true, "tbody": true, "td": true, "tfoot": true, "th": true, "thead": true,
	"tr": true, "tt": true, "ul": true, "var": true,
}

const xhtmlNS = "http://www.w3.org/1999/xhtml"

// checkNarrative applies the R4 narrative rules (txt-1, txt-2) to the
// text of a Narrative.div: well-formed XHTML whose root is a div in the
// XHTML namespace, only the permitted elements, no event-handler
// attributes, no javascript: URLs, and some content.
func checkNarrative(div string) error {
	content, err := scanNarrative(div)
	if err != nil {
		return err
	}
	if !content {
		return errNoContent
	}
	return nil
}

var errNoContent = errors.New("the narrative has no content")

// narrativeMarkup is txt-1: the markup rules of checkNarrative.
func narrativeMarkup(div string) error {
	_, err := scanNarrative(div)
	return err
}

// narrativeContent is txt-2: some non-whitespace content (text or an
// image). Markup that cannot be read is txt-1's to report.
func narrativeContent(div string) error {
	if content, err := scanNarrative(div); err == nil && !content {
		return errNoContent
	}
	return nil
}

// scanNarrative reads div, reporting whether it has content and the
// first markup rule it breaks.
func scanNarrative(div string) (content bool, err error) {
	d := xml.NewDecoder(strings.NewReader(div))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, fmt.Errorf("not well-formed XHTML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if roots++; roots > 1 || t.Name.Local != "div" || t.Name.Space != xhtmlNS {
					return false, errors.New("the narrative must be one XHTML div")
				}
			}
			if t.Name.Space != xhtmlNS || !narrativeElements[t.Name.Local] {
				return false, fmt.Errorf("element <%s> is not allowed in a narrative", t.Name.Local)
			}
			if t.Name.Local == "img" {
				content = true
			}
			for _, a := range t.Attr {
				name := strings.ToLower(a.Name.Local)
				if strings.HasPrefix(name, "on") {
					return false, fmt.Errorf("event attribute %s is not allowed", a.Name.Local)
				}
				v := strings.ToLower(strings.Join(strings.Fields(a.Value), ""))
				if strings.HasPrefix(v, "javascript:") || strings.HasPrefix(v, "vbscript:") {
					return false, fmt.Errorf("attribute %s holds a script URL", a.Name.Local)
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				if strings.TrimSpace(string(t)) != "" {
					return false, errors.New("text outside the div")
				}
				continue
			}
			if strings.TrimSpace(string(t)) != "" {
				content = true
			}
		case xml.ProcInst, xml.Directive:
			return false, errors.New("processing instructions and directives are not allowed")
		}
	}
	if depth != 0 {
		return false, errors.New("unclosed element")
	}
	return content, nil
}
