package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, fixed at 100 by
// the Linux ABI whatever the kernel's internal HZ.
const userHZ = 100

// procCPU returns the user plus system CPU time pid has used; with children, also that
// of its waited-for children (cutime, cstime).
func procCPU(pid int, children bool) (time.Duration, error) {
	f, err := procStatFields(pid)
	if err != nil {
		return 0, err
	}
	// Fields after the command, counted from 0 at the state (field 3 of proc(5)):
	// utime is field 14, stime 15, cutime 16, cstime 17.
	idx := []int{14 - 3, 15 - 3}
	if children {
		idx = append(idx, 16-3, 17-3)
	}
	var ticks int64
	for _, i := range idx {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read /proc/%d/stat: field %d: %w", pid, i+3, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// procStatFields returns the fields of /proc/<pid>/stat after the command name (which
// may hold spaces and parentheses), starting at the state.
func procStatFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("read /proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("read /proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// procStatus is what /proc/<pid>/status says about memory and threads.
type procStatus struct {
	RSS     int64 // VmRSS, bytes
	HWM     int64 // VmHWM (peak RSS), bytes
	Threads int
}

func readProcStatus(pid int) (procStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, err
	}
	defer f.Close()
	var st procStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "VmRSS":
			st.RSS = parseKB(val)
		case "VmHWM":
			st.HWM = parseKB(val)
		case "Threads":
			st.Threads, _ = strconv.Atoi(val)
		}
	}
	return st, sc.Err()
}

// parseKB reads "1234 kB" as bytes.
func parseKB(s string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(s, " kB"), 10, 64)
	return n * 1024
}

// openFDs counts pid's open file descriptors (-1 when /proc does not let us look).
func openFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// clusterCPU returns the CPU time of a PostgreSQL server: the postmaster with its
// reaped children (backends that exited) plus its live children.
func clusterCPU(postmaster int) (time.Duration, error) {
	total, err := procCPU(postmaster, true)
	if err != nil {
		return 0, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		f, err := procStatFields(pid)
		if err != nil || f[1] != strconv.Itoa(postmaster) { // field 4: ppid
			continue
		}
		if d, err := procCPU(pid, true); err == nil {
			total += d
		}
	}
	return total, nil
}

// postmasterPID reads the first line of <dataDir>/postmaster.pid.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return strconv.Atoi(string(bytes.TrimSpace(line)))
}

// selfCPU is the load tool's own user plus system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is a snapshot of /proc/stat's first line: busy and total jiffies.
type machineCPU struct{ busy, total int64 }

func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	var m machineCPU
	for i, s := range f[1:] {
		n, _ := strconv.ParseInt(s, 10, 64)
		if i >= 8 { // guest times are already in user and nice
			break
		}
		m.total += n
		if i != 3 && i != 4 { // idle, iowait
			m.busy += n
		}
	}
	return m
}

// busyPercent is how busy all CPUs were between two snapshots (100 = every core).
func busyPercent(a, b machineCPU) float64 {
	if b.total <= a.total {
		return 0
	}
	return 100 * float64(b.busy-a.busy) / float64(b.total-a.total)
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// machine describes where the figures were taken.
type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemTotal  int64  `json:"mem_total_bytes"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
}

func readMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemTotal = parseKB(strings.TrimSpace(v))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// raiseNoFile raises the soft open-files limit to at least want (capped at the hard
// limit). Calling Setrlimit also keeps os/exec from restoring the original soft limit
// in children, so the notifier inherits it. It returns the soft limit in effect.
func raiseNoFile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	target := max(lim.Cur, min(want, lim.Max))
	lim.Cur = target
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("setrlimit nofile %d: %w", target, err)
	}
	return target, nil
}
