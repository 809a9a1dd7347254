package mappings

import (
	"slices"
	"strings"
	"testing"

	"github.com/kapbridge/kapbridge/fhir"
)

// TestFindingFlags: issue 12 items 3 and 9. A reading that breaks a rule
// is mapped with its interpretation, and each finding the prescriber must
// see becomes a Flag stating the value and the rule, with its priority;
// the Provenance lists the Flags too.
func TestFindingFlags(t *testing.T) {
	f := newCheckFixture()
	f.during.Vitals.SpO2, f.during.Vitals.HeartRate, f.during.Vitals.RespiratoryRate, f.during.Dissociation = f64(85), f64(140), f64(6), intp(10)
	b := f.book()
	findings := Check(b, f.during, CheckConfig{})
	m := testMapper()
	res, _, err := m.ToFHIRChecked(b, f.during, findings)
	if err != nil {
		t.Fatal(err)
	}
	type flag struct{ code, priority, text string }
	var flags []flag
	interp := map[string]string{}
	var prov *fhir.Value
	for _, v := range res {
		if _, _, err := fhir.ParseResource(v.Encode()); err != nil {
			t.Errorf("%s: %v", v.GetString("resourceType"), err)
		}
		switch v.GetString("resourceType") {
		case "Flag":
			ext := v.Get("extension").Array[0]
			if ext.GetString("url") != ExtFlagPriority {
				t.Errorf("flag extension %s", ext.GetString("url"))
			}
			pr := ext.Get("valueCodeableConcept").Get("coding").Array[0].GetString("code")
			c := v.Get("code")
			if sys := c.Get("coding").Array[0].GetString("system"); sys != CSCheck {
				t.Errorf("flag code system %s", sys)
			}
			if v.Get("subject") == nil || v.Get("encounter") == nil || v.Get("period") == nil {
				t.Errorf("flag without subject, encounter or period: %s", v.Encode())
			}
			flags = append(flags, flag{c.Get("coding").Array[0].GetString("code"), pr, c.GetString("text")})
		case "Observation":
			if in := v.Get("interpretation"); in != nil {
				code := v.Get("code").Get("coding").Array[0].GetString("code")
				interp[code] = in.Array[0].Get("coding").Array[0].GetString("code")
			}
		case "Provenance":
			prov = v
		}
	}
	want := []flag{
		{"vitals.spo2", "PH", "SpO2 85 %"},
		{"vitals.heart_rate", "PH", "heart rate 140 /min"},
		{"vitals.respiratory_rate", "PH", "respiratory rate 6 /min"},
		{"vitals.dissociation", "PL", "dissociation 10/10"},
	}
	if len(flags) != len(want) {
		t.Fatalf("flags %+v, want %+v", flags, want)
	}
	for i, w := range want {
		g := flags[i]
		if g.code != w.code || g.priority != w.priority || !strings.Contains(g.text, w.text) || !strings.Contains(g.text, "at or") {
			t.Errorf("flag %d: %+v, want %+v (the value and the rule)", i, g, w)
		}
	}
	// SpO2 LL, heart rate HH, respiratory rate LL; the BP 130/85 is normal.
	for code, w := range map[string]string{"59408-5": "LL", "8867-4": "HH", "9279-1": "LL"} {
		if interp[code] != w {
			t.Errorf("interpretation of %s: %q, want %q (all: %v)", code, interp[code], w, interp)
		}
	}
	if _, ok := interp["85354-9"]; ok {
		t.Errorf("BP 130/85 interpreted: %v", interp)
	}
	if prov == nil || len(prov.Get("target").Array) != len(res)-1 {
		t.Errorf("the Provenance does not list every resource")
	}
}

// TestInterpretation: the bands of each vital under the defaults and a
// practice's limits.
func TestInterpretation(t *testing.T) {
	var lim Limits
	for _, tc := range []struct {
		vital string
		x     float64
		want  string
	}{
		{"spo2", 96, ""}, {"spo2", 93, "L"}, {"spo2", 91, "LL"},
		{"hr", 110, ""}, {"hr", 111, "H"}, {"hr", 131, "HH"}, {"hr", 50, "L"}, {"hr", 40, "LL"},
		{"rr", 12, ""}, {"rr", 21, "H"}, {"rr", 25, "HH"}, {"rr", 11, "L"}, {"rr", 8, "LL"},
		{"systolic", 140, ""}, {"systolic", 141, "H"}, {"systolic", 181, "HH"},
		{"diastolic", 90, ""}, {"diastolic", 91, "H"}, {"diastolic", 121, "HH"},
		{"weight", 500, ""},
	} {
		if got := lim.interpretation(tc.vital, tc.x); got != tc.want {
			t.Errorf("%s %g: %q, want %q", tc.vital, tc.x, got, tc.want)
		}
	}
	if err := lim.Parse("predose_systolic=160"); err != nil {
		t.Fatal(err)
	}
	if got := lim.interpretation("systolic", 150); got != "" {
		t.Errorf("150 under a 160 threshold: %q", got)
	}
}

func TestLimitsParse(t *testing.T) {
	var lim Limits
	if err := lim.Parse("spo2_critical=88, pending_max_hours=4\nclearance_valid_days=180"); err != nil {
		t.Fatal(err)
	}
	if lim.Get("spo2_critical") != 88 || lim.Get("pending_max_hours") != 4 || lim.Get("clearance_valid_days") != 180 || lim.Get("spo2_low") != 93 {
		t.Errorf("%+v", lim)
	}
	if got := strings.Join(lim.Changed(), ","); got != "spo2_critical=88,clearance_valid_days=180,pending_max_hours=4" {
		t.Errorf("Changed %s", got)
	}
	for _, bad := range []string{"spo2", "nope=1", "spo2_low=x", "spo2_low=-1", "spo2_low=NaN"} {
		if err := lim.Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, l := range LimitTable {
		if l.Source == "" || l.Unit == "" {
			t.Errorf("%s: no source or unit", l.Name)
		}
	}
}

func FuzzLimitsParse(f *testing.F) {
	for _, s := range []string{"spo2_critical=88", "a=b", "predose_systolic=160, predose_diastolic=100", "=", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var lim Limits
		if err := lim.Parse(s); err != nil {
			return
		}
		for _, l := range LimitTable {
			if v := lim.Get(l.Name); v < 0 {
				t.Errorf("%s = %g after %q", l.Name, v, s)
			}
		}
	})
}

// Every limit of the table is a field of Limits, and Get costs no
// allocation (the checks call it for every vital sign).
func TestLimitFields(t *testing.T) {
	var lim Limits
	for i, l := range LimitTable {
		if err := lim.Set(l.Name, float64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range LimitTable {
		if lim.Get(l.Name) != float64(i+1) {
			t.Errorf("%s is not its own field", l.Name)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = lim.Get("spo2_critical") + lim.interpretationCost() }); n != 0 {
		t.Errorf("Get allocates %g times", n)
	}
}

func (l Limits) interpretationCost() float64 {
	if l.interpretation("hr", 120) == "" {
		return 1
	}
	return 0
}

// TestDoseProduct: issue 12 item 7 / safety item 2. A ketamine dose that
// names its product (an RxNorm injectable code of kap-domain.md) is coded
// with the product beside the ingredient; one that names none keeps the
// ingredient alone; a product on esketamine (kap-domain.md has no SCD/SBD
// for it) is not carried, with a warning.
func TestDoseProduct(t *testing.T) {
	codesOf := func(t *testing.T, d *Dose) ([]string, []Problem) {
		t.Helper()
		f := newCheckFixture()
		f.dosing.Dose = d
		res, warns, err := testMapper().ToFHIR(f.book(), f.dosing)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.GetString("resourceType") != "MedicationAdministration" {
				continue
			}
			var out []string
			for _, c := range r.Get("medicationCodeableConcept").Get("coding").Array {
				out = append(out, c.GetString("system")+"|"+c.GetString("code"))
			}
			return out, warns
		}
		t.Fatal("no MedicationAdministration")
		return nil, nil
	}
	got, _ := codesOf(t, &Dose{Drug: "ketamine", Mg: 35, Route: "iv", Product: "238083"})
	if want := []string{SysRxNorm + "|6130", SysRxNorm + "|238083"}; !slices.Equal(got, want) {
		t.Errorf("with product: %v, want %v", got, want)
	}
	got, _ = codesOf(t, &Dose{Drug: "ketamine", Mg: 35, Route: "iv"})
	if want := []string{SysRxNorm + "|6130"}; !slices.Equal(got, want) {
		t.Errorf("without product: %v, want %v", got, want)
	}
	got, warns := codesOf(t, &Dose{Drug: "esketamine", Mg: 56, Route: "spravato", Product: "238083"})
	if want := []string{SysRxNorm + "|2201623", SysRxNorm + "|2201625"}; !slices.Equal(got, want) {
		t.Errorf("esketamine with a ketamine product: %v, want %v", got, want)
	}
	found := false
	for _, w := range warns {
		found = found || w.Field == "session.dose.product"
	}
	if !found {
		t.Errorf("esketamine with a ketamine product: no warning in %v", warns)
	}
}
