package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// WriteChart writes an SVG chart of throughput against writer count, for
// meowmx and its baseline: one panel per append scenario of the report.
func (r *Report) WriteChart(w io.Writer) error {
	type point struct {
		writers          int
		meowmx, baseline float64
	}
	var panels []string
	series := map[string][]point{}
	for _, res := range r.Results {
		if (res.Scenario != "append-1" && res.Scenario != "append-100") || res.Baseline == nil {
			continue
		}
		if strings.HasSuffix(res.Setting, parentedSetting) {
			continue // --otel's second observer: one line per scenario
		}
		if _, ok := series[res.Scenario]; !ok {
			panels = append(panels, res.Scenario)
		}
		series[res.Scenario] = append(series[res.Scenario], point{res.Writers, res.Meowmx, *res.Baseline})
	}
	if len(panels) == 0 {
		return fmt.Errorf("no append results to chart: run append-1 or append-100")
	}
	const (
		panelW, panelH       = 420.0, 300.0
		left, right, top, bo = 70.0, 20.0, 50.0, 50.0
	)
	width := float64(len(panels)) * panelW
	height := panelH + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">meowmx vs raw SQL: events/s against concurrent writers</text>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="34" fill="#555">%s</text>`+"\n", xmlEscape(r.Database+", "+fmt.Sprint(r.CPUs)+" CPUs, "+r.Started.Format("2006-01-02")))
	for i, name := range panels {
		pts := series[name]
		slices.SortFunc(pts, func(a, b point) int { return a.writers - b.writers })
		x0 := float64(i)*panelW + left
		plotW := panelW - left - right
		plotH := panelH - top - bo + 20
		y0 := top + 20
		maxY := 0.0
		for _, p := range pts {
			maxY = max(maxY, p.meowmx, p.baseline)
		}
		maxY = niceCeil(maxY)
		xAt := func(j int) float64 {
			if len(pts) == 1 {
				return x0 + plotW/2
			}
			return x0 + plotW*float64(j)/float64(len(pts)-1)
		}
		yAt := func(v float64) float64 { return y0 + plotH - plotH*v/maxY }
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-weight="bold">%s</text>`+"\n", x0, y0-8, name)
		for k := 0; k <= 4; k++ {
			v := maxY * float64(k) / 4
			y := yAt(v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+plotW, y)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", x0-6, y+4, group(int64(v)))
		}
		for j, p := range pts {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%d</text>`+"\n", xAt(j), y0+plotH+16, p.writers)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">writers</text>`+"\n", x0+plotW/2, y0+plotH+32)
		for _, s := range []struct {
			label, color, dash string
			value              func(point) float64
		}{
			{"baseline (raw INSERT)", "#999", "6 4", func(p point) float64 { return p.baseline }},
			{"meowmx", "#1f6feb", "", func(p point) float64 { return p.meowmx }},
		} {
			var path []string
			for j, p := range pts {
				path = append(path, fmt.Sprintf("%.1f,%.1f", xAt(j), yAt(s.value(p))))
			}
			dash := ""
			if s.dash != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(path, " "), s.color, dash)
			for j, p := range pts {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s, %d writers: %s events/s</title></circle>`+"\n",
					xAt(j), yAt(s.value(p)), s.color, s.label, p.writers, group(int64(s.value(p))))
			}
		}
		ly := y0 + 4
		for k, s := range []struct{ label, color, dash string }{{"meowmx", "#1f6feb", ""}, {"baseline (raw INSERT)", "#999", "6 4"}} {
			y := ly + float64(k)*16
			dash := ""
			if s.dash != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", x0+10, y, x0+34, y, s.color, dash)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x0+40, y+4, s.label)
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
