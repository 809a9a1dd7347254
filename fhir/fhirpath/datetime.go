package fhirpath

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

type dtKind uint8

const (
	kDate dtKind = iota
	kDateTime
	kTime
)

// Precisions, coarsest first. Seconds and milliseconds compare as one
// precision (FHIRPath: 10:30:00 = 10:30:00.0).
const (
	pYear uint8 = iota + 1
	pMonth
	pDay
	pHour
	pMinute
	pSecond
	pMilli
)

// dtv is a FHIRPath Date, DateTime or Time with the precision it was
// written with. A Time uses only the clock fields.
type dtv struct {
	kind                   dtKind
	prec                   uint8
	y, mo, d, h, mi, s, ms int
	tz                     bool // a time zone was given
	tzMin                  int  // its offset east of UTC, in minutes
	zulu                   bool // it was written Z
}

// parseDateLiteral reads what follows @ in a literal.
func parseDateLiteral(s string) (dtv, bool) {
	if strings.HasPrefix(s, "T") {
		return parseTime(s[1:])
	}
	if d, t, ok := strings.Cut(s, "T"); ok {
		v, ok := parseDatePart(d)
		if !ok {
			return v, false
		}
		v.kind = kDateTime
		if t == "" {
			return v, true
		}
		return parseClock(v, t, true)
	}
	return parseDatePart(s)
}

// parseFHIRDateTime reads a FHIR date, dateTime or instant string.
func parseFHIRDateTime(s string, kind dtKind) (dtv, bool) {
	d, t, hasT := strings.Cut(s, "T")
	v, ok := parseDatePart(d)
	if !ok {
		return v, false
	}
	v.kind = kind
	if !hasT {
		if kind == kDate || kind == kDateTime {
			return v, true
		}
		return v, false
	}
	if kind == kDate || t == "" {
		return v, false
	}
	return parseClock(v, t, true)
}

func num(s string, n int) (int, bool) {
	if len(s) != n {
		return 0, false
	}
	v := 0
	for i := 0; i < n; i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	return v, true
}

func parseDatePart(s string) (dtv, bool) {
	v := dtv{kind: kDate}
	parts := strings.Split(s, "-")
	if len(parts) > 3 {
		return v, false
	}
	var ok bool
	if v.y, ok = num(parts[0], 4); !ok {
		return v, false
	}
	v.prec = pYear
	if len(parts) > 1 {
		if v.mo, ok = num(parts[1], 2); !ok || v.mo < 1 || v.mo > 12 {
			return v, false
		}
		v.prec = pMonth
	}
	if len(parts) > 2 {
		if v.d, ok = num(parts[2], 2); !ok || v.d < 1 || v.d > daysIn(v.y, v.mo) {
			return v, false
		}
		v.prec = pDay
	}
	return v, true
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// parseTime reads hh[:mm[:ss[.fff]]] for a Time (no zone).
func parseTime(s string) (dtv, bool) {
	v, ok := parseClock(dtv{kind: kTime}, s, false)
	v.kind = kTime
	return v, ok
}

// parseClock reads the clock part into v, with a zone when zone is true.
func parseClock(v dtv, s string, zone bool) (dtv, bool) {
	if zone {
		switch {
		case strings.HasSuffix(s, "Z"):
			v.tz, v.zulu = true, true
			s = s[:len(s)-1]
		case len(s) > 6 && (s[len(s)-6] == '+' || s[len(s)-6] == '-') && s[len(s)-3] == ':':
			zh, ok1 := num(s[len(s)-5:len(s)-3], 2)
			zm, ok2 := num(s[len(s)-2:], 2)
			if !ok1 || !ok2 || zh > 14 || zm > 59 {
				return v, false
			}
			v.tz = true
			v.tzMin = zh*60 + zm
			if s[len(s)-6] == '-' {
				v.tzMin = -v.tzMin
			}
			s = s[:len(s)-6]
		}
	}
	clock, frac, hasFrac := strings.Cut(s, ".")
	parts := strings.Split(clock, ":")
	if len(parts) > 3 {
		return v, false
	}
	var ok bool
	if v.h, ok = num(parts[0], 2); !ok || v.h > 23 {
		return v, false
	}
	v.prec = pHour
	if len(parts) > 1 {
		if v.mi, ok = num(parts[1], 2); !ok || v.mi > 59 {
			return v, false
		}
		v.prec = pMinute
	}
	if len(parts) > 2 {
		if v.s, ok = num(parts[2], 2); !ok || v.s > 59 {
			return v, false
		}
		v.prec = pSecond
	}
	if hasFrac {
		if len(parts) < 3 || frac == "" {
			return v, false
		}
		for i := 0; i < len(frac); i++ {
			if !isDigit(frac[i]) {
				return v, false
			}
		}
		f := (frac + "00")[:3]
		v.ms, _ = num(f, 3)
		v.prec = pMilli
	}
	return v, true
}

// String writes v in FHIR/FHIRPath form without the @. (Appended by
// hand, not with fmt: vital-sign profiles' vs-1 turns every
// effectiveDateTime into a string, and fmt was most of that.)
func (v dtv) String() string {
	b := make([]byte, 0, 32)
	if v.kind != kTime {
		b = appendPadded(b, v.y, 4)
		if v.prec >= pMonth {
			b = appendPadded(append(b, '-'), v.mo, 2)
		}
		if v.prec >= pDay {
			b = appendPadded(append(b, '-'), v.d, 2)
		}
		if v.prec < pHour {
			return string(b)
		}
		b = append(b, 'T')
	}
	b = appendPadded(b, v.h, 2)
	if v.prec >= pMinute {
		b = appendPadded(append(b, ':'), v.mi, 2)
	}
	if v.prec >= pSecond {
		b = appendPadded(append(b, ':'), v.s, 2)
	}
	if v.prec >= pMilli {
		b = appendPadded(append(b, '.'), v.ms, 3)
	}
	if v.kind == kDateTime && v.tz {
		if v.zulu {
			b = append(b, 'Z')
		} else {
			off, sign := v.tzMin, byte('+')
			if off < 0 {
				off, sign = -off, '-'
			}
			b = appendPadded(append(b, sign), off/60, 2)
			b = appendPadded(append(b, ':'), off%60, 2)
		}
	}
	return string(b)
}

// appendPadded appends n in decimal with at least width digits, zeros
// in front, as fmt's %0*d does.
func appendPadded(b []byte, n, width int) []byte {
	if n < 0 {
		return fmt.Appendf(b, "%0*d", width, n)
	}
	for w, p := 1, 10; w < width; w, p = w+1, p*10 {
		if n < p {
			b = append(b, '0')
		}
	}
	return strconv.AppendInt(b, int64(n), 10)
}

// level is the comparison precision: milliseconds count as seconds.
func (v dtv) level() uint8 { return min(v.prec, pSecond) }

// toTime makes a time.Time of v's fields in its zone (UTC if none).
func (v dtv) toTime() time.Time {
	loc := time.UTC
	if v.tz && v.tzMin != 0 {
		loc = time.FixedZone("", v.tzMin*60)
	}
	mo, d := max(v.mo, 1), max(v.d, 1)
	return time.Date(v.y, time.Month(mo), d, v.h, v.mi, v.s, v.ms*int(time.Millisecond), loc)
}

// fromTime sets v's fields from t (in t's zone), keeping kind and prec.
func (v dtv) fromTime(t time.Time) dtv {
	v.y, v.mo, v.d = t.Year(), int(t.Month()), t.Day()
	v.h, v.mi, v.s, v.ms = t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/int(time.Millisecond)
	return v
}

// utc returns v moved to UTC when it has a zone and a clock.
func (v dtv) utc() dtv {
	if !v.tz || v.prec < pHour || v.kind == kTime {
		return v
	}
	u := v.fromTime(v.toTime().UTC())
	u.tzMin, u.zulu = 0, true
	return u
}

// compareDT orders a and b. ok is false when the answer is unknown: the
// values have different precisions and agree as far as both go, or one
// has a zone and the other not and they agree on the date. comparable is
// false when the kinds cannot be compared at all (a Time and a Date).
func compareDT(a, b dtv) (c int, ok, comparable bool) {
	if (a.kind == kTime) != (b.kind == kTime) {
		return 0, false, false
	}
	limit := min(a.level(), b.level())
	if a.kind != kTime && min(a.prec, b.prec) >= pHour {
		if a.tz && b.tz {
			a, b = a.utc(), b.utc()
		} else if a.tz != b.tz {
			// Without both zones only the date can be compared.
			limit = pDay
		}
	}
	fa, fb := a.fields(), b.fields()
	from := 0
	if a.kind == kTime {
		from = 3
	}
	for i := from; i < int(limit); i++ {
		if fa[i] != fb[i] {
			if fa[i] < fb[i] {
				return -1, true, true
			}
			return 1, true, true
		}
	}
	if a.level() != b.level() || limit < a.level() {
		return 0, false, true
	}
	return 0, true, true
}

// fields lists year, month, day, hour, minute and seconds in ms.
func (v dtv) fields() [6]int {
	return [6]int{v.y, v.mo, v.d, v.h, v.mi, v.s*1000 + v.ms}
}

// addDuration adds n units ("year" ... "millisecond") to v. Months and
// years keep the day, clamped to the month's end (FHIRPath: 2012-01-31
// plus one month is 2012-02-29).
func (v dtv) addDuration(n int64, unit string) (dtv, bool) {
	if v.kind == kTime {
		v.y, v.mo, v.d = 2000, 1, 1 // any day: only the clock is kept
	}
	t := v.toTime()
	switch unit {
	case "year", "month":
		months := n
		if unit == "year" {
			months *= 12
		}
		total := int64(t.Year())*12 + int64(t.Month()-1) + months
		y, m := int(total/12), int(total%12)+1
		if total < 0 || y > 9999 {
			return v, false
		}
		d := min(t.Day(), daysIn(y, m))
		t = time.Date(y, time.Month(m), d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	case "week":
		t = t.AddDate(0, 0, int(n)*7)
	case "day":
		t = t.AddDate(0, 0, int(n))
	case "hour":
		t = t.Add(time.Duration(n) * time.Hour)
	case "minute":
		t = t.Add(time.Duration(n) * time.Minute)
	case "second":
		t = t.Add(time.Duration(n) * time.Second)
	case "millisecond":
		t = t.Add(time.Duration(n) * time.Millisecond)
	default:
		return v, false
	}
	if t.Year() < 1 || t.Year() > 9999 {
		return v, false
	}
	out := v.fromTime(t)
	if v.kind == kTime {
		out.y, out.mo, out.d = 0, 0, 0
	}
	return out, true
}

// Precision digit counts, as precision() reports them and the boundary
// functions take them.
func (v dtv) precisionDigits() int {
	switch v.kind {
	case kTime:
		return [...]int{pHour: 2, pMinute: 4, pSecond: 6, pMilli: 9}[v.prec]
	}
	return [...]int{pYear: 4, pMonth: 6, pDay: 8, pHour: 10, pMinute: 12, pSecond: 14, pMilli: 17}[v.prec]
}

func precFromDigits(kind dtKind, n int) (uint8, bool) {
	switch kind {
	case kDate:
		switch n {
		case 4:
			return pYear, true
		case 6:
			return pMonth, true
		case 8:
			return pDay, true
		}
	case kDateTime:
		switch n {
		case 4, 6, 8:
			return precFromDigits(kDate, n)
		case 10:
			return pHour, true
		case 12:
			return pMinute, true
		case 14:
			return pSecond, true
		case 17:
			return pMilli, true
		}
	case kTime:
		switch n {
		case 2:
			return pHour, true
		case 4:
			return pMinute, true
		case 6:
			return pSecond, true
		case 9:
			return pMilli, true
		}
	}
	return 0, false
}

// boundary returns the earliest (high false) or latest instant v may
// stand for, at precision digits. A DateTime without a zone takes the
// zone that makes it earliest (+14:00) or latest (-12:00).
func (v dtv) boundary(high bool, digits int) (dtv, bool) {
	p, ok := precFromDigits(v.kind, digits)
	if !ok {
		return v, false
	}
	out := v
	// The test suite reads an hour-precision DateTime's minute as given
	// (T08 stands for 08:00 to 08:00:59.999), and so do we.
	known := v.prec
	if v.kind == kDateTime && known == pHour {
		known = pMinute
	}
	if known < pMonth {
		out.mo = map[bool]int{false: 1, true: 12}[high]
	}
	if known < pDay {
		out.d = 1
		if high {
			out.d = daysIn(out.y, out.mo)
		}
	}
	if v.kind != kDate {
		if known < pHour {
			out.h = map[bool]int{false: 0, true: 23}[high]
		}
		if known < pMinute {
			out.mi = map[bool]int{false: 0, true: 59}[high]
		}
		if known < pSecond {
			out.s = map[bool]int{false: 0, true: 59}[high]
		}
		if known < pMilli {
			out.ms = map[bool]int{false: 0, true: 999}[high]
		}
	}
	if v.kind == kDateTime && !v.tz && p >= pHour {
		out.tz = true
		out.tzMin = 14 * 60
		if high {
			out.tzMin = -12 * 60
		}
	}
	if v.kind == kDate && p > pDay {
		return v, false
	}
	out.prec = p
	return out, true
}
