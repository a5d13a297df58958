package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// WriteFiles writes the report to dir, which it creates: report.json,
// searches.csv, tunnels.csv, reach.csv, and three SVG charts,
// reach.svg (reach by distance from the origin), latency.svg (CDF of the
// time to the first result) and messages.svg (histogram of messages per
// search); and, when the lobby phase ran, lobby.csv (one row per lobby
// message) and lobby.svg (CDF of the time each lobby message took to
// reach all subscribers).
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing simulation files: %w", err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("writing simulation report: %w", err)
	}
	files := map[string][]byte{"report.json": append(j, '\n')}

	rows := [][]string{{"search", "origin", "file", "found", "holder", "hops", "first_result_ms", "reached", "search_msgs", "result_msgs", "redundant", "same_dir_duplicates"}}
	for _, s := range r.SearchRows {
		rows = append(rows, []string{itoa(s.K), itoa(s.Origin), itoa(s.File), strconv.FormatBool(s.Found), itoa(s.Holder), itoa(s.Hops),
			ftoa(s.FirstResultMs), itoa(s.Reached), itoa(s.Copies), itoa(s.Results), itoa(s.Redundant), itoa(s.SameDirDuplicate)})
	}
	files["searches.csv"] = csvBytes(rows)
	rows = [][]string{{"origin", "ok", "setup_ms", "path_length", "error"}}
	for _, t := range r.TunnelRows {
		rows = append(rows, []string{itoa(t.Origin), strconv.FormatBool(t.OK), ftoa(t.SetupMs), itoa(t.Path), t.Err})
	}
	files["tunnels.csv"] = csvBytes(rows)
	rows = [][]string{{"distance", "reach"}}
	var xs, ys []float64
	for h, f := range r.Search.ReachByDistance {
		rows = append(rows, []string{itoa(h), ftoa(f)})
		xs, ys = append(xs, float64(h)), append(ys, f)
	}
	files["reach.csv"] = csvBytes(rows)

	title := fmt.Sprintf("%s, %d nodes, degree %d, seed %d", r.Config.Graph, r.Config.Nodes, r.Config.Degree, r.Config.Seed)
	files["reach.svg"] = []byte(lineChart("Search reach by distance from the origin ("+title+")", "hops from origin", "share of nodes reached", xs, ys, 1))
	var lat []float64
	for _, s := range r.SearchRows {
		if s.Found {
			lat = append(lat, s.FirstResultMs)
		}
	}
	slices.Sort(lat)
	xs, ys = nil, nil
	for i, v := range lat {
		xs, ys = append(xs, v), append(ys, float64(i+1)/float64(len(r.SearchRows)))
	}
	files["latency.svg"] = []byte(lineChart("Time to first result, CDF over all searches ("+title+")", "ms", "share of searches answered", xs, ys, 1))
	var msgs []float64
	for _, s := range r.SearchRows {
		msgs = append(msgs, float64(s.Copies+s.Results))
	}
	files["messages.svg"] = []byte(histogram("Messages per search ("+title+")", "messages (Search + SearchResult, all links)", "searches", msgs, 20))

	if l := r.Lobby; l != nil && l.Skipped == "" {
		rows = [][]string{{"message", "author", "sent_ms", "reached", "by_history", "reach_all_ms", "frames", "same_dir_duplicates"}}
		var all []float64
		for _, m := range l.Rows {
			rows = append(rows, []string{itoa(m.K), itoa(m.Author), ftoa(m.SentMs), itoa(m.Reached), itoa(m.ByHistory),
				ftoa(m.ReachAllMs), itoa(m.Frames), itoa(m.Duplicates)})
			if m.ReachAllMs >= 0 {
				all = append(all, m.ReachAllMs)
			}
		}
		files["lobby.csv"] = csvBytes(rows)
		slices.Sort(all)
		xs, ys = nil, nil
		for i, v := range all {
			xs, ys = append(xs, v), append(ys, float64(i+1)/float64(len(l.Rows)))
		}
		files["lobby.svg"] = []byte(lineChart(fmt.Sprintf("Lobby message to all %d subscribers, CDF (%s)", l.Members-l.NotJoined-1, title),
			"ms from Send", "share of messages", xs, ys, 1))
	}

	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("writing simulation files: %w", err)
		}
	}
	return nil
}

func itoa(i int) string     { return strconv.Itoa(i) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }

func csvBytes(rows [][]string) []byte {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.WriteAll(rows) // a strings.Builder does not fail
	return []byte(b.String())
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH           = 640, 400
	marginL, marginR         = 70, 20
	marginT, marginB         = 40, 50
	plotW, plotH             = chartW - marginL - marginR, chartH - marginT - marginB
	chartTicks               = 5
	chartFont                = `font-family="sans-serif" font-size="12"`
	chartStroke              = `stroke="#1f77b4" stroke-width="2" fill="none"`
	chartBar                 = `fill="#1f77b4"`
	chartAxis                = `stroke="#333" stroke-width="1"`
	chartGrid                = `stroke="#ddd" stroke-width="1"`
	chartHeader              = `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">` + "\n"
	chartBackground          = `<rect width="100%" height="100%" fill="white"/>` + "\n"
	chartEmpty               = `<text x="%d" y="%d" text-anchor="middle" ` + chartFont + `>no data</text>` + "\n"
	chartTitle               = `<text x="%d" y="20" text-anchor="middle" ` + chartFont + ` font-weight="bold">%s</text>` + "\n"
	chartXLabel, chartYLabel = `<text x="%d" y="%d" text-anchor="middle" ` + chartFont + `>%s</text>` + "\n",
		`<text x="15" y="%d" text-anchor="middle" transform="rotate(-90 15 %d)" ` + chartFont + `>%s</text>` + "\n"
)

// frame draws the background, title, axes, grid and tick labels of a
// chart whose data span [0,xmax] x [0,ymax].
func frame(b *strings.Builder, title, xl, yl string, xmax, ymax float64) {
	fmt.Fprintf(b, chartHeader, chartW, chartH, chartW, chartH)
	b.WriteString(chartBackground)
	fmt.Fprintf(b, chartTitle, chartW/2, html.EscapeString(title))
	for i := 0; i <= chartTicks; i++ {
		y := float64(marginT+plotH) - float64(i)*plotH/chartTicks
		x := float64(marginL) + float64(i)*plotW/chartTicks
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" %s/>`+"\n", marginL, y, marginL+plotW, y, chartGrid)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" %s>%s</text>`+"\n", marginL-5, y+4, chartFont, tick(ymax*float64(i)/chartTicks))
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" %s>%s</text>`+"\n", x, marginT+plotH+15, chartFont, tick(xmax*float64(i)/chartTicks))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" %s/>`+"\n", marginL, marginT+plotH, marginL+plotW, marginT+plotH, chartAxis)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" %s/>`+"\n", marginL, marginT, marginL, marginT+plotH, chartAxis)
	fmt.Fprintf(b, chartXLabel, marginL+plotW/2, chartH-10, html.EscapeString(xl))
	fmt.Fprintf(b, chartYLabel, marginT+plotH/2, marginT+plotH/2, html.EscapeString(yl))
}

func tick(v float64) string {
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// lineChart draws ys against xs; ymax of 0 means the largest y.
func lineChart(title, xl, yl string, xs, ys []float64, ymax float64) string {
	var b strings.Builder
	xmax := 0.0
	for i := range xs {
		xmax = max(xmax, xs[i])
		ymax = max(ymax, ys[i])
	}
	xmax, ymax = max(xmax, 1), max(ymax, 1e-9)
	frame(&b, title, xl, yl, xmax, ymax)
	if len(xs) == 0 {
		fmt.Fprintf(&b, chartEmpty, chartW/2, chartH/2)
	} else {
		var pts []string
		for i := range xs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", marginL+xs[i]/xmax*plotW, marginT+plotH-ys[i]/ymax*plotH))
		}
		fmt.Fprintf(&b, `<polyline points="%s" %s/>`+"\n", strings.Join(pts, " "), chartStroke)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// histogram draws the counts of xs in bins equal bins from 0 to max(xs).
func histogram(title, xl, yl string, xs []float64, bins int) string {
	var b strings.Builder
	xmax := 1.0
	for _, x := range xs {
		xmax = max(xmax, x)
	}
	counts := make([]int, bins)
	for _, x := range xs {
		counts[min(bins-1, int(x/xmax*float64(bins)))]++
	}
	ymax := 1
	for _, c := range counts {
		ymax = max(ymax, c)
	}
	frame(&b, title, xl, yl, xmax, float64(ymax))
	if len(xs) == 0 {
		fmt.Fprintf(&b, chartEmpty, chartW/2, chartH/2)
	}
	bw := float64(plotW) / float64(bins)
	for i, c := range counts {
		h := float64(c) / float64(ymax) * plotH
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" %s/>`+"\n", marginL+float64(i)*bw+1, marginT+plotH-h, bw-2, h, chartBar)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
