package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/practice"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/ig"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// schemaPath is where the practice record format's JSON Schema is served
// (its $id is mappings.SchemaURL, the canonical name).
const schemaPath = "/schema/practice-record.schema.json"

// serveConfig is the configuration of `kapbridge serve`. Each flag has a
// KAPBRIDGE_* environment variable; a flag given on the command line wins.
type serveConfig struct {
	Listen   string
	BaseURL  string
	Store    string
	LogLevel string
	LogJSON  bool
	// Practice is the practice namespace the ingestion API maps under.
	Practice string
	IGs      igDirs // -ig: implementation guides to enforce (ig.go)
	// Limits bound the requests of the FHIR API and, where they are shared
	// (in flight, body budget, queue wait), of the practice API (one flag
	// each, named as the limit; 0 means the default).
	Limits server.Limits
	// RequestTimeout bounds each FHIR API request (server.Config).
	RequestTimeout time.Duration
	// PracticeRequestTimeout bounds each practice API request
	// (practice.HTTPConfig).
	PracticeRequestTimeout time.Duration
	// Auth is the security configuration (auth.go).
	Auth authConfig
	// Safety are the thresholds the practice records are checked and
	// mapped by (thresholds.go: -threshold, -settings).
	Safety mappings.Limits
	// Sync runs the EHR sync workers inside the server (sync.go).
	Sync bool
	// SyncInbound is how often --sync polls each EHR for its changes.
	SyncInbound time.Duration
	// SyncRefresh is how often --sync reads the connections again;
	// SyncRetention how long delivered outbox rows are kept.
	SyncRefresh, SyncRetention time.Duration
}

// defaultPractice is the practice namespace when neither -practice nor
// KAPBRIDGE_PRACTICE names one. Resource ids and identifier systems derive
// from it, so serve, import and export of one store must agree on it.
const defaultPractice = "default"

func parseServeFlags(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var cfg serveConfig
	fs := flag.NewFlagSet("kapbridge serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", env("KAPBRIDGE_LISTEN", "127.0.0.1:8080"), "address to listen on (KAPBRIDGE_LISTEN)")
	fs.StringVar(&cfg.BaseURL, "base-url", env("KAPBRIDGE_BASE_URL", ""), "public base URL of the FHIR API, for Location and fullUrl (KAPBRIDGE_BASE_URL; default http://<listen>)")
	fs.StringVar(&cfg.Store, "store", env("KAPBRIDGE_STORE", "./kapbridge-data/kapbridge.db"), "store: an SQLite file path, or a postgres://... URL for PostgreSQL (KAPBRIDGE_STORE)")
	fs.StringVar(&cfg.LogLevel, "log-level", env("KAPBRIDGE_LOG_LEVEL", "info"), "log level: debug, info, warn, error (KAPBRIDGE_LOG_LEVEL)")
	fs.BoolVar(&cfg.Sync, "sync", env("KAPBRIDGE_SYNC", "") == "true", "also run the EHR sync workers (kapbridge sync run) in this process (KAPBRIDGE_SYNC=true)")
	fs.DurationVar(&cfg.SyncInbound, "sync-inbound", defaultInboundInterval, "with --sync: how often each EHR is polled for its changes to the linked patients")
	fs.DurationVar(&cfg.SyncRefresh, "sync-refresh", defaultSyncRefresh, "with --sync: how often the stored connections are read again, so one added or removed (kapbridge ehr add|remove) starts or stops without a restart")
	fs.DurationVar(&cfg.SyncRetention, "sync-retention", defaultSyncRetention, "with --sync: how long what was fully delivered stays in the outbox before it is pruned (dead letters stay until replayed or discarded)")
	fs.StringVar(&cfg.Practice, "practice", env("KAPBRIDGE_PRACTICE", defaultPractice), "the practice's namespace: resource ids and identifier systems derive from it (KAPBRIDGE_PRACTICE)")
	logFormat := fs.String("log-format", env("KAPBRIDGE_LOG_FORMAT", "json"), "log format: json or text (KAPBRIDGE_LOG_FORMAT)")
	envErr := limitFlags(fs, getenv, &cfg.Limits)
	igFlag(fs, getenv, &cfg.IGs)
	thrErr := thresholdFlags(fs, getenv, &cfg.Safety)
	requestTimeout := fs.String("request-timeout", env("KAPBRIDGE_REQUEST_TIMEOUT", server.DefaultRequestTimeout.String()),
		"time limit of one FHIR API request, e.g. 30s or 2m; past it the request's queries are cancelled and it is answered 403 too-costly. "+
			"PostgreSQL's statement_timeout is set 5s above it unless the store URL sets one (KAPBRIDGE_REQUEST_TIMEOUT)")
	practiceTimeout := fs.String("practice-request-timeout", env("KAPBRIDGE_PRACTICE_REQUEST_TIMEOUT", practice.DefaultRequestTimeout.String()),
		"time limit of one practice API request, e.g. 5m; past it the records not yet applied are not, and it is answered 503 timeout (KAPBRIDGE_PRACTICE_REQUEST_TIMEOUT)")
	authDone := authFlags(fs, getenv, &cfg.Auth)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, usageError{err.Error()}
	}
	if err := envErr(); err != nil {
		return cfg, err
	}
	if err := thrErr(); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	if d, err := time.ParseDuration(*requestTimeout); err == nil && d > 0 {
		cfg.RequestTimeout = d
	} else {
		return cfg, usageError{fmt.Sprintf("-request-timeout %q: want a positive duration such as 30s or 2m", *requestTimeout)}
	}
	if d, err := time.ParseDuration(*practiceTimeout); err == nil && d > 0 {
		cfg.PracticeRequestTimeout = d
	} else {
		return cfg, usageError{fmt.Sprintf("-practice-request-timeout %q: want a positive duration such as 5m", *practiceTimeout)}
	}
	switch *logFormat {
	case "json":
		cfg.LogJSON = true
	case "text":
	default:
		return cfg, usageError{fmt.Sprintf("-log-format %q: want json or text", *logFormat)}
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "http://" + cfg.Listen
	}
	if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
		return cfg, usageError{fmt.Sprintf("-base-url %q must be an absolute http(s) URL", cfg.BaseURL)}
	}
	if err := authDone(&cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// maxFHIRString is R4's bound on a string's length, the most
// -max-string-bytes may be.
const maxFHIRString = 1 << 20

// limitFlags defines a flag for each limit of the FHIR API (and the ones
// the practice API shares: in flight, body budget, queue wait), named as the
// limit (errors over a limit name it: fhir.LimitText), its default taken
// from KAPBRIDGE_<NAME> when set. The function it returns, to call after
// parsing, reports an environment value that is not a number (or
// duration), and a negative flag value, as a usage error.
func limitFlags(fs *flag.FlagSet, getenv func(string) string, lim *server.Limits) func() error {
	d := server.DefaultLimits
	var bad []string
	names := map[string]bool{}
	envName := func(name string) string {
		names[name] = true
		return "KAPBRIDGE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	}
	intFlag := func(p *int, name string, def int, usage string) {
		v := def
		if s := getenv(envName(name)); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				bad = append(bad, envName(name)+"="+s)
			}
			v = n
		}
		fs.IntVar(p, name, v, usage+" (0: the default; "+envName(name)+")")
	}
	int64Flag := func(p *int64, name string, def int64, usage string) {
		v := def
		if s := getenv(envName(name)); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				bad = append(bad, envName(name)+"="+s)
			}
			v = n
		}
		fs.Int64Var(p, name, v, usage+" (0: the default; "+envName(name)+")")
	}
	durFlag := func(p *time.Duration, name string, def time.Duration, usage string) {
		v := def
		if s := getenv(envName(name)); s != "" {
			n, err := time.ParseDuration(s)
			if err != nil || n < 0 {
				bad = append(bad, envName(name)+"="+s)
			}
			v = n
		}
		fs.DurationVar(p, name, v, usage+" (0: the default; "+envName(name)+")")
	}
	int64Flag(&lim.MaxBodyBytes, "max-body-bytes", d.MaxBodyBytes, "largest FHIR request body, bytes: 413 beyond")
	intFlag(&lim.MaxHeaderBytes, "max-header-bytes", d.MaxHeaderBytes, "largest request line and headers, bytes: 431 beyond")
	intFlag(&lim.MaxBundleEntries, "max-bundle-entries", d.MaxBundleEntries, "most entries in a batch or transaction Bundle: 413 beyond")
	intFlag(&lim.MaxIssues, "max-issues", d.MaxIssues, "most issues an OperationOutcome lists (at most 1000 of one resource)")
	intFlag(&lim.MaxInFlight, "max-in-flight", d.MaxInFlight, "most requests served at once, FHIR and practice API together: 503 with Retry-After beyond, after -queue-wait")
	int64Flag(&lim.BodyBudgetBytes, "body-budget-bytes", d.BodyBudgetBytes, "most bytes of request bodies read and processed at once, FHIR and practice API together (a body without Content-Length counts as its API's largest: -max-body-bytes, or the practice API's 10 MB): 503 with Retry-After beyond, after -queue-wait")
	durFlag(&lim.QueueWait, "queue-wait", d.QueueWait, "how long a request waits for -max-in-flight or -body-budget-bytes before a 503")
	intFlag(&lim.Resource.MaxArrayElements, "max-array-elements", d.Resource.MaxArrayElements, "most elements in one JSON array of a request body: 413 beyond")
	intFlag(&lim.Resource.MaxNodes, "max-nodes", d.Resource.MaxNodes, "most JSON values (objects, arrays, scalars) in a request body: 413 beyond")
	intFlag(&lim.Resource.MaxDepth, "max-depth", fhir.DefaultLimits.MaxDepth, fmt.Sprintf("deepest nesting of JSON objects and arrays in a request body (the root object is 1; the official R4 examples reach 21); at most %d: 400 beyond", fhir.MaxDepthBound))
	intFlag(&lim.Resource.MaxStringBytes, "max-string-bytes", fhir.DefaultLimits.MaxStringBytes, "longest string (or member name) in a request body, bytes, narratives and base64Binary excepted; at most 1048576, FHIR's 1 MB rule: 400 beyond")
	intFlag(&lim.Resource.MaxTotalStringBytes, "max-total-string-bytes", fhir.DefaultLimits.MaxTotalStringBytes, "most bytes of all the strings of a request body together, narratives and base64Binary included: 413 beyond")
	intFlag(&lim.Search.MaxParams, "max-search-params", d.Search.MaxParams, "most criteria (name=value pairs) in one search or conditional request: 400 beyond")
	intFlag(&lim.Search.MaxValues, "max-search-values", d.Search.MaxValues, "most comma-separated (OR-ed) values of one search parameter: 400 beyond")
	intFlag(&lim.Search.MaxTotalValues, "max-search-total-values", d.Search.MaxTotalValues, "most comma-separated values of all parameters of one search: 400 beyond")
	intFlag(&lim.Search.MaxSortKeys, "max-sort-keys", d.Search.MaxSortKeys, "most _sort keys: 400 beyond")
	intFlag(&lim.Search.MaxIncludes, "max-includes", d.Search.MaxIncludes, "most distinct _include and _revinclude of one search: 400 beyond")
	intFlag(&lim.Search.MaxChains, "max-search-chains", d.Search.MaxChains, "most chained and _has criteria of one search: 400 beyond")
	return func() error {
		if len(bad) > 0 {
			return usageError{"not a non-negative number (or duration): " + strings.Join(bad, ", ")}
		}
		fs.Visit(func(f *flag.Flag) {
			if names[f.Name] && strings.HasPrefix(f.Value.String(), "-") {
				bad = append(bad, "-"+f.Name+" "+f.Value.String())
			}
		})
		if len(bad) > 0 {
			return usageError{"a limit cannot be negative: " + strings.Join(bad, ", ")}
		}
		// FHIR's strings SHALL NOT exceed 1 MB: fhir.Validate refuses
		// longer ones whatever the parser allows, and stored versions are
		// re-read (fhir.StoredLimits) under that bound, so a larger value
		// would only mislead.
		// Stored versions are re-read under fhir.MaxDepthBound
		// (fhir.StoredLimits): a deeper setting would store what could
		// not be read back.
		if n := lim.Resource.MaxDepth; n > fhir.MaxDepthBound {
			return usageError{fmt.Sprintf("-max-depth %d: at most %d", n, fhir.MaxDepthBound)}
		}
		if n := lim.Resource.MaxStringBytes; n > maxFHIRString {
			return usageError{fmt.Sprintf("-max-string-bytes %d: at most %d (FHIR: strings SHALL NOT exceed 1 MB)", n, maxFHIRString)}
		}
		return nil
	}
}

func newLogger(cfg serveConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, usageError{fmt.Sprintf("-log-level %q: want debug, info, warn or error", cfg.LogLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// serve runs the FHIR API until ctx is done, then shuts down gracefully:
// in-flight requests finish (up to 20 s) before the store closes.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	store, err := sqlstore.Open(ctx, cfg.Store, sqlstore.WithStatementTimeout(cfg.RequestTimeout+statementTimeoutMargin))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()

	// The project's profiles, CodeSystems, ValueSets and Questionnaires are
	// stored before the first request, so a storage failure fails the start;
	// writes are checked against them and the vital-signs profiles mapped
	// resources claim (ig.Profiles).
	profiles, err := ig.Profiles()
	if err != nil {
		return err
	}
	if profiles, err = withIGs(profiles, cfg.IGs); err != nil {
		return err
	}
	// The practice ingestion API (plain JSON, not FHIR) beside the FHIR
	// API, which keeps the root: one router, one middleware chain
	// (server.API).
	// Every change, whichever API makes it, enqueues for the EHRs in its
	// own transaction (syncstore.Enqueue); the connections' public keys
	// are served at /ehr/NAME/jwks.json.
	ss, _ := store.(syncstore.Store)
	var changed func(context.Context, fhir.Tx, fhir.Version) error
	apis := []server.API{}
	if ss != nil {
		changed = syncstore.Enqueue
		apis = append(apis, jwksAPI{sync: ss})
	}
	// Each practice (tenant) has its own Applier: the default one maps in
	// the -practice namespace, another practice's authenticated clients
	// write its own tenant in a namespace named after it.
	pr := &practices{make: func(tenant, namespace string) *records.Applier {
		return &records.Applier{Store: store, Mapper: &mappings.Mapper{Practice: namespace, Limits: cfg.Safety}, Writer: write.Writer{Base: cfg.BaseURL, Changed: changed},
			Tenant: tenant, Checks: mappings.CheckConfig{Limits: cfg.Safety}}
	}, store: store}
	applier := pr.get(fhir.DefaultTenant, cfg.Practice)
	practiceAPI := practice.NewAPI(practice.HTTPConfig{Logger: log, RequestTimeout: cfg.PracticeRequestTimeout, Applier: applier,
		ForTenant: func(t string) *records.Applier { return pr.get(t, t) }})
	apis = append(apis, practiceAPI)
	// Overdue pending records raise their Flags every overdueSweep; the
	// sweep ends (stop, then wait) before the store closes.
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); sweepOverdue(sweepCtx, pr.all, cfg.Safety, overdueSweep, log) }()
	defer func() { <-sweepDone }()
	defer stopSweep()
	lim := cfg.Limits.WithDefaults()
	authz, closeAuth, err := setupAuth(ctx, cfg.Auth, store, cfg, stdout, stderr, log)
	if err != nil {
		return err
	}
	defer closeAuth() // after the server stopped, before the store closes
	handler := server.New(server.Config{Store: store, BaseURL: cfg.BaseURL, Logger: log, Version: version,
		Conformance: ig.Resources(), Profiles: profiles, RequestTimeout: cfg.RequestTimeout,
		Documents: []server.Document{{Path: schemaPath, ContentType: "application/schema+json", Body: mappings.Schema()}}, Limits: lim,
		APIs: apis, Changed: changed, Auth: authz})
	if err := handler.SeedConformance(ctx); err != nil {
		return fmt.Errorf("store the conformance resources: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// The listener turns net/http's own plain-text refusals (a header
	// block over MaxHeaderBytes, a malformed request) into
	// OperationOutcomes.
	if authz != nil && authz.Audit != nil {
		ln = server.AuditedListener(ln, lim, authz.Audit)
	} else {
		ln = server.Listener(ln, lim)
	}
	log.Info("kapbridge serving FHIR R4", "addr", ln.Addr().String(), "base_url", cfg.BaseURL, "store", storeKind(cfg.Store), "version", version, "practice_api", "/practice/v1/", "practice", cfg.Practice,
		"safety_thresholds", cfg.Safety.Changed())

	var syncDone chan struct{}
	syncCtx, stopSync := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSync()
	if cfg.Sync {
		if ss == nil {
			return errors.New("serve --sync: this store keeps no EHR connections")
		}
		// Connections added or removed while it runs are followed
		// (sync_supervise.go).
		sup := &syncSupervisor{ss: ss, st: store, ap: applier, log: log, poll: 2 * time.Second, inbound: cfg.SyncInbound,
			refresh: cfg.SyncRefresh, retention: cfg.SyncRetention}
		syncDone = make(chan struct{})
		go func() { defer close(syncDone); sup.Run(syncCtx) }()
		log.Info("ehr sync workers running; following the stored connections", "refresh", cfg.SyncRefresh.String())
	}

	errc := make(chan error, 1)
	go func() { errc <- serveOn(srv, ln, cfg.Auth) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	if syncDone != nil {
		stopSync() // the workers release their leases
		<-syncDone
	}
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// statementTimeoutMargin puts PostgreSQL's statement_timeout a little
// above the request time limit: a request ends by its own deadline, which
// cancels its query; the server-side timeout is the backstop for a query
// the gateway could not cancel (it was killed, the network went away).
const statementTimeoutMargin = 5 * time.Second

// storeKind names the store for the log without its credentials.
func storeKind(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return "postgresql"
	}
	return "sqlite:" + dsn
}
