package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The clinic's lists (triggers/clinic.yaml) and their page size.
const (
	listToday    = "appointments.today"
	listCheckin  = "appointments.checkin"
	listDoctors  = "doctors"
	snapPageSize = 200
)

var snapLists = []string{listToday, listCheckin, listDoctors}

// snapEvents are the events that carry a row of a list's table.
var snapEvents = []string{
	"appointments.created", "appointments.updated", "appointments.status.changed",
	"appointments.checkin", "appointments.serving", "appointments.finished", "appointments.deleted",
	"doctors.created", "doctors.updated", "doctors.busy", "doctors.deleted",
}

// snapPage is one 200 answer of GET /v1/snapshot/{list}. Pointers tell a missing
// field from a zero one.
type snapPage struct {
	List  *string           `json:"list"`
	Since *int64            `json:"since"`
	Items []json.RawMessage `json:"items"`
	Next  *string           `json:"next"`
}

// snapAnswer is one HTTP answer.
type snapAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a snapAnswer) String() string {
	b := a.body
	if len(b) > 300 {
		b = append(slices.Clone(b[:300]), "..."...)
	}
	return fmt.Sprintf("%d %s", a.status, b)
}

// snapGet requests path (Prefix-relative: "" or "/<list>") with the token in the
// Authorization header, or in ?access_token when inQuery.
func snapGet(ctx context.Context, hc *http.Client, base, tok, path string, q url.Values, inQuery bool) (snapAnswer, error) {
	if q == nil {
		q = url.Values{}
	}
	if tok != "" && inQuery {
		q.Set("access_token", tok)
	}
	u := base + "/v1/snapshot" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return snapAnswer{}, err
	}
	if tok != "" && !inQuery {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return snapAnswer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return snapAnswer{}, fmt.Errorf("read %s: %w", u, err)
	}
	return snapAnswer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// snapItem is one item of a list: its id and payload.
type snapItem struct {
	id  int64
	obj map[string]any
}

// snapshotTaken is a whole snapshot of one list, every page.
type snapshotTaken struct {
	list    string
	since   int64
	items   []snapItem
	pages   int
	retries int // 503s waited out before the first page
}

// snapTake takes a snapshot of list, following next to the last page. pause runs
// between pages (writes interleave there). A 503 with Retry-After on the first page is
// waited out and retried, as a dashboard would; any other refusal is an error.
func snapTake(ctx context.Context, hc *http.Client, base, tok, list string, inQuery bool, pause func()) (snapshotTaken, error) {
	s := snapshotTaken{list: list}
	cursor := ""
	for {
		q := url.Values{}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		a, err := snapGet(ctx, hc, base, tok, "/"+list, q, inQuery)
		if err != nil {
			return s, err
		}
		if a.status == http.StatusServiceUnavailable && cursor == "" && s.retries < 100 {
			secs, err := strconv.Atoi(a.header.Get("Retry-After"))
			if err != nil || secs < 0 {
				return s, fmt.Errorf("503 without a usable Retry-After (%q): %s", a.header.Get("Retry-After"), a)
			}
			s.retries++
			if !sleepCtx(ctx, min(time.Duration(secs)*time.Second, 200*time.Millisecond)) {
				return s, ctx.Err()
			}
			continue
		}
		p, err := snapParsePage(a)
		if err != nil {
			return s, fmt.Errorf("page %d (cursor %q): %w", s.pages+1, cursor, err)
		}
		if *p.List != list {
			return s, fmt.Errorf("page %d: list %q, want %q", s.pages+1, *p.List, list)
		}
		if s.pages == 0 {
			s.since = *p.Since
		} else if *p.Since != s.since {
			return s, fmt.Errorf("page %d: since %d, the first page's was %d", s.pages+1, *p.Since, s.since)
		}
		s.pages++
		for i, raw := range p.Items {
			it, err := snapParseItem(raw)
			if err != nil {
				return s, fmt.Errorf("page %d item %d: %w", s.pages, i, err)
			}
			s.items = append(s.items, it)
		}
		if p.Next == nil {
			if len(p.Items) > snapPageSize {
				return s, fmt.Errorf("last page %d holds %d items, more than the page size %d", s.pages, len(p.Items), snapPageSize)
			}
			return s, nil
		}
		if len(p.Items) != snapPageSize {
			return s, fmt.Errorf("page %d holds %d items and has a next: want %d", s.pages, len(p.Items), snapPageSize)
		}
		cursor = *p.Next
		if pause != nil {
			pause()
		}
	}
}

// snapParsePage checks a 200 answer's shape.
func snapParsePage(a snapAnswer) (snapPage, error) {
	var p snapPage
	if a.status != http.StatusOK {
		return p, fmt.Errorf("status %s", a)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return p, fmt.Errorf("Content-Type %q", ct)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &keys); err != nil {
		return p, fmt.Errorf("body %s: %w", a, err)
	}
	if _, ok := keys["error"]; ok {
		return p, fmt.Errorf("a 200 with an error: %s", a)
	}
	if err := json.Unmarshal(a.body, &p); err != nil {
		return p, fmt.Errorf("body %s: %w", a, err)
	}
	if p.List == nil || p.Since == nil || p.Items == nil {
		return p, fmt.Errorf("list, since or items missing: %s", a)
	}
	if _, ok := keys["next"]; !ok {
		return p, fmt.Errorf("next missing (want a cursor or null): %s", a)
	}
	return p, nil
}

func snapParseItem(raw json.RawMessage) (snapItem, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return snapItem{}, fmt.Errorf("item %s: %w", raw, err)
	}
	id, ok := m["id"].(float64)
	if !ok {
		return snapItem{}, fmt.Errorf("item without a numeric id: %s", raw)
	}
	return snapItem{id: int64(id), obj: m}, nil
}

// snapErrorBody checks a refusal: the status, a JSON {"error": reason} and nothing
// else; it returns a description of what is wrong, "" when nothing is.
func snapErrorBody(a snapAnswer, status int, reason string) string {
	if a.status != status {
		return fmt.Sprintf("status %s, want %d", a, status)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Sprintf("Content-Type %q of %s", ct, a)
	}
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		return fmt.Sprintf("body %s: %v", a, err)
	}
	msg, ok := m["error"].(string)
	if !ok || len(m) != 1 {
		return fmt.Sprintf("want exactly {\"error\": <reason>}, got %s", a)
	}
	if !strings.Contains(msg, reason) {
		return fmt.Sprintf("error %q does not say %q", msg, reason)
	}
	return ""
}

// snapMember says whether a row's payload belongs to list, by the rule a client
// applies (docs: membership on the payload alone).
func snapMember(list, today string, obj map[string]any) bool {
	if obj["deletedAt"] != nil {
		return false
	}
	switch list {
	case listToday:
		d, _ := obj["date"].(string)
		return strings.HasPrefix(d, today+"T")
	case listCheckin:
		st, _ := obj["status"].(map[string]any)
		return st != nil && st["name"] == "Check-in"
	case listDoctors:
		return true
	}
	return false
}

// snapListsOf returns the lists an event's table feeds.
func snapListsOf(event string) []string {
	switch {
	case strings.HasPrefix(event, "appointments."):
		return []string{listToday, listCheckin}
	case strings.HasPrefix(event, "doctors."):
		return []string{listDoctors}
	}
	return nil
}

// snapRow is a list entry a client holds, and the event that put it there (0 for the
// snapshot).
type snapRow struct {
	obj     map[string]any
	eventID int64
	event   string
}

// snapState is a client's lists: list -> row id -> row.
type snapState map[string]map[int64]snapRow

func newSnapState() snapState {
	s := snapState{}
	for _, l := range snapLists {
		s[l] = map[int64]snapRow{}
	}
	return s
}

func (s snapState) load(t snapshotTaken) {
	for _, it := range t.items {
		s[t.list][it.id] = snapRow{obj: it.obj}
	}
}

// snapEvent is an event a client received.
type snapEvent struct {
	id   int64
	name string
	obj  map[string]any // nil when data was not an object
}

// apply applies ev to list, as a dashboard does: a delete removes; any other event
// upserts the row when it belongs, else removes it. previousStatus, which
// appointments.status.changed adds for the handler, is not part of the row.
func (s snapState) apply(list, today string, ev snapEvent) {
	id, ok := ev.obj["id"].(float64)
	if !ok {
		return
	}
	if strings.HasSuffix(ev.name, ".deleted") || !snapMember(list, today, ev.obj) {
		delete(s[list], int64(id))
		return
	}
	row := maps.Clone(ev.obj)
	delete(row, "previousStatus")
	s[list][int64(id)] = snapRow{obj: row, eventID: ev.id, event: ev.name}
}

// snapDiff compares the lists held (a client's, or those the log makes up to H),
// named held, with a snapshot's items; it returns one line per difference.
func snapDiff(want []snapItem, got map[int64]snapRow, held string) []string {
	var out []string
	seen := map[int64]bool{}
	for _, it := range want {
		seen[it.id] = true
		r, ok := got[it.id]
		if !ok {
			out = append(out, fmt.Sprintf("id %d is in the snapshot, not in %s: %s", it.id, held, snapJSON(it.obj)))
			continue
		}
		if !reflect.DeepEqual(r.obj, it.obj) {
			out = append(out, fmt.Sprintf("id %d differs in %s (as of %s): %s held %s, snapshot %s",
				it.id, snapFieldDiff(r.obj, it.obj), r.from(), held, snapJSON(r.obj), snapJSON(it.obj)))
		}
	}
	var extra []int64
	for id := range got {
		if !seen[id] {
			extra = append(extra, id)
		}
	}
	slices.Sort(extra)
	for _, id := range extra {
		out = append(out, fmt.Sprintf("id %d is in %s (as of %s), not in the snapshot: %s", id, held, got[id].from(), snapJSON(got[id].obj)))
	}
	return out
}

func (r snapRow) from() string {
	if r.eventID == 0 {
		return "the snapshot"
	}
	return fmt.Sprintf("event %d %s", r.eventID, r.event)
}

func snapFieldDiff(a, b map[string]any) string {
	var keys []string
	for k := range a {
		if !reflect.DeepEqual(a[k], b[k]) {
			keys = append(keys, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func snapJSON(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 400 {
		return string(b[:400]) + "..."
	}
	return string(b)
}

// snapForeign returns the path of an accountId in v (at any depth) that is neither
// account nor null, "" when there is none.
func snapForeign(account int64, v any) string {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if k == "accountId" {
				if n, ok := v[k].(float64); ok && int64(n) != account {
					return fmt.Sprintf("accountId=%d", int64(n))
				}
				continue
			}
			if p := snapForeign(account, v[k]); p != "" {
				return k + "." + p
			}
		}
	case []any:
		for i, e := range v {
			if p := snapForeign(account, e); p != "" {
				return fmt.Sprintf("[%d].%s", i, p)
			}
		}
	}
	return ""
}

// snapCheckItems checks one snapshot on its own: no id twice, every item of account
// and of the list by the client's rule, and the list's order as PostgreSQL sorts
// it (its collation decides names).
func snapCheckItems(ctx context.Context, db *pgxpool.Pool, account int64, today string, s snapshotTaken) []string {
	var out []string
	seen := map[int64]int{}
	for i, it := range s.items {
		if j, ok := seen[it.id]; ok {
			out = append(out, fmt.Sprintf("id %d at positions %d and %d", it.id, j, i))
		}
		seen[it.id] = i
		if p := snapForeign(account, it.obj); p != "" {
			out = append(out, fmt.Sprintf("id %d of another account (%s): %s", it.id, p, snapJSON(it.obj)))
		}
		if !snapMember(s.list, today, it.obj) {
			out = append(out, fmt.Sprintf("id %d does not belong to the list: %s", it.id, snapJSON(it.obj)))
		}
	}
	want, err := snapSorted(ctx, db, s)
	if err != nil {
		return append(out, fmt.Sprintf("sort: %v", err))
	}
	got := make([]int64, len(s.items))
	for i, it := range s.items {
		got[i] = it.id
	}
	if !slices.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				out = append(out, fmt.Sprintf("out of order from position %d: id %d, want %d", i, got[i], want[i]))
				break
			}
		}
	}
	return out
}

// snapSorted returns the items' ids in the list's order, sorted by PostgreSQL from
// the payloads' own fields.
func snapSorted(ctx context.Context, db *pgxpool.Pool, s snapshotTaken) ([]int64, error) {
	var k1, k2 []string
	var ids []int64
	for _, it := range s.items {
		ids = append(ids, it.id)
		switch s.list {
		case listToday:
			d, _ := it.obj["date"].(string)
			st, _ := it.obj["startTime"].(string)
			k1, k2 = append(k1, d), append(k2, st)
		case listCheckin:
			u, _ := it.obj["updatedAt"].(string)
			k1, k2 = append(k1, u), append(k2, "")
		default:
			n, _ := it.obj["name"].(string)
			k1, k2 = append(k1, n), append(k2, "")
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	q := `SELECT array_agg(id ORDER BY k1, k2, id) FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(k1, k2, id)`
	if s.list != listDoctors { // ISO timestamps: compare as times
		q = `SELECT array_agg(id ORDER BY k1::timestamptz, k2, id) FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(k1, k2, id)`
	}
	var out []int64
	err := db.QueryRow(ctx, q, k1, k2, ids).Scan(&out)
	return out, err
}

// snapSQL returns the ids of a list as the clinic's tables hold them now, in the
// list's order: an oracle independent of the notifier's list functions.
func snapSQL(ctx context.Context, db *pgxpool.Pool, list string, account int64, today string) ([]int64, error) {
	var q string
	switch list {
	case listToday:
		q = `SELECT coalesce(array_agg(id ORDER BY date, "startTime", id), '{}') FROM appointments
WHERE "accountId" = $1 AND "deletedAt" IS NULL AND date >= $2::date AND date < $2::date + 1`
	case listCheckin:
		q = `SELECT coalesce(array_agg(a.id ORDER BY a."updatedAt", a.id), '{}') FROM appointments a JOIN statuses s ON s.id = a."statusId"
WHERE a."accountId" = $1 AND a."deletedAt" IS NULL AND s.name = 'Check-in' AND $2::text IS NOT NULL`
	default:
		q = `SELECT coalesce(array_agg(id ORDER BY name, id), '{}') FROM doctors WHERE "accountId" = $1 AND "deletedAt" IS NULL AND $2::text IS NOT NULL`
	}
	var ids []int64
	err := db.QueryRow(ctx, q, account, today).Scan(&ids)
	return ids, err
}

// snapIDs returns the items' ids in order.
func snapIDs(items []snapItem) []int64 {
	out := make([]int64, len(items))
	for i, it := range items {
		out[i] = it.id
	}
	return out
}

// pgxCollectIDs reads one bigint column.
func pgxCollectIDs(rows pgx.Rows) ([]int64, error) {
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}
