package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pgnotifier/notifier/notifier/web"
)

// get serves one request through a mux routed as notifier.Service routes it.
func get(t *testing.T, method, target string, header http.Header) *http.Response {
	t.Helper()
	mux := http.NewServeMux()
	h := web.Handler()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET "+web.AssetPrefix, h)
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var assetRef = regexp.MustCompile(`"/assets/([a-z.]+)\?v=([0-9a-f]{12})"`)

func TestPage(t *testing.T) {
	t.Parallel()
	resp := get(t, http.MethodGet, "http://localhost:8080/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %s", resp.Status)
	}
	page := body(t, resp)
	want := map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' ws://localhost:8080 wss://localhost:8080; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if resp.Header.Get("ETag") == "" {
		t.Error("no ETag")
	}
	refs := assetRef.FindAllStringSubmatch(page, -1)
	names := map[string]bool{}
	for _, m := range refs {
		names[m[1]] = true
	}
	for _, n := range []string{"app.js", "style.css", "socket.io.min.js", "icon.svg"} {
		if !names[n] {
			t.Errorf("page does not reference /assets/%s?v=<hash> (refs %v)", n, refs)
		}
	}
	for _, needle := range []string{"Today's appointments", "Check-in queue", "Doctors", `id="conn"`, `id="live-since"`, `id="sign-out"`, `data-i18n="apptTitle"`} {
		if !strings.Contains(page, needle) {
			t.Errorf("page lacks %q", needle)
		}
	}
}

// TestAssets: each asset has its type; asked for by its current hash it is cached
// for good, otherwise revalidated; ETags give 304s; HEAD works.
func TestAssets(t *testing.T) {
	t.Parallel()
	page := body(t, get(t, http.MethodGet, "/", nil))
	types := map[string]string{
		"app.js":           "text/javascript; charset=utf-8",
		"socket.io.min.js": "text/javascript; charset=utf-8",
		"style.css":        "text/css; charset=utf-8",
		"icon.svg":         "image/svg+xml",
	}
	for _, m := range assetRef.FindAllStringSubmatch(page, -1) {
		name, hash := m[1], m[2]
		t.Run(name, func(t *testing.T) {
			resp := get(t, http.MethodGet, "/assets/"+name+"?v="+hash, nil)
			b := body(t, resp)
			if resp.StatusCode != http.StatusOK || len(b) == 0 {
				t.Fatalf("GET = %s, %d bytes", resp.Status, len(b))
			}
			if got := resp.Header.Get("Content-Type"); got != types[name] {
				t.Errorf("Content-Type = %q, want %q", got, types[name])
			}
			if got := resp.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
				t.Errorf("Cache-Control with current hash = %q", got)
			}
			if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("security headers missing")
			}
			stale := get(t, http.MethodGet, "/assets/"+name+"?v=000000000000", nil)
			if got := stale.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control with another hash = %q, want no-cache", got)
			}
			etag := resp.Header.Get("ETag")
			cached := get(t, http.MethodGet, "/assets/"+name, http.Header{"If-None-Match": {etag}})
			if cached.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match %s = %s, want 304", etag, cached.Status)
			}
			head := get(t, http.MethodHead, "/assets/"+name, nil)
			if head.StatusCode != http.StatusOK || body(t, head) != "" {
				t.Errorf("HEAD = %s", head.Status)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method, target string
		status         int
	}{
		{http.MethodGet, "/assets/missing.js", http.StatusNotFound},
		{http.MethodGet, "/assets/", http.StatusNotFound},
		{http.MethodGet, "/assets/static/app.js", http.StatusNotFound},
		{http.MethodGet, "/index.html", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/assets/app.js", http.StatusMethodNotAllowed},
	} {
		resp := get(t, tc.method, tc.target, nil)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s = %s, want %d", tc.method, tc.target, resp.Status, tc.status)
		}
	}
	// The handler on its own (mounted elsewhere) refuses other methods too.
	rec := httptest.NewRecorder()
	web.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("PUT / = %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

// TestTokenSafeHeaders: the page, opened with or without a token in its URL, is
// never stored; it and everything else the handler answers are nosniff and send no
// referrer, since the page's URL may carry the token.
func TestTokenSafeHeaders(t *testing.T) {
	t.Parallel()
	page := body(t, get(t, http.MethodGet, "/", nil))
	targets := []string{"/", "/?token=eyJhbGciOiJIUzI1NiJ9.e30.sig", "/?token=x&since=1"}
	pageTargets := len(targets)
	for _, m := range assetRef.FindAllStringSubmatch(page, -1) {
		targets = append(targets, "/assets/"+m[1]+"?v="+m[2], "/assets/"+m[1])
	}
	if len(targets) == pageTargets {
		t.Fatal("page references no assets")
	}
	targets = append(targets, "/assets/missing.js")
	for i, target := range targets {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp := get(t, method, target, nil)
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("%s %s: X-Content-Type-Options = %q, want nosniff", method, target, got)
			}
			if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
				t.Errorf("%s %s: Referrer-Policy = %q, want no-referrer", method, target, got)
			}
			if got := resp.Header.Get("Cache-Control"); i < pageTargets && got != "no-store" {
				t.Errorf("%s %s: Cache-Control = %q, want no-store", method, target, got)
			}
		}
	}
	// A conditional request for the page gets the same.
	etag := get(t, http.MethodGet, "/?token=x", nil).Header.Get("ETag")
	resp := get(t, http.MethodGet, "/?token=x", http.Header{"If-None-Match": {etag}})
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("conditional GET of the page: status %d, Cache-Control = %q, want no-store", resp.StatusCode, got)
	}
	// So does a method the handler refuses, mounted on its own.
	rec := httptest.NewRecorder()
	web.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/?token=x", nil))
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("POST /?token=x: headers %v", rec.Header())
	}
}

// TestPolicyHost: a Host header unfit for the policy leaves connect-src at 'self'.
func TestPolicyHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]string{
		"127.0.0.1:9000":   "connect-src 'self' ws://127.0.0.1:9000 wss://127.0.0.1:9000;",
		"[::1]:8080":       "connect-src 'self' ws://[::1]:8080 wss://[::1]:8080;",
		"notifier.example": "connect-src 'self' ws://notifier.example wss://notifier.example;",
		"evil; script-src": "connect-src 'self';",
		"a b":              "connect-src 'self';",
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		web.Handler().ServeHTTP(rec, req)
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, want) {
			t.Errorf("Host %q: policy %q lacks %q", host, csp, want)
		}
	}
}

// TestNothingExternal: the page's own files load nothing from elsewhere and keep
// the token out of persistent storage and cookies (only the tab's sessionStorage,
// in app.js, holds it).
func TestNothingExternal(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, err := os.ReadFile("static/" + name)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, bad := range []string{"http://", "https://", "//cdn", "@import", "url(", "localStorage", "document.cookie", "indexedDB", "innerHTML"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}

// TestVendoredClient: the vendored client is the release testdata/sioclient pins,
// byte for byte when node_modules is installed, and keeps its license header.
func TestVendoredClient(t *testing.T) {
	t.Parallel()
	vendored, err := os.ReadFile("static/socket.io.min.js")
	if err != nil {
		t.Fatal(err)
	}
	header := "/*!\n * Socket.IO v" + web.VendoredClientVersion + "\n"
	if !strings.HasPrefix(string(vendored), header) || !strings.Contains(string(vendored[:200]), "Released under the MIT License.") {
		t.Errorf("vendored client does not start with the v%s MIT header: %q", web.VendoredClientVersion, vendored[:120])
	}
	pkg, err := os.ReadFile("../../testdata/sioclient/package.json")
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(pkg, &manifest); err != nil {
		t.Fatal(err)
	}
	if pinned := manifest.Dependencies["socket.io-client"]; pinned != web.VendoredClientVersion {
		t.Errorf("testdata/sioclient pins socket.io-client %q, the vendored copy is %q: copy node_modules/socket.io-client/dist/socket.io.min.js again", pinned, web.VendoredClientVersion)
	}
	installed, err := os.ReadFile("../../testdata/sioclient/node_modules/socket.io-client/dist/socket.io.min.js")
	if os.IsNotExist(err) {
		t.Log("node_modules not installed (npm ci --prefix testdata/sioclient): byte comparison skipped")
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(installed) != string(vendored) {
		t.Error("static/socket.io.min.js differs from the installed socket.io-client's dist/socket.io.min.js")
	}
}

// TestEventsHandled: the page listens to every clinic event, so none is silently
// dropped by the board.
func TestEventsHandled(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, event := range []string{
		"appointments.created", "appointments.updated", "appointments.status.changed",
		"appointments.checkin", "appointments.serving", "appointments.finished", "appointments.deleted",
		"doctors.created", "doctors.updated", "doctors.busy", "doctors.deleted",
		"notifier.resync", "notifier.disconnect",
	} {
		if !strings.Contains(string(b), "'"+event+"'") {
			t.Errorf("app.js does not handle %s", event)
		}
	}
}

// TestSnapshotLists: the page loads each panel's list from the snapshot API before it
// follows events, with the token in a header (never in the URL), and follows from
// the lists' H.
func TestSnapshotLists(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, needle := range []string{
		"'/v1/snapshot/'", "'appointments.today'", "'appointments.checkin'", "'doctors'",
		"Authorization: 'Bearer '", "since: state.since", "'?cursor='",
		"window.sessionStorage.setItem(TOKEN_KEY", "hourCycle: 'h23'", "'pt-BR': {", "document.documentElement.lang = LANG",
	} {
		if !strings.Contains(s, needle) {
			t.Errorf("app.js lacks %s", needle)
		}
	}
	if strings.Contains(s, "access_token") {
		t.Error("app.js puts the token in a URL (access_token)")
	}
}
