package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr"
	"github.com/kapbridge/kapbridge/adapters/ehr/inboundstore"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/fhir/smart"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/ig"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// demo: the whole job on one machine with nothing installed. It starts
// an EHR sandbox playing Epic (in memory, with the sample client as one
// of its patients) and the gateway on a SQLite file; makes a signing
// key and registers it with the sandbox; adds the connection; imports
// the sample course through the practice import; syncs it out; writes a
// prescriber's vitals on the EHR as the EHR's own users would and brings
// them back; prints what landed where and in which representation; and
// leaves both servers running with their URLs until interrupted.

const (
	demoConnection = "epic-sandbox"
	demoClientID   = "kapbridge-demo"
	demoPractice   = "demo-practice"
	// demoMRNSystem is the sandbox's MRN system (Epic's patient
	// identifier OID form), by which the gateway links the client.
	demoMRNSystem = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
	demoReady     = "ready: both servers are running; Ctrl-C stops them"
)

func demo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kapbridge demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "where the demo keeps its store and key (default: a new temporary directory)")
	course := fs.String("course", filepath.Join("testdata", "records", "course-iv.ndjson"), "the practice records of the course to sync (NDJSON)")
	listen := fs.String("listen", "127.0.0.1:8080", "the gateway's address (port 0: any free port)")
	ehrListen := fs.String("ehr-listen", "127.0.0.1:9090", "the EHR sandbox's address (port 0: any free port)")
	profile := fs.String("profile", "epic", "the EHR the sandbox plays: epic, oracle or full")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("demo takes no arguments, got %q", fs.Args())}
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "kapbridge-demo-")
		if err != nil {
			return err
		}
		*dir = d
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }

	recs, err := readCourse(*course)
	if err != nil {
		return err
	}
	client := firstClient(recs)
	if client == nil || client.MRN == "" {
		return fmt.Errorf("demo: %s has no client record with an MRN to find the patient in the EHR by", *course)
	}

	// 1. A signing key, as `kapbridge keys generate` makes it.
	key, err := smart.GenerateKey(smart.ES384)
	if err != nil {
		return err
	}
	pemData, err := key.MarshalPEM()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(*dir, "gateway-key.pem")
	if err := os.WriteFile(keyFile, pemData, 0o600); err != nil {
		return err
	}
	jwks, _ := json.MarshalIndent(key.PublicJWKS(), "", "  ")
	if err := os.WriteFile(filepath.Join(*dir, "gateway-key.jwks.json"), append(jwks, '\n'), 0o644); err != nil {
		return err
	}
	say("1. key: %s (ES384, kid %s), public JWK Set beside it", keyFile, key.KeyID())

	// 2. The EHR: the sandbox, with the client as its patient.
	ehrLn, err := net.Listen("tcp", *ehrListen)
	if err != nil {
		return fmt.Errorf("demo: EHR sandbox: %w", err)
	}
	ehrBase := "http://" + ehrLn.Addr().String()
	ehrStore := memstore.New()
	scopes, _ := smart.ParseScopes("system/*.cruds")
	sandboxHandler, err := ehr.NewSandbox(ehr.SandboxConfig{Profile: *profile, BaseURL: ehrBase, Store: ehrStore, Logger: log,
		Clients: smart.Clients{demoClientID: {ID: demoClientID, JWKS: key.PublicJWKS(), Scopes: scopes}}})
	if err != nil {
		return err
	}
	ehrPatient, err := seedEHRPatient(ctx, ehrStore, client)
	if err != nil {
		return err
	}
	stopEHR := demoServe(ehrLn, sandboxHandler, log)
	defer stopEHR()
	say("2. EHR sandbox (%s profile) at %s, knows %s %s as Patient/%s (MRN %s)", *profile, ehrBase, strings.Join(client.Name.Given, " "), client.Name.Family, ehrPatient, client.MRN)

	// 3. The gateway on SQLite.
	dbFile := filepath.Join(*dir, "kapbridge.db")
	st, err := sqlstore.Open(ctx, dbFile)
	if err != nil {
		return err
	}
	defer st.Close()
	sync, ok := st.(syncstore.Store)
	inbound, ok2 := st.(inboundstore.Store)
	if !ok || !ok2 {
		return errors.New("demo: the store keeps no sync state")
	}
	gwLn, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("demo: gateway: %w", err)
	}
	gwBase := "http://" + gwLn.Addr().String()
	profiles, err := ig.Profiles()
	if err != nil {
		return err
	}
	writer := write.Writer{Base: gwBase, Changed: syncstore.Enqueue}
	// Authorization on, as serve runs it; a dev client's token is printed
	// (auth.go, as serve --dev does).
	authz, err := demoAuth(ctx, st, dbFile, gwBase, stdout)
	if err != nil {
		return err
	}
	api := server.New(server.Config{Store: st, BaseURL: gwBase, Logger: log, Version: version, Conformance: ig.Resources(), Profiles: profiles, Changed: syncstore.Enqueue, Auth: authz})
	if err := api.SeedConformance(ctx); err != nil {
		return err
	}
	stopGW := demoServe(gwLn, api, log)
	defer stopGW()
	say("3. gateway at %s, store %s", gwBase, dbFile)

	// 4. The connection.
	conn := syncstore.Connection{Name: demoConnection, Tenant: fhir.DefaultTenant, BaseURL: ehrBase, ClientID: demoClientID,
		KeyFile: keyFile, Key: pemData, Scopes: "system/*.cruds", MRNSystem: demoMRNSystem, Created: time.Now()}
	if err := sync.AddConnection(ctx, conn); err != nil && !errors.Is(err, syncstore.ErrExists) {
		return err
	}
	ob, err := ehr.NewOutbound(ctx, conn, sync, st, ehr.OutboundConfig{Logger: log})
	if err != nil {
		return err
	}
	ob.TargetWait = 20 * time.Millisecond
	say("4. connection %s: client %s, token URL discovered from %s/.well-known/smart-configuration", demoConnection, demoClientID, ehrBase)

	// 5. The practice import.
	ap := &records.Applier{Store: st, Mapper: &mappings.Mapper{Practice: demoPractice}, Writer: writer}
	counts := map[string]int{}
	for _, rec := range recs {
		res, err := ap.Apply(ctx, rec)
		if err != nil {
			return err
		}
		counts[res.Status]++
	}
	say("5. imported %d records of %s: %v", len(recs), *course, counts)

	// 6. Out.
	start := time.Now()
	if err := drainAll(ctx, ob); err != nil {
		return err
	}
	say("6. synced to the EHR in %s:", time.Since(start).Round(time.Millisecond))
	if err := printLanded(ctx, stdout, sync, ob); err != nil {
		return err
	}

	// 7. In: the prescriber's vitals, written on the EHR by the EHR.
	dosing := firstDosing(recs)
	when := time.Now().UTC().Format(time.RFC3339)
	if dosing != nil {
		when = dosing.PlannedStart[:10] + "T10:40:00" + dosing.PlannedStart[19:]
	}
	vitals := fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,"component":[`+
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":142,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},`+
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":88,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`, ehrPatient, when)
	resp, err := ob.Client.Do(ctx, &ehr.Request{Method: http.MethodPost, URL: "Observation", Body: []byte(vitals)})
	if err != nil {
		return fmt.Errorf("demo: write the prescriber's vitals on the EHR: %w", err)
	}
	say("7. the prescriber records a blood pressure of 142/88 mm[Hg] on the EHR at %s: %s", when, resp.Header.Get("Location"))
	links := ehr.SyncLinks{Store: sync}
	poller := &ehr.Poller{Connection: demoConnection, Client: ob.Client, Caps: ob.Caps, State: inbound, Links: links, Source: ehr.DefaultSource, Logger: log,
		Sink: &ehr.RecordSink{Connection: demoConnection, Applier: ap, Conflicts: inbound, Links: links, EHRName: demoConnection, EHRBase: ehrBase}}
	reps, err := poller.PollLinked(ctx, sync, st)
	if err != nil {
		return fmt.Errorf("demo: bring the EHR's changes in: %w", err)
	}
	say("8. brought back from the EHR (the gateway's own writes, polled back too, are recognised as echoes):")
	for _, rep := range reps {
		for _, tp := range rep.Types {
			switch {
			case tp.Skipped != "":
				say("   %-25s not polled: %s", tp.Type, tp.Skipped)
			default:
				say("   %-25s window %s, %d found, %d echoes of the gateway's writes, %d taken before", tp.Type, tp.Window, tp.Fetched, tp.Echoes, tp.Duplicates)
			}
		}
		for _, it := range rep.Items {
			say("   %s %s: %s %s", ehrBase+"/"+it.Remote, it.Outcome, strings.Join(it.Records, ", "), it.Detail)
			for _, r := range it.Resources {
				say("      wrote %s/%s", gwBase, r)
			}
		}
	}
	// The sync carries the merged record's FHIR out again.
	if err := drainAll(ctx, ob); err != nil {
		return err
	}

	say("")
	say("Look around:")
	say("  gateway FHIR API:   %s/metadata, %s/Patient, %s/Observation?_count=20", gwBase, gwBase, gwBase)
	say("  EHR sandbox:        %s/metadata, %s/Observation?patient=%s", ehrBase, ehrBase, ehrPatient)
	say("  EHR token endpoint: %s%s (the sandbox asks for a token on every FHIR request)", ehrBase, ehr.SandboxTokenPath)
	say("  files:              %s", *dir)
	say(demoReady)
	<-ctx.Done()
	return nil
}

// demoServe serves h on ln until the returned stop is called.
func demoServe(ln net.Listener, h http.Handler, log *slog.Logger) func() {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}

func readCourse(path string) ([]mappings.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("demo: the sample course: %w (run the demo from the repository's root, or give -course)", err)
	}
	defer f.Close()
	var recs []mappings.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		rec, err := mappings.Decode(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("demo: %s line %d: %w", path, n, err)
		}
		recs = append(recs, rec)
	}
	return recs, sc.Err()
}

func firstClient(recs []mappings.Record) *mappings.Client {
	for _, r := range recs {
		if c, ok := r.(*mappings.Client); ok {
			return c
		}
	}
	return nil
}

func firstDosing(recs []mappings.Record) *mappings.Session {
	for _, r := range recs {
		if s, ok := r.(*mappings.Session); ok && s.Type == "dosing" && len(s.PlannedStart) >= 25 {
			return s
		}
	}
	return nil
}

// seedEHRPatient puts the client in the EHR as the EHR's own patient,
// found by MRN: Epic takes no Patient writes, so a real EHR would have
// the patient already.
func seedEHRPatient(ctx context.Context, st fhir.Store, c *mappings.Client) (string, error) {
	body, _ := json.Marshal(map[string]any{"resourceType": "Patient", "identifier": []any{map[string]any{"system": demoMRNSystem, "value": c.MRN}},
		"name": []any{map[string]any{"family": c.Name.Family, "given": c.Name.Given}}, "birthDate": c.BirthDate})
	res, err := fhir.ParseJSON(body, fhir.StoredLimits)
	if err != nil {
		return "", err
	}
	id := "ehr-" + strings.ToLower(strings.ReplaceAll(c.MRN, "-", ""))
	k := fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: id}
	return id, st.Update(ctx, func(tx fhir.Tx) error {
		cur, err := tx.Read(ctx, k)
		if err != nil && !errors.Is(err, fhir.ErrNotFound) {
			return err
		}
		cur.Key = k
		_, err = (write.Writer{}).Put(ctx, tx, k, cur, res)
		return err
	})
}

func drainAll(ctx context.Context, ob *ehr.Outbound) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := ob.Drain(ctx); err != nil {
			return err
		}
		c, err := ob.Sync.Counts(ctx, ob.Conn.Name)
		if err != nil {
			return err
		}
		if c[syncstore.StatePending] == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: still pending after 2 minutes: %v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// printLanded says what the sync wrote to the EHR, grouped by what went
// as what (with one example URL each), and what did not go and why.
func printLanded(ctx context.Context, w io.Writer, sync syncstore.Store, ob *ehr.Outbound) error {
	links, err := sync.Links(ctx, ob.Conn.Name)
	if err != nil {
		return err
	}
	type group struct {
		n       int
		example string
	}
	groups := map[string]*group{}
	for _, l := range links {
		how := l.SourceType + " as itself"
		if l.RemoteType != l.SourceType {
			how = l.SourceType + " as " + l.RemoteType + " (" + l.SourceType + " is not writable there)"
		}
		g := groups[how]
		if g == nil {
			g = &group{example: ob.Conn.BaseURL + "/" + l.RemoteType + "/" + l.RemoteID}
			groups[how] = g
		}
		g.n++
	}
	fmt.Fprintf(w, "   %d resources landed on the EHR:\n", len(links))
	for _, how := range sortedKeys(groups) {
		fmt.Fprintf(w, "   %4d %-75s e.g. %s\n", groups[how].n, how, groups[how].example)
	}
	ds, err := sync.Deliveries(ctx, ob.Conn.Name, syncstore.StateDone, 0)
	if err != nil {
		return err
	}
	held := map[string]*group{}
	for _, d := range ds {
		if d.LastError == "" {
			continue
		}
		// One line per reason: the ids of what was left out vary.
		why := d.Type + ": " + refPattern.ReplaceAllString(d.LastError, "$1/...")
		g := held[why]
		if g == nil {
			g = &group{example: d.Type + "/" + d.ResourceID}
			held[why] = g
		}
		g.n++
	}
	if len(held) > 0 {
		fmt.Fprintf(w, "   not sent (they stay on the gateway's FHIR API):\n")
		for _, why := range sortedKeys(held) {
			fmt.Fprintf(w, "   %4d %s\n", held[why].n, why)
		}
	}
	dead, err := sync.Deliveries(ctx, ob.Conn.Name, syncstore.StateDead, 0)
	if err != nil {
		return err
	}
	for _, d := range dead {
		fmt.Fprintf(w, "   FAILED %s/%s: %s\n", d.Type, d.ResourceID, d.LastError)
	}
	return nil
}

var refPattern = regexp.MustCompile(`\b([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{8,64}`)

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
