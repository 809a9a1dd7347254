package practice

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/mappings"
)

// TestNoteTextNotServed: without authorization the practice API keeps a process note's text to
// itself: it cannot tell the practice from anyone else (TestPracticeTenants
// shows the author's practice reading it).
func TestNoteTextNotServed(t *testing.T) {
	forEachStore(t, HTTPConfig{}, func(t *testing.T, e *apiEnv) {
		body := readTestdata(t, "course-iv.ndjson")
		if a := e.post(t, "application/x-ndjson", body); a.status != http.StatusOK {
			t.Fatalf("import: %d %s", a.status, a.body)
		}
		var noteID, noteText string
		for _, line := range strings.Split(string(body), "\n") {
			if rec, err := mappings.Decode([]byte(line)); err == nil {
				if n, ok := rec.(*mappings.Note); ok {
					noteID, noteText = n.ID, n.Text
					break
				}
			}
		}
		if noteID == "" || len(noteText) < 20 {
			t.Fatal("course-iv.ndjson has no note with text")
		}
		a := e.do(t, http.MethodGet, pathRecords+"/note/"+noteID, "", nil)
		if a.status != http.StatusOK {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if strings.Contains(string(a.body), noteText[:20]) {
			t.Errorf("the note's text is served: %s", a.body)
		}
		var v RecordView
		if err := json.Unmarshal(a.body, &v); err != nil || v.Withheld == "" || v.Kind != mappings.KindNote {
			t.Errorf("view %+v (%v)", v, err)
		}
	})
}
