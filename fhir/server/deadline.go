package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapbridge/kapbridge/fhir"
)

// DefaultRequestTimeout is how long one request may take when
// Config.RequestTimeout is zero: far above what any bounded interaction
// needs (a read takes milliseconds, a page of a selective search tens of
// milliseconds), low enough that a search that would scan the database for
// minutes is stopped before it ties up a connection and a core.
const DefaultRequestTimeout = 30 * time.Second

// requestDeadline is middleware: the request's context ends its API's
// RequestTimeout (APILimits; the FHIR API's is Config.RequestTimeout)
// after the request reached it, and every store call made with
// c.Request.Context() stops then (the stores cancel their queries when
// their context ends). The context also ends when the client goes away:
// net/http cancels it when it notices the connection closed.
//
// A FHIR handler then fails with its store call's error, which fail
// answers as the timeout outcome (timeoutError). A handler that returns
// without answering gets its API's answer to FailTimeout here. A handler
// that already answered keeps its answer: nothing is appended to a body,
// so a client never sees a partial one.
func (s *Server) requestDeadline() gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.limitsOf(c).RequestTimeout)
		orig := c.Request
		c.Request = orig.WithContext(ctx)
		// Deferred, to run on a panic too: the middleware outside this one
		// (recoverPanic) must not see a context this one cancelled.
		defer func() { c.Request = orig; cancel() }()
		c.Next()
		if ctx.Err() != nil && !c.Writer.Written() {
			fail(c, Failure{Kind: FailTimeout, Cause: ctx.Err()})
		}
	}
}

// sqlStateQueryCanceled is SQLSTATE 57014, query_canceled: PostgreSQL
// stopped a statement at its statement_timeout or on a cancel request.
const sqlStateQueryCanceled = "57014"

// statusClientClosedRequest is the status logged (and, to no one, sent)
// when the client went away before the answer: nginx's 499.
const statusClientClosedRequest = 499

// timeoutError returns the error to answer instead of err when err comes
// from the request running out of time or its client going away, or nil:
//
//   - the error is the context's (a store returns ctx.Err() when it stops),
//   - a database stopped the query (SQLSTATE 57014: cancel request or
//     statement_timeout; recognised through the SQLState method of the
//     driver's error, so this package needs no driver),
//   - or the context has ended and err is a server error (an SQLite
//     interrupt, a connection closed by a cancel: the time limit is the
//     cause, not a fault of the store).
//
// The time limit's answer is too-costly, which the one table in fhir maps
// to 403. A 4xx, because the cost is the request's own doing: the same
// request would run out of time again, so it must not be retried as it is,
// and clients (this project's included) retry 5xx. 403 in particular
// because FHIR's search page gives it exactly this meaning: "the server
// refused to perform the search" (search.html#errors); not 408, which says
// the client was too slow to send its request and which browsers and
// proxies repeat on their own, and not 503/504, which invite the retry
// that would repeat the cost. A time limit passing on a write is answered
// the same way; its transaction was rolled back, or for a batch, each
// entry says what happened to it.
func (s *Server) timeoutError(ctx context.Context, err error) *fhir.Error {
	var coded interface{ SQLState() string }
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
	case errors.As(err, &coded) && coded.SQLState() == sqlStateQueryCanceled:
	case ctx.Err() != nil && fhir.StatusOf(fhir.AsError(err)) >= 500:
	default:
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return fhir.Errorf(fhir.IssueTransient, "", "the request was cancelled: the client closed the connection").
			WithStatus(statusClientClosedRequest).Wrap(err)
	}
	if ctx.Err() == nil {
		// The database's own statement_timeout, shorter than the request's.
		return fhir.Errorf(fhir.IssueTooCostly, "", "a database query of this request exceeded its time limit and was stopped; "+narrowHint).Wrap(err)
	}
	return fhir.Errorf(fhir.IssueTooCostly, "", "the request exceeded its time limit of %s and was stopped; "+narrowHint, s.timeout).Wrap(err)
}

// narrowHint ends the time limit's diagnostics.
const narrowHint = "narrow it (more selective or fewer search parameters, fewer _include/_revinclude, a smaller _count, " +
	"a smaller Bundle) before sending it again"

// entryTimeout is err for a Bundle entry: the time limit's outcome when
// err is the request running out of time (timeoutError), else err.
func (s *Server) entryTimeout(ctx context.Context, err error) error {
	if te := s.timeoutError(ctx, err); te != nil {
		return te
	}
	return err
}

// logTimeout records a request stopped by its time limit (a 4xx the
// access log alone would not explain).
func (s *Server) logTimeout(ctx context.Context, id, path string, te *fhir.Error) {
	msg := "request stopped at its time limit"
	if te.Status == statusClientClosedRequest {
		msg = "request cancelled: the client went away"
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, msg,
		slog.String("request_id", id), slog.String("path", path),
		slog.Int("status", fhir.StatusOf(te)), slog.Any("cause", te.Err))
}
