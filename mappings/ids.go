package mappings

import (
	"crypto/sha1"
	"encoding/hex"
)

// idNamespace is the fixed name-space UUID of every resource id the
// mappings make (RFC 9562 section 5.5: a v5 UUID is SHA-1 over a namespace
// and a name). Changing it changes every id, so it never changes.
var idNamespace = [16]byte{0x6b, 0x61, 0x70, 0x62, 0x72, 0x69, 0x64, 0x67, 0x65, 0x2d, 0x69, 0x64, 0x73, 0x2d, 0x76, 0x31} // "kapbridge-ids-v1"

// ResourceID returns the logical id of a resource made from a practice
// record: a name-based (v5) UUID over the practice namespace, the record
// kind, the practice id and any suffixes that tell apart several resources
// made from one record. Mapping the same record twice gives the same ids,
// so re-imports converge (an update is a PUT of the same id), and ids leak
// nothing of the practice ids. The result is a valid FHIR id (36 of
// [0-9a-f-]).
func ResourceID(practice string, kind Kind, id string, suffix ...string) string {
	var out [36]byte
	idInto(&out, practice, kind, id, suffix, nil)
	return string(out[:])
}

// typedRef is typ + "/" + ResourceID(practice, kind, id, suffix..., more...),
// made with one allocation: a mapping makes a reference for every
// resource it emits and most it points to.
func typedRef(typ, practice string, kind Kind, id string, suffix, more []string) string {
	var buf [80]byte
	b := append(buf[:0], typ...)
	b = append(b, '/')
	var out [36]byte
	idInto(&out, practice, kind, id, suffix, more)
	b = append(b, out[:]...)
	return string(b)
}

// idInto writes the id of ResourceID with the suffixes suffix then more.
func idInto(out *[36]byte, practice string, kind Kind, id string, suffix, more []string) {
	// One buffer, on the stack for typical names, hashed at once: ids are
	// made for every resource and reference, so they should not allocate.
	var buf [256]byte
	name := append(buf[:0], idNamespace[:]...)
	// NUL separators keep ("ab","c") and ("a","bc") apart.
	name = append(name, practice...)
	name = append(name, 0)
	name = append(name, kind...)
	name = append(name, 0)
	name = append(name, id...)
	for _, s := range suffix {
		name = append(name, 0)
		name = append(name, s...)
	}
	for _, s := range more {
		name = append(name, 0)
		name = append(name, s...)
	}
	sum := sha1.Sum(name)
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:16])
}
