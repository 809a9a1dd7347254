package fhirtest

import "testing"

// suiteCase is one named test of a suite, run on what the suite gives
// each test (a store opener, a gateway's client ...).
type suiteCase[T any] struct {
	name string
	fn   func(t *testing.T, env T)
}

// runCases runs each case as a parallel subtest of t, on env(t) made in
// the subtest; a case skip names is skipped with the reason given.
func runCases[T any](t *testing.T, cases []suiteCase[T], env func(t *testing.T) T, skip map[string]string) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := skip[tc.name]; ok {
				t.Skip(why)
			}
			t.Parallel()
			tc.fn(t, env(t))
		})
	}
}
