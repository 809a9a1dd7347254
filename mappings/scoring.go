package mappings

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// InstrumentScore is what Score computes from an instrument's items.
// (The type cannot share the name Score with the function.)
type InstrumentScore struct {
	Instrument string // phq9, gad7, pcl5, cssrs, auditc, dast10
	// Total is the sum of the item scores; -1 for the C-SSRS screener,
	// which is categorical.
	Total int
	// Band is the severity band as a clinician reads it ("moderately
	// severe"); BandCode is the same as a stable code for interpretation
	// codings ("moderately-severe").
	Band     string
	BandCode string
	// Positive: the screen is positive by the instrument's usual cut-off
	// (see the thresholds below).
	Positive bool
	// SafetyFlag: a finding someone must act on now (PHQ-9 item 9 > 0,
	// C-SSRS triage moderate or high).
	SafetyFlag bool
	// Reasons explain Total, Band, Positive and SafetyFlag in words a
	// clinician can check against the form.
	Reasons []string
}

// Cut-offs. Each is a named constant so a practice that argues for
// another value changes one line, and the tests say which rows move.
const (
	// PHQ-9 >= 10 is the usual cut-off for major depression (Kroenke,
	// Spitzer & Williams 2001: sensitivity and specificity 88%).
	PHQ9PositiveAt = 10
	// GAD-7 >= 10 is the usual cut-off for generalised anxiety disorder
	// (Spitzer et al. 2006).
	GAD7PositiveAt = 10
	// PCL-5: kap-domain.md gives "probable PTSD at 31-33" (V2), the range
	// the National Center for PTSD quotes for a provisional diagnosis. We
	// take 33, the upper end, favouring specificity: a positive PCL-5
	// raises a clinical question, it does not make a diagnosis.
	PCL5PositiveAt = 33
	// AUDIT-C: positive at >= 4 for men, >= 3 for women (kap-domain.md,
	// V2). Without a sex the lower cut-off is used so that no positive
	// screen is missed, and Reasons says so.
	AUDITCPositiveMen   = 4
	AUDITCPositiveWomen = 3
	// DAST-10: >= 3 positive (kap-domain.md, V2).
	DAST10PositiveAt = 3
)

// band is a closed score range [Lo, Hi] with a name.
type band struct {
	Lo, Hi int
	Name   string
	Code   string
}

var (
	phq9Bands = []band{{0, 4, "minimal", "minimal"}, {5, 9, "mild", "mild"}, {10, 14, "moderate", "moderate"},
		{15, 19, "moderately severe", "moderately-severe"}, {20, 27, "severe", "severe"}}
	gad7Bands = []band{{0, 4, "minimal", "minimal"}, {5, 9, "mild", "mild"}, {10, 14, "moderate", "moderate"}, {15, 21, "severe", "severe"}}
	pcl5Bands = []band{{0, PCL5PositiveAt - 1, "below threshold", "below-threshold"}, {PCL5PositiveAt, 80, "probable PTSD", "probable-ptsd"}}
	// DAST-10 degree of problems related to drug abuse, from the scoring
	// sheet published with the instrument (Skinner 1982): 0 none, 1-2
	// low, 3-5 moderate, 6-8 substantial, 9-10 severe. kap-domain.md has
	// only the >= 3 cut-off, so these names are unverified (U) here; the
	// cut-off, which drives Positive, is the verified part.
	dast10Bands = []band{{0, 0, "none", "none"}, {1, 2, "low", "low"}, {3, 5, "moderate", "moderate"},
		{6, 8, "substantial", "substantial"}, {9, 10, "severe", "severe"}}
)

// Errors of Score, for errors.Is: the message names the numbers, the
// sentinel says which rule.
var (
	// ErrTotalMismatch: a supplied total disagrees with the items.
	ErrTotalMismatch = errors.New("supplied total disagrees with the items")
	// ErrInstrumentItems: an unknown instrument, a wrong item count, an
	// item out of range, or a field the instrument does not have.
	ErrInstrumentItems = errors.New("instrument items invalid")
)

// scoreError carries a precise message and the rule's sentinel.
type scoreError struct {
	msg  string
	rule error
}

func (e *scoreError) Error() string { return e.msg }
func (e *scoreError) Unwrap() error { return e.rule }

func itemsErr(format string, args ...any) error {
	return &scoreError{fmt.Sprintf(format, args...), ErrInstrumentItems}
}

// instrumentShape is an instrument's item count and item score range.
type instrumentShape struct {
	Name  string // as a clinician writes it
	Items int
	Max   int // every item scores 0..Max
}

var instrumentShapes = map[string]instrumentShape{
	"phq9":   {"PHQ-9", 9, 3},
	"gad7":   {"GAD-7", 7, 3},
	"pcl5":   {"PCL-5", 20, 4},
	"cssrs":  {"C-SSRS screener", 7, 1},
	"auditc": {"AUDIT-C", 3, 4},
	"dast10": {"DAST-10", 10, 1},
}

// Score computes an instrument's total, band, positive screen and safety
// flag from its items. Its errors name the problem: ErrTotalMismatch for
// a supplied Total that disagrees with the items (both numbers named);
// ErrInstrumentItems for an unknown instrument, a wrong item count, an
// item out of range (1-based), or a field the instrument does not have.
func Score(r InstrumentResult) (InstrumentScore, error) {
	shape, ok := instrumentShapes[r.Instrument]
	if !ok {
		return InstrumentScore{}, itemsErr("unknown instrument %q: one of %s", r.Instrument, strings.Join(Instruments, ", "))
	}
	if len(r.Items) != shape.Items {
		return InstrumentScore{}, itemsErr("%s has %d items, got %d", shape.Name, shape.Items, len(r.Items))
	}
	for i, v := range r.Items {
		if v < 0 || v > shape.Max {
			if shape.Max == 1 {
				return InstrumentScore{}, itemsErr("%s item %d is %d: want 0 (no) or 1 (yes)", shape.Name, i+1, v)
			}
			return InstrumentScore{}, itemsErr("%s item %d is %d: want 0-%d", shape.Name, i+1, v, shape.Max)
		}
	}
	if r.Difficulty != nil {
		if r.Instrument != "phq9" {
			return InstrumentScore{}, itemsErr("%s has no difficulty question (PHQ-9 only)", shape.Name)
		}
		if *r.Difficulty < 0 || *r.Difficulty > 3 {
			return InstrumentScore{}, itemsErr("PHQ-9 difficulty is %d: want 0-3", *r.Difficulty)
		}
	}
	if r.Sex != "" && r.Instrument != "auditc" {
		return InstrumentScore{}, itemsErr("%s is scored the same for every sex: sex applies only to AUDIT-C", shape.Name)
	}
	var s InstrumentScore
	switch r.Instrument {
	case "cssrs":
		if r.Total != nil {
			return InstrumentScore{}, itemsErr("the C-SSRS screener has no total (it is triaged from its answers), got total %d", *r.Total)
		}
		var err error
		if s, err = scoreCSSRS(r.Items); err != nil {
			return InstrumentScore{}, err
		}
	case "dast10":
		s = scoreDAST10(r.Items)
	default:
		s.Total = sum(r.Items)
	}
	s.Instrument = r.Instrument
	if r.Total != nil && *r.Total != s.Total {
		return InstrumentScore{}, &scoreError{fmt.Sprintf("%s supplied total %d disagrees with the items, which score %d", shape.Name, *r.Total, s.Total), ErrTotalMismatch}
	}
	switch r.Instrument {
	case "phq9":
		s.setBand(phq9Bands)
		s.positiveAt(PHQ9PositiveAt)
		if r.Items[8] > 0 {
			s.SafetyFlag = true
			s.Reasons = append(s.Reasons, fmt.Sprintf("item 9 (thoughts of being better off dead or of self-harm) is %d: safety flag", r.Items[8]))
		}
	case "gad7":
		s.setBand(gad7Bands)
		s.positiveAt(GAD7PositiveAt)
	case "pcl5":
		s.setBand(pcl5Bands)
		s.positiveAt(PCL5PositiveAt)
	case "auditc":
		cut := AUDITCPositiveWomen
		switch r.Sex {
		case "male":
			cut = AUDITCPositiveMen
		case "female":
		default:
			s.Reasons = append(s.Reasons, fmt.Sprintf("sex not given: the lower (women's) cut-off %d is used", AUDITCPositiveWomen))
		}
		s.positiveAt(cut)
		s.Band, s.BandCode = "negative", "negative"
		if s.Positive {
			s.Band, s.BandCode = "positive", "positive"
		}
	case "dast10":
		s.setBand(dast10Bands)
		s.positiveAt(DAST10PositiveAt)
	}
	return s, nil
}

func sum(items []int) int {
	t := 0
	for _, v := range items {
		t += v
	}
	return t
}

func (s *InstrumentScore) setBand(bands []band) {
	for _, b := range bands {
		if s.Total >= b.Lo && s.Total <= b.Hi {
			s.Band, s.BandCode = b.Name, b.Code
			s.Reasons = append(s.Reasons, fmt.Sprintf("total %d: %s (%d-%d)", s.Total, b.Name, b.Lo, b.Hi))
			return
		}
	}
}

func (s *InstrumentScore) positiveAt(cut int) {
	s.Positive = s.Total >= cut
	if s.Positive {
		s.Reasons = append(s.Reasons, fmt.Sprintf("total %d >= %d: positive screen", s.Total, cut))
	} else {
		s.Reasons = append(s.Reasons, fmt.Sprintf("total %d < %d: negative screen", s.Total, cut))
	}
}

// scoreDAST10 counts problem answers. Item 3 asks "Are you always able
// to stop using drugs when you want to?", so its "no" is the problem
// answer: it is reverse-scored, as the instrument's scoring instructions
// say (one point per "yes" except item 3, where "no" scores one). Items
// carry the answers as given (1 = yes), so the reversal happens here.
func scoreDAST10(items []int) InstrumentScore {
	var s InstrumentScore
	for i, v := range items {
		if i == 2 {
			v = 1 - v
		}
		s.Total += v
	}
	if items[2] == 0 {
		s.Reasons = append(s.Reasons, "item 3 (always able to stop) answered no: scores 1 (reverse-scored)")
	}
	return s
}

// scoreCSSRS triages the C-SSRS screener (recent version) from its seven
// answers (see InstrumentResult.Items). The rule is kap-domain.md's,
// marked unverified (U) there: only Q1-Q2 yes = low; Q3 yes = moderate;
// Q4 or Q5 yes, or behaviour (Q6) within the past 3 months = high.
// Behaviour longer ago than 3 months is not in that rule; it is triaged
// moderate here (also U), as the screener's own colour coding does.
func scoreCSSRS(items []int) (InstrumentScore, error) {
	s := InstrumentScore{Total: -1}
	if items[6] == 1 && items[5] == 0 {
		return s, itemsErr("C-SSRS screener item 7 (behaviour within the past 3 months) is yes but item 6 (behaviour ever) is no")
	}
	// The screener's skip logic: questions 3-5 are asked only when
	// question 2 (thoughts of killing oneself) is yes, so a yes to any of
	// them with question 2 no cannot come from the screener as given.
	if items[1] == 0 {
		for q := 3; q <= 5; q++ {
			if items[q-1] == 1 {
				return s, itemsErr("C-SSRS screener item %d is yes but item 2 (thoughts of killing yourself) is no: the screener asks items 3-5 only after a yes to item 2", q)
			}
		}
	}
	yes := func(q ...int) []string {
		var out []string
		for _, n := range q {
			if items[n-1] == 1 {
				out = append(out, fmt.Sprintf("Q%d", n))
			}
		}
		return out
	}
	var level string
	switch {
	case len(yes(4, 5)) > 0 || items[6] == 1:
		level = "high"
		why := yes(4, 5)
		if items[6] == 1 {
			why = append(why, "Q6 within 3 months")
		}
		s.Reasons = append(s.Reasons, "high risk: "+strings.Join(why, ", ")+" yes")
	case len(yes(3, 6)) > 0:
		level = "moderate"
		why := yes(3)
		if items[5] == 1 {
			why = append(why, "Q6 more than 3 months ago")
		}
		s.Reasons = append(s.Reasons, "moderate risk: "+strings.Join(why, ", ")+" yes")
	case len(yes(1, 2)) > 0:
		level = "low"
		s.Reasons = append(s.Reasons, "low risk: only "+strings.Join(yes(1, 2), ", ")+" yes")
	default:
		level = "none"
		s.Reasons = append(s.Reasons, "no item answered yes")
	}
	s.Band, s.BandCode = level, level
	s.Positive = level != "none"
	s.SafetyFlag = slices.Contains([]string{"moderate", "high"}, level)
	if s.SafetyFlag {
		s.Reasons = append(s.Reasons, "triage "+level+": safety flag")
	}
	return s, nil
}
