package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// keysCmd is `kapbridge keys generate`: a signing key for SMART Backend
// Services client assertions, the private half as PEM (mode 0600) and the
// public half as a JWK Set to register with the EHR.
func keysCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "generate" {
		return usageError{"usage: kapbridge keys generate --alg RS384|ES384 --out FILE"}
	}
	fs := flag.NewFlagSet("kapbridge keys generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", smart.ES384, "signing algorithm: RS384 (RSA 3072) or ES384 (P-384)")
	out := fs.String("out", "", "where to write the private key (PEM); the public JWK Set goes to the same name with .jwks.json")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if *out == "" || fs.NArg() > 0 {
		return usageError{"usage: kapbridge keys generate --alg RS384|ES384 --out FILE"}
	}
	if *alg != smart.RS384 && *alg != smart.ES384 {
		return usageError{fmt.Sprintf("--alg %q: want RS384 or ES384", *alg)}
	}
	key, err := smart.GenerateKey(*alg)
	if err != nil {
		return err
	}
	pem, err := key.MarshalPEM()
	if err != nil {
		return err
	}
	jwks, err := json.MarshalIndent(key.PublicJWKS(), "", "  ")
	if err != nil {
		return err
	}
	pub := strings.TrimSuffix(*out, ".pem") + ".jwks.json"
	// O_EXCL: never overwrite a key someone may have registered already.
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write the private key: %w", err)
	}
	if _, err := f.Write(pem); err != nil {
		f.Close()
		return fmt.Errorf("write the private key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write the private key: %w", err)
	}
	if err := os.WriteFile(pub, append(jwks, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the public JWK Set: %w", err)
	}
	fmt.Fprintf(stdout, "private key (%s, kid %s): %s\npublic JWK Set: %s (register it with the EHR, or serve it at your JWKS URL)\n", key.Alg(), key.KeyID(), *out, pub)
	return nil
}
