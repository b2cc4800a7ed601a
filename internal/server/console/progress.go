package console

import (
	"strconv"
	"strings"
	"time"

	"zonekit/internal/zone"
)

// A package's deployment progress over time, derived from its
// deployments' status histories: each deployment is waiting from its
// assignment, then in the status of each recorded change from that
// change's time on. A deployment keeps its last zone.MaxHistory changes
// only: what it was before the oldest one kept is not known, and the
// chart counts it as waiting (docs/console.md). Records removed by
// package-validate or an unassignment are not in the chart.

// progressSamples is how many points in time the chart has.
const progressSamples = 60

// Status categories, bottom to top of the stacked chart.
const (
	catSuccess = iota
	catError
	catNotified
	catWaiting
	numCats
)

var catLabels = [numCats]struct{ Label, Class string }{
	{"succeeded", "success"}, {"failed", "error"}, {"notified", "notified"}, {"waiting", "waiting"},
}

func category(status string) int {
	switch {
	case status == zone.StatusWaiting:
		return catWaiting
	case status == zone.StatusNotified:
		return catNotified
	case zone.IsSuccess(status):
		return catSuccess
	default:
		return catError
	}
}

// progressSeries is the deployments by status category at each of
// Times (the last is now).
type progressSeries struct {
	Times  []time.Time
	Counts [numCats][]int
}

// progressOf samples deps at progressSamples times from the earliest
// assignment to now. It adds each status change at the first sample at
// or after it, so a sample counts every change up to its time: one pass
// over the changes, whatever the number of samples.
func progressOf(deps []zone.Deployment, now time.Time) progressSeries {
	var s progressSeries
	if len(deps) == 0 {
		return s
	}
	start := now
	for i := range deps {
		if a := deps[i].Assigned; !a.IsZero() && a.Before(start) {
			start = a
		}
	}
	n := progressSamples
	span := now.Sub(start)
	if span <= 0 {
		n = 1
	}
	s.Times = make([]time.Time, n)
	for i := range n {
		if n == 1 {
			s.Times[i] = now
			continue
		}
		s.Times[i] = start.Add(time.Duration(float64(span) * float64(i) / float64(n-1)))
	}
	s.Times[n-1] = now
	// index is the first sample at or after t; n when t is after now.
	index := func(t time.Time) int {
		if n == 1 || !t.After(start) {
			if t.After(now) {
				return n
			}
			return 0
		}
		if t.After(now) {
			return n
		}
		i := int(float64(t.Sub(start)) / float64(span) * float64(n-1))
		for i < n && s.Times[i].Before(t) {
			i++
		}
		return i
	}
	var delta [numCats][]int
	for c := range delta {
		delta[c] = make([]int, n+1)
	}
	for i := range deps {
		dep := &deps[i]
		from := dep.Assigned
		if from.IsZero() && len(dep.History) > 0 {
			from = dep.History[0].Time
		}
		cur := catWaiting
		at := index(from)
		delta[cur][at]++
		for _, ch := range dep.History {
			next := category(ch.Status)
			t := ch.Time
			if t.Before(from) {
				t = from
			}
			j := index(t)
			if next != cur {
				delta[cur][j]--
				delta[next][j]++
				cur = next
			}
		}
		// The current status is the record's, whatever the history kept.
		if last := category(dep.Status); last != cur {
			j := index(latest(dep.Updated, from, lastChange(dep)))
			delta[cur][j]--
			delta[last][j]++
		}
	}
	for c := range s.Counts {
		s.Counts[c] = make([]int, n)
		run := 0
		for i := range n {
			run += delta[c][i]
			s.Counts[c][i] = run
		}
	}
	return s
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}

func lastChange(dep *zone.Deployment) time.Time {
	if len(dep.History) == 0 {
		return time.Time{}
	}
	return dep.History[len(dep.History)-1].Time
}

// progressChart is the stacked-area chart's geometry: the template
// places these numbers and escaped labels, nothing else.
type progressChart struct {
	Width, Height int
	Layers        []progressLayer
	Max           int
	Start, End    string
	Rows          []progressRow // the same data as a table
	Empty         bool
}

type progressLayer struct {
	Label, Class, Points string
	Last                 int
}

type progressRow struct {
	Time   string
	Counts []int
}

const (
	progressWidth  = 720
	progressHeight = 220
	progressLeft   = 50
	progressTop    = 10
	progressBottom = 30
	progressRight  = 10
	progressRows   = 6
)

func (s progressSeries) chart() progressChart {
	c := progressChart{Width: progressWidth, Height: progressHeight}
	n := len(s.Times)
	if n == 0 {
		c.Empty = true
		return c
	}
	totals := make([]int, n)
	for i := range n {
		for k := range numCats {
			totals[i] += s.Counts[k][i]
		}
		c.Max = max(c.Max, totals[i])
	}
	if c.Max == 0 {
		c.Empty = true
		return c
	}
	c.Start, c.End = s.Times[0].UTC().Format("2006-01-02 15:04"), s.Times[n-1].UTC().Format("2006-01-02 15:04")
	plotW, plotH := progressWidth-progressLeft-progressRight, progressHeight-progressTop-progressBottom
	x := func(i int) int {
		if n == 1 {
			return progressLeft + plotW
		}
		return progressLeft + i*plotW/(n-1)
	}
	y := func(v int) int { return progressTop + plotH - v*plotH/c.Max }
	lower := make([]int, n)
	for k := range numCats {
		upper := make([]int, n)
		for i := range n {
			upper[i] = lower[i] + s.Counts[k][i]
		}
		var b strings.Builder
		pt := func(xv, yv int) {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Itoa(xv))
			b.WriteByte(',')
			b.WriteString(strconv.Itoa(yv))
		}
		if n == 1 {
			pt(progressLeft, y(upper[0]))
		}
		for i := range n {
			pt(x(i), y(upper[i]))
		}
		for i := n - 1; i >= 0; i-- {
			pt(x(i), y(lower[i]))
		}
		if n == 1 {
			pt(progressLeft, y(lower[0]))
		}
		c.Layers = append(c.Layers, progressLayer{Label: catLabels[k].Label, Class: catLabels[k].Class, Points: b.String(), Last: s.Counts[k][n-1]})
		lower = upper
	}
	for r := range progressRows {
		i := r * (n - 1) / max(progressRows-1, 1)
		if r > 0 && i == (r-1)*(n-1)/max(progressRows-1, 1) {
			continue
		}
		row := progressRow{Time: s.Times[i].UTC().Format("2006-01-02 15:04")}
		for k := range numCats {
			row.Counts = append(row.Counts, s.Counts[k][i])
		}
		c.Rows = append(c.Rows, row)
	}
	return c
}
