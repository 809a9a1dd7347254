package practice

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress reports an import's progress: on a terminal a bar redrawn in
// place (\r) with records/s and ETA, elsewhere a plain line every
// Interval, so a log file gets a readable history instead of a smear of
// carriage returns.
type Progress struct {
	W        io.Writer
	TTY      bool
	Interval time.Duration // between redraws (TTY: default 200 ms) or lines (default 2 s)
	Now      func() time.Time

	records atomic.Int64
	bytes   atomic.Int64

	mu        sync.Mutex
	total     int64 // bytes of all files; <0 when unknown (stdin)
	started   time.Time
	file      string
	stop      chan struct{}
	done      chan struct{}
	lastWidth int
}

// IsTerminal reports whether f is a terminal (a character device), the
// test the progress display uses.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *Progress) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

// Start begins reporting; total is the size of all input in bytes (-1:
// unknown, then there is no percentage or ETA).
func (p *Progress) Start(total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = total
	p.started = p.now()
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	iv := p.Interval
	if iv <= 0 {
		iv = 2 * time.Second
		if p.TTY {
			iv = 200 * time.Millisecond
		}
	}
	stop, done := p.stop, p.done
	go func() {
		defer close(done)
		t := time.NewTicker(iv)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw(false)
			case <-stop:
				return
			}
		}
	}()
}

// StartFile names the file being read.
func (p *Progress) StartFile(name string, size int64) {
	p.mu.Lock()
	p.file = name
	p.mu.Unlock()
}

// Record counts one record done.
func (p *Progress) Record() { p.records.Add(1) }

// Bytes counts n bytes read.
func (p *Progress) Bytes(n int64) { p.bytes.Add(n) }

// Finish stops the display and draws the final state.
func (p *Progress) Finish() {
	p.mu.Lock()
	stop := p.stop
	p.stop = nil
	p.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	<-done
	p.draw(true)
}

// Line renders the current state as one line (no newline).
func (p *Progress) Line() string {
	p.mu.Lock()
	total, started, file := p.total, p.started, p.file
	p.mu.Unlock()
	n, b := p.records.Load(), p.bytes.Load()
	el := p.now().Sub(started).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(n) / el
	}
	frac := -1.0
	if total > 0 {
		frac = min(1, float64(b)/float64(total))
	}
	eta := "?"
	if frac > 0 && el > 0 {
		eta = formatDuration(time.Duration(el * (1 - frac) / frac * float64(time.Second)))
	}
	if p.TTY {
		const width = 30
		var bar string
		pct := "  ?%"
		if frac >= 0 {
			full := int(frac * width)
			bar = strings.Repeat("=", full) + strings.Repeat(" ", width-full)
			pct = fmt.Sprintf("%3.0f%%", frac*100)
		} else {
			bar = strings.Repeat(" ", width)
		}
		return fmt.Sprintf("[%s] %s %d records %.0f/s ETA %s", bar, pct, n, rate, eta)
	}
	pct := ""
	if frac >= 0 {
		pct = fmt.Sprintf(" (%.0f%% of %s)", frac*100, formatBytes(total))
	}
	return fmt.Sprintf("import: %s: %d records%s, %.0f records/s, ETA %s", file, n, pct, rate, eta)
}

func (p *Progress) draw(final bool) {
	line := p.Line()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.TTY {
		fmt.Fprintln(p.W, line)
		return
	}
	// Pad over the previous, possibly longer, line.
	pad := ""
	if d := p.lastWidth - len(line); d > 0 {
		pad = strings.Repeat(" ", d)
	}
	p.lastWidth = len(line)
	end := ""
	if final {
		end = "\n"
	}
	fmt.Fprintf(p.W, "\r%s%s%s", line, pad, end)
}

func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
