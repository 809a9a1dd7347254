package mappings

import (
	"encoding/json"
	"errors"
	"io"
)

// Helpers for reading a stream of JSON values (one document, an array, or
// several documents) with encoding/json while knowing where each value
// starts. DecodeStream and the practice file readers share them.

// LeadingSkip counts the bytes of whitespace and at most one comma the
// decoder will skip before its next value. It reads the decoder's buffer
// byte by byte, copying nothing.
func LeadingSkip(dec *json.Decoder) int64 {
	br, _ := dec.Buffered().(io.ByteReader)
	var n int64
	comma := false
	for br != nil {
		c, err := br.ReadByte()
		switch {
		case err != nil:
			return n
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			n++
		case c == ',' && !comma:
			comma = true
			n++
		default:
			return n
		}
	}
	return n
}

// PeekDelim returns the first byte of the next top-level value without
// consuming it ('[' for an array), or io.EOF at the end of input.
func PeekDelim(dec *json.Decoder) (byte, error) {
	if !dec.More() {
		// More is false at the end of input or before a stray closing
		// bracket; Token tells the two apart.
		if _, err := dec.Token(); err != nil {
			return 0, err
		}
		return 0, errors.New("unexpected closing bracket")
	}
	// More has buffered the next non-space byte.
	br, _ := dec.Buffered().(io.ByteReader)
	for br != nil {
		c, err := br.ReadByte()
		if err != nil {
			break
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return c, nil
		}
	}
	return 0, nil
}
