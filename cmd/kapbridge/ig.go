package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/kapbridge/kapbridge/fhir"
)

// igDirs is the repeatable -ig flag of serve: implementation guides (a
// folder of StructureDefinitions, ValueSets and CodeSystems, or an npm
// package .tgz) whose profiles writes and $validate then enforce where a
// resource claims them (fhir.LoadIG).
type igDirs []string

func (d *igDirs) String() string { return strings.Join(*d, ",") }

func (d *igDirs) Set(s string) error {
	if s == "" {
		return fmt.Errorf("an empty IG path")
	}
	*d = append(*d, s)
	return nil
}

// igFlag defines -ig on fs, starting from KAPBRIDGE_IG (paths separated
// by commas); the command line's -ig flags replace the environment's.
func igFlag(fs *flag.FlagSet, getenv func(string) string, dirs *igDirs) {
	if env := getenv("KAPBRIDGE_IG"); env != "" {
		for _, p := range strings.Split(env, ",") {
			if p = strings.TrimSpace(p); p != "" {
				*dirs = append(*dirs, p)
			}
		}
	}
	fromEnv := len(*dirs)
	fs.Func("ig", "an implementation guide to enforce: a folder of StructureDefinitions, ValueSets and CodeSystems, or an npm package .tgz; repeatable (KAPBRIDGE_IG, comma-separated)", func(s string) error {
		if fromEnv > 0 {
			*dirs, fromEnv = (*dirs)[:0], 0
		}
		return dirs.Set(s)
	})
}

// withIGs adds the IGs to the profiles serve validates against; a guide
// that does not load stops the start, naming the file at fault.
func withIGs(p *fhir.Profiles, dirs igDirs) (*fhir.Profiles, error) {
	for _, d := range dirs {
		var err error
		if p, err = p.WithIG(d); err != nil {
			return nil, fmt.Errorf("-ig %s: %w", d, err)
		}
	}
	return p, nil
}
