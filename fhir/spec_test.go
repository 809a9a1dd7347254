package fhir

import "testing"

// BenchmarkLoadSpec measures the one-time cost of the embedded R4 table.
func BenchmarkLoadSpec(b *testing.B) {
	for b.Loop() {
		if _, err := loadSpec(r4specGz); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSpecTables(t *testing.T) {
	s := r4()
	obs := s.types["Observation"].node
	for _, name := range []string{"status", "code", "valueQuantity", "valueCodeableConcept", "effectiveDateTime", "component", "_status"[1:]} {
		if obs.elems[name] == nil {
			t.Errorf("Observation.%s missing", name)
		}
	}
	if ed := obs.elems["status"]; ed.codes == nil || ed.min != 1 || ed.max != 1 {
		t.Errorf("Observation.status: %+v", ed)
	}
	if ed := obs.elems["performer"]; ed.targets == nil || ed.max != -1 {
		t.Errorf("Observation.performer: %+v", ed)
	}
	q := s.types["Questionnaire"].node.elems["item"]
	if q.node == nil || q.node.elems["item"] == nil || q.node.elems["item"].node != q.node {
		t.Error("Questionnaire.item.item does not refer back to Questionnaire.item")
	}
	for name, td := range s.types {
		if td.kind == kindPrimitive && td.re == nil && name != "xhtml" {
			t.Errorf("primitive %s has no regex", name)
		}
	}
}
