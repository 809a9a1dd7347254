package fhir

import "strings"

// Hand-written equivalents of the R4 regexes of the primitives that are
// most frequent or can be long: Go's regexp costs a few hundred
// nanoseconds per short value and runs its slow NFA over megabyte-long
// base64Binary. The regexes from the definitions stay the reference:
// TestPrimitiveFastPaths checks each function against its regex.
//
// RE2's \s is [\t\n\f\r ]; \S is everything else.

func isRE2Space(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// fastCheck returns the hand-written check for a primitive, or nil.
func fastCheck(name string) func(string) bool {
	switch name {
	case "string", "markdown":
		return checkString
	case "uri", "url", "canonical":
		return checkURI
	case "code":
		return checkCode
	case "id":
		return checkID
	case "base64Binary":
		return checkBase64
	case "date":
		return checkDate
	case "dateTime":
		return checkDateTime
	case "instant":
		return checkInstant
	case "time":
		return checkTime
	case "decimal":
		return checkDecimal
	}
	return nil
}

// The date family. Every mapped Observation carries several, and the
// regexes cost a backtracking match each; these scanners give the same
// answers (TestPrimitiveFastPaths).

func digits(s string, i, n int) bool {
	if i+n > len(s) {
		return false
	}
	for j := i; j < i+n; j++ {
		if s[j] < '0' || s[j] > '9' {
			return false
		}
	}
	return true
}

// two reads the two digits at i as a number (digits(s, i, 2) checked).
func two(s string, i int) int { return int(s[i]-'0')*10 + int(s[i+1]-'0') }

// checkYMD checks a year, optionally -month and -day, and returns how far
// it read and how many parts it saw (1 to 3); ok is false on a bad part.
func checkYMD(s string) (end, parts int, ok bool) {
	// year: four digits, not 0000
	if !digits(s, 0, 4) || s[:4] == "0000" {
		return 0, 0, false
	}
	if len(s) == 4 || s[4] != '-' {
		return 4, 1, true
	}
	if !digits(s, 5, 2) {
		return 0, 0, false
	}
	if m := two(s, 5); m < 1 || m > 12 {
		return 0, 0, false
	}
	if len(s) == 7 || s[7] != '-' {
		return 7, 2, true
	}
	if !digits(s, 8, 2) {
		return 0, 0, false
	}
	if d := two(s, 8); d < 1 || d > 31 {
		return 0, 0, false
	}
	return 10, 3, true
}

// checkClock checks hh:mm:ss(.f+)? at the start of s and returns how far
// it read.
func checkClock(s string) (int, bool) {
	if len(s) < 8 || !digits(s, 0, 2) || s[2] != ':' || !digits(s, 3, 2) || s[5] != ':' || !digits(s, 6, 2) {
		return 0, false
	}
	if two(s, 0) > 23 || two(s, 3) > 59 || two(s, 6) > 60 {
		return 0, false
	}
	i := 8
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	return i, true
}

// checkZone: Z, or +/-hh:mm with hh 00-13 (any minutes) or 14:00.
func checkZone(s string) bool {
	if s == "Z" {
		return true
	}
	if len(s) != 6 || s[0] != '+' && s[0] != '-' || !digits(s, 1, 2) || s[3] != ':' || !digits(s, 4, 2) {
		return false
	}
	h, m := two(s, 1), two(s, 4)
	return h <= 13 && m <= 59 || h == 14 && m == 0
}

func checkDate(s string) bool {
	end, _, ok := checkYMD(s)
	return ok && end == len(s)
}

func checkDateTime(s string) bool {
	end, parts, ok := checkYMD(s)
	if !ok {
		return false
	}
	if end == len(s) {
		return true
	}
	if parts != 3 || s[end] != 'T' {
		return false
	}
	n, ok := checkClock(s[end+1:])
	return ok && checkZone(s[end+1+n:])
}

func checkInstant(s string) bool {
	end, parts, ok := checkYMD(s)
	if !ok || parts != 3 || end == len(s) || s[end] != 'T' {
		return false
	}
	n, ok := checkClock(s[end+1:])
	return ok && checkZone(s[end+1+n:])
}

func checkTime(s string) bool {
	n, ok := checkClock(s)
	return ok && n == len(s)
}

// checkDecimal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, JSON's own
// number grammar.
func checkDecimal(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

// checkString: [ \r\n\t\S]+ is any non-empty text without a form feed.
func checkString(s string) bool {
	return s != "" && strings.IndexByte(s, '\f') < 0
}

// checkURI: \S* is any text without white space. Every URI of every
// resource (systems, profiles, references' urls) goes through it: one
// comparison a byte, since white space is all at or below ' '.
func checkURI(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' && isRE2Space(c) {
			return false
		}
	}
	return true
}

// checkCode: [^\s]+(\s[^\s]+)* is non-empty, with single white-space
// characters between non-space runs only.
func checkCode(s string) bool {
	if s == "" || isRE2Space(s[0]) || isRE2Space(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if isRE2Space(s[i]) && isRE2Space(s[i-1]) {
			return false
		}
	}
	return true
}

// checkID: [A-Za-z0-9\-\.]{1,64}.
func checkID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// checkBase64: (\s*([0-9a-zA-Z\+/=]){4}\s*)+ allows white space only
// between groups of four, so every run of base64 characters has a length
// that is a multiple of four, and there is at least one.
func checkBase64(s string) bool {
	run, groups := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=':
			run++
		case isRE2Space(c):
			if run%4 != 0 {
				return false
			}
			groups += run
			run = 0
		default:
			return false
		}
	}
	return run%4 == 0 && groups+run > 0
}
