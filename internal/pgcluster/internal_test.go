package pgcluster

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"15", []int{15}},
		{"9.6", []int{9, 6}},
		{"postgresql@16", []int{16}},
		{"postgresql@14.2", []int{14, 2}},
		{"postgresql", nil},
	} {
		if got := parseVersion(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("parseVersion(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestVersionOrder(t *testing.T) {
	t.Parallel()
	dirs := []string{"9.6", "16", "postgresql", "10", "15"}
	slices.SortStableFunc(dirs, func(a, b string) int {
		return slices.Compare(parseVersion(b), parseVersion(a))
	})
	if want := []string{"16", "15", "10", "9.6", "postgresql"}; !slices.Equal(dirs, want) {
		t.Errorf("order = %v, want %v", dirs, want)
	}
}

func TestSettingsBlock(t *testing.T) {
	t.Parallel()
	b, err := settingsBlock(map[string]string{"search_path": `"$user", it's`, "work_mem": `a\b`})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"fsync = 'off'\n",
		"max_connections = '300'\n",
		`search_path = '"$user", it''s'` + "\n",
		`work_mem = 'a\\b'` + "\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("settings block lacks %q:\n%s", want, s)
		}
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	var lines []string
	for i := range 50 {
		lines = append(lines, strings.Repeat("x", i))
	}
	got := strings.Split(tail([]byte(strings.Join(lines, "\n")+"\n\n")), "\n")
	if len(got) != 20 || got[19] != lines[49] {
		t.Errorf("tail kept %d lines ending %q", len(got), got[len(got)-1])
	}
}

func TestStartRetriesTakenPort(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	picks := 0
	pick := func() (int, error) {
		picks++
		if picks == 1 {
			return taken.Addr().(*net.TCPAddr).Port, nil
		}
		return freePort()
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	c, err := start(t.Context(), Options{Logger: logger}, pick)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	if picks != 2 {
		t.Errorf("picked %d ports, want 2", picks)
	}
	if c.Port() == taken.Addr().(*net.TCPAddr).Port {
		t.Errorf("cluster runs on the taken port %d", c.Port())
	}
}

func TestStartGivesUpAfterThreeTakenPorts(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	picks := 0
	pick := func() (int, error) {
		picks++
		return taken.Addr().(*net.TCPAddr).Port, nil
	}
	_, err = start(t.Context(), Options{}, pick)
	if err == nil {
		t.Fatal("start on a permanently taken port succeeded")
	}
	if picks != startAttempts {
		t.Errorf("picked %d ports, want %d", picks, startAttempts)
	}
}

func TestValidSettingName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"work_mem":                      true,
		"auto_explain.log_min_duration": true,
		"_x1":                           true,
		"":                              false,
		"1abc":                          false,
		"a.b.c":                         false,
		"a.":                            false,
		"work_mem = 1\nfsync":           false,
		"wörk":                          false,
	} {
		if got := validSettingName(name); got != want {
			t.Errorf("validSettingName(%q) = %v, want %v", name, got, want)
		}
	}
}
