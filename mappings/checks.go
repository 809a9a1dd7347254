package mappings

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// CheckCodes lists every code Check can return, in the order of the table
// in CHECKS.md; the tests hold the two and the test table to each other.
var CheckCodes = []string{
	"vitals.range.systolic",
	"vitals.range.diastolic",
	"vitals.range.heart_rate",
	"vitals.range.spo2",
	"vitals.range.respiratory_rate",
	"vitals.range.weight",
	"vitals.range.temperature",
	"instrument.items",
	"instrument.total",
	"dosing.no_clearance",
	"dose.missing",
	"dose.no_route",
	"dose.session_type",
	"dose.drug_route",
	"dose.spravato_mg",
	"dose.mg_per_kg",
	"session.before_course",
	"session.after_course",
	"session.end_before_start",
	"session.short",
	"course.dosing_count",
	"ref.pending",
	"ref.role",
	"safety.red_flag",
	"safety.phq9_item9",
	"safety.cssrs",
	"safety.bp",
}

// CheckConfig tunes Check. The zero value means the documented defaults.
type CheckConfig struct {
	// BP is the blood pressure above which a reading is a safety warning
	// (strictly above either value). Zero means DefaultThresholds, the same
	// thresholds the mappings raise a Flag at, so a finding and a Flag
	// never disagree.
	BP Thresholds
	// MonitoringMinutes is the shortest monitored time of a dosing
	// session by route; nil means DefaultMonitoringMinutes.
	MonitoringMinutes map[string]int
	// MaxDosing is the number of dosing sessions in a course above which
	// Check warns; 0 means 8, the top of kap-domain.md's "typically 6-8".
	MaxDosing int
	// MgPerKgTolerance is the relative difference between mg_per_kg and
	// mg / latest weight that is tolerated (rounding of doses and drawn
	// volumes); 0 means 0.10.
	MgPerKgTolerance float64
}

// DefaultMonitoringMinutes are the lower ends of the session lengths in
// kap-domain.md section 1: IV infusion 40-60 min, IM 45-60, troche or
// lozenge about 90, Spravato at least 120 monitored minutes (REMS).
var DefaultMonitoringMinutes = map[string]int{"iv": 40, "im": 45, "lozenge": 90, "spravato": 120}

func (c CheckConfig) bp() Thresholds {
	if c.BP == (Thresholds{}) {
		return DefaultThresholds
	}
	return c.BP
}

func (c CheckConfig) monitoring() map[string]int {
	if c.MonitoringMinutes == nil {
		return DefaultMonitoringMinutes
	}
	return c.MonitoringMinutes
}

func (c CheckConfig) maxDosing() int {
	if c.MaxDosing == 0 {
		return 8
	}
	return c.MaxDosing
}

func (c CheckConfig) mgPerKgTolerance() float64 {
	if c.MgPerKgTolerance == 0 {
		return 0.10
	}
	return c.MgPerKgTolerance
}

// physiologicalRange bounds a vital sign to values a living patient in an
// outpatient session can have; outside them the value is an entry error
// (a unit mix-up, a slipped digit), not a clinical finding. These are the
// project's plausibility bounds, not a published standard.
type physiologicalRange struct {
	code, field, unit string
	lo, hi            float64
	get               func(*Vitals) *float64
}

var physiologicalRanges = []physiologicalRange{
	{"vitals.range.systolic", "vitals.systolic", "mm[Hg]", 50, 260, func(v *Vitals) *float64 { return v.Systolic }},
	{"vitals.range.diastolic", "vitals.diastolic", "mm[Hg]", 30, 160, func(v *Vitals) *float64 { return v.Diastolic }},
	{"vitals.range.heart_rate", "vitals.heart_rate", "/min", 25, 250, func(v *Vitals) *float64 { return v.HeartRate }},
	{"vitals.range.spo2", "vitals.spo2", "%", 50, 100, func(v *Vitals) *float64 { return v.SpO2 }},
	{"vitals.range.respiratory_rate", "vitals.respiratory_rate", "/min", 4, 60, func(v *Vitals) *float64 { return v.RespiratoryRate }},
	{"vitals.range.weight", "vitals.weight_kg", "kg", 20, 350, func(v *Vitals) *float64 { return v.WeightKg }},
	{"vitals.range.temperature", "vitals.temperature_c", "°C", 30, 44, func(v *Vitals) *float64 { return v.TemperatureC }},
}

// Check runs the table of checks (CHECKS.md) on one record against the
// records in b, and returns its findings (problems whose codes are
// CheckCodes, the record set) in table order. Records another
// record names but b does not hold yet are "ref.pending" warnings, and the
// rules that need them are skipped: records arrive in any order, so the
// importer checks again when they land. Check is pure; it never changes b.
func Check(b *Book, r Record, cfg CheckConfig) []Problem {
	if b == nil {
		b = NewBook()
	}
	c := checker{b: b, cfg: cfg}
	switch r := recordPointer(r).(type) {
	case *Client:
	case *Practitioner:
	case *Course:
		c.course(r)
	case *Session:
		c.session(r)
	case *Screening:
		c.screening(r)
	case *Observation:
		c.observation(r)
	case *Note:
		c.ref("session", KindSession, r.Session)
		c.refRole("author", r.Author, "therapist", "prescriber")
	case *Consent:
		c.ref("client", KindClient, r.Client)
		c.ref("recipient", KindPractitioner, r.Recipient)
	}
	order := make(map[string]int, len(CheckCodes))
	for i, code := range CheckCodes {
		order[code] = i
	}
	slices.SortStableFunc(c.out, func(x, y Problem) int { return order[x.Code] - order[y.Code] })
	if rp := recordPointer(r); rp != nil {
		h := rp.RecordHeader()
		for i := range c.out {
			c.out[i].Record = Ref{h.Kind, h.ID}
		}
	}
	return c.out
}

type checker struct {
	b   *Book
	cfg CheckConfig
	out []Problem
}

func (c *checker) errorf(code, field, format string, args ...any) {
	c.out = append(c.out, Problem{Code: code, Severity: SeverityError, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) warnf(code, field, format string, args ...any) {
	c.out = append(c.out, Problem{Code: code, Severity: SeverityWarning, Field: field, Message: fmt.Sprintf(format, args...)})
}

// ref reports a reference b does not resolve and says whether it does.
func (c *checker) ref(field string, kind Kind, id string) bool {
	if id == "" {
		return false
	}
	if _, ok := c.b.Get(kind, id); ok {
		return true
	}
	c.warnf("ref.pending", field, "%s %q is not known yet; checked again when it arrives", kind, id)
	return false
}

// refRole resolves a practitioner reference and warns when the
// practitioner's role is not one of roles: a course whose "prescriber" is
// a therapist cannot have a dose prescribed.
func (c *checker) refRole(field, id string, roles ...string) {
	if !c.ref(field, KindPractitioner, id) {
		return
	}
	p, _ := c.b.Practitioner(id)
	if !slices.Contains(roles, p.Role) {
		c.warnf("ref.role", field, "practitioner %q is a %s, expected a %s", id, p.Role, strings.Join(roles, " or "))
	}
}

func (c *checker) course(r *Course) {
	c.ref("client", KindClient, r.Client)
	c.refRole("prescriber", r.Prescriber, "prescriber")
	c.refRole("therapist", r.Therapist, "therapist")
	for i, id := range r.Team {
		c.ref(fmt.Sprintf("team[%d]", i), KindPractitioner, id)
	}
	max := c.cfg.maxDosing()
	held := 0
	for _, s := range c.b.SessionsOf(r.ID) {
		if s.Type == "dosing" && s.Status != "cancelled" && s.Status != "no_show" {
			held++
		}
	}
	switch {
	case r.Planned.Dosing > max:
		c.warnf("course.dosing_count", "planned.dosing", "%d dosing sessions planned, more than the usual %d of a course", r.Planned.Dosing, max)
	case held > max:
		c.warnf("course.dosing_count", "", "%d dosing sessions planned or held, more than the usual %d of a course", held, max)
	}
}

// sessionStart is when a session began or is to begin.
func sessionStart(s *Session) string {
	if s.ActualStart != "" {
		return s.ActualStart
	}
	return s.PlannedStart
}

func (c *checker) session(s *Session) {
	course, haveCourse := c.b.Course(s.Course)
	c.ref("course", KindCourse, s.Course)
	for i, id := range s.Practitioners {
		c.ref(fmt.Sprintf("practitioners[%d]", i), KindPractitioner, id)
	}
	startField := "planned_start"
	if s.ActualStart != "" {
		startField = "actual_start"
	}
	start, startOK := parseRecordTime(sessionStart(s))

	// Times within the session.
	if s.ActualStart != "" && s.ActualEnd != "" {
		a, okA := parseRecordTime(s.ActualStart)
		e, okE := parseRecordTime(s.ActualEnd)
		if okA && okE && e.Before(a) {
			c.errorf("session.end_before_start", "actual_end", "ends at %s, before it starts at %s", s.ActualEnd, s.ActualStart)
		}
	}
	if s.PlannedEnd != "" {
		p, okP := parseRecordTime(s.PlannedStart)
		e, okE := parseRecordTime(s.PlannedEnd)
		if okP && okE && e.Before(p) {
			c.errorf("session.end_before_start", "planned_end", "is planned to end at %s, before it starts at %s", s.PlannedEnd, s.PlannedStart)
		}
	}

	// The session within its course. Dates compare in the session's own
	// zone: a course starting on a day starts on that day where it is held.
	if haveCourse && startOK {
		day := start.Format(time.DateOnly)
		if course.Start != "" && day < course.Start {
			c.errorf("session.before_course", startField, "session on %s, before its course starts on %s", day, course.Start)
		}
		if course.End != "" && day > course.End {
			c.warnf("session.after_course", startField, "session on %s, after its course ended on %s", day, course.End)
		}
	}

	doses := s.Type == "dosing" || s.Type == "maintenance"
	given := s.Status == "held" || s.Dose != nil
	if s.Dose == nil {
		if s.Type == "dosing" && s.Status == "held" {
			c.warnf("dose.missing", "dose", "held dosing session without a dose")
		}
	} else {
		c.dose(s, course, haveCourse, start, startOK)
	}

	// A dose needs a cleared screening first. Screenings are found by the
	// client id alone, so an unknown client record does not matter here
	// (the course's own check reports it).
	if doses && given && s.Status != "cancelled" && s.Status != "no_show" && haveCourse && startOK {
		if !c.cleared(course.Client, start) {
			c.errorf("dosing.no_clearance", startField, "%s session at %s: client %q has no screening with clearance decision \"cleared\" at or before it", s.Type, sessionStart(s), course.Client)
		}
	}
}

// cleared reports whether the client has a screening with a "cleared"
// decision at or before t. A date-only screening counts for any time of
// its day.
func (c *checker) cleared(client string, t time.Time) bool {
	for _, sc := range c.b.ScreeningsOf(client) {
		if sc.Clearance == nil || sc.Clearance.Decision != "cleared" {
			continue
		}
		if isRecordDate(sc.Date) {
			if sc.Date <= t.Format(time.DateOnly) {
				return true
			}
			continue
		}
		if d, ok := parseRecordTime(sc.Date); ok && !d.After(t) {
			return true
		}
	}
	return false
}

func (c *checker) dose(s *Session, course *Course, haveCourse bool, start time.Time, startOK bool) {
	d := s.Dose
	if s.Type != "dosing" && s.Type != "maintenance" {
		c.errorf("dose.session_type", "dose", "a dose on a %s session: doses belong to dosing and maintenance sessions", s.Type)
	}
	route := d.Route
	if route == "" {
		c.errorf("dose.no_route", "dose.route", "dose without a route")
		if haveCourse {
			route = course.Route // for the rules below only
		}
	}
	if d.AdministeredBy != "" {
		c.ref("dose.administered_by", KindPractitioner, d.AdministeredBy)
	}
	switch {
	case d.Drug == "esketamine" && route != "" && route != "spravato":
		c.errorf("dose.drug_route", "dose.drug", "esketamine is given only as Spravato nasal spray, not by route %s", route)
	case d.Drug != "esketamine" && d.Drug != "" && route == "spravato":
		c.errorf("dose.drug_route", "dose.drug", "the Spravato route is esketamine nasal spray, not %s", d.Drug)
	}
	if route == "spravato" && d.Mg != 56 && d.Mg != 84 {
		c.warnf("dose.spravato_mg", "dose.mg", "Spravato dose %g mg: the labelled doses are 56 and 84 mg (2 or 3 devices)", d.Mg)
	}
	if min, ok := c.cfg.monitoring()[route]; ok && s.Status == "held" {
		if got, ok := monitoredMinutes(s); ok && got < min {
			c.warnf("session.short", "dose.monitored_minutes", "%d monitored minutes, fewer than the %d a %s session needs", got, min, route)
		}
	}
	if d.MgPerKg != nil && haveCourse && startOK {
		if w, when, ok := c.latestWeight(course.Client, start); ok && w > 0 {
			want := d.Mg / w
			if math.Abs(want-*d.MgPerKg) > c.cfg.mgPerKgTolerance()**d.MgPerKg {
				c.warnf("dose.mg_per_kg", "dose.mg_per_kg", "%g mg/kg, but %g mg for %g kg (weighed %s) is %.2f mg/kg", *d.MgPerKg, d.Mg, w, when, want)
			}
		}
	}
}

// monitoredMinutes is the dose's monitored_minutes if given, else the
// held session's length.
func monitoredMinutes(s *Session) (int, bool) {
	if s.Dose != nil && s.Dose.MonitoredMin > 0 {
		return s.Dose.MonitoredMin, true
	}
	a, okA := parseRecordTime(s.ActualStart)
	e, okE := parseRecordTime(s.ActualEnd)
	if !okA || !okE {
		return 0, false
	}
	return int(e.Sub(a).Minutes()), true
}

// latestWeight is the client's last weight observed at or before t, in
// any of the client's courses.
func (c *checker) latestWeight(client string, t time.Time) (float64, string, bool) {
	var best time.Time
	var w float64
	var when string
	found := false
	for _, co := range c.b.CoursesOf(client) {
		for _, s := range c.b.SessionsOf(co.ID) {
			for _, o := range c.b.ObservationsOf(s.ID) {
				if o.Vitals == nil || o.Vitals.WeightKg == nil {
					continue
				}
				ot, ok := parseRecordTime(o.Time)
				if !ok || ot.After(t) || (found && ot.Before(best)) {
					continue
				}
				best, w, when, found = ot, *o.Vitals.WeightKg, o.Time, true
			}
		}
	}
	return w, when, found
}

func (c *checker) screening(sc *Screening) {
	c.ref("client", KindClient, sc.Client)
	if sc.Course != "" {
		c.ref("course", KindCourse, sc.Course)
	}
	c.refRole("performed_by", sc.PerformedBy, "prescriber", "therapist")
	for i, in := range sc.Instruments {
		field := fmt.Sprintf("instruments[%d]", i)
		s, err := Score(in)
		if errors.Is(err, ErrTotalMismatch) {
			c.errorf("instrument.total", field+".total", "%v", err)
			continue
		}
		if err != nil {
			c.errorf("instrument.items", field+".items", "%v", err)
			continue
		}
		if in.Instrument == "phq9" && in.Items[8] > 0 {
			c.warnf("safety.phq9_item9", field+".items[8]", "PHQ-9 item 9 (thoughts of being better off dead or of self-harm) is %d: assess suicide risk before any dose", in.Items[8])
		}
		if in.Instrument == "cssrs" && s.SafetyFlag {
			c.warnf("safety.cssrs", field+".items", "C-SSRS screener triage %s (%s): assess before any dose", s.Band, strings.Join(s.Reasons, "; "))
		}
	}
}

func (c *checker) observation(o *Observation) {
	c.ref("session", KindSession, o.Session)
	if o.Performer != "" {
		c.ref("performer", KindPractitioner, o.Performer)
	}
	if v := o.Vitals; v != nil {
		for _, pr := range physiologicalRanges {
			if x := pr.get(v); x != nil && (*x < pr.lo || *x > pr.hi) {
				c.errorf(pr.code, pr.field, "%g %s is outside %g-%g %s: an entry error or a unit mix-up", *x, pr.unit, pr.lo, pr.hi, pr.unit)
			}
		}
		th := c.cfg.bp()
		if (v.Systolic != nil && *v.Systolic > th.SystolicMax) || (v.Diastolic != nil && *v.Diastolic > th.DiastolicMax) {
			c.warnf("safety.bp", "vitals", "blood pressure %s above the threshold %g/%g mm[Hg]", bpText(v), th.SystolicMax, th.DiastolicMax)
		}
	}
	for i, f := range o.RedFlags {
		c.warnf("safety.red_flag", fmt.Sprintf("red_flags[%d]", i), "red flag: %s", f)
	}
}

func bpText(v *Vitals) string {
	f := func(x *float64) string {
		if x == nil {
			return "?"
		}
		return fmt.Sprintf("%g", *x)
	}
	return f(v.Systolic) + "/" + f(v.Diastolic)
}

// parseRecordTime parses a record's RFC 3339 date-time or YYYY-MM-DD date
// (as midnight UTC).
func parseRecordTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}
