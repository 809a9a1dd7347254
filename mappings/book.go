package mappings

import (
	"cmp"
	"reflect"
	"slices"
)

// Book holds a practice's records by kind and id, as they arrive (in any
// order, updates replacing the earlier version), with the reverse indexes
// checks and mappings need: a course's sessions, a client's courses and
// screenings, a session's observations and notes. It satisfies Lookup.
// A Book is not safe for concurrent use; the zero value is not usable,
// use NewBook.
type Book struct {
	byKind map[Kind]map[string]Record
	// children maps (child kind, parent id) to the ids of the children
	// that name that parent: e.g. (session, "c-1") -> sessions of course c-1.
	children map[childKey]map[string]struct{}
}

type childKey struct {
	kind   Kind
	parent string
}

// NewBook returns an empty Book.
func NewBook() *Book {
	return &Book{byKind: map[Kind]map[string]Record{}, children: map[childKey]map[string]struct{}{}}
}

// Add stores r, replacing any record of the same kind and id. Records may
// be passed by value or by pointer; the Book keeps pointers (a value is
// copied). A record of no known kind is ignored.
func (b *Book) Add(r Record) {
	r = recordPointer(r)
	if r == nil {
		return
	}
	h := r.RecordHeader()
	m := b.byKind[h.Kind]
	if m == nil {
		m = map[string]Record{}
		b.byKind[h.Kind] = m
	}
	if old, ok := m[h.ID]; ok {
		b.index(old, false)
	}
	m[h.ID] = r
	b.index(r, true)
}

// recordPointer returns r as a pointer to its kind's struct (a value is
// copied), nil for a type that is not a record kind (including a nil
// pointer).
func recordPointer(r Record) Record {
	v := reflect.ValueOf(r)
	switch {
	case !v.IsValid():
		return nil
	case v.Kind() == reflect.Pointer:
		if _, ok := recordKinds[v.Type().Elem()]; !ok || v.IsNil() {
			return nil
		}
		return r
	}
	if _, ok := recordKinds[v.Type()]; !ok {
		return nil
	}
	p := reflect.New(v.Type())
	p.Elem().Set(v)
	return p.Interface().(Record)
}

// index adds r to (or removes it from) the children of its parent.
func (b *Book) index(r Record, add bool) {
	p := r.Parent()
	if p.Kind == "" {
		return // clients and practitioners hang under nothing
	}
	h := r.RecordHeader()
	k := childKey{h.Kind, p.ID}
	set := b.children[k]
	if add {
		if set == nil {
			set = map[string]struct{}{}
			b.children[k] = set
		}
		set[h.ID] = struct{}{}
	} else {
		delete(set, h.ID)
	}
}

// Get returns the record of that kind and id.
func (b *Book) Get(kind Kind, id string) (Record, bool) {
	r, ok := b.byKind[kind][id]
	return r, ok
}

// Len returns the number of records held.
func (b *Book) Len() int {
	n := 0
	for _, m := range b.byKind {
		n += len(m)
	}
	return n
}

// All returns the records of one kind, sorted by id.
func (b *Book) All(kind Kind) []Record {
	m := b.byKind[kind]
	out := make([]Record, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(x, y Record) int { return cmp.Compare(x.RecordHeader().ID, y.RecordHeader().ID) })
	return out
}

func get[T any](b *Book, kind Kind, id string) (*T, bool) {
	r, ok := b.byKind[kind][id]
	if !ok {
		return nil, false
	}
	p, ok := any(r).(*T)
	return p, ok
}

// Client returns the client with that id.
func (b *Book) Client(id string) (*Client, bool) { return get[Client](b, KindClient, id) }

// Practitioner returns the practitioner with that id.
func (b *Book) Practitioner(id string) (*Practitioner, bool) {
	return get[Practitioner](b, KindPractitioner, id)
}

// Course returns the course with that id.
func (b *Book) Course(id string) (*Course, bool) { return get[Course](b, KindCourse, id) }

// Session returns the session with that id.
func (b *Book) Session(id string) (*Session, bool) { return get[Session](b, KindSession, id) }

// Screening returns the screening with that id.
func (b *Book) Screening(id string) (*Screening, bool) { return get[Screening](b, KindScreening, id) }

// Observation returns the observation with that id.
func (b *Book) Observation(id string) (*Observation, bool) {
	return get[Observation](b, KindObservation, id)
}

// Note returns the note with that id.
func (b *Book) Note(id string) (*Note, bool) { return get[Note](b, KindNote, id) }

// Consent returns the consent with that id.
func (b *Book) Consent(id string) (*Consent, bool) { return get[Consent](b, KindConsent, id) }

// childrenOf returns the records of kind that name parent, sorted by id
// so results do not depend on map order.
func childrenOf[T any](b *Book, kind Kind, parent string) []*T {
	set := b.children[childKey{kind, parent}]
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]*T, 0, len(ids))
	for _, id := range ids {
		if p, ok := get[T](b, kind, id); ok {
			out = append(out, p)
		}
	}
	return out
}

// SessionsOf returns the sessions of a course, in time order (planned
// start, then id).
func (b *Book) SessionsOf(course string) []*Session {
	out := childrenOf[Session](b, KindSession, course)
	slices.SortStableFunc(out, func(x, y *Session) int {
		tx, _ := parseRecordTime(x.PlannedStart)
		ty, _ := parseRecordTime(y.PlannedStart)
		return tx.Compare(ty)
	})
	return out
}

// CoursesOf returns a client's courses, sorted by id.
func (b *Book) CoursesOf(client string) []*Course { return childrenOf[Course](b, KindCourse, client) }

// ScreeningsOf returns a client's screenings, sorted by id.
func (b *Book) ScreeningsOf(client string) []*Screening {
	return childrenOf[Screening](b, KindScreening, client)
}

// ObservationsOf returns a session's observations, sorted by id.
func (b *Book) ObservationsOf(session string) []*Observation {
	return childrenOf[Observation](b, KindObservation, session)
}

// NotesOf returns a session's process notes, sorted by id.
func (b *Book) NotesOf(session string) []*Note { return childrenOf[Note](b, KindNote, session) }

// ConsentsOf returns a client's consents, sorted by id.
func (b *Book) ConsentsOf(client string) []*Consent {
	return childrenOf[Consent](b, KindConsent, client)
}
