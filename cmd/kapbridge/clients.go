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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kapbridge/kapbridge/adapters/sqlstore"
	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

const clientsUsage = `usage:
  kapbridge clients add --id ID (--jwks FILE | --jwks-url URL) --scopes "system/Observation.rs ..." [--tenant TENANT] [--recipient Practitioner/ID] [--store DSN]
  kapbridge clients list [--store DSN]
  kapbridge clients disable --id ID [--store DSN]
  kapbridge clients token --id ID --key PEM-FILE [--scope SCOPES] [--base-url URL]
  kapbridge clients rotate-key [--store DSN]`

// clientsCmd manages the backend services allowed to call the gateway's
// API (issue 14): they are kept in the store, beside the data, so every
// replica serving the store knows them.
func clientsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{clientsUsage}
	}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("kapbridge clients "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeDSN := fs.String("store", env("KAPBRIDGE_STORE", "./kapbridge-data/kapbridge.db"), "store: an SQLite file path, or a postgres://... URL (KAPBRIDGE_STORE)")
	id := fs.String("id", "", "client id (the iss and sub of its assertions)")
	jwksFile := fs.String("jwks", "", "file holding the client's public JWK Set (kapbridge keys generate writes one)")
	jwksURL := fs.String("jwks-url", "", "URL where the client publishes its JWK Set (fetched as its Cache-Control allows)")
	scopes := fs.String("scopes", "", `scopes the client may be granted, e.g. "system/Observation.rs system/Patient.read"; add practice-api for the practice API, system/AuditEvent.rs for the audit trail`)
	practice := fs.String("tenant", fhir.DefaultTenant, "the practice tenant whose resources the client sees (serve keeps its practice's in tenant "+fhir.DefaultTenant+")")
	recipient := fs.String("recipient", "", `for a prescriber's client: the "Practitioner/id" patients' Consents name; it then sees only the patients whose Consent shares their record with it, and their notes only where a Consent permits them. Without: a client of the practice, which sees all of the practice's resources, notes included`)
	keyFile := fs.String("key", "", "the client's private key (PEM), for token")
	scope := fs.String("scope", "system/*.rs", "scopes to ask for, for token")
	baseURL := fs.String("base-url", env("KAPBRIDGE_BASE_URL", "http://127.0.0.1:8080"), "the gateway's base URL, for token (KAPBRIDGE_BASE_URL)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{clientsUsage}
	}
	if args[0] == "token" {
		if *id == "" || *keyFile == "" {
			return usageError{clientsUsage}
		}
		tok, err := requestToken(ctx, *baseURL, *id, *keyFile, *scope)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok.AccessToken)
		return nil
	}
	open := func() (auth.Store, func(), error) {
		st, err := sqlstore.Open(ctx, *storeDSN)
		if err != nil {
			return nil, nil, fmt.Errorf("open store: %w", err)
		}
		return st.(auth.Store), func() { st.Close() }, nil
	}
	switch args[0] {
	case "add":
		if *id == "" || *scopes == "" || (*jwksFile == "") == (*jwksURL == "") {
			return usageError{"clients add needs --id, --scopes and one of --jwks or --jwks-url\n" + clientsUsage}
		}
		if *recipient != "" && (!strings.HasPrefix(*recipient, "Practitioner/") || len(*recipient) == len("Practitioner/")) {
			return usageError{fmt.Sprintf("--recipient %q: want Practitioner/{id}", *recipient)}
		}
		row := auth.ClientRow{ID: *id, Tenant: *practice, JWKSURL: *jwksURL, Scopes: *scopes, Recipient: *recipient}
		if *jwksFile != "" {
			b, err := os.ReadFile(*jwksFile)
			if err != nil {
				return err
			}
			row.JWKS = string(b)
		}
		if *jwksURL != "" && !strings.HasPrefix(*jwksURL, "https://") && !strings.HasPrefix(*jwksURL, "http://") {
			return usageError{fmt.Sprintf("--jwks-url %q: want an http(s) URL", *jwksURL)}
		}
		c, err := auth.ClientOf(row) // refuse what would not parse later
		if err != nil {
			return usageError{err.Error()}
		}
		if c.JWKS != nil && len(c.JWKS.Keys) == 0 {
			return usageError{fmt.Sprintf("--jwks %s holds no usable RS384 or ES384 key", *jwksFile)}
		}
		st, done, err := open()
		if err != nil {
			return err
		}
		defer done()
		if old, err := st.AuthClient(ctx, *id); err == nil {
			row.Created = old.Created
		}
		if err := st.PutAuthClient(ctx, row); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s added: practice %s, scopes %s\n", row.ID, row.Tenant, c.Scopes)
		return nil
	case "list":
		st, done, err := open()
		if err != nil {
			return err
		}
		defer done()
		cs, err := st.AuthClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPRACTICE\tRECIPIENT\tSTATE\tKEYS\tSCOPES\tADDED")
		for _, c := range cs {
			state := "enabled"
			if c.Disabled {
				state = "disabled"
			}
			keys := c.JWKSURL
			if c.JWKS != "" {
				keys = "registered JWKS"
			}
			who := c.Recipient
			if who == "" {
				who = "(the practice)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Tenant, who, state, keys, c.Scopes, c.Created.Format(time.RFC3339))
		}
		return tw.Flush()
	case "disable":
		if *id == "" {
			return usageError{clientsUsage}
		}
		st, done, err := open()
		if err != nil {
			return err
		}
		defer done()
		c, err := st.AuthClient(ctx, *id)
		if errors.Is(err, auth.ErrNoClient) {
			return fmt.Errorf("no client %q", *id)
		}
		if err != nil {
			return err
		}
		c.Disabled = true
		if err := st.PutAuthClient(ctx, c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s disabled: no new tokens; its tokens are refused from the next request on\n", c.ID)
		return nil
	case "rotate-key":
		st, done, err := open()
		if err != nil {
			return err
		}
		defer done()
		k, err := auth.Keys{Store: st}.Rotate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new signing key %s (%s); the old ones verify for 10 more minutes. A running server picks it up within a minute.\n", k.KeyID(), k.Alg())
		return nil
	}
	return usageError{fmt.Sprintf("unknown clients command %q\n%s", args[0], clientsUsage)}
}

// requestToken asks the gateway at base for an access token, as the
// client id holding the private key in keyFile.
func requestToken(ctx context.Context, base, id, keyFile, scope string) (*smart.TokenResponse, error) {
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	key, err := smart.ParsePrivateKeyPEM(pem)
	if err != nil {
		return nil, err
	}
	return tokenFor(ctx, http.DefaultClient, strings.TrimRight(base, "/"), id, key, scope)
}

func tokenFor(ctx context.Context, hc *http.Client, base, id string, key *smart.SigningKey, scope string) (*smart.TokenResponse, error) {
	a, err := key.Sign(smart.Assertion{ClientID: id, TokenURL: base + auth.TokenPath})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+auth.TokenPath, strings.NewReader(smart.TokenRequestForm(a, scope).Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var te smart.TokenError
		_ = json.Unmarshal(body, &te)
		return nil, fmt.Errorf("token endpoint answered %d: %s: %s", resp.StatusCode, te.Code, te.Description)
	}
	return smart.ParseTokenResponse(body)
}
