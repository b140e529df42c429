// Package snapshot serves GET /v1/snapshot/{list}: the rows a dashboard's list holds
// now, with the payloads live events carry, and H, the highest event id the same
// snapshot sees. Following /ws?since=H (or Socket.IO auth.since) then delivers exactly
// what committed after it: no gap, no duplicate (docs/design.md §10).
//
// # Lifecycle
//
// A first request reads the whole list (at most Config.MaxItems rows) in one REPEATABLE
// READ, READ ONLY transaction: H, then the list's function (notifier."list_<name>",
// installed by its rules migration), which reads the rows and runs the rule's own
// enrichment query over them. The first page is answered; the rest wait for their
// cursors (one per page: asking again gets the same page) for Config.CursorTTL, on
// this instance.
//
// # Concurrency
//
// A Handler is safe for concurrent use. At most Config.MaxConcurrent snapshots read the
// database at once and Config.MaxQueued wait; beyond, 503 with Retry-After.
//
// # Invariants
//
// An answer is a whole page or a JSON error, never part of a list; every page of a
// cursor has the first page's H; a cursor serves only the account and list it was made
// for.
package snapshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/metrics"
)

// Prefix is the path the handler serves: Prefix lists the lists, Prefix + "/" + name
// one list.
const Prefix = "/v1/snapshot"

// Defaults of Config.
const (
	DefaultMaxConcurrent = 4
	DefaultMaxQueued     = 64
	DefaultMaxItems      = 10000
	DefaultCursorTTL     = time.Minute
	DefaultMaxCursors    = 256
	DefaultMaxKeptBytes  = 64 << 20
)

// Config tunes a Handler; zero values take the defaults.
type Config struct {
	MaxConcurrent int           // snapshot transactions at once
	MaxQueued     int           // requests waiting for one; more get 503 (0: DefaultMaxQueued, <0: none)
	MaxItems      int           // rows one snapshot may hold; a longer list is refused (422)
	CursorTTL     time.Duration // how long later pages wait for their cursor
	MaxCursors    int           // cursors kept at once; the oldest go first
	MaxKeptBytes  int           // bytes of later pages kept in all; the oldest cursors go first
	NowFunc       func() time.Time
	Logger        *slog.Logger
	Metrics       *metrics.Registry
}

// List is an installed list (notifier.lists).
type List struct {
	Name     string `json:"name"`
	Rule     string `json:"rule"`
	PageSize int    `json:"limit"`
}

// Handler serves the snapshots.
type Handler struct {
	cfg      Config
	db       *pgxpool.Pool
	verifier *auth.Verifier
	logger   *slog.Logger

	slots   chan struct{} // a token per snapshot reading the database
	waiting atomic.Int64

	listsMu   sync.Mutex
	lists     atomic.Pointer[map[string]List]
	listsRead time.Time

	mu      sync.Mutex
	cursors map[string]*cursor
	kept    int    // bytes of the pages in cursors
	seq     uint64 // cursors made

	served, refused *metrics.Counter
}

// cursor holds the pages of one snapshot after the first.
type cursor struct {
	account int64
	list    string
	since   int64
	pages   [][]json.RawMessage
	size    int    // bytes of pages
	seq     uint64 // order of making: the lowest is the oldest
	expires time.Time
}

// New returns a Handler reading through db and authenticating with v.
func New(cfg Config, db *pgxpool.Pool, v *auth.Verifier) *Handler {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	switch {
	case cfg.MaxQueued == 0:
		cfg.MaxQueued = DefaultMaxQueued
	case cfg.MaxQueued < 0:
		cfg.MaxQueued = 0
	}
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = DefaultMaxItems
	}
	if cfg.CursorTTL <= 0 {
		cfg.CursorTTL = DefaultCursorTTL
	}
	if cfg.MaxCursors <= 0 {
		cfg.MaxCursors = DefaultMaxCursors
	}
	if cfg.MaxKeptBytes <= 0 {
		cfg.MaxKeptBytes = DefaultMaxKeptBytes
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	h := &Handler{
		cfg: cfg, db: db, verifier: v, logger: cfg.Logger.With("component", "snapshot"),
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		cursors: make(map[string]*cursor),
		served:  cfg.Metrics.Counter("notifier_snapshots_total", "Snapshot pages answered."),
		refused: cfg.Metrics.Counter("notifier_snapshots_refused_total", "Snapshot requests refused because too many were in progress."),
	}
	empty := map[string]List{}
	h.lists.Store(&empty)
	return h
}

// Load reads the installed lists, at most once a second.
func (h *Handler) Load(ctx context.Context) error {
	h.listsMu.Lock()
	defer h.listsMu.Unlock()
	if time.Since(h.listsRead) < time.Second {
		return nil
	}
	rows, err := h.db.Query(ctx, "SELECT name, rule, page_size FROM notifier.lists ORDER BY name")
	if err != nil {
		return fmt.Errorf("read lists: %w", err)
	}
	ls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (List, error) {
		var l List
		return l, r.Scan(&l.Name, &l.Rule, &l.PageSize)
	})
	if err != nil {
		return fmt.Errorf("read lists: %w", err)
	}
	m := make(map[string]List, len(ls))
	for _, l := range ls {
		m[l.Name] = l
	}
	h.lists.Store(&m)
	h.listsRead = time.Now()
	return nil
}

// errorAnswer is a refusal: its status and reason.
type errorAnswer struct {
	status int
	reason string
}

func (e *errorAnswer) Error() string { return e.reason }

func refuse(status int, format string, args ...any) error {
	return &errorAnswer{status: status, reason: fmt.Sprintf(format, args...)}
}

// ServeHTTP answers GET Prefix and GET Prefix/{list}.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := h.serve(r)
	if err != nil {
		var e *errorAnswer
		if !errors.As(err, &e) {
			h.logger.ErrorContext(r.Context(), "snapshot failed", "path", r.URL.Path, "error", err)
			e = &errorAnswer{status: http.StatusServiceUnavailable, reason: "snapshot failed: the database is unavailable, retry"}
		}
		if e.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeJSON(w, e.status, mustJSON(map[string]string{"error": e.reason}))
		return
	}
	h.served.Inc()
	writeJSON(w, http.StatusOK, body)
}

func (h *Handler) serve(r *http.Request) ([]byte, error) {
	token, err := auth.TokenFromRequest(r)
	if err != nil {
		return nil, refuse(http.StatusUnauthorized, "%v", err)
	}
	claims, err := h.verifier.VerifyContext(r.Context(), token, h.cfg.NowFunc())
	switch {
	case errors.Is(err, auth.ErrKeysUnavailable):
		return nil, refuse(http.StatusServiceUnavailable, "%v", err)
	case err != nil:
		return nil, refuse(http.StatusUnauthorized, "%v", err)
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	name = strings.TrimPrefix(name, "/")
	if !ok || strings.Contains(name, "/") {
		return nil, refuse(http.StatusNotFound, "not found")
	}
	if name == "" {
		return h.index(r.Context())
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		return h.next(claims.AccountID, name, c)
	}
	l, ok := h.list(r.Context(), name)
	if !ok {
		return nil, refuse(http.StatusNotFound, "unknown list %q", truncate(name))
	}
	return h.first(r.Context(), claims.AccountID, l)
}

func (h *Handler) index(ctx context.Context) ([]byte, error) {
	if err := h.Load(ctx); err != nil {
		return nil, err
	}
	m := *h.lists.Load()
	out := struct {
		Lists []List `json:"lists"`
	}{Lists: make([]List, 0, len(m))}
	for _, l := range m {
		out.Lists = append(out.Lists, l)
	}
	slices.SortFunc(out.Lists, func(a, b List) int { return strings.Compare(a.Name, b.Name) })
	return mustJSON(out), nil
}

// list finds an installed list, reading the lists again when it is not known yet.
func (h *Handler) list(ctx context.Context, name string) (List, bool) {
	if l, ok := (*h.lists.Load())[name]; ok {
		return l, true
	}
	if err := h.Load(ctx); err != nil {
		h.logger.WarnContext(ctx, "reading the lists failed", "error", err)
	}
	l, ok := (*h.lists.Load())[name]
	return l, ok
}

// first takes the snapshot of l for account and answers its first page.
func (h *Handler) first(ctx context.Context, account int64, l List) ([]byte, error) {
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	since, items, err := h.read(ctx, account, l)
	<-h.slots
	if err != nil {
		return nil, err
	}
	if len(items) > h.cfg.MaxItems {
		return nil, refuse(http.StatusUnprocessableEntity, "list %q has more than %d rows (snapshot.max_items): narrow it", l.Name, h.cfg.MaxItems)
	}
	var pages [][]json.RawMessage
	for len(items) > l.PageSize {
		pages = append(pages, items[:l.PageSize])
		items = items[l.PageSize:]
	}
	pages = append(pages, items)
	next := ""
	if len(pages) > 1 {
		next = h.keep(&cursor{account: account, list: l.Name, since: since, pages: pages[1:]}) + ".1"
	}
	return page(l.Name, since, pages[0], next), nil
}

// acquire takes a snapshot slot, waiting in line if there is room in it.
func (h *Handler) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
	}
	if h.waiting.Add(1) > int64(h.cfg.MaxQueued) {
		h.waiting.Add(-1)
		h.refused.Inc()
		return refuse(http.StatusServiceUnavailable, "too many snapshots in progress: retry")
	}
	defer h.waiting.Add(-1)
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return refuse(http.StatusServiceUnavailable, "snapshot abandoned: %v", ctx.Err())
	}
}

// read runs the snapshot's transaction: H, then the list's rows with their payloads.
func (h *Handler) read(ctx context.Context, account int64, l List) (int64, []json.RawMessage, error) {
	var since int64
	var items []json.RawMessage
	err := pgx.BeginTxFunc(ctx, h.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The first statement takes the snapshot: H is the newest event it sees.
		// Ids are drawn at commit under notifier.commit_lock, in commit order, so the
		// snapshot holds every event-making commit up to H and none after.
		if err := tx.QueryRow(ctx, `SELECT greatest((SELECT max(id) FROM notifier.events), (SELECT pruned_through FROM notifier.log_state))`).Scan(&since); err != nil {
			return fmt.Errorf("read the log's head: %w", err)
		}
		rows, err := tx.Query(ctx, "SELECT payload::text FROM notifier."+pgx.Identifier{"list_" + l.Name}.Sanitize()+"($1, $2)", account, h.cfg.MaxItems+1)
		if err != nil {
			return fmt.Errorf("read list %s: %w", l.Name, err)
		}
		defer rows.Close()
		var raw []byte
		for rows.Next() {
			if err := rows.Scan(&raw); err != nil {
				return fmt.Errorf("read list %s: %w", l.Name, err)
			}
			var buf bytes.Buffer
			buf.Grow(len(raw))
			if err := json.Compact(&buf, raw); err != nil {
				return fmt.Errorf("list %s: compact json: %w", l.Name, err)
			}
			items = append(items, buf.Bytes())
		}
		return rows.Err()
	})
	return since, items, err
}

// keep stores c and returns its id, "<H>.<random>"; the cursor of its page k (the
// first page is 0) is "<id>.<k>", so asking for a page again (a lost answer) gets the
// same page. Expired cursors go first, then the oldest, until both bounds hold.
func (h *Handler) keep(c *cursor) string {
	now := h.cfg.NowFunc()
	c.expires = now.Add(h.cfg.CursorTTL)
	for _, p := range c.pages {
		for _, it := range p {
			c.size += len(it)
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := strconv.FormatInt(c.since, 10) + "." + base64.RawURLEncoding.EncodeToString(b[:])
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, v := range h.cursors {
		if now.After(v.expires) {
			h.drop(k)
		}
	}
	for len(h.cursors) > 0 && (len(h.cursors) >= h.cfg.MaxCursors || h.kept+c.size > h.cfg.MaxKeptBytes) {
		var oldest string
		for k, v := range h.cursors {
			if oldest == "" || v.seq < h.cursors[oldest].seq {
				oldest = k
			}
		}
		h.drop(oldest)
	}
	h.seq++
	c.seq = h.seq
	h.cursors[id] = c
	h.kept += c.size
	return id
}

// drop forgets cursor id; h.mu is held.
func (h *Handler) drop(id string) {
	if c, ok := h.cursors[id]; ok {
		h.kept -= c.size
		delete(h.cursors, id)
	}
}

// next answers the page a cursor names: "<H>.<random>.<k>".
func (h *Handler) next(account int64, list, cur string) ([]byte, error) {
	head, rest, ok1 := strings.Cut(cur, ".")
	rnd, num, ok2 := strings.Cut(rest, ".")
	k, err := strconv.Atoi(num)
	if _, herr := strconv.ParseInt(head, 10, 64); herr != nil || !ok1 || !ok2 || err != nil || k < 1 || len(rnd) != 22 {
		return nil, refuse(http.StatusBadRequest, "malformed cursor")
	}
	if _, err := base64.RawURLEncoding.DecodeString(rnd); err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed cursor")
	}
	id := head + "." + rnd
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.cursors[id]
	if !ok || h.cfg.NowFunc().After(c.expires) || k > len(c.pages) {
		if ok && k <= len(c.pages) {
			h.drop(id)
		}
		return nil, refuse(http.StatusGone, "cursor expired or unknown: take a new snapshot")
	}
	if c.account != account || c.list != list {
		return nil, refuse(http.StatusForbidden, "cursor belongs to another account or list")
	}
	next := ""
	if k < len(c.pages) {
		next = id + "." + strconv.Itoa(k+1)
	}
	return page(list, c.since, c.pages[k-1], next), nil
}

// page encodes one answer; items are JSON already.
func page(list string, since int64, items []json.RawMessage, next string) []byte {
	n := 64 + len(list)
	for _, it := range items {
		n += len(it) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"list":`...)
	b = append(b, mustJSON(list)...)
	b = append(b, `,"since":`...)
	b = strconv.AppendInt(b, since, 10)
	b = append(b, `,"items":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	b = append(b, `],"next":`...)
	if next == "" {
		b = append(b, "null"...)
	} else {
		b = append(b, mustJSON(next)...)
	}
	return append(b, '}', '\n')
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings and plain structs only
	}
	return b
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
