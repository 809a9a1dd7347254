// Command chaosgw is the gateway process of the chaos test
// (adapters/ehr/chaos_test.go): it runs the outbound worker of one
// connection on a SQLite store until it is killed, or with -once drains
// what is due and exits. It is a test helper, not a product command: the
// product runs the same worker under `kapbridge sync run`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kapbridge/kapbridge/adapters/ehr"
	"github.com/kapbridge/kapbridge/adapters/ehr/syncstore"
	"github.com/kapbridge/kapbridge/adapters/sqlstore"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaosgw:", err)
		os.Exit(1)
	}
}

func run() error {
	store := flag.String("store", "", "SQLite store file")
	conn := flag.String("conn", "", "connection name")
	once := flag.Bool("once", false, "drain what is due, then exit")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := sqlstore.Open(ctx, *store)
	if err != nil {
		return err
	}
	defer st.Close()
	sync := st.(syncstore.Store)
	c, err := sync.Connection(ctx, *conn)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ob, err := ehr.NewOutbound(ctx, c, sync, st, ehr.OutboundConfig{Logger: log})
	if err != nil {
		return err
	}
	// A killed worker's leases must lapse soon for the next one to go on;
	// a wait for a target written a moment later is short.
	ob.LeaseTTL, ob.TargetWait, ob.Batch = time.Second, 10*time.Millisecond, 10
	ob.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	if !*once {
		fmt.Println("running")
		return ob.Run(ctx, 20*time.Millisecond)
	}
	deadline := time.Now().Add(60 * time.Second)
	last, lastMoved := "", time.Now()
	for {
		if err := ob.Drain(ctx); err != nil {
			return err
		}
		counts, err := sync.Counts(ctx, c.Name)
		if err != nil {
			return err
		}
		if counts[syncstore.StatePending] == 0 {
			fmt.Printf("drained: %v\n", counts)
			return nil
		}
		// With a dead letter (a create held for review) some rows may wait
		// for it until a person decides: when nothing has moved for two
		// seconds, the worker has done what it can.
		if counts[syncstore.StateDead] > 0 {
			if fmt.Sprint(counts) != last {
				last, lastMoved = fmt.Sprint(counts), time.Now()
			} else if time.Since(lastMoved) > 2*time.Second {
				fmt.Printf("settled, dead letters waiting for review: %v\n", counts)
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still pending after a minute: %v", counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
