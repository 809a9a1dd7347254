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
	PreDoseSystolic, PreDoseDiastolic        float64 // hold the dose above (mm[Hg])
	CrisisSystolic, CrisisDiastolic          float64 // hypertensive crisis above (mm[Hg])
	RiseSystolic, RiseDiastolic              float64 // rise from the session's baseline at or above (mm[Hg])
	SpO2Low, SpO2Critical                    float64 // L at or below, LL at or below (%)
	HeartRateHigh, HeartRateCritical         float64 // H at or above, HH at or above (/min)
	HeartRateLow, HeartRateCriticalLow       float64 // L at or below, LL at or below (/min)
	RespRateHigh, RespRateCritical           float64 // H at or above, HH at or above (/min)
	RespRateLow, RespRateCriticalLow         float64 // L at or below, LL at or below (/min)
	DissociationHigh                         float64 // 0-10 rating at or above: a finding
	DischargeDissociationMax                 float64 // 0-10 rating above at discharge: not resolved
	DischargeSedationMin                     float64 // MOAA/S 0-5 rating below at discharge: not resolved
	SedationDeepMax                          float64 // MOAA/S 0-5 rating at or below before discharge: deep sedation
	ClearanceValidDays                       float64 // a clearance decision older than this has expired
	PregnancyTestAgeMin, PregnancyTestAgeMax float64 // a female client of these ages (years, inclusive) needs a pregnancy test before a dose
	PendingMaxHours                          float64 // a safety-relevant record pending longer raises a Flag
	KetamineMgPerKgIV, KetamineMgPerKgIM     float64 // dose ceilings (mg/kg)
	MinIntervalIV, MinIntervalIM             float64 // hours between doses, by route
	MinIntervalLozenge, MinIntervalSpravato  float64
	InductionMaxDays                         float64 // first to last dosing session (days)
	EscalationRatio                          float64 // a dose above this times the course's first
}

// Limit documents one field of Limits: its name in flags, environment and
// settings files, its default and the published source of that default.
type Limit struct {
	Name    string
	Default float64
	Unit    string
	Source  string
}

// news2 is the published source of the SpO2, heart rate and respiratory
// rate defaults: the single-parameter bands of the National Early Warning
// Score 2 (Royal College of Physicians, London, 2017). A parameter scoring
// 2 is the H/L band here, scoring 3 (the "red" score that asks for an
// urgent review on its own) the HH/LL band and the alert.
const news2 = "NEWS2 (Royal College of Physicians, 2017)"

// LimitTable lists every limit, in the order CHECKS.md shows them.
var LimitTable = []Limit{
	{"predose_systolic", 140, "mm[Hg]", "project default, after the Spravato prescribing information (Warnings and Precautions, Increase in Blood Pressure: > 140/90 as an elevated pre-dose BP to weigh). Status U, checked 2026-11-30: kap-domain.md and ../shared hold no label text and do not give this number (kap-domain.md section 5 asks only for BP before dosing, at 40 min and before discharge); the label excerpts the project library's search found (third-party reprints) do not quote it either"},
	{"predose_diastolic", 90, "mm[Hg]", "Spravato prescribing information (as above)"},
	{"crisis_systolic", 180, "mm[Hg]", "2017 ACC/AHA Hypertension Guideline: hypertensive crisis > 180 and/or > 120"},
	{"crisis_diastolic", 120, "mm[Hg]", "2017 ACC/AHA Hypertension Guideline (as above)"},
	{"rise_systolic", 40, "mm[Hg]", "Spravato prescribing information, Increase in Blood Pressure: the trials counted systolic rises of >= 40 mm[Hg] (as issue 12 quotes it; not in kap-domain.md or ../shared; a third-party reprint of the label's safety information found by the project library's search reads the same: >= 40 systolic and/or 25 diastolic in the first 1.5 hours after a dose)"},
	{"rise_diastolic", 25, "mm[Hg]", "Spravato prescribing information (as above): diastolic rises of >= 25 mm[Hg]"},
	{"spo2_low", 93, "%", news2 + ": SpO2 92-93 scores 2"},
	{"spo2_critical", 91, "%", news2 + ": SpO2 <= 91 scores 3"},
	{"heart_rate_high", 111, "/min", news2 + ": 111-130 scores 2"},
	{"heart_rate_critical", 131, "/min", news2 + ": >= 131 scores 3"},
	{"heart_rate_low", 50, "/min", news2 + ": 41-50 scores 1 (the lowest band above the red score)"},
	{"heart_rate_critical_low", 40, "/min", news2 + ": <= 40 scores 3"},
	{"resp_rate_high", 21, "/min", news2 + ": 21-24 scores 2"},
	{"resp_rate_critical", 25, "/min", news2 + ": >= 25 scores 3"},
	{"resp_rate_low", 11, "/min", news2 + ": 9-11 scores 1"},
	{"resp_rate_critical_low", 8, "/min", news2 + ": <= 8 scores 3"},
	{"min_interval_hours_iv", 40, "h", "project default (two doses a week at least two days apart, less 8 hours for the time of day)"},
	{"min_interval_hours_im", 40, "h", "project default (as iv)"},
	{"min_interval_hours_lozenge", 40, "h", "project default (as iv)"},
	{"min_interval_hours_spravato", 40, "h", "Spravato prescribing information, Dosage: twice weekly in weeks 1-4 (status U: no label text in kap-domain.md or ../shared; the dosing summaries of the label the project library's search found, Medscape and RxList, read the same); 40 h lets Monday and Wednesday sessions pass at any time of day"},
	{"escalation_ratio", 2, "ratio", "project default: titration commonly doubles the starting dose (the example courses go from 0.5 to 1.0 mg/kg IM, 200 to 400 mg lozenge); more than a doubling warns"},
	{"induction_max_days", 28, "d", "kap-domain.md section 1: 6-8 dosing sessions over 2-4 weeks"},
	{"dissociation_high", 8, "0-10", "project default"},
	{"discharge_dissociation_max", 0, "0-10", "project default (Spravato REMS form: dissociation resolved before discharge)"},
	{"sedation_deep_max", 1, "MOAA/S 0-5", "project default, after the ASA continuum of depth of sedation: moderate sedation still answers voice or light touch (MOAA/S 2-4 here), deep sedation only repeated or painful stimulation (1), general anaesthesia nothing (0); the sedation a KAP session expects is moderate at most"},
	{"discharge_sedation_min", 5, "MOAA/S 0-5", "project default (Spravato REMS form: sedation resolved before discharge; 5 on MOAA/S is fully alert; the scale is the project's choice, kap-domain.md names none)"},
	{"clearance_valid_days", 365, "d", "project default"},
	{"pregnancy_test_age_min", 12, "a", "project default: kap-domain.md section 1 screens for pregnancy but names no group a test applies to; 12-50 years spans the usual childbearing ages"},
	{"pregnancy_test_age_max", 50, "a", "project default (as pregnancy_test_age_min)"},
	{"pending_max_hours", 24, "h", "project default"},
	{"ketamine_mg_per_kg_iv", 1.0, "mg/kg", "project default (subanaesthetic IV dosing in depression trials is 0.5 mg/kg over 40 min; 1.0 leaves room for titration)"},
	{"ketamine_mg_per_kg_im", 2.0, "mg/kg", "project default"},
}

// field is the field of the named limit, nil for an unknown name. A
// switch rather than a table of functions: the checks call Get for every
// vital sign, and a pointer passed to a function value escapes to the
// heap (an allocation per call).
func (l *Limits) field(name string) *float64 {
	switch name {
	case "predose_systolic":
		return &l.PreDoseSystolic
	case "predose_diastolic":
		return &l.PreDoseDiastolic
	case "crisis_systolic":
		return &l.CrisisSystolic
	case "crisis_diastolic":
		return &l.CrisisDiastolic
	case "rise_systolic":
		return &l.RiseSystolic
	case "rise_diastolic":
		return &l.RiseDiastolic
	case "spo2_low":
		return &l.SpO2Low
	case "spo2_critical":
		return &l.SpO2Critical
	case "heart_rate_high":
		return &l.HeartRateHigh
	case "heart_rate_critical":
		return &l.HeartRateCritical
	case "heart_rate_low":
		return &l.HeartRateLow
	case "heart_rate_critical_low":
		return &l.HeartRateCriticalLow
	case "resp_rate_high":
		return &l.RespRateHigh
	case "resp_rate_critical":
		return &l.RespRateCritical
	case "resp_rate_low":
		return &l.RespRateLow
	case "resp_rate_critical_low":
		return &l.RespRateCriticalLow
	case "min_interval_hours_iv":
		return &l.MinIntervalIV
	case "min_interval_hours_im":
		return &l.MinIntervalIM
	case "min_interval_hours_lozenge":
		return &l.MinIntervalLozenge
	case "min_interval_hours_spravato":
		return &l.MinIntervalSpravato
	case "escalation_ratio":
		return &l.EscalationRatio
	case "induction_max_days":
		return &l.InductionMaxDays
	case "dissociation_high":
		return &l.DissociationHigh
	case "discharge_dissociation_max":
		return &l.DischargeDissociationMax
	case "discharge_sedation_min":
		return &l.DischargeSedationMin
	case "sedation_deep_max":
		return &l.SedationDeepMax
	case "clearance_valid_days":
		return &l.ClearanceValidDays
	case "pregnancy_test_age_min":
		return &l.PregnancyTestAgeMin
	case "pregnancy_test_age_max":
		return &l.PregnancyTestAgeMax
	case "pending_max_hours":
		return &l.PendingMaxHours
	case "ketamine_mg_per_kg_iv":
		return &l.KetamineMgPerKgIV
	case "ketamine_mg_per_kg_im":
		return &l.KetamineMgPerKgIM
	}
	return nil
}

// Get returns the value of the named limit: the field if set, else its
// default. It panics on an unknown name (a programming error).
func (l Limits) Get(name string) float64 {
	f := l.field(name)
	if f == nil {
		panic("mappings: unknown limit " + name)
	}
	if *f != 0 {
		return *f
	}
	for _, d := range LimitTable {
		if d.Name == name {
			return d.Default
		}
	}
	panic("mappings: limit " + name + " has no default")
}

// Set sets the named limit.
func (l *Limits) Set(name string, v float64) error {
	if f := l.field(name); f != nil {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("threshold %s: %g is not a non-negative number", name, v)
		}
		*f = v
		return nil
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
