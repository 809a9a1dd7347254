package mappings

import (
	"path/filepath"
	"strings"
	"testing"
)

// items returns n items: the first len(head) from head, the rest fill.
func items(n, fill int, head ...int) []int {
	out := make([]int, n)
	for i := range out {
		if i < len(head) {
			out[i] = head[i]
		} else {
			out[i] = fill
		}
	}
	return out
}

// withTotal returns items whose sum is total, spread from the front.
func withTotal(n, max, total int) []int {
	out := make([]int, n)
	for i := range out {
		v := min(max, total)
		out[i] = v
		total -= v
	}
	return out
}

func intp(n int) *int { return &n }

func TestScoreBands(t *testing.T) {
	tests := []struct {
		name     string
		in       InstrumentResult
		total    int
		band     string
		code     string
		positive bool
		safety   bool
	}{
		{"phq9 0", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 0)}, 0, "minimal", "minimal", false, false},
		{"phq9 4", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 4)}, 4, "minimal", "minimal", false, false},
		{"phq9 5", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 5)}, 5, "mild", "mild", false, false},
		{"phq9 9", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 9)}, 9, "mild", "mild", false, false},
		{"phq9 10", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 10)}, 10, "moderate", "moderate", true, false},
		{"phq9 14", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 14)}, 14, "moderate", "moderate", true, false},
		{"phq9 15", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 15)}, 15, "moderately severe", "moderately-severe", true, false},
		{"phq9 19", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 19)}, 19, "moderately severe", "moderately-severe", true, false},
		{"phq9 20", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 20)}, 20, "severe", "severe", true, false},
		{"phq9 27 item 9 safety", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 27)}, 27, "severe", "severe", true, true},
		{"phq9 item 9 alone", InstrumentResult{Instrument: "phq9", Items: items(9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), Difficulty: intp(0)}, 1, "minimal", "minimal", false, true},
		{"phq9 with matching total", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 12), Total: intp(12)}, 12, "moderate", "moderate", true, false},
		{"gad7 4", InstrumentResult{Instrument: "gad7", Items: withTotal(7, 3, 4)}, 4, "minimal", "minimal", false, false},
		{"gad7 5", InstrumentResult{Instrument: "gad7", Items: withTotal(7, 3, 5)}, 5, "mild", "mild", false, false},
		{"gad7 10", InstrumentResult{Instrument: "gad7", Items: withTotal(7, 3, 10)}, 10, "moderate", "moderate", true, false},
		{"gad7 14", InstrumentResult{Instrument: "gad7", Items: withTotal(7, 3, 14)}, 14, "moderate", "moderate", true, false},
		{"gad7 15", InstrumentResult{Instrument: "gad7", Items: withTotal(7, 3, 15)}, 15, "severe", "severe", true, false},
		{"gad7 21", InstrumentResult{Instrument: "gad7", Items: withTotal(7, 3, 21)}, 21, "severe", "severe", true, false},
		{"pcl5 32", InstrumentResult{Instrument: "pcl5", Items: withTotal(20, 4, 32)}, 32, "below threshold", "below-threshold", false, false},
		{"pcl5 33", InstrumentResult{Instrument: "pcl5", Items: withTotal(20, 4, 33)}, 33, "probable PTSD", "probable-ptsd", true, false},
		{"pcl5 80", InstrumentResult{Instrument: "pcl5", Items: withTotal(20, 4, 80)}, 80, "probable PTSD", "probable-ptsd", true, false},
		{"auditc man 3", InstrumentResult{Instrument: "auditc", Items: []int{1, 1, 1}, Sex: "male"}, 3, "negative", "negative", false, false},
		{"auditc man 4", InstrumentResult{Instrument: "auditc", Items: []int{2, 1, 1}, Sex: "male"}, 4, "positive", "positive", true, false},
		{"auditc woman 2", InstrumentResult{Instrument: "auditc", Items: []int{1, 1, 0}, Sex: "female"}, 2, "negative", "negative", false, false},
		{"auditc woman 3", InstrumentResult{Instrument: "auditc", Items: []int{1, 1, 1}, Sex: "female"}, 3, "positive", "positive", true, false},
		{"auditc no sex 3", InstrumentResult{Instrument: "auditc", Items: []int{3, 0, 0}}, 3, "positive", "positive", true, false},
		{"auditc 12", InstrumentResult{Instrument: "auditc", Items: []int{4, 4, 4}, Sex: "male"}, 12, "positive", "positive", true, false},
		// DAST-10 item 3 answered yes ("always able to stop") scores 0.
		{"dast10 all no but item 3 yes", InstrumentResult{Instrument: "dast10", Items: items(10, 0, 0, 0, 1), Total: intp(0)}, 0, "none", "none", false, false},
		{"dast10 all no", InstrumentResult{Instrument: "dast10", Items: items(10, 0)}, 1, "low", "low", false, false},
		{"dast10 2", InstrumentResult{Instrument: "dast10", Items: items(10, 0, 1, 1, 1)}, 2, "low", "low", false, false},
		{"dast10 3", InstrumentResult{Instrument: "dast10", Items: items(10, 0, 1, 1, 0)}, 3, "moderate", "moderate", true, false},
		{"dast10 6", InstrumentResult{Instrument: "dast10", Items: items(10, 0, 1, 1, 1, 1, 1, 1, 1)}, 6, "substantial", "substantial", true, false},
		{"dast10 10", InstrumentResult{Instrument: "dast10", Items: items(10, 1, 1, 1, 0)}, 10, "severe", "severe", true, false},
		{"cssrs none", InstrumentResult{Instrument: "cssrs", Items: items(7, 0)}, -1, "none", "none", false, false},
		{"cssrs Q1 low", InstrumentResult{Instrument: "cssrs", Items: items(7, 0, 1)}, -1, "low", "low", true, false},
		{"cssrs Q1-2 low", InstrumentResult{Instrument: "cssrs", Items: items(7, 0, 1, 1)}, -1, "low", "low", true, false},
		{"cssrs Q3 moderate", InstrumentResult{Instrument: "cssrs", Items: items(7, 0, 1, 1, 1)}, -1, "moderate", "moderate", true, true},
		{"cssrs Q6 long ago moderate", InstrumentResult{Instrument: "cssrs", Items: items(7, 0, 0, 0, 0, 0, 0, 1, 0)}, -1, "moderate", "moderate", true, true},
		{"cssrs Q4 high", InstrumentResult{Instrument: "cssrs", Items: items(7, 0, 1, 1, 1, 1)}, -1, "high", "high", true, true},
		{"cssrs Q5 high", InstrumentResult{Instrument: "cssrs", Items: items(7, 0, 1, 1, 0, 0, 1)}, -1, "high", "high", true, true},
		{"cssrs Q6 recent high", InstrumentResult{Instrument: "cssrs", Items: items(7, 0, 0, 0, 0, 0, 0, 1, 1)}, -1, "high", "high", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Score(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if s.Instrument != tt.in.Instrument || s.Total != tt.total || s.Band != tt.band || s.BandCode != tt.code || s.Positive != tt.positive || s.SafetyFlag != tt.safety {
				t.Errorf("got %+v, want total %d band %q/%q positive %v safety %v", s, tt.total, tt.band, tt.code, tt.positive, tt.safety)
			}
			if len(s.Reasons) == 0 {
				t.Error("no reasons")
			}
		})
	}
}

func TestScoreReasons(t *testing.T) {
	s, _ := Score(InstrumentResult{Instrument: "auditc", Items: []int{3, 0, 0}})
	if !strings.Contains(strings.Join(s.Reasons, "; "), "sex not given") {
		t.Errorf("AUDIT-C without sex does not say which cut-off: %v", s.Reasons)
	}
	s, _ = Score(InstrumentResult{Instrument: "phq9", Items: items(9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2)})
	if !strings.Contains(strings.Join(s.Reasons, "; "), "item 9") {
		t.Errorf("PHQ-9 safety flag without its reason: %v", s.Reasons)
	}
}

func TestScoreErrors(t *testing.T) {
	tests := []struct {
		name string
		in   InstrumentResult
		want string
	}{
		{"unknown", InstrumentResult{Instrument: "madrs", Items: []int{1}}, `unknown instrument "madrs"`},
		{"too few items", InstrumentResult{Instrument: "phq9", Items: items(8, 0)}, "PHQ-9 has 9 items, got 8"},
		{"too many items", InstrumentResult{Instrument: "cssrs", Items: items(6, 0)}, "C-SSRS screener has 7 items, got 6"},
		{"item out of range", InstrumentResult{Instrument: "gad7", Items: items(7, 0, 0, 0, 0, 4)}, "GAD-7 item 4 is 4: want 0-3"},
		{"negative item", InstrumentResult{Instrument: "pcl5", Items: items(20, 0, 0, -1)}, "PCL-5 item 2 is -1: want 0-4"},
		{"yes/no item", InstrumentResult{Instrument: "dast10", Items: items(10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2)}, "DAST-10 item 10 is 2: want 0 (no) or 1 (yes)"},
		{"auditc item", InstrumentResult{Instrument: "auditc", Items: []int{5, 0, 0}}, "AUDIT-C item 1 is 5: want 0-4"},
		{"total disagrees", InstrumentResult{Instrument: "phq9", Items: withTotal(9, 3, 11), Total: intp(12)}, "PHQ-9 supplied total 12 disagrees with the items, which score 11"},
		{"dast10 total ignoring reverse scoring", InstrumentResult{Instrument: "dast10", Items: items(10, 0, 0, 0, 1), Total: intp(1)}, "DAST-10 supplied total 1 disagrees with the items, which score 0"},
		{"cssrs total", InstrumentResult{Instrument: "cssrs", Items: items(7, 0), Total: intp(0)}, "C-SSRS screener has no total"},
		{"cssrs recent without ever", InstrumentResult{Instrument: "cssrs", Items: items(7, 0, 0, 0, 0, 0, 0, 0, 1)}, "item 7 (behaviour within the past 3 months) is yes but item 6 (behaviour ever) is no"},
		{"difficulty elsewhere", InstrumentResult{Instrument: "gad7", Items: items(7, 0), Difficulty: intp(1)}, "GAD-7 has no difficulty question"},
		{"difficulty range", InstrumentResult{Instrument: "phq9", Items: items(9, 0), Difficulty: intp(4)}, "PHQ-9 difficulty is 4: want 0-3"},
		{"sex elsewhere", InstrumentResult{Instrument: "phq9", Items: items(9, 0), Sex: "female"}, "sex applies only to AUDIT-C"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Score(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// Every instrument in the example courses scores, with any supplied
// total agreeing.
func TestExampleScores(t *testing.T) {
	n := 0
	for _, path := range recordFiles(t) {
		for _, r := range loadRecords(t, path) {
			sc, ok := r.(*Screening)
			if !ok {
				continue
			}
			for i, in := range sc.Instruments {
				if _, err := Score(in); err != nil {
					t.Errorf("%s %s instruments[%d]: %v", filepath.Base(path), sc.ID, i, err)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Error("no instruments in the examples")
	}
}
