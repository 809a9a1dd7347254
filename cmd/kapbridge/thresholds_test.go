package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/mappings"
)

// TestThresholdSources: issue 12 item 9. The safety thresholds are set on
// serve by a settings file, the environment and flags, each over the one
// before; a bad value is a usage error naming its source.
func TestThresholdSources(t *testing.T) {
	dir := t.TempDir()
	settings := filepath.Join(dir, "practice.json")
	os.WriteFile(settings, []byte(`{"thresholds": {"predose_systolic": 150, "predose_diastolic": 95, "spo2_critical": 90}}`), 0o644)
	env := map[string]string{"KAPBRIDGE_SETTINGS": settings, "KAPBRIDGE_THRESHOLDS": "predose_systolic=155,pending_max_hours=6"}
	cfg, err := parseServeFlags([]string{"-threshold", "predose_systolic=160", "-threshold", "clearance_valid_days=180"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"predose_systolic": 160, "predose_diastolic": 95, "spo2_critical": 90, "pending_max_hours": 6, "clearance_valid_days": 180, "crisis_systolic": 180} {
		if got := cfg.Safety.Get(name); got != want {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
	os.WriteFile(filepath.Join(dir, "typo.json"), []byte(`{"thresholds": {"predose_sytolic": 150}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "extra.json"), []byte(`{"threshold": {}}`), 0o644)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-threshold", "spo2_low=abc"}, nil, "-threshold spo2_low=abc"},
		{[]string{"-threshold", "nope=1"}, nil, `unknown threshold "nope"`},
		{nil, map[string]string{"KAPBRIDGE_THRESHOLDS": "spo2_low=-3"}, "KAPBRIDGE_THRESHOLDS"},
		{[]string{"-settings", filepath.Join(dir, "typo.json")}, nil, `unknown threshold "predose_sytolic"`},
		{[]string{"-settings", filepath.Join(dir, "extra.json")}, nil, `unknown field "threshold"`},
		{[]string{"-settings", filepath.Join(dir, "missing.json")}, nil, "-settings"},
	} {
		_, err := parseServeFlags(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want a usage error with %q", tc.args, tc.env, err, tc.want)
		}
	}
}

// TestImportNamesFindings: issue 12 item 9. `kapbridge import` names every
// warning and alert (severity, code, record, file:line, field, message),
// including a dose that waited for its clearance and then mapped, and
// lists what is still pending with its age; its thresholds come from the
// same sources as serve's.
func TestImportNamesFindings(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "k.db")
	in := filepath.Join(dir, "visits.ndjson")
	lines := []string{
		`{"kind":"client","id":"c","name":{"family":"Client"},"birth_date":"1980-01-01","sex":"female"}`,
		`{"kind":"practitioner","id":"rx","name":{"family":"Prescriber"},"role":"prescriber","credential":"MD"}`,
		`{"kind":"practitioner","id":"th","name":{"family":"Therapist"},"role":"therapist","credential":"LCSW"}`,
		`{"kind":"course","id":"k","client":"c","prescriber":"rx","therapist":"th","indications":["trd"],"route":"iv","planned":{"preparation":1,"dosing":6,"integration":6},"status":"active","start":"2026-01-01"}`,
		`{"kind":"session","id":"prep","course":"k","type":"preparation","status":"held","planned_start":"2026-01-03T10:00:00Z","actual_start":"2026-01-03T10:00:00Z","actual_end":"2026-01-03T11:00:00Z"}`,
		// A dose given by the therapist, before any screening: it waits.
		`{"kind":"session","id":"s1","course":"k","type":"dosing","status":"held","planned_start":"2026-01-05T10:00:00Z","actual_start":"2026-01-05T10:00:00Z","actual_end":"2026-01-05T11:00:00Z","dose":{"drug":"ketamine","mg":35,"route":"iv","administered_by":"th","monitored_minutes":60}}`,
		`{"kind":"observation","id":"o1","session":"s1","time":"2026-01-05T09:55:00Z","phase":"before","vitals":{"systolic":150,"diastolic":92,"spo2":97}}`,
		// The screening defers: the dose maps, with its alerts.
		`{"kind":"screening","id":"sc","client":"c","date":"2026-01-02","performed_by":"rx","clearance":{"cardiovascular":false,"psychotic_disorder":false,"bipolar_i":false,"substance_misuse":false,"pregnancy":false,"contraindicated_medications":false,"decision":"deferred"}}`,
		// A red flag of a session that does not exist: pending.
		`{"kind":"observation","id":"o-ghost","session":"nowhere","time":"2026-01-05T10:40:00Z","red_flags":["mania"]}`,
	}
	os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	out, _, err := runImport(t, store, "--progress", "none", "--workers", "1", in)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"alert dosing.not_cleared session/s1 ",
		"alert role.administered_by session/s1 ",
		`dose given by "th", a therapist holding LCSW`,
		// o1 waited for its session, which waited for the screening.
		"alert vitals.bp_pre_dose observation/o1 (with " + in + ":8) vitals: pre-dose blood pressure 150/92 mm[Hg] is above the practice's 140/90",
		"warning safety.red_flag observation/o-ghost (" + in + ":9) red_flags[0]: red flag: mania",
		"pending: 1 records waiting",
		"observation/o-ghost waits for session/nowhere since",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`warnings: (\d+)`).FindStringSubmatch(out)
	listed := len(regexp.MustCompile(`(?m)^(alert|warning) `).FindAllString(out, -1))
	if m == nil || m[1] != strconv.Itoa(listed) {
		t.Errorf("the summary counts %v warnings, the output lists %d:\n%s", m, listed, out)
	}

	// A practice's pre-dose threshold of 160/100: the reading is no alert.
	out, _, err = runImport(t, filepath.Join(dir, "k2.db"), "--progress", "none", "-threshold", "predose_systolic=160,predose_diastolic=100", in)
	if err != nil || strings.Contains(out, "vitals.bp_pre_dose") || !strings.Contains(out, "safety thresholds set: predose_systolic=160, predose_diastolic=100") {
		t.Errorf("with 160/100: %v\n%s", err, out)
	}

	// kapbridge records lists the pending record.
	var o, e bytes.Buffer
	err = run(context.Background(), []string{"records", "-state", "pending", "-store", store}, func(string) string { return "" }, strings.NewReader(""), &o, &e)
	if err != nil || !strings.Contains(o.String(), "observation/o-ghost waits for session/nowhere") || !strings.Contains(o.String(), "(safety-relevant)") {
		t.Errorf("records: %v\n%s%s", err, o.String(), e.String())
	}
	// Past the limit it is overdue; its patient is unknown, so its Flag
	// hangs on the practice's Organization.
	err = run(context.Background(), []string{"records", "-state", "pending", "-store", store, "-threshold", "pending_max_hours=0.000000001"}, func(string) string { return "" }, strings.NewReader(""), &o, &e)
	if err != nil || !regexp.MustCompile(`observation/o-ghost waits for session/nowhere .* OVERDUE, flagged Flag/[0-9a-f-]+/1`).MatchString(o.String()) {
		t.Errorf("records overdue: %v\n%s%s", err, o.String(), e.String())
	}
}

func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{`{"thresholds": {"predose_systolic": 150}}`, `{"thresholds": {}}`, `{}`, `{"thresholds": {"x": 1}}`, `{"thresholds": {"spo2_low": -1}}`, `[]`, `{"thresholds": {"spo2_low": 1e400}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var lim mappings.Limits
		if err := parseSettings(data, &lim); err != nil {
			return
		}
		for _, l := range mappings.LimitTable {
			if v := lim.Get(l.Name); v < 0 {
				t.Errorf("%s = %g from %q", l.Name, v, data)
			}
		}
	})
}
