package sqlstore

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Bounding what one caller can make the database do. The caller's context
// is the bound: every query stops when it ends (a deadline passing, an
// HTTP client going away). PostgreSQL also gets server-side backstops that
// hold even when the gateway cannot cancel (it was killed, the network
// went away).

// DefaultStatementTimeout is PostgreSQL's statement_timeout and
// idle_in_transaction_session_timeout unless WithStatementTimeout or the
// DSN sets them: a little above the FHIR API's default request deadline
// (30 s), so that a request normally ends by its own deadline (and its
// query by cancellation) and the server-side timeout only catches what
// cancellation could not reach.
const DefaultStatementTimeout = 35 * time.Second

// WithStatementTimeout sets PostgreSQL's statement_timeout and
// idle_in_transaction_session_timeout on every pooled connection (default
// DefaultStatementTimeout; a negative d turns both off). A
// statement_timeout or idle_in_transaction_session_timeout parameter in
// the DSN wins over it. Migrations run without a statement timeout. SQLite
// ignores it: its queries are bounded by their context alone.
func WithStatementTimeout(d time.Duration) Option {
	return func(o *options) { o.statementTimeout = d }
}

// pgCancelFallback is how long a cancelled query waits for PostgreSQL to
// answer the cancel request before the connection is given up (closed).
// PostgreSQL acts on a cancel within milliseconds; this covers a server
// or network that no longer answers.
const pgCancelFallback = 2 * time.Second

// pgConnectionCheck is client_connection_check_interval (PostgreSQL 14 and
// later): how often a backend running a long statement checks that the
// gateway is still connected, so a killed gateway's statements stop within
// about this long instead of running to their statement timeout.
const pgConnectionCheck = "2s"

// configurePostgres sets what bounds a query on every connection of the
// pool:
//
//   - cancellation: pgx's default reaction to a context ending is to set a
//     deadline on the socket, which fails the read and closes the
//     connection; in pgx v5.12 its asynchronous close then sends a cancel
//     request, so the statement does stop, but every cancelled query costs
//     the pool its connection (a new one must be dialled and
//     authenticated), and the caller gets the context's error. The
//     CancelRequestContextWatcherHandler sends PostgreSQL the cancel
//     request first and keeps the connection: the statement ends with
//     SQLSTATE 57014 and the connection is reused. If no answer comes
//     within pgCancelFallback, the socket deadline closes the connection
//     anyway.
//   - statement_timeout and idle_in_transaction_session_timeout (unless the
//     DSN sets them): the backstop for what cancellation cannot reach.
//   - application_name "kapbridge" unless the DSN names one, so operators
//     (and the tests) can tell the gateway's backends in pg_stat_activity.
//   - client_connection_check_interval, where the server supports it (see
//     pgConnectionCheck).
func configurePostgres(cfg *pgxpool.Config, o options) {
	rp := cfg.ConnConfig.RuntimeParams
	if o.statementTimeout >= 0 {
		ms := strconv.FormatInt(o.statementTimeout.Milliseconds(), 10)
		for _, p := range []string{"statement_timeout", "idle_in_transaction_session_timeout"} {
			if _, set := rp[p]; !set {
				rp[p] = ms
			}
		}
	}
	if _, set := rp["application_name"]; !set {
		rp["application_name"] = "kapbridge"
	}
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: pgCancelFallback}
	}
	if _, set := rp["client_connection_check_interval"]; !set {
		after := cfg.AfterConnect
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			if pgMajor(c.PgConn().ParameterStatus("server_version")) >= 14 {
				// Best effort: the setting exists from PostgreSQL 14 on,
				// but only on platforms with the kernel support (Linux,
				// macOS, the BSDs); elsewhere the SET fails and the
				// statement timeout remains the backstop. A failed SET
				// outside a transaction leaves the session as it was.
				_, _ = c.Exec(ctx, "SET client_connection_check_interval = '"+pgConnectionCheck+"'")
			}
			if after != nil {
				return after(ctx, c)
			}
			return nil
		}
	}
}

// pgMajor reads the major version from server_version ("15.8 (Debian
// 15.8-1)", "14beta1"); 0 if it cannot.
func pgMajor(v string) int {
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		v = v[:end]
	}
	n, _ := strconv.Atoi(v)
	return n
}
