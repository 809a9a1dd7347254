package mappings

import (
	_ "embed"
	"slices"
)

// SchemaURL is where the practice record format's JSON Schema is
// published: under the project's one canonical base, stable across
// releases (a breaking change to the format gets a new file name).
const SchemaURL = CanonicalBase + "/schema/practice-record.schema.json"

// practiceRecordSchema is generated from record.go and the vocabularies
// in decode.go (go test ./mappings -run TestSchemaUpToDate -update-schema), and
// schema_test.go checks it against the Go structs field by field, so the
// published format cannot drift from what Decode accepts.
//
//go:embed schema/practice-record.schema.json
var practiceRecordSchema []byte

// Schema returns the JSON Schema (draft 2020-12) of the practice record
// format: one oneOf branch per kind, discriminated by a const "kind",
// additionalProperties false everywhere, the enums, id, date and NPI
// patterns Decode enforces. Checks beyond the schema's reach (the NPI
// check digit, calendar validity of dates) are Decode's alone. The caller
// gets its own copy.
func Schema() []byte { return slices.Clone(practiceRecordSchema) }
