// Package memstore implements fhir.Store in memory: every version of every
// resource, the identifier and search indexes, the outbox, search with
// snapshot-pinned paging, and type and system history, with the semantics
// of the SQL stores (adapters/sqlstore). It passes the same shared suites
// (fhirtest.RunStoreSuiteWith, with Features.Volatile, and
// fhirtest.RunSearchSuite).
//
// It is for tests, demos and a gateway run without a database: it needs no
// files and no server, and opens in no time. It keeps nothing across
// restarts: Close (or the end of the process) drops everything.
//
// # Transactions
//
// Update runs one fn at a time (a single writer, like the SQLite store's),
// so conflicts between writers cannot happen and LockCriteria has nothing
// to do. A Put writes straight into the store's structures under a commit
// sequence number (seq) above the committed one, and records how to undo
// itself: if fn fails (or panics) Update undoes every write of the
// transaction, so nothing of it remains, and runs fn again when the error
// is an ErrVersionConflict (a bounded number of times, as the contract
// asks, although with one writer only fn itself can cause one). Readers
// never see uncommitted data: they read the versions whose seq is at most
// the committed one, and inside the transaction its own Search and Read see
// its writes.
//
// # Search
//
// A search reads the store at a snapshot (a committed seq): for each
// resource, the version current then. A Cursor carries the snapshot of the
// first page, so later pages ignore later writes; paging is by keyset on
// the sort values and id, missing values last, as in the SQL stores. Each
// search scans the live resources of its type and evaluates its clauses
// against their fhir.IndexEntry values as sqlstore's SQL does (same
// modifiers, prefixes, normalization, composite pairing, chains, _has,
// compartments, aliases, includes and Query.Hide). What sqlstore does not
// support is refused the same way, with a *fhir.Error of type
// not-supported wrapping ErrUnsupported: the reference modifier
// :identifier, token :in/:not-in/:above/:below, parameters of type special,
// and paging inside a transaction. Unlike sqlstore, composites may have
// any number of components.
//
// # Limits
//
// Everything lives on the Go heap: every version's JSON and index values,
// never compacted, so memory grows with everything ever written, updates
// and deletions included: about 250 bytes an index value plus the body,
// 4 KB a version of a typical Observation (450 bytes of JSON, 10 index
// values), so a million versions need some 4 GB. Searches scan the live
// resources of their type (there is no index by value), which takes well
// under a millisecond for thousands of resources (BENCHMARKS.md) and grows
// linearly from there. Writers are serialized, and a running search
// delays the next Put.
package memstore
