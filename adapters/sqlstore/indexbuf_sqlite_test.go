package sqlstore

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/search"
	"github.com/kapbridge/kapbridge/fhir/write"
)

// putPatient writes a new Patient with the given family name the way the
// REST API does (stamp, index, Put).
func putPatient(ctx context.Context, tx fhir.Tx, id, family string) error {
	res, err := fhir.ParseJSON([]byte(`{"resourceType":"Patient","name":[{"family":"`+family+`"}]}`), fhir.Limits{})
	if err != nil {
		return err
	}
	_, err = write.Writer{}.Put(ctx, tx, fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: id}, fhir.Version{}, res)
	return err
}

// countFamily counts the Patients with family name family that s sees.
func countFamily(ctx context.Context, s search.Searcher, family string) (int, error) {
	q, err := search.ParseQuery("Patient", url.Values{"family": {family}}, "", true)
	if err != nil {
		return 0, err
	}
	res, err := s.Search(ctx, fhir.DefaultTenant, q, nil)
	return len(res.Matches), err
}

// TestSQLiteBufferedIndexInBatch: index rows wait for the end of the group
// commit batch (indexbuf_sqlite.go), yet a search inside a transaction
// sees the versions written before it in the same batch and its own, a
// fn re-run to flush the batch's rows writes once, and the rows of a fn
// that failed never land.
func TestSQLiteBufferedIndexInBatch(t *testing.T) {
	ctx := t.Context()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// Hold the writer so that the updates below queue up, in the order
	// they are started, and run as one batch.
	release, held := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		st.Update(ctx, func(fhir.Tx) error {
			close(held)
			<-release
			return nil
		})
	})
	<-held
	queue := func(f func()) {
		wg.Go(f)
		time.Sleep(50 * time.Millisecond) // let it reach the queue first
	}

	boom := errors.New("boom")
	var errWriter, errGhost, errSearcher error
	var runs, sawZed, sawGhost, sawOwn int
	queue(func() {
		errWriter = st.Update(ctx, func(tx fhir.Tx) error { return putPatient(ctx, tx, "p1", "Zed") })
	})
	queue(func() {
		errGhost = st.Update(ctx, func(tx fhir.Tx) error {
			if err := putPatient(ctx, tx, "ghost", "Ghost"); err != nil {
				return err
			}
			return boom
		})
	})
	queue(func() {
		errSearcher = st.Update(ctx, func(tx fhir.Tx) error {
			runs++
			if err := putPatient(ctx, tx, "p2", "Own"); err != nil {
				return err
			}
			s := tx.(search.Searcher)
			var err error
			if sawZed, err = countFamily(ctx, s, "Zed"); err != nil {
				return err
			}
			if sawGhost, err = countFamily(ctx, s, "Ghost"); err != nil {
				return err
			}
			sawOwn, err = countFamily(ctx, s, "Own")
			return err
		})
	})
	close(release)
	wg.Wait()

	if errWriter != nil || errSearcher != nil || !errors.Is(errGhost, boom) {
		t.Fatalf("writer: %v; searcher: %v; failing fn: %v (want boom)", errWriter, errSearcher, errGhost)
	}
	if sawZed != 1 || sawOwn != 1 || sawGhost != 0 {
		t.Errorf("inside the batch the search saw Zed %d, Own %d, Ghost %d times; want 1, 1, 0", sawZed, sawOwn, sawGhost)
	}
	if runs != 2 {
		t.Errorf("the searching fn ran %d times; want 2 (once more after the flush)", runs)
	}
	for family, want := range map[string]int{"Zed": 1, "Own": 1, "Ghost": 0} {
		if n, err := countFamily(ctx, st.(search.Searcher), family); err != nil || n != want {
			t.Errorf("after commit, family %s: %d matches (%v); want %d", family, n, err, want)
		}
	}
	if h, err := st.History(ctx, fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: "p2"}, 0); err != nil || len(h) != 1 {
		t.Errorf("p2 has %d versions (%v); the re-run must not write twice", len(h), err)
	}
	if _, err := st.Read(ctx, fhir.Key{Tenant: fhir.DefaultTenant, Type: "Patient", ID: "ghost"}); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("the failed fn's Patient: %v; want not found", err)
	}
}
