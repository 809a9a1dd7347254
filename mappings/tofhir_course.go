package mappings

import (
	"fmt"
	"html"
	"sort"
	"strconv"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// carePlanStatus maps course status to CarePlan.status (request-status).
var carePlanStatus = map[string]string{
	"draft": "draft", "active": "active", "on_hold": "on-hold", "completed": "completed", "revoked": "revoked",
}

// medicationRequestStatus maps course status to the prescription's
// MedicationRequest.status: a revoked course's order is stopped.
var medicationRequestStatus = map[string]string{
	"draft": "draft", "active": "active", "on_hold": "on-hold", "completed": "completed", "revoked": "stopped",
}

// activityStatus maps session status to CarePlan.activity.detail.status.
// A no-show is a cancelled activity whose reason says so.
var activityStatus = map[string]string{
	"planned": "scheduled", "held": "completed", "cancelled": "cancelled", "no_show": "cancelled",
}

var sessionTypes = []string{"consultation", "preparation", "dosing", "integration", "maintenance"}

func validSessionType(t string) bool {
	for _, s := range sessionTypes {
		if s == t {
			return true
		}
	}
	return false
}

// sessionTypeCode codes a session type in the project CodeSystem.
func (a *arena) sessionTypeCode(t string) *fhir.Value {
	return a.concept(t, a.localCoding(CSSessionType, t, ""))
}

// products are what a dosing activity of a course gives, by route:
// Spravato is esketamine (RxNorm SCDF); the others ketamine, whose
// injectable SCD depends on a strength the course does not name, so the
// ingredient. Compounded troches have no RxNorm drug: the ingredient and
// text.
var products = map[string]textCoding{
	"spravato": {"esketamine nasal spray (Spravato)", "drug.esketamine"},
	"iv":       {"ketamine hydrochloride IV infusion", "drug.ketamine"},
	"im":       {"ketamine hydrochloride IM injection", "drug.ketamine"},
	"lozenge":  {"compounded ketamine troche (sublingual)", "drug.ketamine"},
}

// product is the CodeableConcept of a route's product, nil for an
// unknown route.
func (a *arena) product(route string) *fhir.Value { return a.textConcept(products, route) }

var indications = []string{"mdd", "trd", "ptsd", "gad", "ocd", "suicidal_ideation", "chronic_pain"}

// conditionCode codes an indication: TRD has no code of its own, so it is
// MDD plus the project's code in the same CodeableConcept.
func (a *arena) conditionCode(ind string) *fhir.Value {
	switch ind {
	case "trd":
		return a.concept("treatment-resistant depression", a.coding("condition.mdd"), a.coding("condition.trd"))
	case "mdd":
		return a.concept("major depressive disorder", a.coding("condition.mdd"))
	case "ptsd":
		return a.concept("post-traumatic stress disorder", a.coding("condition.ptsd"))
	case "gad":
		return a.concept("generalized anxiety disorder", a.coding("condition.gad"))
	case "ocd":
		return a.concept("obsessive-compulsive disorder", a.coding("condition.ocd"))
	case "suicidal_ideation":
		return a.concept("suicidal thoughts", a.coding("condition.suicidal_ideation"))
	case "chronic_pain":
		return a.concept("chronic pain", a.coding("condition.chronic_pain"))
	}
	return nil
}

// sortSessions orders sessions by planned start, then id, so a CarePlan's
// activities do not depend on the order records arrived in. RFC 3339 with
// different offsets does not sort as text, so times are parsed.
func sortSessions(ss []*Session) {
	key := func(s *Session) int64 {
		if t, err := parseTime(s.PlannedStart); err == nil {
			return t.UnixNano()
		}
		return 0
	}
	sort.SliceStable(ss, func(i, j int) bool {
		ki, kj := key(ss[i]), key(ss[j])
		if ki != kj {
			return ki < kj
		}
		return ss[i].ID < ss[j].ID
	})
}

// course -> CarePlan + CareTeam + Condition per indication + Goal per goal
// and intention.
func (mp *mapping) course(c *Course) error {
	cl, ok := mp.b.Client(c.Client)
	if !ok {
		return unresolved("course.client", KindClient, c.Client)
	}
	mp.begin(KindCourse, c.Header, cl, false)
	status, ok := carePlanStatus[c.Status]
	if !ok {
		return invalid("course.status", "%q is not draft, active, on_hold, completed or revoked", c.Status)
	}
	start, err := mp.fhirDate("course.start", c.Start)
	if err != nil {
		return err
	}
	end, err := mp.fhirDate("course.end", c.End)
	if err != nil {
		return err
	}
	prod := mp.product(c.Route)
	if prod == nil {
		return invalid("course.route", "%q is not iv, im, lozenge or spravato", c.Route)
	}
	subject := mp.patientRef(c.Client)

	// Conditions first: the CarePlan and Goals address them.
	var condRefs []*fhir.Value
	// Active even when the course completes: whether a condition resolved
	// is the prescriber's finding, not the practice record's.
	clinical := "condition.active"
	for _, ind := range c.Indications {
		code := mp.conditionCode(ind)
		if code == nil {
			return invalid("course.indications", "%q is not one of %v", ind, indications)
		}
		cond := mp.emit("Condition", []string{ind}, []string{ProfileUSCoreCondition}, false,
			mem("clinicalStatus", mp.concept("", mp.coding(clinical))),
			mem("verificationStatus", mp.concept("", mp.coding("condition.confirmed"))),
			mem("category", mp.arr(mp.concept("", mp.coding("condition.problem-list-item")))),
			mem("code", code),
			mem("subject", mp.clone(subject)),
			mem("recordedDate", mp.clone(start)))
		condRefs = append(condRefs, mp.ref("Condition", cond.GetString("id")))
	}

	goalStatus := "active"
	switch c.Status {
	case "draft":
		goalStatus = "proposed"
	case "on_hold":
		goalStatus = "on-hold"
	case "completed":
		goalStatus = "completed"
	case "revoked":
		goalStatus = "cancelled"
	}
	var goalRefs []*fhir.Value
	addGoal := func(kind string, i int, text string) {
		g := mp.emit("Goal", []string{kind, strconv.Itoa(i + 1)}, []string{ProfileUSCoreGoal}, false,
			mem("lifecycleStatus", mp.str(goalStatus)),
			mem("category", mp.arr(mp.concept(kind))),
			mem("description", mp.concept(text)),
			mem("subject", mp.clone(subject)),
			mem("startDate", mp.clone(start)),
			mem("addresses", mp.arr(mp.clones(condRefs)...)))
		goalRefs = append(goalRefs, mp.ref("Goal", g.GetString("id")))
	}
	for i, g := range c.Goals {
		addGoal("goal", i, g)
	}
	// Intentions are set during preparation; they are the client's own
	// goals for the medicine sessions, so Goals too, told apart by category.
	for i, g := range c.Intentions {
		addGoal("intention", i, g)
	}

	// CareTeam: the prescriber and therapist, then the further team.
	teamStatus := "active"
	switch c.Status {
	case "draft":
		teamStatus = "proposed"
	case "on_hold":
		teamStatus = "suspended"
	case "completed", "revoked":
		teamStatus = "inactive"
	}
	var parts []*fhir.Value
	addMember := func(id, position string) {
		if id == "" {
			return
		}
		role := position
		if p, ok := mp.b.Practitioner(id); ok && p.Role != "" {
			role = p.Role
		}
		parts = append(parts, mp.obj(
			mem("role", mp.arr(mp.concept(role, mp.localCoding(CSPractitionerRole, role, "")))),
			mem("member", mp.practitionerRef(id))))
	}
	addMember(c.Prescriber, "prescriber")
	addMember(c.Therapist, "therapist")
	for _, id := range c.Team {
		addMember(id, "administrator")
	}
	team := mp.emit("CareTeam", []string{"careteam"}, []string{ProfileUSCoreCareTeam}, false,
		mem("status", mp.str(teamStatus)),
		mem("name", mp.str("KAP course team")),
		mem("subject", mp.clone(subject)),
		mem("period", mp.obj(mem("start", mp.clone(start)), mem("end", mp.clone(end)))),
		mem("participant", mp.arr(parts...)))

	// Activities: first one per planned session type carrying the planned
	// count (and the maintenance interval), then one per session.
	sessions := append([]*Session(nil), mp.b.SessionsOf(c.ID)...)
	sortSessions(sessions)
	var acts []*fhir.Value
	plan := []struct {
		typ string
		n   int
	}{{"preparation", c.Planned.Preparation}, {"dosing", c.Planned.Dosing}, {"integration", c.Planned.Integration}}
	for _, p := range plan {
		if p.n <= 0 {
			continue
		}
		var prd *fhir.Value
		if p.typ == "dosing" {
			prd = mp.clone(prod)
		}
		acts = append(acts, mp.obj(mem("detail", mp.obj(
			mem("extension", mp.arr(mp.extension(ExtPlannedCount, mem("valueInteger", mp.integer(p.n))))),
			mem("code", mp.sessionTypeCode(p.typ)),
			mem("status", mp.str(planStatus(c.Status, p.typ, p.n, sessions))),
			mem("productCodeableConcept", prd)))))
	}
	if c.Maintenance > 0 {
		acts = append(acts, mp.obj(mem("detail", mp.obj(
			mem("code", mp.sessionTypeCode("maintenance")),
			mem("status", mp.str(planStatus(c.Status, "maintenance", 0, sessions))),
			mem("scheduledTiming", mp.obj(mem("repeat", mp.obj(
				mem("frequency", mp.integer(1)),
				mem("period", mp.integer(c.Maintenance)),
				mem("periodUnit", mp.str("wk")))))),
			mem("productCodeableConcept", mp.clone(prod))))))
	}
	for _, s := range sessions {
		st, ok := activityStatus[s.Status]
		if !ok || !validSessionType(s.Type) {
			mp.warn("session.status", "session %q: status %q or type %q unknown: no activity", s.ID, s.Status, s.Type)
			continue
		}
		var reason, outcome, prd *fhir.Value
		if s.Status == "no_show" {
			reason = mp.concept("no show")
		}
		if s.Status == "held" {
			outcome = mp.arr(mp.refTo("Encounter", KindSession, s.ID))
		}
		if s.Type == "dosing" || s.Type == "maintenance" {
			prd = mp.clone(prod)
		}
		var perf []*fhir.Value
		for _, p := range s.Practitioners {
			perf = append(perf, mp.practitionerRef(p))
		}
		acts = append(acts, mp.obj(
			mem("outcomeReference", outcome),
			mem("detail", mp.obj(
				mem("code", mp.sessionTypeCode(s.Type)),
				mem("status", mp.str(st)),
				mem("statusReason", reason),
				mem("scheduledPeriod", mp.period(s.PlannedStart, s.PlannedEnd)),
				mem("performer", mp.arr(perf...)),
				mem("productCodeableConcept", prd)))))
	}

	// The course's prescription: each dose's MedicationAdministration
	// names it (request), as a prescriber's EHR expects of an order.
	if !mp.m.NoPrescriptions {
		mp.prescription(c, prod, subject, start, condRefs)
	}
	mp.emit("CarePlan", nil, []string{ProfileCarePlan, ProfileUSCoreCarePlan}, false,
		mem("text", mp.obj(mem("status", mp.str("generated")), mem("div", mp.str(carePlanNarrative(c, sessions))))),
		mem("status", mp.str(status)),
		mem("intent", mp.str("plan")),
		mem("category", mp.arr(mp.concept("", mp.coding("careplan.assess-plan")), mp.concept("", mp.coding("careplan.kap")))),
		mem("title", mp.str("Ketamine-assisted psychotherapy course")),
		mem("subject", mp.clone(subject)),
		mem("period", mp.obj(mem("start", mp.clone(start)), mem("end", mp.clone(end)))),
		mem("author", mp.practitionerRef(c.Prescriber)),
		mem("careTeam", mp.arr(mp.ref("CareTeam", team.GetString("id")))),
		mem("addresses", mp.arr(mp.clones(condRefs)...)),
		mem("goal", mp.arr(goalRefs...)),
		mem("activity", mp.arr(acts...)))
	// The CarePlan is the course's main resource: put it first so callers
	// (and the golden files) see it first; its identifier is the bare id.
	mp.firstLast()
	return nil
}

// planStatus is the status of a course's summary activity for a session
// type: what the held sessions of that type say against the plan.
func planStatus(course, typ string, planned int, sessions []*Session) string {
	switch course {
	case "revoked":
		return "cancelled"
	case "on_hold":
		return "on-hold"
	case "draft":
		return "not-started"
	}
	held := 0
	for _, s := range sessions {
		if s.Type == typ && s.Status == "held" {
			held++
		}
	}
	switch {
	case planned > 0 && held >= planned:
		return "completed"
	case course == "completed":
		return "stopped"
	case held > 0:
		return "in-progress"
	}
	return "not-started"
}

// carePlanNarrative is the CarePlan's generated narrative (US Core
// CarePlan requires text): route, status, period, indications and the
// sessions by type and status. It says nothing the structured elements do
// not, and no free text of the practice (goals, intentions) beyond codes.
func carePlanNarrative(c *Course, sessions []*Session) string {
	var b strings.Builder
	b.WriteString(`<div xmlns="http://www.w3.org/1999/xhtml"><p>Ketamine-assisted psychotherapy course, route `)
	b.WriteString(html.EscapeString(c.Route))
	b.WriteString(", status ")
	b.WriteString(html.EscapeString(c.Status))
	b.WriteString(", from ")
	b.WriteString(html.EscapeString(c.Start))
	if c.End != "" {
		b.WriteString(" to " + html.EscapeString(c.End))
	}
	b.WriteString(".</p>")
	if len(c.Indications) > 0 {
		b.WriteString("<p>Indications: " + html.EscapeString(strings.Join(c.Indications, ", ")) + ".</p>")
	}
	b.WriteString(fmt.Sprintf("<p>Planned: %d preparation, %d dosing, %d integration sessions", c.Planned.Preparation, c.Planned.Dosing, c.Planned.Integration))
	if c.Maintenance > 0 {
		b.WriteString(fmt.Sprintf("; maintenance every %d weeks", c.Maintenance))
	}
	b.WriteString(".</p>")
	counts := map[string]map[string]int{}
	for _, s := range sessions {
		if counts[s.Type] == nil {
			counts[s.Type] = map[string]int{}
		}
		counts[s.Type][s.Status]++
	}
	if len(sessions) > 0 {
		b.WriteString("<ul>")
		for _, typ := range SessionTypes {
			m := counts[typ]
			if m == nil {
				continue
			}
			var parts []string
			for _, st := range []string{"held", "planned", "cancelled", "no_show"} {
				if m[st] > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", m[st], strings.ReplaceAll(st, "_", "-")))
				}
			}
			b.WriteString("<li>" + typ + ": " + strings.Join(parts, ", ") + "</li>")
		}
		b.WriteString("</ul>")
	}
	b.WriteString("</div>")
	return b.String()
}

// prescription emits the course's prescription (unless Mapper.NoPrescriptions).
func (mp *mapping) prescription(c *Course, prod, subject, start *fhir.Value, condRefs []*fhir.Value) {
	mp.emit("MedicationRequest", []string{"prescription"}, []string{ProfileUSCoreMedicationReq}, false,
		mem("status", mp.str(medicationRequestStatus[c.Status])),
		mem("intent", mp.str("order")),
		mem("medicationCodeableConcept", mp.clone(prod)),
		mem("subject", mp.clone(subject)),
		mem("authoredOn", mp.clone(start)),
		mem("requester", mp.practitionerRef(c.Prescriber)),
		mem("reasonReference", mp.arr(mp.clones(condRefs)...)),
		mem("dosageInstruction", mp.arr(mp.obj(
			mem("text", mp.str("as planned in the course's CarePlan, per dosing session")),
			mem("route", mp.routeConcept(c.Route))))))
}
