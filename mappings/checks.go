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
	"clearance.contraindication",
	"clearance.override",
	"role.clearance_by",
	"dosing.no_clearance",
	"dosing.not_cleared",
	"dosing.clearance_expired",
	"dosing.pregnancy_test",
	"dosing.pregnancy_test_missing",
	"dose.missing",
	"dose.no_route",
	"dose.session_type",
	"dose.drug_route",
	"dose.product",
	"dose.spravato_mg",
	"dose.mg_per_kg",
	"dose.mg_per_kg_ceiling",
	"dose.concomitant",
	"dose.escalation",
	"role.administered_by",
	"role.prescriber_credential",
	"session.before_course",
	"session.after_course",
	"session.end_before_start",
	"session.short",
	"schedule.min_interval",
	"schedule.no_preparation",
	"schedule.maintenance_weeks",
	"schedule.no_integration",
	"schedule.induction_window",
	"schedule.spravato_frequency",
	"course.dosing_count",
	"course.spravato_indication",
	"ref.pending",
	"ref.role",
	"vitals.bp_pre_dose",
	"vitals.bp_crisis",
	"vitals.bp_rise",
	"vitals.discharge_unresolved",
	"vitals.sedation_deep",
	"vitals.spo2",
	"vitals.heart_rate",
	"vitals.respiratory_rate",
	"vitals.dissociation",
	"safety.red_flag",
	"safety.phq9_item9",
	"safety.cssrs",
}

// CheckConfig tunes Check. The zero value means the documented defaults.
type CheckConfig struct {
	// Limits are the safety thresholds (vital signs, clearance validity,
	// dose ceilings); zero fields mean LimitTable's defaults. The Mapper
	// interprets vitals with the same Limits.
	Limits Limits
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

// alertf reports what happened and broke a safety rule: the record is
// kept and mapped (never held back) and the finding becomes an
// error-severity Flag for the prescriber (Mapper.FindingFlags).
func (c *checker) alertf(code, field, format string, args ...any) {
	c.out = append(c.out, Problem{Code: code, Severity: SeverityAlert, Field: field, Message: fmt.Sprintf(format, args...)})
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
	if p, ok := c.b.Practitioner(r.Prescriber); ok && p.Credential != "" && !slices.Contains(PrescribingCredentials, p.Credential) {
		c.alertf("role.prescriber_credential", "prescriber", "prescriber %q holds %s, which cannot prescribe ketamine (a Schedule III drug): %s can", p.ID, p.Credential, strings.Join(PrescribingCredentials, ", "))
	}
	if r.Route == "spravato" {
		for i, ind := range r.Indications {
			if !slices.Contains(spravatoIndications, ind) {
				c.warnf("course.spravato_indication", fmt.Sprintf("indications[%d]", i), "Spravato for %s: its label covers treatment-resistant depression and depressive symptoms in MDD with acute suicidal ideation or behaviour (trd, mdd, suicidal_ideation)", ind)
			}
		}
	}
	var first, last time.Time
	var firstID, lastID string
	for _, s := range c.b.SessionsOf(r.ID) {
		if s.Type != "dosing" || s.Status == "cancelled" || s.Status == "no_show" {
			continue
		}
		t, ok := parseRecordTime(sessionStart(s))
		if !ok {
			continue
		}
		if firstID == "" || t.Before(first) {
			first, firstID = t, s.ID
		}
		if lastID == "" || t.After(last) {
			last, lastID = t, s.ID
		}
	}
	if max := c.cfg.Limits.Get("induction_max_days"); firstID != "" && last.Sub(first).Hours()/24 > max {
		c.warnf("schedule.induction_window", "", "dosing sessions from %s (%q) to %s (%q): %.0f days, longer than the %g-day induction window (induction_max_days); later doses are maintenance", first.Format(time.DateOnly), firstID, last.Format(time.DateOnly), lastID, last.Sub(first).Hours()/24, max)
	}
	if r.Maintenance != 0 && (r.Maintenance < 4 || r.Maintenance > 12) {
		c.warnf("schedule.maintenance_weeks", "maintenance_weeks", "maintenance every %d weeks, outside the usual 4-12", r.Maintenance)
	}
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

	// A dose needs a cleared screening first: the latest clearance
	// decision at or before the session governs (a later not_cleared
	// revokes an earlier cleared), and it expires. Screenings are found by
	// the client id alone, so an unknown client record does not matter
	// here (the course's own check reports it).
	if doses && given && s.Status != "cancelled" && s.Status != "no_show" && haveCourse && startOK {
		c.clearance(s, course, start, startField)
		c.schedule(s, course, start, startField)
	} else if doses && s.Status == "planned" && haveCourse && startOK {
		// Before the dose: what can still be done before it (a test).
		c.pregnancyTestMissing(s, course, start, startField, nil)
	}
}

// pregnancyTestMissing warns of a dosing session of a client to whom a
// pregnancy test applies (sex female, aged pregnancy_test_age_min to
// pregnancy_test_age_max at the session) with no test on file at or
// before it (test: the latest one, nil if none). A planned session is
// judged too, so the prescriber sees it before the dose. A client whose
// sex or birth date is not recorded is not judged: the rule cannot tell
// whether it applies, and a finding on every such client would be noise.
func (c *checker) pregnancyTestMissing(s *Session, course *Course, start time.Time, startField string, test *PregnancyTest) {
	if test == nil {
		test, _ = c.latestPregnancyTest(course.Client, start)
	}
	if test != nil {
		return
	}
	cl, ok := c.b.Client(course.Client)
	if !ok || cl.Sex != "female" {
		return
	}
	born, err := time.ParseInLocation(time.DateOnly, cl.BirthDate, start.Location())
	if err != nil {
		return
	}
	age := start.Year() - born.Year()
	if start.Month() < born.Month() || start.Month() == born.Month() && start.Day() < born.Day() {
		age--
	}
	lo, hi := c.cfg.Limits.Get("pregnancy_test_age_min"), c.cfg.Limits.Get("pregnancy_test_age_max")
	if float64(age) < lo || float64(age) > hi {
		return
	}
	c.warnf("dosing.pregnancy_test_missing", startField, "%s %s session at %s: client %q (female, %d years) has no pregnancy test on file at or before it; one applies from %g to %g years (pregnancy_test_age_min, pregnancy_test_age_max)", s.Status, s.Type, sessionStart(s), course.Client, age, lo, hi)
}

// latestPregnancyTest is the client's latest pregnancy test at or before
// t, and the screening that carries it.
func (c *checker) latestPregnancyTest(client string, t time.Time) (*PregnancyTest, string) {
	var test *PregnancyTest
	var testAt time.Time
	var testBy string
	for _, sc := range c.b.ScreeningsOf(client) {
		if sc.PregnancyTest == nil {
			continue
		}
		d, ok := screeningTime(sc.PregnancyTest.Date, t)
		if !ok || d.After(t) || (test != nil && d.Before(testAt)) {
			continue
		}
		test, testAt, testBy = sc.PregnancyTest, d, sc.ID
	}
	return test, testBy
}

// clearanceAt is a screening's clearance decision placed in time.
type clearanceAt struct {
	sc   *Screening
	when time.Time
}

// screeningTime places a screening's date relative to t: a date-only
// screening counts as the start of its day in t's zone, so it governs any
// session of that day.
func screeningTime(date string, t time.Time) (time.Time, bool) {
	if isRecordDate(date) {
		d, err := time.ParseInLocation(time.DateOnly, date, t.Location())
		return d, err == nil
	}
	return parseRecordTime(date)
}

// governingClearance is the latest clearance decision of the client at or
// before t. On a tie a decision other than cleared wins: the safer
// reading of two decisions made at once.
func (c *checker) governingClearance(client string, t time.Time) (clearanceAt, bool) {
	var best clearanceAt
	found := false
	for _, sc := range c.b.ScreeningsOf(client) {
		if sc.Clearance == nil {
			continue
		}
		d, ok := screeningTime(sc.Date, t)
		if !ok || d.After(t) {
			continue
		}
		if !found || d.After(best.when) || (d.Equal(best.when) && sc.Clearance.Decision != "cleared") {
			best, found = clearanceAt{sc, d}, true
		}
	}
	return best, found
}

func (c *checker) clearance(s *Session, course *Course, start time.Time, startField string) {
	g, ok := c.governingClearance(course.Client, start)
	switch {
	case !ok:
		c.errorf("dosing.no_clearance", startField, "%s session at %s: client %q has no screening with a clearance decision at or before it", s.Type, sessionStart(s), course.Client)
	case g.sc.Clearance.Decision != "cleared":
		c.alertf("dosing.not_cleared", startField, "%s session at %s: the clearance decision in force is %q (screening %q of %s)", s.Type, sessionStart(s), g.sc.Clearance.Decision, g.sc.ID, g.sc.Date)
	default:
		days := c.cfg.Limits.Get("clearance_valid_days")
		if age := start.Sub(g.when); age > time.Duration(days*24*float64(time.Hour)) {
			c.alertf("dosing.clearance_expired", startField, "%s session at %s: the clearance of screening %q (%s) is %d days old, past the %g days it is valid (clearance_valid_days)", s.Type, sessionStart(s), g.sc.ID, g.sc.Date, int(age.Hours()/24), days)
		}
	}
	// The latest pregnancy test at or before the dose.
	test, testBy := c.latestPregnancyTest(course.Client, start)
	if test != nil && test.Result == "positive" {
		c.alertf("dosing.pregnancy_test", startField, "%s session at %s: the latest pregnancy test before it (%s, screening %q) is positive", s.Type, sessionStart(s), test.Date, testBy)
	}
	c.pregnancyTestMissing(s, course, start, startField, test)
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
	if d.AdministeredBy != "" && c.ref("dose.administered_by", KindPractitioner, d.AdministeredBy) {
		p, _ := c.b.Practitioner(d.AdministeredBy)
		if !slices.Contains(AdministeringCredentials, p.Credential) {
			c.alertf("role.administered_by", "dose.administered_by", "dose given by %q, a %s holding %s, who is not licensed to administer it: %s are", p.ID, p.Role, p.Credential, strings.Join(AdministeringCredentials, ", "))
		}
	}
	switch {
	case d.Drug == "esketamine" && route != "" && route != "spravato":
		c.errorf("dose.drug_route", "dose.drug", "esketamine is given only as Spravato nasal spray, not by route %s", route)
	case d.Drug != "esketamine" && d.Drug != "" && route == "spravato":
		c.errorf("dose.drug_route", "dose.drug", "the Spravato route is esketamine nasal spray, not %s", d.Drug)
	}
	if d.Product != "" {
		switch {
		case d.Drug != "ketamine":
			c.errorf("dose.product", "dose.product", "product %s is a ketamine HCl injectable (RxNorm), not %s", d.Product, d.Drug)
		case route != "iv" && route != "im":
			c.errorf("dose.product", "dose.product", "product %s is a ketamine HCl injectable (RxNorm), given IV or IM, not by route %s", d.Product, route)
		}
	}
	if route == "spravato" && d.Mg != 28 && d.Mg != 56 && d.Mg != 84 {
		c.warnf("dose.spravato_mg", "dose.mg", "Spravato dose %g mg: the labelled doses are 28, 56 and 84 mg (1, 2 or 3 devices of 28 mg)", d.Mg)
	}
	if min, ok := c.cfg.monitoring()[route]; ok && s.Status == "held" {
		if got, ok := monitoredMinutes(s); ok && got < min {
			c.warnf("session.short", "dose.monitored_minutes", "%d monitored minutes, fewer than the %d a %s session needs", got, min, route)
		}
	}
	for i, cls := range s.Concomitant {
		if why, ok := concomitantRisk[cls]; ok {
			c.warnf("dose.concomitant", fmt.Sprintf("concomitant[%d]", i), "%s taken with the dose: %s", strings.ReplaceAll(cls, "_", "-"), why)
		}
	}
	var w float64
	var when string
	haveWeight := false
	if haveCourse && startOK && (d.MgPerKg != nil || ceilingName[route] != "") {
		w, when, haveWeight = c.latestWeight(course.Client, start)
		haveWeight = haveWeight && w > 0
	}
	if d.MgPerKg != nil && haveWeight {
		want := d.Mg / w
		if math.Abs(want-*d.MgPerKg) > c.cfg.mgPerKgTolerance()**d.MgPerKg {
			c.warnf("dose.mg_per_kg", "dose.mg_per_kg", "%g mg/kg, but %g mg for %g kg (weighed %s) is %.2f mg/kg", *d.MgPerKg, d.Mg, w, when, want)
		}
	}
	if name := ceilingName[route]; name != "" && d.Drug == "ketamine" {
		ceiling := c.cfg.Limits.Get(name)
		switch {
		case d.MgPerKg != nil && *d.MgPerKg > ceiling:
			c.alertf("dose.mg_per_kg_ceiling", "dose.mg_per_kg", "ketamine %g mg/kg %s, above the ceiling of %g mg/kg (%s)", *d.MgPerKg, route, ceiling, name)
		case d.MgPerKg == nil && haveWeight && d.Mg/w > ceiling:
			c.alertf("dose.mg_per_kg_ceiling", "dose.mg", "ketamine %g mg %s for %g kg (weighed %s) is %.2f mg/kg, above the ceiling of %g mg/kg (%s)", d.Mg, route, w, when, d.Mg/w, ceiling, name)
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
	if cl := sc.Clearance; cl != nil {
		if p, ok := c.b.Practitioner(sc.PerformedBy); ok && (p.Role != "prescriber" || !slices.Contains(PrescribingCredentials, p.Credential)) {
			c.errorf("role.clearance_by", "performed_by", "a clearance decision by %q, a %s holding %s: medical clearance is a prescriber's (%s)", p.ID, p.Role, p.Credential, strings.Join(PrescribingCredentials, ", "))
		}
		if cl.Decision == "cleared" {
			var yes []string
			for _, it := range clearanceItems {
				if b := it.get(cl); b != nil && *b {
					yes = append(yes, strings.ReplaceAll(it.code, "-", "_")) // the record's field name
				}
			}
			if sc.PregnancyTest != nil && sc.PregnancyTest.Result == "positive" {
				yes = append(yes, "pregnancy test positive")
			}
			switch {
			case len(yes) > 0 && cl.OverrideReason == "":
				c.errorf("clearance.contraindication", "clearance.decision", "cleared with %s answered yes and no override_reason: a prescriber's override needs a reason", strings.Join(yes, ", "))
			case len(yes) > 0:
				c.warnf("clearance.override", "clearance.override_reason", "cleared despite %s, overridden by the prescriber: %s", strings.Join(yes, ", "), cl.OverrideReason)
			}
		}
	}
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
	lim := c.cfg.Limits
	if v := o.Vitals; v != nil {
		implausible := false
		for _, pr := range physiologicalRanges {
			if x := pr.get(v); x != nil && (*x < pr.lo || *x > pr.hi) {
				implausible = true
				c.errorf(pr.code, pr.field, "%g %s is outside %g-%g %s: an entry error or a unit mix-up", *x, pr.unit, pr.lo, pr.hi, pr.unit)
			}
		}
		if !implausible {
			c.bloodPressure(o, lim)
			if x := v.SpO2; x != nil && *x <= lim.Get("spo2_critical") {
				c.alertf("vitals.spo2", "vitals.spo2", "SpO2 %g %% (%s) is at or below %g %% (spo2_critical)", *x, phaseText(o), lim.Get("spo2_critical"))
			}
			if x := v.HeartRate; x != nil {
				switch {
				case *x >= lim.Get("heart_rate_critical"):
					c.alertf("vitals.heart_rate", "vitals.heart_rate", "heart rate %g /min (%s) is at or above %g /min (heart_rate_critical)", *x, phaseText(o), lim.Get("heart_rate_critical"))
				case *x <= lim.Get("heart_rate_critical_low"):
					c.alertf("vitals.heart_rate", "vitals.heart_rate", "heart rate %g /min (%s) is at or below %g /min (heart_rate_critical_low)", *x, phaseText(o), lim.Get("heart_rate_critical_low"))
				}
			}
			if x := v.RespiratoryRate; x != nil {
				switch {
				case *x >= lim.Get("resp_rate_critical"):
					c.alertf("vitals.respiratory_rate", "vitals.respiratory_rate", "respiratory rate %g /min (%s) is at or above %g /min (resp_rate_critical)", *x, phaseText(o), lim.Get("resp_rate_critical"))
				case *x <= lim.Get("resp_rate_critical_low"):
					c.alertf("vitals.respiratory_rate", "vitals.respiratory_rate", "respiratory rate %g /min (%s) is at or below %g /min (resp_rate_critical_low): respiratory depression", *x, phaseText(o), lim.Get("resp_rate_critical_low"))
				}
			}
		}
	}
	if d := o.Dissociation; d != nil {
		switch {
		case o.Phase == "discharge" && float64(*d) > lim.Get("discharge_dissociation_max"):
			c.alertf("vitals.discharge_unresolved", "dissociation", "dissociation %d/10 at discharge: not resolved (at most %g, discharge_dissociation_max)", *d, lim.Get("discharge_dissociation_max"))
		case o.Phase != "discharge" && float64(*d) >= lim.Get("dissociation_high"):
			c.warnf("vitals.dissociation", "dissociation", "dissociation %d/10 (%s), at or above %g (dissociation_high)", *d, phaseText(o), lim.Get("dissociation_high"))
		}
	}
	if sd := o.Sedation; sd != nil {
		switch {
		case o.Phase == "discharge" && float64(*sd) < lim.Get("discharge_sedation_min"):
			c.alertf("vitals.discharge_unresolved", "sedation", "sedation MOAA/S %d/5 at discharge: not resolved (at least %g, discharge_sedation_min; 5 = responds readily to the name in a normal tone)", *sd, lim.Get("discharge_sedation_min"))
		case o.Phase != "discharge" && float64(*sd) <= lim.Get("sedation_deep_max"):
			// Deeper than the session expects: airway and breathing
			// need watching now, not at discharge.
			c.alertf("vitals.sedation_deep", "sedation", "sedation MOAA/S %d/5 (%s): deep sedation, at or below %g (sedation_deep_max; 1 = responds only to a painful stimulus, 0 = no response): check airway, breathing and SpO2", *sd, phaseText(o), lim.Get("sedation_deep_max"))
		}
	}
	for i, f := range o.RedFlags {
		c.warnf("safety.red_flag", fmt.Sprintf("red_flags[%d]", i), "red flag: %s", f)
	}
}

// phaseText names where in its session an observation was made.
func phaseText(o *Observation) string {
	switch o.Phase {
	case "before":
		return "before the dose"
	case "during":
		return "during the session"
	case "discharge":
		return "at discharge"
	}
	return "at " + o.Time
}

// bloodPressure judges a reading by its phase: before a dose against the
// practice's hold-the-dose threshold; during the session by its rise from
// that session's baseline (the latest reading before the dose), since a
// transient peak about 40 minutes after a dose is expected; at discharge
// by whether it came back down. A hypertensive-crisis level is its own,
// higher, finding in any phase.
func (c *checker) bloodPressure(o *Observation, lim Limits) {
	v := o.Vitals
	if v.Systolic == nil && v.Diastolic == nil {
		return
	}
	above := func(sysName, diaName string) bool {
		return (v.Systolic != nil && *v.Systolic > lim.Get(sysName)) || (v.Diastolic != nil && *v.Diastolic > lim.Get(diaName))
	}
	if above("crisis_systolic", "crisis_diastolic") {
		c.alertf("vitals.bp_crisis", "vitals", "blood pressure %s mm[Hg] (%s) is above the hypertensive-crisis level %g/%g (crisis_systolic, crisis_diastolic)", bpText(v), phaseText(o), lim.Get("crisis_systolic"), lim.Get("crisis_diastolic"))
	}
	s, haveSession := c.b.Session(o.Session)
	dosing := haveSession && (s.Type == "dosing" || s.Type == "maintenance")
	predose := fmt.Sprintf("%g/%g", lim.Get("predose_systolic"), lim.Get("predose_diastolic"))
	switch {
	case o.Phase == "before" && dosing:
		if above("predose_systolic", "predose_diastolic") {
			c.alertf("vitals.bp_pre_dose", "vitals", "pre-dose blood pressure %s mm[Hg] is above the practice's %s (predose_systolic, predose_diastolic): hold the dose", bpText(v), predose)
		}
	case o.Phase == "during" && dosing:
		base, ok := c.baseline(o)
		if !ok {
			if above("predose_systolic", "predose_diastolic") {
				c.warnf("vitals.bp_rise", "vitals", "blood pressure %s mm[Hg] during the session is above %s and the session has no pre-dose reading to judge the rise from", bpText(v), predose)
			}
			return
		}
		if ds, dd, risen := c.rise(v, base.Vitals, lim); risen {
			c.warnf("vitals.bp_rise", "vitals", "blood pressure %s mm[Hg] during the session rose %+g/%+g from the pre-dose %s at %s (a rise of >= %g systolic or >= %g diastolic: rise_systolic, rise_diastolic)", bpText(v), ds, dd, bpText(base.Vitals), base.Time, lim.Get("rise_systolic"), lim.Get("rise_diastolic"))
		}
	case o.Phase == "discharge" && dosing:
		if above("predose_systolic", "predose_diastolic") {
			c.alertf("vitals.discharge_unresolved", "vitals", "blood pressure %s mm[Hg] at discharge is still above %s (predose_systolic, predose_diastolic)", bpText(v), predose)
			return
		}
		if base, ok := c.baseline(o); ok {
			if ds, dd, risen := c.rise(v, base.Vitals, lim); risen {
				c.alertf("vitals.discharge_unresolved", "vitals", "blood pressure %s mm[Hg] at discharge is still %+g/%+g above the pre-dose %s", bpText(v), ds, dd, bpText(base.Vitals))
			}
		}
	}
}

// baseline is the session's latest pre-dose blood pressure at or before o.
func (c *checker) baseline(o *Observation) (*Observation, bool) {
	t, ok := parseRecordTime(o.Time)
	if !ok {
		return nil, false
	}
	var best *Observation
	var bestT time.Time
	for _, b := range c.b.ObservationsOf(o.Session) {
		if b.Phase != "before" || b.Vitals == nil || (b.Vitals.Systolic == nil && b.Vitals.Diastolic == nil) {
			continue
		}
		bt, ok := parseRecordTime(b.Time)
		if !ok || bt.After(t) || (best != nil && bt.Before(bestT)) {
			continue
		}
		best, bestT = b, bt
	}
	return best, best != nil
}

// rise is how far v is above base, and whether either rise reaches its
// limit.
func (c *checker) rise(v, base *Vitals, lim Limits) (ds, dd float64, risen bool) {
	if v.Systolic != nil && base.Systolic != nil {
		ds = *v.Systolic - *base.Systolic
	}
	if v.Diastolic != nil && base.Diastolic != nil {
		dd = *v.Diastolic - *base.Diastolic
	}
	return ds, dd, ds >= lim.Get("rise_systolic") || dd >= lim.Get("rise_diastolic")
}

// schedule checks a dose against the course's other doses: too close to
// another, or the first with no preparation session before it.
func (c *checker) schedule(s *Session, course *Course, start time.Time, startField string) {
	route := course.Route
	if s.Dose != nil && s.Dose.Route != "" {
		route = s.Dose.Route
	}
	minGap := 0.0
	if name := intervalName[route]; name != "" {
		minGap = c.cfg.Limits.Get(name)
	}
	first, prepared := true, false
	var firstDose *Session
	var firstDoseT time.Time
	var prev *Session
	var prevT time.Time
	var integrations []time.Time
	// The earlier doses of the same drug and route: the largest rise from
	// any of them (the first, the previous, a lower one between).
	var worst escalation
	var worstT, lastDoseT time.Time
	var lastDose *Session
	inWeek := 1 // doses in the 7 days up to this one, this one included
	for _, o := range c.b.SessionsOf(s.Course) {
		if o.ID == s.ID || o.Status == "cancelled" || o.Status == "no_show" {
			continue
		}
		ot, ok := parseRecordTime(sessionStart(o))
		if !ok {
			continue
		}
		if o.Type == "preparation" && o.Status == "held" && ot.Before(start) {
			prepared = true
		}
		if o.Type == "integration" && o.Status == "held" {
			integrations = append(integrations, ot)
		}
		gives := (o.Type == "dosing" || o.Type == "maintenance") && (o.Status == "held" || o.Dose != nil)
		if !gives {
			continue
		}
		if ot.Before(start) && start.Sub(ot) < 7*24*time.Hour {
			inWeek++
		}
		if ot.Before(start) && o.Dose != nil && s.Dose != nil && o.Dose.Drug == s.Dose.Drug && o.Dose.Route == s.Dose.Route {
			if firstDose == nil || ot.Before(firstDoseT) {
				firstDose, firstDoseT = o, ot
			}
			if e := escalationOver(o, s); e.ratio > worst.ratio || e.ratio == worst.ratio && ot.After(worstT) {
				worst, worstT = e, ot
			}
			if lastDose == nil || ot.After(lastDoseT) {
				lastDose, lastDoseT = o, ot
			}
		}
		if ot.Before(start) {
			first = false
			if prev == nil || ot.After(prevT) {
				prev, prevT = o, ot
			}
		}
		if gap := start.Sub(ot); minGap > 0 && math.Abs(gap.Hours()) < minGap {
			c.alertf("schedule.min_interval", startField, "dose at %s is %.1f hours from the dose of session %q at %s: less than the %g hours between %s doses (%s)", sessionStart(s), math.Abs(gap.Hours()), o.ID, sessionStart(o), minGap, route, intervalName[route])
		}
	}
	if ratio := c.cfg.Limits.Get("escalation_ratio"); worst.from != nil && worst.ratio > ratio {
		which := "an earlier"
		switch worst.from {
		case firstDose:
			which = "the course's first"
		case lastDose:
			which = "the previous"
		}
		c.warnf("dose.escalation", "dose.mg", "%g %s, %.1f times %s %s dose (%g %s, session %q at %s): escalation beyond %g times (escalation_ratio) of any earlier dose is a dependence signal to look at", worst.to, worst.unit, worst.ratio, which, s.Dose.Route, worst.was, worst.unit, worst.from.ID, sessionStart(worst.from), ratio)
	}
	if route == "spravato" {
		day := 0
		if firstDose != nil {
			day = int(start.Sub(firstDoseT).Hours() / 24)
		}
		allowed, phase := 2, "weeks 1-4: twice weekly"
		if day >= 28 {
			allowed, phase = 1, "from week 5: weekly, later weekly or every two weeks"
		}
		if inWeek > allowed {
			c.warnf("schedule.spravato_frequency", startField, "%d Spravato doses in the 7 days up to %s (day %d of the course's doses), more than the label's %s", inWeek, sessionStart(s), day+1, phase)
		}
	}
	if first && !prepared {
		c.warnf("schedule.no_preparation", startField, "the course's first dose, at %s, with no preparation session held before it", sessionStart(s))
	}
	if prev != nil && !slices.ContainsFunc(integrations, func(t time.Time) bool { return t.After(prevT) && t.Before(start) }) {
		c.warnf("schedule.no_integration", startField, "no integration session held between the dose of session %q at %s and this one at %s", prev.ID, sessionStart(prev), sessionStart(s))
	}
}

// escalation is a dose (to) measured against an earlier one (was, of
// session from), in mg/kg when both give it, else in mg.
type escalation struct {
	from    *Session
	was, to float64
	unit    string
	ratio   float64
}

func escalationOver(earlier, s *Session) escalation {
	e := escalation{from: earlier, was: earlier.Dose.Mg, to: s.Dose.Mg, unit: "mg"}
	if earlier.Dose.MgPerKg != nil && s.Dose.MgPerKg != nil {
		e.was, e.to, e.unit = *earlier.Dose.MgPerKg, *s.Dose.MgPerKg, "mg/kg"
	}
	if e.was > 0 {
		e.ratio = e.to / e.was
	}
	return e
}

// Credentials (v2-0360 degree codes where they exist: MD, DO, NP, PA, RN,
// CRNA): who may prescribe ketamine, a Schedule III drug, and who may give
// it. State scope-of-practice law varies; these are the kap-domain.md
// section 1 roles.
var (
	PrescribingCredentials   = []string{"MD", "DO", "NP", "PA"}
	AdministeringCredentials = []string{"MD", "DO", "NP", "PA", "RN", "CRNA"}
)

// concomitantRisk is why each medication class the Spravato REMS form
// asks about matters with a dose (the label's interaction statements, as
// the REMS form groups them; lamotrigine is the project's addition).
var concomitantRisk = map[string]string{
	"benzodiazepine":    "a CNS depressant: sedation and respiratory depression may increase; monitor (Spravato label, CNS depressants)",
	"sedative_hypnotic": "a CNS depressant: sedation may increase; monitor (Spravato label, CNS depressants)",
	"opioid":            "a CNS depressant: sedation and respiratory depression may increase; monitor (Spravato label, CNS depressants)",
	"psychostimulant":   "may raise blood pressure further; monitor BP closely (Spravato label, psychostimulants)",
	"maoi":              "may raise blood pressure further; monitor BP closely (Spravato label, MAOIs)",
	"lamotrigine":       "may blunt ketamine's effect (project note; a reason for a weak response, not a danger)",
}

// spravatoIndications are the course indications inside Spravato's label.
var spravatoIndications = []string{"trd", "mdd", "suicidal_ideation"}

// ceilingName names the mg/kg ceiling limit of a ketamine route.
var ceilingName = map[string]string{"iv": "ketamine_mg_per_kg_iv", "im": "ketamine_mg_per_kg_im"}

// intervalName names the minimum-interval limit of a route.
var intervalName = map[string]string{"iv": "min_interval_hours_iv", "im": "min_interval_hours_im", "lozenge": "min_interval_hours_lozenge", "spravato": "min_interval_hours_spravato"}

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
