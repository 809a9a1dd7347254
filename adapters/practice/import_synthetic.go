package practice

import (
	"bufio"
	"fmt"
	"io"
	"time"
)

// WriteSyntheticObservations writes an NDJSON import of n observation
// records (vitals, a dissociation rating) spread over held dosing
// sessions of one client's course, preceded by the client, practitioners,
// course, clearance screening and sessions they need. It is the load of
// the import benchmarks and crash tests: the shape of a practice's
// monitoring export, without anyone's data.
func WriteSyntheticObservations(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format+"\n", args...) }
	p(`{"kind":"client","id":"syn-client","name":{"family":"Synthetic","given":["Load"]},"birth_date":"1980-01-01","sex":"female"}`)
	p(`{"kind":"practitioner","id":"syn-prescriber","name":{"family":"Prescriber"},"role":"prescriber","credential":"MD"}`)
	p(`{"kind":"practitioner","id":"syn-therapist","name":{"family":"Therapist"},"role":"therapist","credential":"LCSW"}`)
	p(`{"kind":"course","id":"syn-course","client":"syn-client","prescriber":"syn-prescriber","therapist":"syn-therapist","indications":["trd"],"route":"iv","planned":{"preparation":2,"dosing":6,"integration":6},"status":"active","start":"2026-01-01"}`)
	p(`{"kind":"screening","id":"syn-screening","client":"syn-client","course":"syn-course","date":"2026-01-02","performed_by":"syn-prescriber","clearance":{"cardiovascular":false,"psychotic_disorder":false,"bipolar_i":false,"substance_misuse":false,"pregnancy":false,"contraindicated_medications":false,"decision":"cleared"}}`)
	const sessions = 6
	base := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	for s := range sessions {
		start := base.Add(time.Duration(s) * 7 * 24 * time.Hour)
		p(`{"kind":"session","id":"syn-s%d","course":"syn-course","type":"dosing","status":"held","planned_start":"%s","actual_start":"%s","actual_end":"%s","practitioners":["syn-prescriber"],"dose":{"drug":"ketamine","mg":35,"route":"iv","monitored_minutes":60}}`,
			s, start.Format(time.RFC3339), start.Format(time.RFC3339), start.Add(time.Hour).Format(time.RFC3339))
	}
	for i := range n {
		s := i % sessions
		t := base.Add(time.Duration(s)*7*24*time.Hour + time.Duration(i/sessions%3600)*time.Second)
		p(`{"kind":"observation","id":"syn-o%d","session":"syn-s%d","time":"%s","performer":"syn-prescriber","phase":"during","vitals":{"systolic":%d,"diastolic":%d,"heart_rate":%d,"spo2":%d},"dissociation":%d}`,
			i, s, t.Format(time.RFC3339), 110+i%25, 70+i%15, 60+i%30, 95+i%5, i%8)
	}
	return bw.Flush()
}
