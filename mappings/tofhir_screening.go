package mappings

import (
	"fmt"
	"strconv"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
)

// instrumentDef is how one instrument lands in FHIR.
type instrumentDef struct {
	title string
	panel string // concept of the panel code ("" for none)
	total string // concept of the total-score code ("" for a categorical result)
	// items are the concepts of the verified item codes, in order; items
	// beyond them (or all, when none are verified) get local linkIds.
	items []string
	// answers: "frequency" (LOINC LA answers 0-3), "yesno" (LA33-6 /
	// LA32-8), or "local": the kap-instrument answer codes of the
	// project's Questionnaires ("pcl5-a<score>", "auditc-<item>-a<score>").
	answers string
}

var instrumentDefs = map[string]instrumentDef{
	"phq9":   {"PHQ-9", "phq9.panel", "phq9.total", []string{"phq9.1", "phq9.2", "phq9.3", "phq9.4", "phq9.5", "phq9.6", "phq9.7", "phq9.8", "phq9.9"}, "frequency"},
	"gad7":   {"GAD-7", "gad7.panel", "gad7.total", []string{"gad7.1", "gad7.2", "gad7.3", "gad7.4", "gad7.5", "gad7.6", "gad7.7"}, "frequency"},
	"pcl5":   {"PCL-5", "pcl5.panel", "pcl5.total", nil, "local"},
	"cssrs":  {"C-SSRS screener", "cssrs.panel", "", []string{"cssrs.1", "cssrs.2", "cssrs.3", "cssrs.4", "cssrs.5", "cssrs.6", "cssrs.7"}, "yesno"},
	"auditc": {"AUDIT-C", "auditc.panel", "auditc.total", nil, "local"},
	"dast10": {"DAST-10", "dast10.panel", "dast10.total", nil, "yesno"},
}

// QuestionnaireURL is the canonical of the Questionnaire a screening part
// answers: "clearance" or an instrument.
func QuestionnaireURL(part string) string {
	switch part {
	case "clearance":
		return CanonicalBase + "/Questionnaire/kap-medical-clearance"
	case "phq9":
		return CanonicalBase + "/Questionnaire/phq-9"
	case "gad7":
		return CanonicalBase + "/Questionnaire/gad-7"
	case "pcl5":
		return CanonicalBase + "/Questionnaire/pcl-5"
	case "cssrs":
		return CanonicalBase + "/Questionnaire/cssrs-screener"
	case "auditc":
		return CanonicalBase + "/Questionnaire/audit-c"
	case "dast10":
		return CanonicalBase + "/Questionnaire/dast-10"
	}
	return ""
}

// ItemLinkID is the linkId of item i (0-based) of an instrument: the LOINC
// item code where verified, "<instrument>-<n>" otherwise.
func ItemLinkID(instrument string, i int) string {
	d := instrumentDefs[instrument]
	if i < len(d.items) {
		return codeOf(d.items[i]).Code
	}
	return instrument + "-" + strconv.Itoa(i+1)
}

// clearanceItems are the clearance findings in form order, with their
// project codes (linkIds).
var clearanceItems = []struct {
	code, text string
	get        func(*Clearance) *bool
}{
	{"cardiovascular", "cardiovascular issues", func(c *Clearance) *bool { return c.Cardiovascular }},
	{"psychotic-disorder", "psychotic disorder", func(c *Clearance) *bool { return c.PsychoticDisorder }},
	{"bipolar-i", "bipolar I disorder (mania risk)", func(c *Clearance) *bool { return c.BipolarI }},
	{"substance-misuse", "substance misuse", func(c *Clearance) *bool { return c.SubstanceMisuse }},
	{"pregnancy", "pregnancy", func(c *Clearance) *bool { return c.Pregnancy }},
	{"contraindicated-medications", "contraindicated medications", func(c *Clearance) *bool { return c.ContraindicatedMeds }},
}

var clearanceDecisions = map[string]string{"cleared": "cleared", "not_cleared": "not-cleared", "deferred": "deferred"}

// screening -> QuestionnaireResponse for the clearance and per instrument,
// an Observation of the clearance decision and per instrument result (category survey, derivedFrom the
// response), a Flag per positive clearance item and safety signal.
func (mp *mapping) screening(s *Screening) error {
	cl, ok := mp.b.Client(s.Client)
	if !ok {
		return unresolved("screening.client", KindClient, s.Client)
	}
	mp.begin(KindScreening, s.Header, cl, false)
	when, err := mp.fhirDateTime("screening.date", s.Date)
	if err != nil {
		return err
	}
	if when == nil {
		return invalid("screening.date", "missing")
	}
	subject := mp.patientRef(s.Client)
	author := mp.practitionerRef(s.PerformedBy)
	flag := func(suffix []string, category string, code *fhir.Value) {
		mp.emit("Flag", suffix, nil, false,
			mem("status", mp.str("active")),
			mem("category", mp.arr(mp.concept("", mp.coding(category)))),
			mem("code", code),
			mem("subject", mp.clone(subject)),
			mem("period", mp.obj(mem("start", mp.clone(when)))),
			mem("author", mp.clone(author)))
	}
	qr := func(part string, items []*fhir.Value) string {
		v := mp.emit("QuestionnaireResponse", []string{part}, []string{ProfileScreeningQR}, true,
			mem("questionnaire", mp.str(QuestionnaireURL(part))),
			mem("status", mp.str("completed")),
			mem("subject", mp.clone(subject)),
			mem("authored", mp.clone(when)),
			mem("author", mp.clone(author)),
			mem("item", mp.arr(items...)))
		return v.GetString("id")
	}

	if c := s.Clearance; c != nil {
		var items []*fhir.Value
		var positives []int
		for i, it := range clearanceItems {
			b := it.get(c)
			var ans *fhir.Value
			if b == nil {
				mp.warn("screening.clearance."+it.code, "not answered")
			} else {
				ans = mp.arr(mp.obj(mem("valueBoolean", mp.boolean(*b))))
				if *b {
					positives = append(positives, i)
				}
			}
			items = append(items, mp.obj(mem("linkId", mp.str(it.code)), mem("text", mp.str(it.text)), mem("answer", ans)))
		}
		if len(c.Medications) > 0 {
			var meds []*fhir.Value
			for _, m := range c.Medications {
				meds = append(meds, mp.obj(mem("valueString", mp.str(m))))
			}
			// The list is the client's current medications: only
			// contraindicated_medications says whether any is
			// contraindicated (issue 12: "sertraline 100 mg" with it false
			// is not a contraindicated medication).
			items = append(items, mp.obj(mem("linkId", mp.str("medications")), mem("text", mp.str("current medications")), mem("answer", mp.arr(meds...))))
		}
		dec, ok := clearanceDecisions[c.Decision]
		if !ok {
			return invalid("screening.clearance.decision", "%q is not cleared, not_cleared or deferred", c.Decision)
		}
		items = append(items, mp.obj(mem("linkId", mp.str("clearance-decision")), mem("text", mp.str("clearance decision")),
			mem("answer", mp.arr(mp.obj(mem("valueCoding", mp.localCoding(CSClearanceOutcome, dec, "")))))))
		if c.OverrideReason != "" {
			items = append(items, mp.obj(mem("linkId", mp.str("override-reason")), mem("text", mp.str("the prescriber's reason for clearing despite a contraindication")),
				mem("answer", mp.arr(mp.obj(mem("valueString", mp.str(c.OverrideReason)))))))
		}
		if pt := s.PregnancyTest; pt != nil {
			date, err := mp.fhirDateTime("screening.pregnancy_test.date", pt.Date)
			if err != nil {
				return err
			}
			items = append(items, mp.obj(mem("linkId", mp.str("pregnancy-test-positive")), mem("text", mp.str("pregnancy test positive")),
				mem("answer", mp.arr(mp.obj(mem("valueBoolean", mp.boolean(pt.Result == "positive")))))))
			if date != nil {
				items = append(items, mp.obj(mem("linkId", mp.str("pregnancy-test-date")), mem("text", mp.str("pregnancy test date")),
					mem("answer", mp.arr(mp.obj(mem("valueDateTime", date))))))
			}
		}
		qrID := qr("clearance", items)
		// The decision as an Observation too: what a prescriber's EHR
		// searches for before a dose, without reading the whole form.
		mp.emit("Observation", []string{"clearance", "decision"}, nil, false,
			mem("status", mp.str("final")),
			mem("category", mp.arr(mp.concept("", mp.coding("category.survey")))),
			mem("code", mp.concept("KAP medical clearance decision", mp.localCoding(CSObservation, "clearance-decision", ""))),
			mem("subject", mp.clone(subject)),
			mem("effectiveDateTime", mp.clone(when)),
			mem("performer", mp.arr(mp.clone(author))),
			mem("valueCodeableConcept", mp.concept(c.Decision, mp.localCoding(CSClearanceOutcome, dec, ""))),
			mem("derivedFrom", mp.arr(mp.ref("QuestionnaireResponse", qrID))))
		for _, i := range positives {
			it := clearanceItems[i]
			flag([]string{"clearance", it.code}, "flag.clinical", mp.concept("clearance finding: "+it.text, mp.localCoding(CSClearanceItem, it.code, "")))
		}
	}

	for n, ir := range s.Instruments {
		def, ok := instrumentDefs[ir.Instrument]
		if !ok {
			return invalid(fmt.Sprintf("screening.instruments[%d].instrument", n), "%q is not one of phq9, gad7, pcl5, cssrs, auditc, dast10", ir.Instrument)
		}
		res, err := Score(ir)
		if err != nil {
			return invalid(fmt.Sprintf("screening.instruments[%d]", n), "%v", err)
		}
		var items []*fhir.Value
		for i, score := range ir.Items {
			if ir.Instrument == "cssrs" && cssrsDisabled(ir.Items, i) {
				// The Questionnaire's enableWhen disables the item: a
				// response answers no disabled item (SDC).
				continue
			}
			var ans *fhir.Value
			switch def.answers {
			case "frequency":
				if score < 0 || score > 3 {
					return invalid(fmt.Sprintf("screening.instruments[%d].items[%d]", n, i), "%d is not 0-3", score)
				}
				ans = mp.obj(mem("valueCoding", mp.coding("answer."+strconv.Itoa(score))))
			case "yesno":
				yn := "no"
				if score != 0 {
					yn = "yes"
				}
				ans = mp.obj(mem("valueCoding", mp.coding(yn)))
			default:
				code := "pcl5-a" + strconv.Itoa(score)
				if ir.Instrument == "auditc" {
					code = "auditc-" + strconv.Itoa(i+1) + "-a" + strconv.Itoa(score)
				}
				ans = mp.obj(mem("valueCoding", mp.localCoding(CSInstrument, code, "")))
			}
			items = append(items, mp.obj(mem("linkId", mp.str(ItemLinkID(ir.Instrument, i))), mem("answer", mp.arr(ans))))
		}
		if ir.Difficulty != nil {
			if *ir.Difficulty < 0 || *ir.Difficulty > 3 {
				return invalid(fmt.Sprintf("screening.instruments[%d].difficulty", n), "%d is not 0-3", *ir.Difficulty)
			}
			items = append(items, mp.obj(mem("linkId", mp.str(codeOf("phq9.difficulty").Code)), mem("answer", mp.arr(mp.obj(mem("valueCoding", mp.coding("difficulty."+strconv.Itoa(*ir.Difficulty))))))))
		}
		if def.total != "" {
			// The Questionnaires end with a read-only total item.
			items = append(items, mp.obj(mem("linkId", mp.str(codeOf(def.total).Code)), mem("answer", mp.arr(mp.obj(mem("valueInteger", mp.integer(res.Total)))))))
		}
		qrID := qr(ir.Instrument, items)
		var code, value *fhir.Value
		if def.total != "" {
			code = mp.concept(def.title+" total score", mp.coding(def.total))
			value = mp.integer(res.Total)
		} else {
			code = mp.concept(def.title+" triage", mp.coding("cssrs.triage"), mp.coding("cssrs.risk-level"))
			value = mp.concept(res.Band, mp.localCoding(CSObservation, "risk-"+res.BandCode, ""))
		}
		valueKey := "valueInteger"
		if def.total == "" {
			valueKey = "valueCodeableConcept"
		}
		var interp *fhir.Value
		if def.total != "" {
			interp = mp.arr(mp.interpretation(ir.Instrument, res))
		}
		result := "total"
		if def.total == "" {
			result = "triage"
		}
		mp.emit("Observation", []string{ir.Instrument, result}, nil, false,
			mem("status", mp.str("final")),
			mem("category", mp.arr(mp.concept("", mp.coding("category.survey")))),
			mem("code", code),
			mem("subject", mp.clone(subject)),
			mem("effectiveDateTime", mp.clone(when)),
			mem("performer", mp.arr(mp.clone(author))),
			mem(valueKey, value),
			mem("interpretation", interp),
			mem("derivedFrom", mp.arr(mp.ref("QuestionnaireResponse", qrID))))
		if ir.Instrument == "phq9" || ir.Instrument == "gad7" {
			mp.outcome(s, ir.Instrument, def.title, res.Total, subject, when, author)
		}
		// Safety signals (kap-domain.md section 2).
		if ir.Instrument == "phq9" && res.SafetyFlag {
			flag([]string{"phq9", "item9"}, "flag.safety", mp.concept("PHQ-9 item 9 positive: thoughts of death or self-harm", mp.coding("phq9.9"), mp.coding("condition.suicidal_ideation")))
		}
		if ir.Instrument == "cssrs" && res.SafetyFlag {
			flag([]string{"cssrs", "risk"}, "flag.safety", mp.concept("C-SSRS screener: "+res.Band, mp.coding("cssrs.triage"), mp.localCoding(CSObservation, "risk-"+res.BandCode, "")))
		}
	}
	if s.Clearance == nil && len(s.Instruments) == 0 {
		mp.warn("screening", "neither clearance nor instruments: nothing to map")
	}
	return nil
}

// interpretation codes a total's reading in kap-observation: the severity
// band for PHQ-9 and GAD-7, a positive or negative screen for the
// instruments read by a cut-off.
func (a *arena) interpretation(instrument string, res InstrumentScore) *fhir.Value {
	switch instrument {
	case "phq9", "gad7":
		return a.concept(res.Band, a.localCoding(CSObservation, res.BandCode, ""))
	}
	code, text := "screen-negative", "negative screen"
	if res.Positive {
		code, text = "screen-positive", "positive screen"
	}
	if res.Band != "" && res.Band != "positive" && res.Band != "negative" {
		text += " (" + res.Band + ")"
	}
	return a.concept(text, a.localCoding(CSObservation, code, ""))
}

// cssrsDisabled reports whether the C-SSRS screener's skip logic
// disables item i (0-based) given the answers: Q3-Q5 follow a yes to Q2,
// Q6b a yes to Q6 (the Questionnaire's enableWhen).
func cssrsDisabled(items []int, i int) bool {
	switch {
	case i >= 2 && i <= 4:
		return items[1] == 0
	case i == 6:
		return items[5] == 0
	}
	return false
}

// ScreeningLookup is a Lookup that also finds a client's screenings: with
// it, a PHQ-9 or GAD-7 after the client's first is judged against that
// baseline (response, remission). The records' Book implements it, as the
// Applier's Lookup does.
type ScreeningLookup interface {
	ScreeningsOf(client string) []*Screening
}

var _ ScreeningLookup = (*Book)(nil)

// baselineScore is the client's earliest screening before s with the
// instrument scored, and its total.
func baselineScore(b ScreeningLookup, s *Screening, instrument string) (*Screening, int, bool) {
	t, ok := parseRecordTime(s.Date)
	if !ok {
		return nil, 0, false
	}
	var best *Screening
	var bestT time.Time
	total := 0
	for _, o := range b.ScreeningsOf(s.Client) {
		if o.ID == s.ID {
			continue
		}
		ot, ok := screeningTime(o.Date, t)
		if !ok || !ot.Before(t) || (best != nil && !ot.Before(bestT)) {
			continue
		}
		for _, ir := range o.Instruments {
			if ir.Instrument != instrument {
				continue
			}
			if sc, err := Score(ir); err == nil {
				best, bestT, total = o, ot, sc.Total
			}
		}
	}
	return best, total, best != nil
}

// outcome emits the treatment response (a drop of at least 50 % from the
// client's baseline total) and, for PHQ-9, remission (a total below 5) of
// a follow-up PHQ-9 or GAD-7, as Observations derived from both totals.
// Without a baseline (the first screening) there is nothing to judge;
// with a Lookup that cannot find screenings it says so.
func (mp *mapping) outcome(s *Screening, instrument, title string, total int, subject, when, author *fhir.Value) {
	sl, ok := mp.b.(ScreeningLookup)
	if !ok {
		mp.warn("screening.instruments", "%s response and remission not computed: the lookup cannot find the client's earlier screenings", title)
		return
	}
	base, baseTotal, ok := baselineScore(sl, s, instrument)
	if !ok {
		return
	}
	derived := mp.arr(
		mp.refTo("Observation", KindScreening, s.ID, instrument, "total"),
		mp.refTo("Observation", KindScreening, base.ID, instrument, "total"))
	emit := func(kind, text string, value bool, note string) {
		mp.emit("Observation", []string{instrument, kind}, nil, false,
			mem("status", mp.str("final")),
			mem("category", mp.arr(mp.concept("", mp.coding("category.survey")))),
			mem("code", mp.concept(title+" "+text, mp.localCoding(CSObservation, kind, ""))),
			mem("subject", mp.clone(subject)),
			mem("effectiveDateTime", mp.clone(when)),
			mem("performer", mp.arr(mp.clone(author))),
			mem("valueBoolean", mp.boolean(value)),
			mem("note", mp.arr(mp.obj(mem("text", mp.str(note))))),
			mem("derivedFrom", mp.clone(derived)))
	}
	drop := 0.0
	if baseTotal > 0 {
		drop = float64(baseTotal-total) / float64(baseTotal)
	}
	emit("treatment-response", "treatment response", baseTotal > 0 && drop >= 0.5,
		fmt.Sprintf("total %d against the baseline %d of screening %s (%s): %.0f %% lower; response is a drop of at least 50 %%", total, baseTotal, base.ID, base.Date, drop*100))
	if instrument == "phq9" {
		emit("remission", "remission", total < 5, fmt.Sprintf("total %d; remission is a PHQ-9 total below 5", total))
	}
}
