package console

import (
	"encoding/xml"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"zonekit/internal/zone"
)

func hist(pairs ...any) []zone.StatusChange {
	var out []zone.StatusChange
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, zone.StatusChange{Status: pairs[i].(string), Time: pairs[i+1].(time.Time)})
	}
	return out
}

// progressDeps: two devices assigned 10 h ago, notified 8 h ago, one
// succeeding 5 h ago and one failing 2 h ago; a third assigned 4 h ago
// and still waiting; a fourth whose record says SUCCESS though its kept
// history stops at NOTIFIED (the record's status wins from its update).
func progressDeps() []zone.Deployment {
	h := func(n float64) time.Time { return t0.Add(-time.Duration(n * float64(time.Hour))) }
	return []zone.Deployment{
		{Device: "d1", Status: "SUCCESS", Assigned: h(10), Updated: h(5), History: hist(zone.StatusNotified, h(8), "SUCCESS", h(5))},
		{Device: "d2", Status: "ERR_EXIT_CODE_2", Assigned: h(10), Updated: h(2), History: hist(zone.StatusNotified, h(8), "ERR_EXIT_CODE_2", h(2))},
		{Device: "d3", Status: zone.StatusWaiting, Assigned: h(4), Updated: h(4)},
		{Device: "d4", Status: "SUCCESS", Assigned: h(6), Updated: h(1), History: hist(zone.StatusNotified, h(5.5))},
	}
}

// countsAt is the sample at or just after t, as [success error notified waiting].
func countsAt(t *testing.T, s progressSeries, at time.Time) [numCats]int {
	t.Helper()
	for i, ts := range s.Times {
		if !ts.Before(at) {
			var out [numCats]int
			for k := range numCats {
				out[k] = s.Counts[k][i]
			}
			return out
		}
	}
	t.Fatalf("no sample at %v", at)
	return [numCats]int{}
}

func TestProgressOf(t *testing.T) {
	s := progressOf(progressDeps(), t0)
	if len(s.Times) != progressSamples || !s.Times[0].Equal(t0.Add(-10*time.Hour)) || !s.Times[progressSamples-1].Equal(t0) {
		t.Fatalf("times %v .. %v (%d)", s.Times[0], s.Times[len(s.Times)-1], len(s.Times))
	}
	for _, c := range []struct {
		at   time.Duration
		want [numCats]int // success, error, notified, waiting
	}{
		{-10 * time.Hour, [numCats]int{0, 0, 0, 2}},
		{-7 * time.Hour, [numCats]int{0, 0, 2, 0}},
		{-5*time.Hour - 45*time.Minute, [numCats]int{0, 0, 2, 1}},
		{-4*time.Hour - 30*time.Minute, [numCats]int{1, 0, 2, 0}},
		{-3 * time.Hour, [numCats]int{1, 0, 2, 1}},
		{-90 * time.Minute, [numCats]int{1, 1, 1, 1}},
		{0, [numCats]int{2, 1, 0, 1}},
	} {
		if got := countsAt(t, s, t0.Add(c.at)); got != c.want {
			t.Errorf("at %v: %v, want %v", c.at, got, c.want)
		}
	}
	// Never more deployments than were assigned by then, never negative.
	for i := range s.Times {
		total := 0
		for k := range numCats {
			if s.Counts[k][i] < 0 {
				t.Fatalf("negative count at %d: %v", i, s.Counts)
			}
			total += s.Counts[k][i]
		}
		if total > 4 {
			t.Fatalf("%d deployments at %d", total, i)
		}
	}
	// Everything assigned just now: one sample.
	one := progressOf([]zone.Deployment{{Status: zone.StatusWaiting, Assigned: t0}}, t0)
	if len(one.Times) != 1 || one.Counts[catWaiting][0] != 1 {
		t.Errorf("assigned now: %+v", one)
	}
	if c := progressOf(nil, t0).chart(); !c.Empty {
		t.Errorf("no deployments: %+v", c)
	}
}

var pointsRe = regexp.MustCompile(`^\d+,\d+( \d+,\d+)*$`)

// TestProgressChartSVG: the package page's chart is well-formed XML,
// has a polygon per status whose points lie in the view box, and its
// table holds the counts; a hostile package name stays text.
func TestProgressChartSVG(t *testing.T) {
	now := t0
	for _, deps := range [][]zone.Deployment{progressDeps(), {{Status: zone.StatusWaiting, Assigned: t0}}} {
		c := newClient(t, &now, &fakeZone{deps: deps})
		c.signIn()
		rec := c.do("GET", "/console/packages/7", nil)
		body := rec.Body.String()
		if rec.Code != 200 || strings.Contains(body, "<b>pkg") {
			t.Fatalf("package page: %d %s", rec.Code, body)
		}
		i := strings.Index(body, `<svg class="chart progress"`)
		j := strings.Index(body[max(i, 0):], "</svg>")
		if i < 0 || j < 0 {
			t.Fatalf("no progress chart: %s", body)
		}
		svg := body[i : i+j+len("</svg>")]
		d := xml.NewDecoder(strings.NewReader(svg))
		polygons := 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
			}
			se, ok := tok.(xml.StartElement)
			if !ok || se.Name.Local != "polygon" {
				continue
			}
			polygons++
			for _, a := range se.Attr {
				if a.Name.Local != "points" {
					continue
				}
				if !pointsRe.MatchString(a.Value) {
					t.Fatalf("points %q", a.Value)
				}
				for _, p := range strings.Fields(a.Value) {
					xs, ys, _ := strings.Cut(p, ",")
					x, _ := strconv.Atoi(xs)
					y, _ := strconv.Atoi(ys)
					if x < 0 || x > progressWidth || y < 0 || y > progressHeight {
						t.Fatalf("point %s outside the chart", p)
					}
				}
			}
		}
		if polygons != numCats {
			t.Errorf("%d polygons, want %d", polygons, numCats)
		}
		if !strings.Contains(body, "Deployments by status over time") {
			t.Errorf("no table of the chart's data")
		}
	}
	c := newClient(t, &now, &fakeZone{deps: progressDeps()})
	c.signIn()
	body := c.do("GET", "/console/packages/7", nil).Body.String()
	if !strings.Contains(body, "<tr><th scope=\"row\">2026-12-07 08:00</th><td>2</td><td>1</td><td>0</td><td>1</td></tr>") {
		t.Errorf("table's last row missing: %s", body)
	}
}
