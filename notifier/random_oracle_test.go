package notifier_test

// The oracle of TestRandomized: a model of what each writer committed, the events the
// contract derives from it, and the comparison of what every client received with
// them. Nothing here touches the notifier: it sees only the SQL the writers ran (and
// whether COMMIT returned nil) and the frames the clients read.

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The clinic's events (triggers/clinic.yaml), as the oracle derives them.
const (
	kindCreated   = "appointments.created"
	kindUpdated   = "appointments.updated"
	kindStatus    = "appointments.status.changed"
	kindCheckin   = "appointments.checkin"
	kindServing   = "appointments.serving"
	kindFinished  = "appointments.finished"
	kindDeleted   = "appointments.deleted"
	kindDoctor    = "doctors.created"
	kindDocUpdate = "doctors.updated"
	kindDocDelete = "doctors.deleted"
)

// knownKinds are the events the writers can cause (they never set isBusy or deletedAt).
var knownKinds = map[string]bool{
	kindCreated: true, kindUpdated: true, kindStatus: true, kindCheckin: true, kindServing: true,
	kindFinished: true, kindDeleted: true, kindDoctor: true, kindDocUpdate: true, kindDocDelete: true,
}

func isDoctorKind(kind string) bool { return strings.HasPrefix(kind, "doctors.") }

// apptState is an appointment row as one writer knows it; 0 is NULL for the ids.
type apptState struct {
	exists                           bool
	account, status, doctor, patient int64
	notes, start                     string
}

// docState is a doctor row.
type docState struct {
	exists  bool
	account int64
	name    string
}

// facts are what an event's data must say: the row as of its commit.
type facts struct {
	account         int64
	status          int64
	statusName      string
	notes, start    string
	doctor, patient int64 // expected joined objects' ids, 0 for null
	name            string
}

// expEvent is one event the contract says a committed transaction emits.
type expEvent struct {
	kind  string
	row   int64
	facts facts
	tx    *txRecord
	pos   int // position among its transaction's events
}

func rowKeyOf(kind string, row int64) string { return kind + "|" + strconv.FormatInt(row, 10) }

// key identifies the event: every write sets a unique notes (appointments) or name
// (doctors), so kind, row and that string name one commit's event.
func (e *expEvent) key() string {
	if isDoctorKind(e.kind) {
		return rowKeyOf(e.kind, e.row) + "|" + e.facts.name
	}
	return rowKeyOf(e.kind, e.row) + "|" + e.facts.notes
}

func (e *expEvent) String() string {
	return fmt.Sprintf("%s row %d {%s} (event %d of tx %s, COMMIT %s..%s)", e.kind, e.row, e.facts.describe(e.kind),
		e.pos+1, e.tx.label, e.tx.o.rel(e.tx.commitStart), e.tx.o.rel(e.tx.commitEnd))
}

func (f facts) describe(kind string) string {
	if isDoctorKind(kind) {
		return fmt.Sprintf("accountId=%d name=%q", f.account, f.name)
	}
	return fmt.Sprintf("accountId=%d statusId=%d status.name=%q notes=%q startTime=%q doctor=%s patient=%s",
		f.account, f.status, f.statusName, f.notes, f.start, objID(f.doctor), objID(f.patient))
}

func objID(id int64) string {
	if id == 0 {
		return "null"
	}
	return fmt.Sprintf("{id:%d}", id)
}

// txRecord is one committed transaction.
type txRecord struct {
	o                      *oracle
	label                  string // "w2#17": writer 2's 17th transaction
	commitStart, commitEnd time.Time
	events                 []*expEvent
}

type rowRef struct {
	doctor bool
	id     int64
}

func (r rowRef) String() string {
	if r.doctor {
		return fmt.Sprintf("doctor %d", r.id)
	}
	return fmt.Sprintf("appointment %d", r.id)
}

// oracle holds every committed transaction's expected events.
type oracle struct {
	start time.Time // test start, for relative times in messages

	// Reference data, read before any write and never changed by the test.
	checkin        int64
	statusName     map[int64]string
	statuses       []int64 // sorted
	doctorAccount  map[int64]int64
	doctors        []int64 // seeded, sorted
	patientAccount map[int64]int64
	patients       []int64

	mu         sync.Mutex
	txs        []*txRecord
	byKey      map[string]*expEvent
	byRow      map[string][]*expEvent // rowKeyOf(kind,row) -> events in commit order
	history    map[rowRef][]string    // what each transaction did to the row
	committed  int
	rolledBack int
	byKind     map[string]int
}

func (o *oracle) rel(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return fmt.Sprintf("t+%.3fs", t.Sub(o.start).Seconds())
}

// opRec is one statement of a transaction, for row histories.
type opRec struct {
	row        rowRef
	text       string
	rolledBack bool // undone by ROLLBACK TO SAVEPOINT
}

type apptTouch struct {
	before, now apptState
	first       int // order of the row's first (surviving) write in the transaction
}

type docTouch struct {
	before, now docState
	first       int
}

// txModel follows one open transaction of a writer.
type txModel struct {
	w     *writerState
	appts map[int64]apptTouch
	docs  map[int64]docTouch
	ins   []int64 // appointments inserted in this transaction, in order
	insD  []int64 // doctors inserted
	seq   int
	ops   []opRec
}

type txSnap struct {
	appts     map[int64]apptTouch
	docs      map[int64]docTouch
	ins, insD []int64
	opLen     int
}

// writerState is what one writer committed: the rows it owns (no other writer touches
// them, so the state before each of its transactions is exactly this).
type writerState struct {
	idx     int
	appts   map[int64]apptState
	apptIDs []int64 // existing, sorted
	docs    map[int64]docState
	docIDs  []int64
	txSeq   int
	opSeq   int
}

func newWriterState(idx int) *writerState {
	return &writerState{idx: idx, appts: map[int64]apptState{}, docs: map[int64]docState{}}
}

func (w *writerState) begin() *txModel {
	return &txModel{w: w, appts: map[int64]apptTouch{}, docs: map[int64]docTouch{}}
}

func (m *txModel) snapshot() txSnap {
	return txSnap{appts: maps.Clone(m.appts), docs: maps.Clone(m.docs), ins: slices.Clone(m.ins), insD: slices.Clone(m.insD), opLen: len(m.ops)}
}

// restore is ROLLBACK TO SAVEPOINT: the writes since s never happened.
func (m *txModel) restore(s txSnap) {
	m.appts, m.docs, m.ins, m.insD = s.appts, s.docs, s.ins, s.insD
	for i := s.opLen; i < len(m.ops); i++ {
		m.ops[i].rolledBack = true
	}
}

// curAppt is the appointment as the transaction sees it.
func (m *txModel) curAppt(id int64) apptState {
	if t, ok := m.appts[id]; ok {
		return t.now
	}
	return m.w.appts[id]
}

func (m *txModel) curDoc(id int64) docState {
	if t, ok := m.docs[id]; ok {
		return t.now
	}
	return m.w.docs[id]
}

// appts lists the appointments the transaction can see, committed ones first.
func (m *txModel) liveAppts() []int64 {
	var out []int64
	for _, id := range m.w.apptIDs {
		if m.curAppt(id).exists {
			out = append(out, id)
		}
	}
	for _, id := range m.ins {
		if m.curAppt(id).exists {
			out = append(out, id)
		}
	}
	return out
}

func (m *txModel) liveDocs() []int64 {
	var out []int64
	for _, id := range m.w.docIDs {
		if m.curDoc(id).exists {
			out = append(out, id)
		}
	}
	for _, id := range m.insD {
		if m.curDoc(id).exists {
			out = append(out, id)
		}
	}
	return out
}

func (m *txModel) insertedHere(id int64) bool {
	t, ok := m.appts[id]
	return ok && !t.before.exists
}

func (m *txModel) writeAppt(id int64, st apptState, text string) {
	t, ok := m.appts[id]
	if !ok {
		t = apptTouch{before: m.w.appts[id], first: m.seq}
		m.seq++
	}
	t.now = st
	m.appts[id] = t
	m.ops = append(m.ops, opRec{row: rowRef{id: id}, text: text})
}

func (m *txModel) insertAppt(id int64, st apptState, text string) {
	m.appts[id] = apptTouch{now: st, first: m.seq}
	m.seq++
	m.ins = append(m.ins, id)
	m.ops = append(m.ops, opRec{row: rowRef{id: id}, text: text})
}

func (m *txModel) writeDoc(id int64, st docState, text string) {
	t, ok := m.docs[id]
	if !ok {
		t = docTouch{before: m.w.docs[id], first: m.seq}
		m.seq++
	}
	t.now = st
	m.docs[id] = t
	m.ops = append(m.ops, opRec{row: rowRef{doctor: true, id: id}, text: text})
}

func (m *txModel) insertDoc(id int64, st docState, text string) {
	m.docs[id] = docTouch{now: st, first: m.seq}
	m.seq++
	m.insD = append(m.insD, id)
	m.ops = append(m.ops, opRec{row: rowRef{doctor: true, id: id}, text: text})
}

// events are what the contract says the transaction emits if it commits, in the order
// its rows were first written.
func (o *oracle) events(m *txModel) []*expEvent {
	type item struct {
		first int
		ev    *expEvent
	}
	var items []item
	add := func(first int, kind string, row int64, f facts) {
		items = append(items, item{first, &expEvent{kind: kind, row: row, facts: f}})
	}
	// As the rule's flush does: a row is live when it exists with an account; it
	// appears in (created), leaves (deleted, with the row as it was) or changes within
	// (updated, then what the change of status makes) its account.
	for id, t := range m.appts {
		bLive := t.before.exists && t.before.account != 0
		aLive := t.now.exists && t.now.account != 0
		same := bLive && aLive && t.before.account == t.now.account
		if aLive && !same {
			add(t.first, kindCreated, id, o.apptFacts(t.now))
		}
		if !same || t.before == t.now {
			if bLive && !same {
				add(t.first, kindDeleted, id, o.apptFacts(t.before))
			}
			continue
		}
		f := o.apptFacts(t.now)
		add(t.first, kindUpdated, id, f)
		if t.before.status != t.now.status {
			add(t.first, kindStatus, id, f)
			switch o.statusName[t.now.status] {
			case "Check-in":
				add(t.first, kindCheckin, id, f)
			case "Em atendimento":
				add(t.first, kindServing, id, f)
			case "Finalizado":
				add(t.first, kindFinished, id, f)
			}
		}
	}
	for id, t := range m.docs {
		bLive := t.before.exists && t.before.account != 0
		aLive := t.now.exists && t.now.account != 0
		same := bLive && aLive && t.before.account == t.now.account
		if aLive && !same {
			add(t.first, kindDoctor, id, facts{account: t.now.account, name: t.now.name})
		}
		if same && t.before != t.now {
			add(t.first, kindDocUpdate, id, facts{account: t.now.account, name: t.now.name})
		}
		if bLive && !same {
			add(t.first, kindDocDelete, id, facts{account: t.before.account, name: t.before.name})
		}
	}
	// sort.SliceStable: a row's events keep the rule's order (created, updated,
	// status.changed, the status's own, deleted: a row that moved account is created
	// in the new one before it is deleted from the old).
	sort.SliceStable(items, func(i, j int) bool { return items[i].first < items[j].first })
	out := make([]*expEvent, len(items))
	for i, it := range items {
		it.ev.pos = i
		out[i] = it.ev
	}
	return out
}

func (o *oracle) apptFacts(st apptState) facts {
	f := facts{account: st.account, status: st.status, statusName: o.statusName[st.status], notes: st.notes, start: st.start}
	if st.doctor != 0 && o.doctorAccount[st.doctor] == st.account {
		f.doctor = st.doctor
	}
	if st.patient != 0 && o.patientAccount[st.patient] == st.account {
		f.patient = st.patient
	}
	return f
}

// commit records a transaction whose COMMIT returned nil and folds it into the
// writer's state.
func (o *oracle) commit(m *txModel, label string, start, end time.Time) {
	evs := o.events(m)
	w := m.w
	for id, t := range m.appts {
		if t.now.exists {
			if !w.appts[id].exists {
				w.apptIDs = insertSorted(w.apptIDs, id)
			}
			w.appts[id] = t.now
		} else if w.appts[id].exists {
			delete(w.appts, id)
			w.apptIDs = removeSorted(w.apptIDs, id)
		}
	}
	for id, t := range m.docs {
		if t.now.exists {
			if !w.docs[id].exists {
				w.docIDs = insertSorted(w.docIDs, id)
			}
			w.docs[id] = t.now
		} else if w.docs[id].exists {
			delete(w.docs, id)
			w.docIDs = removeSorted(w.docIDs, id)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	tx := &txRecord{o: o, label: label, commitStart: start, commitEnd: end, events: evs}
	for _, e := range evs {
		e.tx = tx
		if prev, ok := o.byKey[e.key()]; ok { // cannot happen: notes and names are unique
			panic(fmt.Sprintf("oracle: two events %s and %s", prev, e))
		}
		o.byKey[e.key()] = e
		rk := rowKeyOf(e.kind, e.row)
		o.byRow[rk] = append(o.byRow[rk], e)
		o.byKind[e.kind]++
	}
	o.txs = append(o.txs, tx)
	o.committed++
	o.addHistory(m, fmt.Sprintf("%s committed (COMMIT %s..%s, %d events)", label, o.rel(start), o.rel(end), len(evs)))
}

// rollback records a transaction the writer rolled back, for row histories.
func (o *oracle) rollback(m *txModel, label string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rolledBack++
	o.addHistory(m, label+" ROLLED BACK")
}

func (o *oracle) addHistory(m *txModel, head string) {
	var rows []rowRef
	texts := map[rowRef][]string{}
	for _, op := range m.ops {
		if _, ok := texts[op.row]; !ok {
			rows = append(rows, op.row)
		}
		s := op.text
		if op.rolledBack {
			s = "[" + s + ", rolled back to savepoint]"
		}
		texts[op.row] = append(texts[op.row], s)
	}
	for _, r := range rows {
		o.history[r] = append(o.history[r], head+": "+strings.Join(texts[r], "; "))
	}
}

func (o *oracle) rowHistory(r rowRef) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.history[r]
	if len(h) == 0 {
		return "\n      (no transaction of the test wrote it)"
	}
	return "\n      " + strings.Join(h, "\n      ")
}

func insertSorted(s []int64, v int64) []int64 {
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	return slices.Insert(s, i, v)
}

func removeSorted(s []int64, v int64) []int64 {
	i, found := slices.BinarySearch(s, v)
	if !found {
		return s
	}
	return slices.Delete(s, i, i+1)
}

// rxEvent is one event a client received.
type rxEvent struct {
	id      int64
	name    string
	data    json.RawMessage
	partial bool // "partial":true beside data (/ws)
	conn    int  // the client's connection it arrived on, 1 for the first
	at      time.Time
	rf      rxFacts // data, parsed on arrival
	perr    error
}

func newRx(id int64, name string, data json.RawMessage, partial bool, conn int) rxEvent {
	rx := rxEvent{id: id, name: name, data: data, partial: partial, conn: conn, at: time.Now()}
	if knownKinds[name] {
		rx.rf, rx.perr = parseRx(name, data)
	}
	return rx
}

// rxFacts is what a received event's data says.
type rxFacts struct {
	row        int64
	fields     map[string]json.RawMessage
	f          facts
	statusID   int64 // data.status.id
	incomplete []string
}

func parseRx(kind string, data json.RawMessage) (rxFacts, error) {
	var rf rxFacts
	if err := json.Unmarshal(data, &rf.fields); err != nil {
		return rf, err
	}
	num := func(k string) int64 {
		raw, ok := rf.fields[k]
		if !ok {
			rf.incomplete = append(rf.incomplete, k)
			return 0
		}
		var n *int64
		if json.Unmarshal(raw, &n) != nil || n == nil {
			return 0
		}
		return *n
	}
	str := func(k string) string {
		raw, ok := rf.fields[k]
		if !ok {
			rf.incomplete = append(rf.incomplete, k)
			return ""
		}
		var s *string
		if json.Unmarshal(raw, &s) != nil || s == nil {
			return "<null>"
		}
		return *s
	}
	obj := func(k string) (id int64, name string) {
		raw, ok := rf.fields[k]
		if !ok {
			rf.incomplete = append(rf.incomplete, k)
			return 0, ""
		}
		var o *struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		}
		if json.Unmarshal(raw, &o) != nil || o == nil {
			return 0, ""
		}
		return o.ID, o.Name
	}
	rf.row = num("id")
	rf.f.account = num("accountId")
	if isDoctorKind(kind) {
		rf.f.name = str("name")
		return rf, nil
	}
	rf.f.status = num("statusId")
	rf.f.notes = str("notes")
	rf.f.start = str("startTime")
	rf.statusID, rf.f.statusName = obj("status")
	rf.f.doctor, _ = obj("doctor")
	rf.f.patient, _ = obj("patient")
	return rf, nil
}

func (rf rxFacts) key(kind string) string {
	if isDoctorKind(kind) {
		return rowKeyOf(kind, rf.row) + "|" + rf.f.name
	}
	return rowKeyOf(kind, rf.row) + "|" + rf.f.notes
}

// diff lists the facts in which rf differs from want.
func (rf rxFacts) diff(kind string, want facts) []string {
	var d []string
	add := func(what string, w, g any) {
		if w != g {
			d = append(d, fmt.Sprintf("%s: want %v, got %v", what, w, g))
		}
	}
	add("accountId", want.account, rf.f.account)
	if isDoctorKind(kind) {
		add("name", want.name, rf.f.name)
		return d
	}
	add("notes", want.notes, rf.f.notes)
	add("statusId", want.status, rf.f.status)
	add("status.id", want.status, rf.statusID)
	add("status.name", want.statusName, rf.f.statusName)
	add("startTime", want.start, rf.f.start)
	add("doctor", objID(want.doctor), objID(rf.f.doctor))
	add("patient", objID(want.patient), objID(rf.f.patient))
	return d
}

func (rx rxEvent) String() string {
	d := string(rx.data)
	if len(d) > 600 {
		d = d[:600] + "…"
	}
	p := ""
	if rx.partial {
		p = ` "partial":true`
	}
	return fmt.Sprintf("id %d %s%s (connection %d) data %s", rx.id, rx.name, p, rx.conn, d)
}

// finding is one contract violation.
type finding struct {
	cat, msg string
}

// Categories of findings, in the order they are reported.
var findingOrder = []string{
	"client", "resync", "not recovered", "routing", "partial", "facts", "spurious",
	"duplicate", "order", "filter", "missing", "transaction", "commit order", "id conflict",
}

// clientView is a client's state copied for one analysis.
type clientView struct {
	c         *rclient
	got       []rxEvent
	freshDial time.Time
	problems  []finding
}

type analysis struct {
	findings map[string][]string // the first few of each category
	counts   map[string]int
	missing  int
}

// findingsShown is how many findings of each category are formatted and printed.
const findingsShown = 6

// lazy formats only when a message is printed.
type lazy func() string

func (l lazy) String() string { return l() }

// analyze compares what the clients received with the oracle; final formats the
// findings (else only the count of missing events is of use). Run on the test
// goroutine only (it reads the client list).
//
// Received events are attributed to expected ones by their facts: kind, row and the
// unique notes (name) written. When the facts are wrong, the event is paired with the
// earliest event of its row the client still lacks, and the row is "tainted": its
// events are left out of the checks that rely on knowing which commit an id is
// (transactions' consecutive ids, commit order), which would otherwise report the
// consequences of the wrong attribution rather than bugs of their own.
func (r *rtest) analyze(final bool) analysis {
	a := analysis{findings: map[string][]string{}, counts: map[string]int{}}
	add := func(cat, format string, args ...any) {
		if !final {
			return
		}
		a.counts[cat]++
		if len(a.findings[cat]) < findingsShown {
			a.findings[cat] = append(a.findings[cat], fmt.Sprintf(format, args...))
		}
	}
	o := r.or
	o.mu.Lock()
	txs := slices.Clone(o.txs)
	byKey := maps.Clone(o.byKey)
	byRow := maps.Clone(o.byRow)
	o.mu.Unlock()
	history := func(kind string, row int64) lazy {
		return func() string { return o.rowHistory(rowRef{doctor: isDoctorKind(kind), id: row}) }
	}
	candidates := func(rk string, account int64) lazy {
		return func() string { return describeCandidates(byRow[rk], account) }
	}

	views := make([]clientView, len(r.clients))
	for i, c := range r.clients {
		c.mu.Lock()
		views[i] = clientView{c: c, got: slices.Clone(c.got), freshDial: c.freshDial, problems: slices.Clone(c.problems)}
		c.mu.Unlock()
	}

	// Match every received event with the expected one it is.
	type match struct {
		rx rxEvent
		e  *expEvent
	}
	matched := make([]map[*expEvent]int64, len(views)) // per client: event -> id received
	seqs := make([][]match, len(views))
	tainted := map[string]bool{} // rowKeyOf(kind, row)
	for i, v := range views {
		c := v.c
		for _, p := range v.problems {
			add(p.cat, "%s", p.msg)
		}
		got := map[*expEvent]int64{}
		seen := map[int64]bool{}
		var prev int64
		for _, rx := range v.got {
			if seen[rx.id] {
				add("duplicate", "%s received event id %d twice: %s", c.name, rx.id, rx)
				continue
			}
			seen[rx.id] = true
			if rx.id <= prev {
				add("order", "%s received id %d after id %d: %s", c.name, rx.id, prev, rx)
			}
			prev = max(prev, rx.id)
			if c.filter != nil && !c.filter[rx.name] {
				add("filter", "%s received a %s: %s", c.name, rx.name, rx)
			}
			if !knownKinds[rx.name] {
				add("spurious", "%s received an event of unknown name: %s", c.name, rx)
				continue
			}
			rf := rx.rf
			if rx.perr != nil {
				add("client", "%s: undecodable data: %s: %v", c.name, rx, rx.perr)
				continue
			}
			rk := rowKeyOf(rx.name, rf.row)
			isPartial := rx.partial || len(rf.incomplete) > 0
			var x *expEvent
			if !isPartial {
				x = byKey[rf.key(rx.name)]
			}
			if x != nil && x.facts.account != c.account {
				add("routing", "%s received account %d's event %s as %s", c.name, x.facts.account, x, rx)
				continue
			}
			e, exact := x, x != nil && got[x] == 0
			if !exact {
				// Not the facts of a commit it still lacks: pair it with the earliest
				// event of the row it lacks, if one committed before it arrived.
				e = nil
				for _, y := range byRow[rk] {
					if y.facts.account == c.account && got[y] == 0 && y.tx.commitStart.Before(rx.at) {
						e = y
						break
					}
				}
			}
			switch {
			case e == nil && x != nil:
				tainted[rk] = true
				add("duplicate", "%s received %s twice: ids %d and %d", c.name, x, got[x], rx.id)
				continue
			case e == nil:
				cat := "spurious"
				if rf.f.account != c.account {
					cat = "routing"
				} else if isPartial {
					cat = "partial"
				}
				add(cat, "%s received an event no committed transaction emits for its account: %s\n    events the oracle has for that row: %s\n    row history:%s",
					c.name, rx, candidates(rk, 0), history(rx.name, rf.row))
				continue
			case isPartial:
				tainted[rk] = true
				add("partial", "%s received a partial event (data without %v) for %s:\n    got %s\n    row history:%s",
					c.name, rf.incomplete, e, rx, history(rx.name, rf.row))
			default:
				if d := rf.diff(rx.name, e.facts); len(d) > 0 || !exact {
					tainted[rk] = true
					add("facts", "%s: expected %s\n    got %s\n    differs: %s\n    row history:%s", c.name, e, rx,
						strings.Join(d, "; "), history(rx.name, rf.row))
				}
			}
			got[e] = rx.id
			seqs[i] = append(seqs[i], match{rx, e})
		}
		matched[i] = got
	}

	// Ids of events attributed with certainty, checked for consistency across clients.
	assigned := map[*expEvent]int64{}
	assignedBy := map[*expEvent]string{}
	idEvent := map[int64]*expEvent{}
	for i, v := range views {
		for _, m := range seqs[i] {
			if tainted[rowKeyOf(m.e.kind, m.e.row)] {
				continue
			}
			if id, ok := assigned[m.e]; ok && id != m.rx.id {
				add("id conflict", "%s has id %d at %s but id %d at %s", m.e, id, assignedBy[m.e], m.rx.id, v.c.name)
			} else if !ok {
				assigned[m.e], assignedBy[m.e] = m.rx.id, v.c.name
			}
			if y, ok := idEvent[m.rx.id]; ok && y != m.e {
				add("id conflict", "id %d is %s at %s but %s at %s", m.rx.id, y, assignedBy[y], m.e, v.c.name)
			} else if !ok {
				idEvent[m.rx.id] = m.e
			}
		}
	}
	deliveredBy := func(e *expEvent) string {
		var at []string
		for i, v := range views {
			if id := matched[i][e]; id != 0 {
				at = append(at, fmt.Sprintf("%s as id %d", v.c.name, id))
			}
		}
		if len(at) == 0 {
			return "no client received it"
		}
		return "received by " + strings.Join(at, ", ")
	}

	// Completeness: every event of the client's window, once.
	for i, v := range views {
		c := v.c
		var firstID int64
		if len(v.got) > 0 {
			firstID = v.got[0].id
		}
		for _, tx := range txs {
			for _, e := range tx.events {
				if e.facts.account != c.account || (c.filter != nil && !c.filter[e.kind]) || matched[i][e] != 0 {
					continue
				}
				in := c.initial || tx.commitStart.After(v.freshDial)
				if id, ok := assigned[e]; !in && ok && firstID > 0 && id > firstID {
					in = true
				}
				if !in {
					continue
				}
				a.missing++
				if !final {
					continue
				}
				add("missing", "%s never received %s; %s; %s has %d events, ids %d..%d\n    row history:%s",
					c.name, e, lazy(func() string { return deliveredBy(e) }), c.name, len(v.got), firstID, lastOf(v.got), history(e.kind, e.row))
			}
		}
	}
	if !final {
		return a
	}

	// A transaction's events are consecutive in every client's stream, in write order.
	for i, v := range views {
		closed := map[*txRecord]bool{}
		var cur *txRecord
		lastPos := -1
		var lastRx rxEvent
		for _, m := range seqs[i] {
			if tainted[rowKeyOf(m.e.kind, m.e.row)] {
				continue
			}
			if m.e.tx != cur {
				if cur != nil {
					closed[cur] = true
				}
				if closed[m.e.tx] {
					add("transaction", "%s: events of transaction %s are not consecutive: %s arrived as id %d after id %d of another transaction",
						v.c.name, m.e.tx.label, m.e, m.rx.id, lastRx.id)
				}
				cur, lastPos = m.e.tx, -1
			}
			if m.e.pos <= lastPos {
				add("transaction", "%s: %s arrived (id %d) after event %d of the same transaction (id %d): not in write order",
					v.c.name, m.e, m.rx.id, lastPos+1, lastRx.id)
			}
			lastPos, lastRx = m.e.pos, m.rx
		}
	}

	// Across all accounts, by the ids the clients saw: each transaction's events hold
	// consecutive ids in write order, and ids follow commit order.
	type idd struct {
		id int64
		e  *expEvent
	}
	var all []idd
	for e, id := range assigned {
		all = append(all, idd{id, e})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })
	closed := map[*txRecord]bool{}
	var cur *txRecord
	lastPos, lastID := -1, int64(0)
	for _, x := range all {
		if x.e.tx != cur {
			if cur != nil {
				closed[cur] = true
			}
			if closed[x.e.tx] {
				add("transaction", "ids of transaction %s are not consecutive: %s has id %d, after id %d of another transaction", x.e.tx.label, x.e, x.id, lastID)
			}
			cur, lastPos = x.e.tx, -1
		}
		if x.e.pos <= lastPos {
			add("transaction", "%s has id %d, after id %d of an event written later in the same transaction", x.e, x.id, lastID)
		}
		lastPos, lastID = x.e.pos, x.id
	}
	type span struct {
		tx       *txRecord
		min, max int64
	}
	var spans []span
	for _, tx := range txs {
		s := span{tx: tx}
		for _, e := range tx.events {
			if id, ok := assigned[e]; ok {
				if s.min == 0 || id < s.min {
					s.min = id
				}
				s.max = max(s.max, id)
			}
		}
		if s.min != 0 {
			spans = append(spans, s)
		}
	}
	byEnd := slices.Clone(spans)
	sort.Slice(byEnd, func(i, j int) bool { return byEnd[i].tx.commitEnd.Before(byEnd[j].tx.commitEnd) })
	byStart := slices.Clone(spans)
	sort.Slice(byStart, func(i, j int) bool { return byStart[i].tx.commitStart.Before(byStart[j].tx.commitStart) })
	var top *span
	j := 0
	for _, b := range byStart {
		for ; j < len(byEnd) && byEnd[j].tx.commitEnd.Before(b.tx.commitStart); j++ {
			if top == nil || byEnd[j].max > top.max {
				top = &byEnd[j]
			}
		}
		if top != nil && top.max > b.min {
			add("commit order", "transaction %s (COMMIT %s..%s) has id %d, but %s, whose COMMIT began only at %s, has the smaller id %d",
				top.tx.label, o.rel(top.tx.commitStart), o.rel(top.tx.commitEnd), top.max, b.tx.label, o.rel(b.tx.commitStart), b.min)
		}
	}
	return a
}

func describeCandidates(es []*expEvent, account int64) string {
	var parts []string
	for _, e := range es {
		if account == 0 || e.facts.account == account {
			parts = append(parts, "\n      "+e.String())
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "")
}
