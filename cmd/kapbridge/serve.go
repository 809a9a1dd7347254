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
	"strings"
	"time"

	"github.com/kapbridge/kapbridge/adapters/practice"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/fhir/write"
	"github.com/kapbridge/kapbridge/mappings"
	"github.com/kapbridge/kapbridge/mappings/conformance"
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
	// RequestTimeout bounds each FHIR API request (server.Config).
	RequestTimeout time.Duration
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
	fs.StringVar(&cfg.Practice, "practice", env("KAPBRIDGE_PRACTICE", defaultPractice), "the practice's namespace: resource ids and identifier systems derive from it (KAPBRIDGE_PRACTICE)")
	logFormat := fs.String("log-format", env("KAPBRIDGE_LOG_FORMAT", "json"), "log format: json or text (KAPBRIDGE_LOG_FORMAT)")
	requestTimeout := fs.String("request-timeout", env("KAPBRIDGE_REQUEST_TIMEOUT", server.DefaultRequestTimeout.String()),
		"time limit of one FHIR API request, e.g. 30s or 2m; past it the request's queries are cancelled and it is answered 403 too-costly. "+
			"PostgreSQL's statement_timeout is set 5s above it unless the store URL sets one (KAPBRIDGE_REQUEST_TIMEOUT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	if d, err := time.ParseDuration(*requestTimeout); err == nil && d > 0 {
		cfg.RequestTimeout = d
	} else {
		return cfg, usageError{fmt.Sprintf("-request-timeout %q: want a positive duration such as 30s or 2m", *requestTimeout)}
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
	return cfg, nil
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
	// Register adds the vital-signs profiles mapped resources claim.
	if err := conformance.Register(); err != nil {
		return err
	}
	handler := server.New(server.Config{Store: store, BaseURL: cfg.BaseURL, Logger: log, Version: version, Conformance: conformance.Resources(), RequestTimeout: cfg.RequestTimeout,
		Documents: []server.Document{{Path: schemaPath, ContentType: "application/schema+json", Body: mappings.Schema()}}})
	if err := handler.SeedConformance(ctx); err != nil {
		return fmt.Errorf("store the conformance resources: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// The practice ingestion API (plain JSON, not FHIR) beside the FHIR
	// API, which keeps the root.
	mux := http.NewServeMux()
	mux.Handle("/practice/", practice.NewAPI(practice.HTTPConfig{Logger: log, Applier: &practice.Applier{
		Store: store, Mapper: &mappings.Mapper{Practice: cfg.Practice}, Writer: write.Writer{Base: cfg.BaseURL}, Tenant: fhir.DefaultTenant}}))
	mux.Handle("/", handler)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("kapbridge serving FHIR R4", "addr", ln.Addr().String(), "base_url", cfg.BaseURL, "store", storeKind(cfg.Store), "version", version, "practice_api", "/practice/v1/", "practice", cfg.Practice)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
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
