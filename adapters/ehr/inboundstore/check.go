package inboundstore

import "errors"

// The checks every implementation makes before writing, so that a row
// missing its key fails the same way everywhere.

func checkCursor(c Cursor) error {
	if c.Connection == "" || c.Tenant == "" || c.Patient == "" || c.Type == "" {
		return errors.New("inboundstore: a cursor needs connection, tenant, patient and type")
	}
	return nil
}

func checkTaken(t Taken) error {
	if t.Connection == "" || t.Type == "" || t.RemoteID == "" {
		return errors.New("inboundstore: a taken version needs connection, type and remote id")
	}
	return nil
}

func checkConflict(c Conflict) error {
	if c.Connection == "" || c.Tenant == "" || c.Remote == "" || c.Field == "" {
		return errors.New("inboundstore: a conflict needs connection, tenant, remote and field")
	}
	if c.Owner != OwnerPractice && c.Owner != OwnerEHR {
		return errors.New("inboundstore: a conflict's owner is practice or ehr")
	}
	return nil
}

// Check validates a row before an implementation writes it: one of
// Cursor, Taken or Conflict.
func Check(row any) error {
	switch r := row.(type) {
	case Cursor:
		return checkCursor(r)
	case Taken:
		return checkTaken(r)
	case Conflict:
		return checkConflict(r)
	}
	return errors.New("inboundstore: not a row")
}
