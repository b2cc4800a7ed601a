package ui

import (
	"io"

	"github.com/schollz/progressbar/v3"
)

// Progress counts bytes of long work. On a terminal it draws a bar on
// stderr; elsewhere (cron, pipes) it draws nothing.
type Progress struct {
	bar *progressbar.ProgressBar
}

// NewProgress starts a progress display for total bytes (-1 if unknown).
func NewProgress(s *IOStreams, total int64, description string) *Progress {
	if !s.ErrTTY {
		return &Progress{}
	}
	return &Progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(s.ErrOut),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100e6), // redraw at most every 100 ms
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSpinnerType(14),
	)}
}

// Add records n more bytes done.
func (p *Progress) Add(n int64) {
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

// Reader counts what is read through r.
func (p *Progress) Reader(r io.Reader) io.Reader {
	if p.bar == nil {
		return r
	}
	pr := progressbar.NewReader(r, p.bar)
	return &pr
}

// Done removes the bar.
func (p *Progress) Done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
