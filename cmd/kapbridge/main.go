// Command kapbridge is the KAP FHIR R4 integration gateway.
//
//	kapbridge serve     run the FHIR REST API and the practice ingestion API
//	kapbridge import    import practice record files (JSON, NDJSON, CSV)
//	kapbridge export    write a course back as practice records
//	kapbridge keys      make a signing key for SMART Backend Services
//	kapbridge sandbox   play an EHR (Epic, Oracle Health, full) for rehearsals
//	kapbridge clients   manage the clients allowed to call the API
//	kapbridge ehr       connections to prescribers' EHRs: add, list, show, remove, plan, link
//	kapbridge sync      send the practice's changes to the EHRs: run, status, replay
//	kapbridge version   print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kapbridge:", err)
		os.Exit(exitCode(err))
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `kapbridge: the KAP FHIR R4 integration gateway

Usage:
  kapbridge serve [flags]    run the FHIR R4 REST API and the practice API (kapbridge serve -h for flags)
  kapbridge import [flags] FILE...
                             import practice records: JSON, NDJSON, CSV (kapbridge import -h for flags)
  kapbridge records -state pending
                             list the records waiting for others, with their age; flag overdue ones
  kapbridge export --course ID [--store DSN] [--out FILE]
                             write a course back as practice records (NDJSON), with EHR changes merged
  kapbridge reindex [--store DSN] [--base-url URL] [--page N] [--restart]
                             rebuild the search index of every stored resource (resumable), so data stored
                             before a change to what is indexed is found as new data is
  kapbridge keys generate --alg RS384|ES384 --out FILE
                             make a signing key (PEM) and its public JWK Set (FILE.jwks.json)
  kapbridge demo [-dir DIR] [-profile epic|oracle|full]
                             the whole job on this machine: an EHR sandbox, the gateway, the sample course synced out, vitals brought back
  kapbridge sandbox --profile epic|oracle|full --client ID=JWKS-FILE [--listen ADDR]
                             run an EHR sandbox that accepts what that EHR accepts, with a SMART token endpoint
  kapbridge clients add|list|disable|token|rotate-key [flags]
                             manage the backend services allowed to call the API (kapbridge clients for usage)
  kapbridge ehr add NAME --base URL --client-id ID --key FILE --scopes "..." [--token-url URL]
                [--practice NS] [--mrn-system URI] [--recipient PRACTITIONER]
  kapbridge ehr list | show NAME | remove NAME | plan NAME | link NAME CLIENT EHR-PATIENT-ID
                             connections to prescribers' EHRs (stored in the gateway's store)
  kapbridge sync run [--once] | status | replay NAME
                             deliver changes to the EHRs; what waits, what failed; send dead letters again
  kapbridge version          print the version
`

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	if _, ok := err.(usageError); ok {
		return 2
	}
	return 1
}

// run is the whole program; main only supplies the process's context,
// arguments, environment and streams, so tests can call run directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "import":
		return importCmd(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "records":
		return recordsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "export":
		return export(ctx, args[1:], getenv, stdout, stderr)
	case "reindex":
		return reindex(ctx, args[1:], getenv, stdout, stderr)
	case "keys":
		return keysCmd(ctx, args[1:], stdout, stderr)
	case "demo":
		return demo(ctx, args[1:], getenv, stdout, stderr)
	case "sandbox":
		return sandbox(ctx, args[1:], stdout, stderr)
	case "clients":
		return clientsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "ehr":
		return ehrCmd(ctx, args[1:], getenv, stdout, stderr)
	case "sync":
		return syncCmd(ctx, args[1:], getenv, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "kapbridge", version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}
