// Package web serves the live clinic dashboard: one page (index.html, app.js,
// style.css) embedded in the binary, which loads three lists from the notifier's GET
// /v1/snapshot/{list} (today's appointments, the check-in queue, the doctors) and
// then follows them live from the snapshots' event id over /socket.io/, with the
// vendored socket.io client.
//
// # Lifecycle
//
// Handler builds the asset table from the embedded files once and serves GET (and
// HEAD) of "/" and "/assets/<name>"; everything else is 404 or 405. There is no
// state: the page keeps its token and lists in the browser tab's memory.
//
// # Vendored client
//
// static/socket.io.min.js is socket.io-client's dist/socket.io.min.js, copied
// unchanged (license header kept: MIT, (c) 2014-2026 Guillermo Rauch) from the
// version testdata/sioclient pins (VendoredClientVersion); a test checks that both
// agree.
//
// # Invariants
//
// Every response (the page, its assets, 404 and 405) carries a
// Content-Security-Policy that allows scripts, styles and images from the notifier
// itself only and connections to it over http(s) and ws(s), no framing,
// Referrer-Policy: no-referrer (the page's URL may hold a token until app.js
// removes it), and X-Content-Type-Options: nosniff with an explicit Content-Type.
// The page itself is Cache-Control: no-store, with or without ?token=, so no cache
// keeps a URL that holds a token. The page loads nothing from anywhere else: no
// CDN, no font service.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

// VendoredClientVersion is the socket.io-client release static/socket.io.min.js
// comes from.
const VendoredClientVersion = "4.8.4"

// AssetPrefix is where the page's scripts and styles are served.
const AssetPrefix = "/assets/"

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string // strong ETag of the content
	hash  string // its first 12 hex digits, the ?v= that index.html asks for
}

// handler serves the page and its assets.
type handler struct {
	index  asset
	assets map[string]asset // by file name
}

// Handler returns the dashboard's handler, to be routed at "GET /{$}" and
// "GET /assets/". It panics only if the embedded files are missing, which the
// package's tests rule out.
func Handler() http.Handler {
	h, err := newHandler(static)
	if err != nil {
		panic(fmt.Sprintf("web: embedded dashboard: %v", err))
	}
	return h
}

func newHandler(fsys fs.FS) (*handler, error) {
	sub, err := fs.Sub(fsys, "static")
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(sub, ".")
	if err != nil {
		return nil, err
	}
	h := &handler{assets: make(map[string]asset)}
	var page []byte
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(sub, e.Name())
		if err != nil {
			return nil, err
		}
		if e.Name() == "index.html" {
			page = b
			continue
		}
		h.assets[e.Name()] = newAsset(b, e.Name())
	}
	if page == nil {
		return nil, fmt.Errorf("static/index.html missing")
	}
	// Ask for each asset by content hash, so browsers may cache it for good: a new
	// build changes the URL.
	for name, a := range h.assets {
		ref := `"` + AssetPrefix + name + `"`
		page = bytes.ReplaceAll(page, []byte(ref), []byte(`"`+AssetPrefix+name+"?v="+a.hash+`"`))
	}
	h.index = newAsset(page, "index.html")
	return h, nil
}

func newAsset(b []byte, name string) asset {
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // do not depend on the system's MIME tables
	case ".html":
		ctype = "text/html; charset=utf-8"
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".svg":
		ctype = "image/svg+xml"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	return asset{body: b, ctype: ctype, etag: `"` + hash[:32] + `"`, hash: hash[:12]}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header(), r.Host)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case r.URL.Path == "/":
		// Never stored: the page is opened as /?token=..., and a stored copy keyed by
		// that URL would keep the token on disk. It is small, and a new build is seen
		// at once.
		h.serve(w, r, h.index, "no-store")
	case strings.HasPrefix(r.URL.Path, AssetPrefix):
		a, ok := h.assets[strings.TrimPrefix(r.URL.Path, AssetPrefix)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		cache := "no-cache"
		if r.URL.Query().Get("v") == a.hash {
			cache = "public, max-age=31536000, immutable"
		}
		h.serve(w, r, a, cache)
	default:
		http.NotFound(w, r)
	}
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, a asset, cache string) {
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("Cache-Control", cache)
	hd.Set("ETag", a.etag)
	// ServeContent answers If-None-Match (304), HEAD and ranges.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// validHost matches a Host header fit to appear in the policy: a name, IPv4 or
// bracketed IPv6 address, and an optional port.
var validHost = regexp.MustCompile(`^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$`)

// securityHeaders sets the headers every response carries (see the package doc).
// connect-src names the page's own host for ws: and wss: because browsers before
// CSP level 3 do not count a WebSocket to the same host as 'self'.
func securityHeaders(h http.Header, host string) {
	connect := "'self'"
	if validHost.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src "+connect+"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}
