package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is everything one run measured.
type report struct {
	Started    time.Time         `json:"started"`
	Machine    machine           `json:"machine"`
	Postgres   pgInfo            `json:"postgres"`
	NoFile     uint64            `json:"nofile_limit"`
	Options    map[string]string `json:"options"`
	Revision   string            `json:"notifier_revision"`
	LoadStart  string            `json:"loadavg_start"`
	LoadEnd    string            `json:"loadavg_end"`
	Latency    *latencyResult    `json:"latency,omitempty"`
	Throughput *throughputResult `json:"throughput,omitempty"`
	Memory     *memoryResult     `json:"memory,omitempty"`
	Inserts    *insertsResult    `json:"inserts,omitempty"`
	Side       *sideResult       `json:"side_by_side,omitempty"`
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	kv := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(kv, format+"\n", args...) }
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s RAM, Linux %s, %s\n", m.CPUs, m.CPUModel, mib(m.MemTotal), m.Kernel, m.GoVersion)
	pg := r.Postgres
	kind := "given by --database-url"
	if pg.Throwaway {
		kind = "throwaway cluster"
	}
	fmt.Fprintf(w, "postgres: %s (%s): fsync=%s synchronous_commit=%s full_page_writes=%s shared_buffers=%s max_connections=%s\n",
		pg.Version, kind, pg.Fsync, pg.SynchronousCommit, pg.FullPageWrites, pg.SharedBuffers, pg.MaxConnections)
	fmt.Fprintf(w, "open files limit: %d; load average at start %s, at end %s\n", r.NoFile, r.LoadStart, r.LoadEnd)
	fmt.Fprintf(w, "notifier revision: %s\noptions: %s\n", r.Revision, optionString(r.Options))

	if r.Side != nil {
		writeSideText(w, r.Side)
	}
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "\n== 1. latency: commit returned -> event received (%d WebSocket clients, %d inserts/s for %.0fs, %d events measured, %d appointments at start)\n",
			l.Clients, l.Rate, l.Seconds, l.Events, l.Rows)
		distHeader(tw)
		distRow(tw, "bare LISTEN (pgx, channel notifier)", l.Bare)
		distRow(tw, "notifier /ws, every client", l.WS)
		distRow(tw, "notifier /ws, first client per event", l.WSFirst)
		distRow(tw, "notifier /ws, last client per event", l.WSLast)
		distRow(tw, "writer INSERT..COMMIT round trip", l.Commit)
		distRow(tw, "enrichment SQL, 1 id (tool-side)", l.Enrich)
		_ = tw.Flush()
		fmt.Fprintf(w, "ratio of medians, notifier/bare LISTEN: %.1fx (difference %.3f ms; the bare median is near 0, so the ratio swings with it)\n", l.RatioP50, l.DiffP50/1000)
		fmt.Fprintf(w, "missing receipts: %d (bare LISTEN: %d), out of order: %d, late inserts: %d, notifier CPU: %.0f µs/event, machine busy: %.0f%%\n",
			l.Missing, l.BareMiss, l.Disorder, l.Late, l.CPUPerEv, l.Busy)
		writeStmts(w, l.Stmts)
	}
	if t := r.Throughput; t != nil {
		fmt.Fprintf(w, "\n== 2. throughput: %d events (%d per transaction, %d writers) to %d clients, %d appointments at start\n", t.Events, t.Batch, t.Writers, t.Clients, t.Rows)
		p("committed\t%d events in %.2fs\t%.0f events/s", t.Events, t.CommitSeconds, t.CommitRate)
		p("delivered\t%d of %d msgs in %.2fs\t%.0f msgs/s", t.Delivered, t.Expected, t.Seconds, t.MsgRate)
		p("last receipt after last commit\t%.2fs\t", t.TailSeconds)
		p("notifier CPU\t%.2fs\t%.2f µs/msg, %.0f µs/event", t.NotifierCPU, t.CPUPerMsg, t.CPUPerEvent)
		if t.PostgresCPU > 0 {
			p("postgres CPU\t%.2fs\t", t.PostgresCPU)
		}
		p("load tool CPU (clients, writers)\t%.2fs\t", t.ToolCPU)
		p("machine busy\t%.0f%%\t", t.Busy)
		p("notifier peak RSS (VmHWM)\t%s\t", mib(t.PeakRSS))
		p("frame size\t%.0f bytes\t", t.FrameBytes)
		_ = kv.Flush()
		fmt.Fprintf(w, "out of order: %d, closed by server: %s\n", t.Disorder, closedString(t.Closed))
		writeStmts(w, t.Stmts)
	}
	if mr := r.Memory; mr != nil {
		fmt.Fprintf(w, "\n== 3. memory: %d idle connections over %d accounts\n", mr.Conns, mr.Accounts)
		p("\t0 conns\t%d conns\t", mr.Conns)
		p("RSS\t%s\t%s\t", mib(mr.RSS0), mib(mr.RSSM))
		p("threads\t%d\t%d\t", mr.Threads0, mr.ThreadsM)
		p("open fds\t%d\t%d\t", mr.FDs0, mr.FDsM)
		_ = kv.Flush()
		fmt.Fprintf(w, "per connection: %.1f KiB ((RSS_M - RSS_0)/M); peak RSS %s; dialled in %.2fs; probe event reached %d of %d\n",
			mr.PerConn/1024, mib(mr.PeakRSS), mr.DialSecs, mr.Delivered, mr.Conns)
		fmt.Fprintf(w, "goroutines: %s\n", mr.Goroutines)
	}
	if in := r.Inserts; in != nil {
		fmt.Fprintf(w, "\n== 4. insert rate: %d workers, one appointment (+ its procedure link) per transaction, %.0fs each\n", in.Workers, in.Seconds)
		p("database\ttx\ttx/s\ttx p50 ms\ttx p99 ms\tbusy\tnotifier CPU\tdelivered\t")
		for _, run := range in.Runs {
			cpu, got := "-", "-"
			if run.NotifierCPU > 0 {
				cpu = fmt.Sprintf("%.2fs", run.NotifierCPU)
				got = fmt.Sprint(run.Delivered)
			}
			p("%s\t%d\t%.0f\t%.3f\t%.3f\t%.0f%%\t%s\t%s\t", run.Name, run.Tx, run.TxRate, run.Latency.P50US/1000, run.Latency.P99US/1000, run.Busy, cpu, got)
		}
		_ = kv.Flush()
		fmt.Fprintf(w, "ratio to no triggers: NOTIFY-only %.2f, notifier triggers %.2f", in.RatioNotify, in.Ratio)
		if in.RatioServed > 0 {
			fmt.Fprintf(w, ", notifier triggers with the notifier serving %.2f", in.RatioServed)
		}
		fmt.Fprintln(w)
		if r.Postgres.Fsync == "off" || r.Postgres.SynchronousCommit == "off" {
			fmt.Fprintln(w, "note: fsync/synchronous_commit off: this measures CPU and locking, not disk")
		}
		for _, run := range in.Runs {
			if len(run.Stmts) > 0 {
				fmt.Fprintf(w, "[%s]", run.Name)
				writeStmts(w, run.Stmts)
			}
		}
	}
	return nil
}

// writeStmts prints what PostgreSQL spent on each kind of statement.
func writeStmts(w io.Writer, stmts []stmtStat) {
	if len(stmts) == 0 {
		return
	}
	fmt.Fprintln(w, "postgres time by statement (pg_stat_statements, execution only):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  statement\tcalls\trows\ttotal ms\tmean ms\t")
	for _, s := range stmts {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%.0f\t%.3f\t\n", s.Name, s.Calls, s.Rows, s.TotalMS, s.MeanMS)
	}
	_ = tw.Flush()
}

func distHeader(tw *tabwriter.Writer) {
	fmt.Fprintln(tw, "ms\tn\tmin\tp50\tp90\tp99\tmax\t")
}

func distRow(tw *tabwriter.Writer, name string, d dist) {
	fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", name, d.N, d.MinUS/1000, d.P50US/1000, d.P90US/1000, d.P99US/1000, d.MaxUS/1000)
}

// optionString renders the options sorted by name.
func optionString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = "--" + k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func closedString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for code, n := range m {
		parts = append(parts, fmt.Sprintf("%d with %s", n, code))
	}
	return strings.Join(parts, ", ")
}

// writeSideText prints the side-by-side comparison: the summary table, then every run.
func writeSideText(w io.Writer, s *sideResult) {
	fmt.Fprintf(w, "\n== side by side with %s: %d runs per side, alternately, notifier first; medians of the runs, but late, lost, duplicated and foreign: the worst run\n", s.Peer, s.Runs)
	fmt.Fprintf(w, "database: %s\n", s.Database)
	kv := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(kv, "figure\tnotifier\tpeer\tnotifier/peer")
	row := func(name string, n, p float64, format string) {
		fmt.Fprintf(kv, "%s\t"+format+"\t"+format+"\t%.2f\n", name, n, p, ratio(n, p))
	}
	count := func(name string, n, p int64) { fmt.Fprintf(kv, "%s\t%d\t%d\t\n", name, n, p) }
	for _, ph := range []*sidePhase{s.Fixed, s.Full} {
		if ph == nil {
			continue
		}
		what := "full speed"
		if ph.Rate > 0 {
			what = fmt.Sprintf("%d commits/s", ph.Rate)
		}
		n, p := ph.Notifier.Summary, ph.Peer.Summary
		row(what+": commits/s", n.CommitRate, p.CommitRate, "%.0f")
		row(what+": p50 ms", n.Latency.P50US/1000, p.Latency.P50US/1000, "%.2f")
		row(what+": p99 ms", n.Latency.P99US/1000, p.Latency.P99US/1000, "%.2f")
		row(what+": max ms", n.Latency.MaxUS/1000, p.Latency.MaxUS/1000, "%.2f")
		row(what+": service CPU µs/msg", n.CPUPerMsg, p.CPUPerMsg, "%.2f")
		if n.PGPerCommit > 0 || p.PGPerCommit > 0 {
			row(what+": PostgreSQL CPU µs/commit", n.PGPerCommit, p.PGPerCommit, "%.0f")
		}
		row(what+": peak RSS MiB", float64(n.PeakRSS)/(1<<20), float64(p.PeakRSS)/(1<<20), "%.1f")
		count(fmt.Sprintf("%s: late (not within %gs of the last commit)", what, ph.LateAfter), n.Late, p.Late)
		count(fmt.Sprintf("%s: lost (not within %gs)", what, drainTimeout.Seconds()), n.Lost, p.Lost)
		count(what+": duplicated, foreign", n.Duplicates+n.Foreign, p.Duplicates+p.Foreign)
	}
	if m := s.Memory; m != nil {
		row(fmt.Sprintf("memory: KiB per idle connection (%d)", m.Conns), m.Notifier.PerConn/1024, m.Peer.PerConn/1024, "%.1f")
		row("memory: RSS with 0 connections, MiB", m.Notifier.RSS0/(1<<20), m.Peer.RSS0/(1<<20), "%.1f")
		count("memory: probe reached (worst run)", int64(m.Notifier.Delivered), int64(m.Peer.Delivered))
	}
	_ = kv.Flush()

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, ph := range []*sidePhase{s.Fixed, s.Full} {
		if ph == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s; every run:\n", ph.describe())
		fmt.Fprintln(tw, "side\trun\tcommits\tcommits/s\tlate inserts\tp50 ms\tp99 ms\tmax ms\tdelivered\tof\tlate\tlost\tdup\tforeign\tCPU s\tµs/msg\tpg µs/commit\tpeak RSS\tbusy\t")
		for _, side := range []struct {
			name string
			runs []sideRun
		}{{"notifier", ph.Notifier.Runs}, {"peer", ph.Peer.Runs}} {
			for i, r := range side.runs {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%d\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.0f\t%s\t%.0f%%\t\n",
					side.name, i+1, r.Commits, r.CommitRate, r.LateInserts, r.Latency.P50US/1000, r.Latency.P99US/1000, r.Latency.MaxUS/1000,
					r.Delivered, r.Expected, r.Late, r.Lost, r.Duplicates, r.Foreign, r.ServiceCPU, r.CPUPerMsg, r.PGPerCommit, mib(r.PeakRSS), r.Busy)
			}
		}
		_ = tw.Flush()
	}
	if m := s.Memory; m != nil {
		fmt.Fprintf(w, "\nmemory, %d idle connections over %d accounts; every run:\n", m.Conns, m.Accounts)
		fmt.Fprintln(tw, "side\trun\tRSS 0\tRSS M\tKiB/conn\tpeak RSS\tthreads\tfds\tdial s\tprobe\t")
		for _, side := range []struct {
			name string
			runs []*memoryResult
		}{{"notifier", m.Notifier.Runs}, {"peer", m.Peer.Runs}} {
			for i, r := range side.runs {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.1f\t%s\t%d\t%d\t%.2f\t%d\t\n",
					side.name, i+1, mib(r.RSS0), mib(r.RSSM), r.PerConn/1024, mib(r.PeakRSS), r.ThreadsM, r.FDsM, r.DialSecs, r.Delivered)
			}
		}
		_ = tw.Flush()
	}
}
