package fhirpath

import (
	"errors"
	"fmt"
)

// ErrorKind says at which stage an expression failed, in the terms the
// FHIRPath test suite uses (invalid="syntax|semantic|execution").
type ErrorKind uint8

// Error kinds.
const (
	Syntax       ErrorKind = iota + 1 // the text is not FHIRPath
	Semantic                          // well formed, but wrong for the model (unknown function, strict-mode path)
	Execution                         // failed while evaluating (a collection where one item was needed, a type mismatch)
	NotSupported                      // needs something this engine does not have (a terminology server)
)

func (k ErrorKind) String() string {
	switch k {
	case Syntax:
		return "syntax"
	case Semantic:
		return "semantic"
	case Execution:
		return "execution"
	case NotSupported:
		return "not supported"
	}
	return "unknown"
}

// ErrNotSupported is matched (errors.Is) by every error of kind
// NotSupported: the caller asked for something that needs a terminology
// server or a profile validator, and gets no answer rather than a wrong one.
var ErrNotSupported = errors.New("fhirpath: not supported")

// Error is the one error type of this package. Pos is the byte offset in
// the expression text of the token at fault (0-based); Line and Col are
// 1-based.
type Error struct {
	Kind      ErrorKind
	Pos       int
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("fhirpath %s error at %d:%d: %s", e.Kind, e.Line, e.Col, e.Msg)
}

// Is makes errors.Is(err, ErrNotSupported) true for NotSupported errors.
func (e *Error) Is(target error) bool { return target == ErrNotSupported && e.Kind == NotSupported }

// newError places an error at pos in src.
func newError(kind ErrorKind, src string, pos int, format string, args ...any) *Error {
	line, col := 1, 1
	for i := 0; i < pos && i < len(src); i++ {
		if src[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &Error{Kind: kind, Pos: pos, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}
