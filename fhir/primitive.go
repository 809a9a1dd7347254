package fhir

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
	}
	return nil
}

// checkString: [ \r\n\t\S]+ is any non-empty text without a form feed.
func checkString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\f' {
			return false
		}
	}
	return true
}

// checkURI: \S* is any text without white space.
func checkURI(s string) bool {
	for i := 0; i < len(s); i++ {
		if isRE2Space(s[i]) {
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
