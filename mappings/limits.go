package mappings

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits are the safety thresholds that Check judges records by and that
// the mappings interpret vital signs with (Observation.interpretation H,
// HH, L, LL), so a finding, its Flag and the interpretation never
// disagree. A zero field means its default (LimitTable); a practice sets
// its own on `kapbridge serve` and `kapbridge import` (-threshold
// name=value, KAPBRIDGE_THRESHOLDS, or a settings file).
type Limits struct {
	PreDoseSystolic, PreDoseDiastolic       float64 // hold the dose above (mm[Hg])
	CrisisSystolic, CrisisDiastolic         float64 // hypertensive crisis above (mm[Hg])
	RiseSystolic, RiseDiastolic             float64 // rise from the session's baseline at or above (mm[Hg])
	SpO2Low, SpO2Critical                   float64 // L at or below, LL at or below (%)
	HeartRateHigh, HeartRateCritical        float64 // H at or above, HH at or above (/min)
	HeartRateLow, HeartRateCriticalLow      float64 // L at or below, LL at or below (/min)
	RespRateHigh, RespRateCritical          float64 // H at or above, HH at or above (/min)
	RespRateLow, RespRateCriticalLow        float64 // L at or below, LL at or below (/min)
	DissociationHigh                        float64 // 0-10 rating at or above: a finding
	DischargeDissociationMax                float64 // 0-10 rating above at discharge: not resolved
	ClearanceValidDays                      float64 // a clearance decision older than this has expired
	PendingMaxHours                         float64 // a safety-relevant record pending longer raises a Flag
	KetamineMgPerKgIV, KetamineMgPerKgIM    float64 // dose ceilings (mg/kg)
	MinIntervalIV, MinIntervalIM            float64 // hours between doses, by route
	MinIntervalLozenge, MinIntervalSpravato float64
}

// Limit documents one field of Limits: its name in flags, environment and
// settings files, its default and the published source of that default.
type Limit struct {
	Name    string
	Default float64
	Unit    string
	Source  string
	field   func(*Limits) *float64
}

// news2 is the published source of the SpO2, heart rate and respiratory
// rate defaults: the single-parameter bands of the National Early Warning
// Score 2 (Royal College of Physicians, London, 2017). A parameter scoring
// 2 is the H/L band here, scoring 3 (the "red" score that asks for an
// urgent review on its own) the HH/LL band and the alert.
const news2 = "NEWS2 (Royal College of Physicians, 2017)"

// LimitTable lists every limit, in the order CHECKS.md shows them.
var LimitTable = []Limit{
	{"predose_systolic", 140, "mm[Hg]", "Spravato prescribing information, Warnings and Precautions, Increase in Blood Pressure: > 140/90 as an elevated pre-dose BP to weigh (status U: wording not checked against the label text in this repository)", func(l *Limits) *float64 { return &l.PreDoseSystolic }},
	{"predose_diastolic", 90, "mm[Hg]", "Spravato prescribing information (as above)", func(l *Limits) *float64 { return &l.PreDoseDiastolic }},
	{"crisis_systolic", 180, "mm[Hg]", "2017 ACC/AHA Hypertension Guideline: hypertensive crisis > 180 and/or > 120", func(l *Limits) *float64 { return &l.CrisisSystolic }},
	{"crisis_diastolic", 120, "mm[Hg]", "2017 ACC/AHA Hypertension Guideline (as above)", func(l *Limits) *float64 { return &l.CrisisDiastolic }},
	{"rise_systolic", 40, "mm[Hg]", "Spravato prescribing information, Increase in Blood Pressure: the trials counted systolic rises of >= 40 mm[Hg] (as issue 12 quotes it)", func(l *Limits) *float64 { return &l.RiseSystolic }},
	{"rise_diastolic", 25, "mm[Hg]", "Spravato prescribing information (as above): diastolic rises of >= 25 mm[Hg]", func(l *Limits) *float64 { return &l.RiseDiastolic }},
	{"spo2_low", 93, "%", news2 + ": SpO2 92-93 scores 2", func(l *Limits) *float64 { return &l.SpO2Low }},
	{"spo2_critical", 91, "%", news2 + ": SpO2 <= 91 scores 3", func(l *Limits) *float64 { return &l.SpO2Critical }},
	{"heart_rate_high", 111, "/min", news2 + ": 111-130 scores 2", func(l *Limits) *float64 { return &l.HeartRateHigh }},
	{"heart_rate_critical", 131, "/min", news2 + ": >= 131 scores 3", func(l *Limits) *float64 { return &l.HeartRateCritical }},
	{"heart_rate_low", 50, "/min", news2 + ": 41-50 scores 1 (the lowest band above the red score)", func(l *Limits) *float64 { return &l.HeartRateLow }},
	{"heart_rate_critical_low", 40, "/min", news2 + ": <= 40 scores 3", func(l *Limits) *float64 { return &l.HeartRateCriticalLow }},
	{"resp_rate_high", 21, "/min", news2 + ": 21-24 scores 2", func(l *Limits) *float64 { return &l.RespRateHigh }},
	{"resp_rate_critical", 25, "/min", news2 + ": >= 25 scores 3", func(l *Limits) *float64 { return &l.RespRateCritical }},
	{"resp_rate_low", 11, "/min", news2 + ": 9-11 scores 1", func(l *Limits) *float64 { return &l.RespRateLow }},
	{"resp_rate_critical_low", 8, "/min", news2 + ": <= 8 scores 3", func(l *Limits) *float64 { return &l.RespRateCriticalLow }},
	{"min_interval_hours_iv", 40, "h", "project default (two doses a week at least two days apart, less 8 hours for the time of day)", func(l *Limits) *float64 { return &l.MinIntervalIV }},
	{"min_interval_hours_im", 40, "h", "project default (as iv)", func(l *Limits) *float64 { return &l.MinIntervalIM }},
	{"min_interval_hours_lozenge", 40, "h", "project default (as iv)", func(l *Limits) *float64 { return &l.MinIntervalLozenge }},
	{"min_interval_hours_spravato", 40, "h", "Spravato prescribing information, Dosage: twice weekly in weeks 1-4 (status U); 40 h lets Monday and Wednesday sessions pass at any time of day", func(l *Limits) *float64 { return &l.MinIntervalSpravato }},
	{"dissociation_high", 8, "0-10", "project default", func(l *Limits) *float64 { return &l.DissociationHigh }},
	{"discharge_dissociation_max", 0, "0-10", "project default (Spravato REMS form: dissociation resolved before discharge)", func(l *Limits) *float64 { return &l.DischargeDissociationMax }},
	{"clearance_valid_days", 365, "d", "project default", func(l *Limits) *float64 { return &l.ClearanceValidDays }},
	{"pending_max_hours", 24, "h", "project default", func(l *Limits) *float64 { return &l.PendingMaxHours }},
	{"ketamine_mg_per_kg_iv", 1.0, "mg/kg", "project default (subanaesthetic IV dosing in depression trials is 0.5 mg/kg over 40 min; 1.0 leaves room for titration)", func(l *Limits) *float64 { return &l.KetamineMgPerKgIV }},
	{"ketamine_mg_per_kg_im", 2.0, "mg/kg", "project default", func(l *Limits) *float64 { return &l.KetamineMgPerKgIM }},
}

// Get returns the value of the named limit: the field if set, else its
// default. It panics on an unknown name (a programming error).
func (l Limits) Get(name string) float64 {
	for _, d := range LimitTable {
		if d.Name == name {
			if v := *d.field(&l); v != 0 {
				return v
			}
			return d.Default
		}
	}
	panic("mappings: unknown limit " + name)
}

// Set sets the named limit.
func (l *Limits) Set(name string, v float64) error {
	for _, d := range LimitTable {
		if d.Name == name {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("threshold %s: %g is not a non-negative number", name, v)
			}
			*d.field(l) = v
			return nil
		}
	}
	return fmt.Errorf("unknown threshold %q (known: %s)", name, strings.Join(LimitNames(), ", "))
}

// LimitNames lists the names of LimitTable.
func LimitNames() []string {
	out := make([]string, len(LimitTable))
	for i, d := range LimitTable {
		out[i] = d.Name
	}
	return out
}

// Parse sets limits from "name=value" pairs separated by commas or
// white space (the form of the -threshold flag and KAPBRIDGE_THRESHOLDS).
func (l *Limits) Parse(s string) error {
	for _, kv := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("threshold %q: want name=value", kv)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return fmt.Errorf("threshold %s: %q is not a number", name, val)
		}
		if err := l.Set(strings.TrimSpace(name), v); err != nil {
			return err
		}
	}
	return nil
}

// Changed lists the limits set to other than their defaults, as
// "name=value", in table order: what a command prints so the practice sees
// which thresholds it runs with.
func (l Limits) Changed() []string {
	var out []string
	for _, d := range LimitTable {
		if v := l.Get(d.Name); v != d.Default {
			out = append(out, d.Name+"="+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	return out
}

// PendingMax is how long a safety-relevant record may wait before it
// raises a Flag.
func (l Limits) PendingMax() time.Duration {
	return time.Duration(l.Get("pending_max_hours") * float64(time.Hour))
}

// interpretation is the HL7 v3 ObservationInterpretation code of a vital
// sign value under the limits ("" when normal or not judged).
func (l Limits) interpretation(vital string, x float64) string {
	switch vital {
	case "spo2":
		return lowCode(x, l.Get("spo2_low"), l.Get("spo2_critical"))
	case "hr":
		if c := highCode(x, l.Get("heart_rate_high"), l.Get("heart_rate_critical")); c != "" {
			return c
		}
		return lowCode(x, l.Get("heart_rate_low"), l.Get("heart_rate_critical_low"))
	case "rr":
		if c := highCode(x, l.Get("resp_rate_high"), l.Get("resp_rate_critical")); c != "" {
			return c
		}
		return lowCode(x, l.Get("resp_rate_low"), l.Get("resp_rate_critical_low"))
	case "systolic":
		return bpCode(x, l.Get("predose_systolic"), l.Get("crisis_systolic"))
	case "diastolic":
		return bpCode(x, l.Get("predose_diastolic"), l.Get("crisis_diastolic"))
	}
	return ""
}

func highCode(x, high, critical float64) string {
	switch {
	case x >= critical:
		return "HH"
	case x >= high:
		return "H"
	}
	return ""
}

func lowCode(x, low, critical float64) string {
	switch {
	case x <= critical:
		return "LL"
	case x <= low:
		return "L"
	}
	return ""
}

// bpCode: blood pressure thresholds are "strictly above" (> 140/90,
// > 180/120), as their sources state them.
func bpCode(x, high, critical float64) string {
	switch {
	case x > critical:
		return "HH"
	case x > high:
		return "H"
	}
	return ""
}

var interpretationDisplay = map[string]string{"H": "High", "HH": "Critical high", "L": "Low", "LL": "Critical low"}
