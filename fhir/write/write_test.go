package write

import (
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

func parse(t *testing.T, s string) *fhir.Value {
	t.Helper()
	v, _, err := fhir.ParseResource([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestUnchanged(t *testing.T) {
	stored := parse(t, `{"resourceType":"Patient","meta":{"tag":[{"code":"a"}]},"active":true}`)
	Stamp(stored, "p1", 3, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	cur := fhir.Version{Key: fhir.Key{Type: "Patient", ID: "p1"}, VersionID: 3, JSON: stored.Encode()}
	for _, tc := range []struct {
		body string
		same bool
	}{
		{`{"resourceType":"Patient","meta":{"tag":[{"code":"a"}]},"active":true}`, true},
		{`{"resourceType":"Patient","id":"p1","meta":{"versionId":"9","lastUpdated":"2020-01-01T00:00:00Z","tag":[{"code":"a"}]},"active":true}`, true},
		{`{"resourceType":"Patient","meta":{"tag":[{"code":"b"}]},"active":true}`, false},
		{`{"resourceType":"Patient","active":true}`, false},
		{`{"resourceType":"Patient","meta":{"tag":[{"code":"a"}]},"active":false}`, false},
	} {
		if got := Unchanged(cur, parse(t, tc.body)); got != tc.same {
			t.Errorf("%s: Unchanged = %v, want %v", tc.body, got, tc.same)
		}
	}
	if Unchanged(fhir.Version{Deleted: true}, parse(t, `{"resourceType":"Patient"}`)) {
		t.Error("a deletion is never unchanged")
	}
}

func TestStampOrder(t *testing.T) {
	v := parse(t, `{"resourceType":"Patient","active":true,"id":"x","meta":{"source":"s","versionId":"7"}}`)
	Stamp(v, "p", 2, time.Date(2026, 1, 2, 3, 4, 5, 600000, time.UTC))
	want := `{"resourceType":"Patient","id":"p","meta":{"versionId":"2","lastUpdated":"2026-01-02T03:04:05.000600Z","source":"s"},"active":true}`
	if got := string(v.Encode()); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
