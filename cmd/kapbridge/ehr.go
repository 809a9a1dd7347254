package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/kapbridge/kapbridge/adapters/ehr"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/server"
	"github.com/kapbridge/kapbridge/fhir/smart"
	"github.com/kapbridge/kapbridge/mappings"
)

// `kapbridge ehr`: the connections to prescribers' EHRs, kept in the
// gateway's store (adapters/ehr/syncstore).

const ehrUsage = `usage:
  kapbridge ehr add NAME --base URL [--token-url URL] --client-id ID (--key FILE | --client-secret-file FILE) --scopes "..."
                    [--practice NS] [--mrn-system URI] [--recipient Practitioner/ID] [--no-backfill]
                    (the secret may come from $KAPBRIDGE_EHR_CLIENT_SECRET instead of a file; every record
                    already in the store is queued for the new connection unless --no-backfill)
  kapbridge ehr list
  kapbridge ehr show NAME
  kapbridge ehr remove NAME
  kapbridge ehr plan NAME
  kapbridge ehr link NAME CLIENT EHR-PATIENT-ID
(each takes --store DSN, default $KAPBRIDGE_STORE or ./kapbridge-data/kapbridge.db)`

// openSyncStore opens the gateway's store as both stores.
func openSyncStore(ctx context.Context, dsn string) (search.Store, syncstore.Store, error) {
	st, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	ss, ok := st.(syncstore.Store)
	if !ok {
		st.Close()
		return nil, nil, fmt.Errorf("the store %s keeps no EHR connections", storeKind(dsn))
	}
	return st, ss, nil
}

// interleave lets flags follow positional arguments (ehr add NAME --base
// ...): the flag package stops at the first non-flag.
func interleave(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func ehrCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{ehrUsage}
	}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	sub := args[0]
	fs := flag.NewFlagSet("kapbridge ehr "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	store := fs.String("store", env("KAPBRIDGE_STORE", "./kapbridge-data/kapbridge.db"), "store: an SQLite file path, or a postgres://... URL (KAPBRIDGE_STORE)")
	var c syncstore.Connection
	var secretFile string
	var noBackfill bool
	if sub == "add" {
		fs.StringVar(&secretFile, "client-secret-file", "", "a file holding the client secret, for an EHR that offers only client_secret_basic (HTTP Basic at the token endpoint) instead of --key; or set KAPBRIDGE_EHR_CLIENT_SECRET")
		fs.BoolVar(&noBackfill, "no-backfill", false, "do not queue the records already in the store for this connection (kapbridge sync backfill NAME does it later)")
		fs.StringVar(&c.BaseURL, "base", "", "the EHR's FHIR base URL (required)")
		fs.StringVar(&c.TokenURL, "token-url", "", "the token endpoint; default: discovered from BASE/.well-known/smart-configuration")
		fs.StringVar(&c.ClientID, "client-id", "", "the client id the EHR registered (required)")
		fs.StringVar(&c.KeyFile, "key", "", "the private key (PEM) that signs client assertions, as `kapbridge keys generate` writes it (this or a client secret)")
		fs.StringVar(&c.Scopes, "scopes", "", `the SMART scopes to ask for, e.g. "system/Observation.cruds system/DocumentReference.cruds" (required)`)
		fs.StringVar(&c.Practice, "practice", env("KAPBRIDGE_PRACTICE", defaultPractice), "the practice namespace the records were imported under (KAPBRIDGE_PRACTICE)")
		fs.StringVar(&c.MRNSystem, "mrn-system", "", "the EHR's MRN identifier system: clients are linked to its patients by MRN")
		fs.StringVar(&c.Recipient, "recipient", "", "Practitioner/ID (or a practitioner record id) whom this EHR serves: a client's Consent naming them lets process notes go")
	}
	pos, err := interleave(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return usageError{err.Error()}
	}
	want := map[string]int{"add": 1, "list": 0, "show": 1, "remove": 1, "plan": 1, "link": 3}
	n, ok := want[sub]
	if !ok || len(pos) != n {
		return usageError{ehrUsage}
	}
	st, ss, err := openSyncStore(ctx, *store)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "add":
		c.Name = pos[0]
		secret, err := clientSecret(secretFile, getenv("KAPBRIDGE_EHR_CLIENT_SECRET"))
		if err != nil {
			return err
		}
		c.ClientSecret = secret
		if err := ehrAdd(ctx, ss, c, stdout); err != nil {
			return err
		}
		if noBackfill {
			fmt.Fprintf(stdout, "records already in the store are not queued for %s (kapbridge sync backfill %s queues them)\n", c.Name, c.Name)
			return nil
		}
		return backfill(ctx, ss, c.Name, stdout)
	case "list":
		return ehrList(ctx, ss, stdout)
	case "show":
		return ehrShow(ctx, ss, pos[0], stdout)
	case "remove":
		if err := ss.RemoveConnection(ctx, pos[0]); err != nil {
			return connErr(pos[0], err)
		}
		fmt.Fprintf(stdout, "removed connection %s with its queue and links\n", pos[0])
		return nil
	case "plan":
		conn, err := ss.Connection(ctx, pos[0])
		if err != nil {
			return connErr(pos[0], err)
		}
		client, err := ehr.ConnectionClient(conn, ehr.OutboundConfig{Logger: quietLogger(stderr)})
		if err != nil {
			return err
		}
		caps, err := ehr.FetchCapabilities(ctx, client)
		if err != nil {
			return fmt.Errorf("ehr plan %s: read the CapabilityStatement: %w", conn.Name, err)
		}
		return ehr.PlanWrites(caps).WriteTable(stdout)
	case "link":
		conn, err := ss.Connection(ctx, pos[0])
		if err != nil {
			return connErr(pos[0], err)
		}
		patient, err := localPatient(ctx, st, conn, pos[1])
		if err != nil {
			return err
		}
		if err := ehr.LinkPatient(ctx, ss, conn, patient, pos[2], time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "linked %s (Patient/%s) to the EHR's Patient/%s on %s; its waiting records go on the next sync\n",
			pos[1], patient, strings.TrimPrefix(pos[2], "Patient/"), conn.Name)
		return nil
	}
	return usageError{ehrUsage}
}

func connErr(name string, err error) error {
	if errors.Is(err, syncstore.ErrNotFound) {
		return fmt.Errorf("no EHR connection named %q (kapbridge ehr list)", name)
	}
	return err
}

func ehrAdd(ctx context.Context, ss syncstore.Store, c syncstore.Connection, stdout io.Writer) error {
	var missing []string
	for _, f := range []struct{ name, v string }{{"--base", c.BaseURL}, {"--client-id", c.ClientID}, {"--scopes", c.Scopes}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	switch {
	case c.KeyFile == "" && len(c.ClientSecret) == 0:
		missing = append(missing, "--key or --client-secret-file")
	case c.KeyFile != "" && len(c.ClientSecret) > 0:
		return usageError{"ehr add: --key and a client secret both given: a connection authenticates one way (a key where the EHR takes private_key_jwt)"}
	}
	if len(missing) > 0 {
		return usageError{"ehr add: missing " + strings.Join(missing, ", ") + "\n" + ehrUsage}
	}
	if strings.ContainsAny(c.Name, "/ ") || c.Name == "" {
		return usageError{fmt.Sprintf("ehr add: %q: a name is one word (no / or spaces)", c.Name)}
	}
	if len(c.ClientSecret) > 0 {
		return addConnection(ctx, ss, c, stdout, "client secret (HTTP Basic at the token endpoint; stored, never shown)")
	}
	abs, err := filepath.Abs(c.KeyFile)
	if err != nil {
		return err
	}
	c.KeyFile = abs
	pemData, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return fmt.Errorf("ehr add: --key: %w", err)
	}
	key, err := smart.ParsePrivateKeyPEM(pemData)
	if err != nil {
		return fmt.Errorf("ehr add: --key %s: %w", c.KeyFile, err)
	}
	if err := addConnection(ctx, ss, c, stdout, fmt.Sprintf("key %s, kid %s", key.Alg(), key.KeyID())); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "its public JWK Set is served by kapbridge serve at /ehr/%s/jwks.json (register that URL, or %s, with the EHR)\n",
		c.Name, strings.TrimSuffix(c.KeyFile, ".pem")+".jwks.json")
	return nil
}

// addConnection checks what both ways of authenticating share and stores c.
func addConnection(ctx context.Context, ss syncstore.Store, c syncstore.Connection, stdout io.Writer, auth string) error {
	if _, err := smart.ParseScopes(c.Scopes); err != nil {
		return fmt.Errorf("ehr add: --scopes: %w", err)
	}
	if _, err := ehr.ConnectionClient(c, ehr.OutboundConfig{}); err != nil {
		return fmt.Errorf("ehr add: %w", err)
	}
	if c.Recipient != "" && !strings.HasPrefix(c.Recipient, "Practitioner/") {
		c.Recipient = "Practitioner/" + mappings.ResourceID(c.Practice, mappings.KindPractitioner, c.Recipient, "Practitioner")
	}
	c.Tenant, c.Created = fhir.DefaultTenant, time.Now()
	if err := ss.AddConnection(ctx, c); err != nil {
		if errors.Is(err, syncstore.ErrExists) {
			return fmt.Errorf("ehr add: a connection named %q exists (kapbridge ehr remove %s first)", c.Name, c.Name)
		}
		return err
	}
	fmt.Fprintf(stdout, "added connection %s: %s as client %s (%s)\n", c.Name, c.BaseURL, c.ClientID, auth)
	return nil
}

// clientSecret reads the secret from file (one trailing newline dropped),
// else takes env; nil when neither is given.
func clientSecret(file, env string) ([]byte, error) {
	if file == "" {
		if env == "" {
			return nil, nil
		}
		return []byte(env), nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ehr add: --client-secret-file: %w", err)
	}
	data = []byte(strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r"))
	if len(data) == 0 {
		return nil, fmt.Errorf("ehr add: --client-secret-file %s is empty", file)
	}
	return data, nil
}

func ehrList(ctx context.Context, ss syncstore.Store, stdout io.Writer) error {
	cs, err := ss.Connections(ctx)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		fmt.Fprintln(stdout, "no EHR connections (kapbridge ehr add)")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tBASE URL\tCLIENT ID\tPENDING\tDONE\tDEAD")
	for _, c := range cs {
		n, err := ss.Counts(ctx, c.Name)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", c.Name, c.BaseURL, c.ClientID, n[syncstore.StatePending], n[syncstore.StateDone], n[syncstore.StateDead])
	}
	return tw.Flush()
}

func ehrShow(ctx context.Context, ss syncstore.Store, name string, stdout io.Writer) error {
	c, err := ss.Connection(ctx, name)
	if err != nil {
		return connErr(name, err)
	}
	n, err := ss.Counts(ctx, name)
	if err != nil {
		return err
	}
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"name", c.Name}, {"base URL", c.BaseURL}, {"token URL", or(c.TokenURL, "(discovered from the SMART configuration)")},
		{"client id", c.ClientID}, authRow(c), {"scopes", c.Scopes}, {"practice", c.Practice},
		{"MRN system", or(c.MRNSystem, "(none: clients are linked by $match or by hand)")},
		{"recipient", or(c.Recipient, "(none: process notes never go)")},
		jwksRow(c),
		{"added", c.Created.Format(time.RFC3339)},
		{"deliveries", fmt.Sprintf("%d pending, %d done, %d dead", n[syncstore.StatePending], n[syncstore.StateDone], n[syncstore.StateDead])},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

// localPatient resolves CLIENT: a local Patient id, "Patient/id", or a
// practice client record id (under the connection's practice).
func localPatient(ctx context.Context, st fhir.Store, conn syncstore.Connection, client string) (string, error) {
	id := strings.TrimPrefix(client, "Patient/")
	for _, cand := range []string{id, mappings.ResourceID(conn.Practice, mappings.KindClient, id, "Patient")} {
		if v, err := st.Read(ctx, fhir.Key{Tenant: conn.Tenant, Type: "Patient", ID: cand}); err == nil && !v.Deleted {
			return cand, nil
		}
	}
	return "", fmt.Errorf("ehr link: no client %q in the store (neither a Patient id nor a client record id of practice %q)", client, conn.Practice)
}

// jwksAPI serves each connection's public JWK Set at /ehr/NAME/jwks.json,
// the stable URL to register with an EHR (its JKU).
type jwksAPI struct{ sync syncstore.Store }

func (jwksAPI) Prefix() string                { return "/ehr" }
func (jwksAPI) Limits() server.APILimits      { return server.APILimits{} }
func (a jwksAPI) Register(g *gin.RouterGroup) { g.GET("/:name/jwks.json", a.jwks) }

func (a jwksAPI) Fail(c *gin.Context, f server.Failure) {
	c.JSON(http.StatusServiceUnavailable, gin.H{"error": "unavailable", "message": f.Message})
}

func (a jwksAPI) jwks(c *gin.Context) {
	conn, err := a.sync.Connection(c.Request.Context(), c.Param("name"))
	if err != nil {
		c.JSON(http.StatusNotFound, gin.H{"error": "not_found", "message": "no EHR connection named " + c.Param("name")})
		return
	}
	if len(conn.ClientSecret) > 0 {
		c.JSON(http.StatusNotFound, gin.H{"error": "not_found", "message": "EHR connection " + conn.Name + " authenticates with a client secret: it has no public key"})
		return
	}
	pemData := conn.Key
	if len(pemData) == 0 {
		pemData, err = os.ReadFile(conn.KeyFile)
	}
	var key *smart.SigningKey
	if err == nil {
		key, err = smart.ParsePrivateKeyPEM(pemData)
	}
	if err != nil {
		c.JSON(http.StatusInternalServerError, gin.H{"error": "key_unreadable", "message": "the connection's key cannot be read; see the server log"})
		return
	}
	body, _ := json.Marshal(key.PublicJWKS())
	c.Header("Cache-Control", "max-age=300")
	c.Data(http.StatusOK, "application/jwk-set+json", body)
}

func authRow(c syncstore.Connection) [2]string {
	if len(c.ClientSecret) > 0 {
		return [2]string{"client auth", "client secret, HTTP Basic at the token endpoint (stored; not shown)"}
	}
	return [2]string{"key file", c.KeyFile}
}

func jwksRow(c syncstore.Connection) [2]string {
	if len(c.ClientSecret) > 0 {
		return [2]string{"public JWKS", "(none: a client secret, no key)"}
	}
	return [2]string{"public JWKS", "/ehr/" + c.Name + "/jwks.json on kapbridge serve"}
}
