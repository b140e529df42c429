// Package rules reads the rule files a DBA writes (which table publishes which events
// to which account) and turns a change of rules into the up and down migration SQL that
// installs it. Nothing here talks to a database: the SQL it writes checks itself when
// `notifier migrate up` applies it, naming the rule and the problem, inside the
// migration's transaction, so a bad rule changes nothing.
//
// A rule set is layered: the notifier's built-in rules (the clinic's, installed by
// migration 0004) and a DBA's file on top. A rule of the file with a name of its own
// adds a table; one with a built-in rule's name and no table patches it (its events
// replace or add events of that rule by name). `disable` removes events, `aliases`
// emits an event under more names too.
//
// Every generated migration records the whole rule set it leaves installed in its
// first line (a JSON comment), so the next one can be generated from the files alone,
// and its down file restores exactly the previous set.
package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Operations a rule's event fires on, as the dashboard sees the row: it appeared, it
// changed, it went away.
const (
	OpInsert = "insert" // the row appeared: inserted, soft delete undone, entered the rule's rows or its account
	OpUpdate = "update" // the row changed, staying visible in the same account
	OpDelete = "delete" // the row went away: deleted, soft-deleted, left the rule's rows or its account
)

// Event is one event a rule emits.
type Event struct {
	Name    string   `yaml:"name" json:"name"`
	On      string   `yaml:"on" json:"on"`                         // OpInsert, OpUpdate or OpDelete
	When    string   `yaml:"when,omitempty" json:"when,omitempty"` // SQL condition over old and new
	KeepOld bool     `yaml:"keep_old,omitempty" json:"keep_old,omitempty"`
	Aliases []string `yaml:"aliases,omitempty" json:"aliases,omitempty"`
}

// Rule makes one table publish events.
type Rule struct {
	Name       string   `yaml:"name" json:"name"`
	Table      string   `yaml:"table,omitempty" json:"table"`                       // [schema.]table; schema defaults to public
	Key        string   `yaml:"key,omitempty" json:"key"`                           // integer row id column; default id
	Account    string   `yaml:"account,omitempty" json:"account"`                   // integer account column
	SoftDelete string   `yaml:"soft_delete,omitempty" json:"soft_delete,omitempty"` // set (not NULL) means deleted
	Where      string   `yaml:"where,omitempty" json:"where,omitempty"`             // rows the rule publishes
	Columns    []string `yaml:"columns,omitempty" json:"columns,omitempty"`         // only these make an update
	Ignore     []string `yaml:"ignore,omitempty" json:"ignore,omitempty"`           // these alone make no update
	Enrich     string   `yaml:"enrich,omitempty" json:"enrich,omitempty"`           // SQL: (id, payload) per event id in $1
	EnrichFile string   `yaml:"enrich_file,omitempty" json:"-"`                     // or the file holding it
	Events     []Event  `yaml:"events" json:"events"`
}

// Lookup mirrors a small reference table (an id and a name, such as statuses) into
// schema notifier, for conditions to read with notifier.lookup('<table as written>',
// id): a condition never reads a table the app owns.
type Lookup struct {
	Table string `yaml:"table" json:"table"`
	Key   string `yaml:"key,omitempty" json:"key"`
	Value string `yaml:"value" json:"value"`
}

// List is a list a dashboard loads before it follows a rule's events (GET
// /v1/snapshot/<name>): the visible rows of the rule's table that meet Where, in
// Order, Limit a page, with the payloads the rule's events carry.
type List struct {
	Name  string `yaml:"name" json:"name"`
	Rule  string `yaml:"rule" json:"rule"`
	Where string `yaml:"where,omitempty" json:"where,omitempty"` // SQL over the table's columns
	Order string `yaml:"order" json:"order"`                     // SQL ORDER BY list; end it with a unique column
	Limit int    `yaml:"limit,omitempty" json:"limit"`           // page size; default 100, at most 1000
}

// File is a rule file as written.
type File struct {
	Rules   []Rule              `yaml:"rules"`
	Lists   []List              `yaml:"lists,omitempty"`
	Lookups []Lookup            `yaml:"lookups,omitempty"`
	Disable []string            `yaml:"disable,omitempty"`
	Aliases map[string][]string `yaml:"aliases,omitempty"`
}

// Set is a complete, checked rule set: what a migration leaves installed.
type Set struct {
	Rules   []Rule   `json:"rules"`
	Lookups []Lookup `json:"lookups,omitempty"`
	Lists   []List   `json:"lists,omitempty"`
}

// Error is a rule that cannot be installed, naming it.
type Error struct {
	Rule    string // the rule's name, or "" for the file as a whole
	Problem string
}

func (e *Error) Error() string {
	if e.Rule == "" {
		return "rules: " + e.Problem
	}
	return fmt.Sprintf("rule %q: %s", e.Rule, e.Problem)
}

func problem(rule, format string, args ...any) error {
	return &Error{Rule: rule, Problem: fmt.Sprintf(format, args...)}
}

var (
	ruleName  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	eventName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$`)
	listName  = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,50}$`)
	identRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)
)

// dollarTag quotes the generated functions; $body$ quotes their bodies inside.
const dollarTag = "$notifier_rule$"

// reserved may not appear in rule SQL: they would end the generated quoting or be
// taken for a placeholder.
var reserved = []string{dollarTag, "$body$", tablePlaceholder, schemaPlaceholder}

// ReadFile reads and parses a rule file; enrich_file paths are relative to it.
// Unknown keys are errors.
func ReadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("read rules: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	for i := range f.Rules {
		r := &f.Rules[i]
		if r.EnrichFile == "" {
			continue
		}
		if r.Enrich != "" {
			return File{}, fmt.Errorf("%s: %w", path, problem(r.Name, "enrich and enrich_file are both set"))
		}
		p := r.EnrichFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		q, err := os.ReadFile(p)
		if err != nil {
			return File{}, fmt.Errorf("%s: %w", path, problem(r.Name, "enrich_file: %v", err))
		}
		r.Enrich = string(q)
		r.EnrichFile = ""
	}
	return f, nil
}

// Parse parses a rule file's YAML. Unknown keys are errors.
func Parse(b []byte) (File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return File{}, problem("", "empty file")
		}
		// yaml's errors span lines ("unmarshal errors:\n  line 3: ..."): bad
		// configuration is reported on one line.
		return File{}, problem("", "%s", strings.Join(strings.Fields(err.Error()), " "))
	}
	return f, nil
}

// Apply lays f over base (the rules installed before it) and checks the result.
func Apply(base Set, f File) (Set, error) {
	out := Set{Rules: slices.Clone(base.Rules), Lookups: slices.Clone(base.Lookups), Lists: slices.Clone(base.Lists)}
	for _, r := range f.Rules {
		if r.EnrichFile != "" {
			return Set{}, problem(r.Name, "enrich_file is only read by ReadFile")
		}
		i := slices.IndexFunc(out.Rules, func(o Rule) bool { return o.Name == r.Name })
		switch {
		case i < 0:
			out.Rules = append(out.Rules, r)
		case r.Table == "":
			patched, err := patch(out.Rules[i], r)
			if err != nil {
				return Set{}, err
			}
			out.Rules[i] = patched
		default:
			out.Rules[i] = r
		}
	}
	for _, l := range f.Lists {
		if i := slices.IndexFunc(out.Lists, func(o List) bool { return o.Name == l.Name }); i >= 0 {
			out.Lists[i] = l
		} else {
			out.Lists = append(out.Lists, l)
		}
	}
	for _, l := range f.Lookups {
		i := slices.IndexFunc(out.Lookups, func(o Lookup) bool { return o.Table == l.Table })
		if i < 0 {
			out.Lookups = append(out.Lookups, l)
		} else {
			out.Lookups[i] = l
		}
	}
	for _, name := range f.Disable {
		found := false
		for i := range out.Rules {
			r := &out.Rules[i]
			if j := slices.IndexFunc(r.Events, func(e Event) bool { return e.Name == name }); j >= 0 {
				r.Events = slices.Delete(slices.Clone(r.Events), j, j+1)
				found = true
			}
		}
		if !found {
			return Set{}, problem("", "disable: no rule emits %q", name)
		}
	}
	names := make([]string, 0, len(f.Aliases))
	for name := range f.Aliases {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		found := false
		for i := range out.Rules {
			r := &out.Rules[i]
			if j := slices.IndexFunc(r.Events, func(e Event) bool { return e.Name == name }); j >= 0 {
				r.Events = slices.Clone(r.Events)
				r.Events[j].Aliases = append(slices.Clone(r.Events[j].Aliases), f.Aliases[name]...)
				found = true
			}
		}
		if !found {
			return Set{}, problem("", "aliases: no rule emits %q", name)
		}
	}
	if err := out.normalize(); err != nil {
		return Set{}, err
	}
	return out, nil
}

// patch applies p (a rule with no table) to r: set fields replace r's, events replace
// r's events of the same name or are added.
func patch(r, p Rule) (Rule, error) {
	if p.Key != "" || p.Account != "" || p.SoftDelete != "" || p.Where != "" || len(p.Columns) > 0 || len(p.Ignore) > 0 {
		return Rule{}, problem(p.Name, "patches a rule: only enrich and events can change without table (write the whole rule, with table, to change the rest)")
	}
	if p.Enrich != "" {
		r.Enrich = p.Enrich
	}
	r.Events = slices.Clone(r.Events)
	for _, e := range p.Events {
		if i := slices.IndexFunc(r.Events, func(o Event) bool { return o.Name == e.Name }); i >= 0 {
			r.Events[i] = e
		} else {
			r.Events = append(r.Events, e)
		}
	}
	return r, nil
}

// normalize fills defaults and checks everything that can be checked without a
// database: names, identifiers, operations, one emitter per event name.
func (s *Set) normalize() error {
	seenRule := map[string]bool{}
	emitter := map[string]string{}
	for i := range s.Rules {
		r := &s.Rules[i]
		if !ruleName.MatchString(r.Name) {
			return problem(r.Name, "name must match %s", ruleName)
		}
		if seenRule[r.Name] {
			return problem(r.Name, "defined twice")
		}
		seenRule[r.Name] = true
		if r.Table == "" {
			return problem(r.Name, "table is required")
		}
		if err := checkTable(r.Table); err != nil {
			return problem(r.Name, "table: %v", err)
		}
		if r.Key == "" {
			r.Key = "id"
		}
		if r.Account == "" {
			return problem(r.Name, "account (the integer column naming the row's account) is required")
		}
		for _, c := range append([]string{r.Key, r.Account, r.SoftDelete}, append(slices.Clone(r.Columns), r.Ignore...)...) {
			if c != "" && !identRE.MatchString(c) {
				return problem(r.Name, "column %q is not an identifier", c)
			}
		}
		if len(r.Columns) > 0 && len(r.Ignore) > 0 {
			return problem(r.Name, "columns and ignore exclude each other")
		}
		if err := checkSQL(r.Where, false); err != nil {
			return problem(r.Name, "where: %v", err)
		}
		if err := checkSQL(r.Enrich, true); err != nil {
			return problem(r.Name, "enrich: %v", err)
		}
		r.Enrich = strings.TrimRight(strings.TrimSpace(r.Enrich), ";")
		if len(r.Events) == 0 {
			return problem(r.Name, "no events (list at least one, or remove the rule)")
		}
		for j := range r.Events {
			e := &r.Events[j]
			switch e.On {
			case OpInsert, OpUpdate, OpDelete:
			default:
				return problem(r.Name, "event %q: on must be insert, update or delete, not %q", e.Name, e.On)
			}
			if err := checkSQL(e.When, false); err != nil {
				return problem(r.Name, "event %q: when: %v", e.Name, err)
			}
			for _, n := range append([]string{e.Name}, e.Aliases...) {
				if !eventName.MatchString(n) || strings.HasPrefix(n, "notifier.") {
					return problem(r.Name, "event name %q must match %s and not start with notifier.", n, eventName)
				}
				if by, ok := emitter[n]; ok {
					return problem(r.Name, "event %q is also emitted by rule %q", n, by)
				}
				emitter[n] = r.Name
			}
		}
	}
	seenList := map[string]bool{}
	for i := range s.Lists {
		l := &s.Lists[i]
		if !listName.MatchString(l.Name) {
			return problem("", "list %q: name must match %s", l.Name, listName)
		}
		if seenList[l.Name] {
			return problem("", "list %q defined twice", l.Name)
		}
		seenList[l.Name] = true
		if !seenRule[l.Rule] {
			return problem("", "list %q: no rule %q", l.Name, l.Rule)
		}
		if l.Order == "" {
			return problem("", "list %q: order is required (end it with a unique column, e.g. id)", l.Name)
		}
		if err := checkSQL(l.Where, false); err != nil {
			return problem("", "list %q: where: %v", l.Name, err)
		}
		if err := checkSQL(l.Order, false); err != nil {
			return problem("", "list %q: order: %v", l.Name, err)
		}
		switch {
		case l.Limit == 0:
			l.Limit = 100
		case l.Limit < 1 || l.Limit > 1000:
			return problem("", "list %q: limit must be between 1 and 1000, got %d", l.Name, l.Limit)
		}
	}
	for i := range s.Lookups {
		l := &s.Lookups[i]
		if err := checkTable(l.Table); err != nil {
			return problem("", "lookup %q: %v", l.Table, err)
		}
		if l.Key == "" {
			l.Key = "id"
		}
		if !identRE.MatchString(l.Key) || !identRE.MatchString(l.Value) {
			return problem("", "lookup %q: key and value must be column names", l.Table)
		}
	}
	return nil
}

// checkTable checks [schema.]table. Without a schema, the migrating session's
// search_path finds the table when the migration runs.
func checkTable(t string) error {
	schema, table, ok := strings.Cut(t, ".")
	if !ok {
		schema, table = "public", t
	}
	if !identRE.MatchString(schema) || !identRE.MatchString(table) {
		return fmt.Errorf("%q is not [schema.]table", t)
	}
	return nil
}

// checkSQL refuses what could end the generated function around a piece of rule SQL.
// A condition is one expression: no statement separator, no comment that could swallow
// the closing parenthesis. A query may carry comments and a trailing semicolon.
func checkSQL(q string, query bool) error {
	for _, r := range reserved {
		if strings.Contains(q, r) {
			return fmt.Errorf("must not contain %s", r)
		}
	}
	body := q
	if query {
		body = strings.TrimRight(strings.TrimSpace(stripComments(q)), ";")
	} else if strings.Contains(q, "--") || strings.Contains(q, "/*") {
		return errors.New("comments are not allowed in a condition")
	}
	if strings.Contains(body, ";") {
		return errors.New("must be one expression or query (no ;)")
	}
	if query && parameter.MatchString(body) {
		return errors.New("reads ev (the events or a list's rows), not parameters like $1")
	}
	return nil
}

// parameter finds a positional parameter ($1) in an enrichment query.
var parameter = regexp.MustCompile(`\$[0-9]`)

// stripComments drops -- line comments (enough for the check above: a ; inside one
// is harmless, PostgreSQL ignores it too).
func stripComments(q string) string {
	var b strings.Builder
	for line := range strings.Lines(q) {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i] + "\n"
		}
		b.WriteString(line)
	}
	return b.String()
}

// Events lists every event name the set emits (aliases included), in rule order.
func (s Set) Events() []string {
	var out []string
	for _, r := range s.Rules {
		for _, e := range r.Events {
			out = append(out, e.Name)
			out = append(out, e.Aliases...)
		}
	}
	return out
}

// Equal reports whether s and o install the same rules and lookups.
func (s Set) Equal(o Set) bool { return equalSets(s, o) }

// stateMarker starts a generated migration's first line.
const stateMarker = "-- notifier rules: "

// State returns the set recorded in a generated migration's first line.
func State(migration string) (Set, bool, error) {
	line, _, _ := strings.Cut(migration, "\n")
	js, ok := strings.CutPrefix(line, stateMarker)
	if !ok {
		return Set{}, false, nil
	}
	var s Set
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		return Set{}, true, fmt.Errorf("rules state: %w", err)
	}
	return s, true, nil
}

func (s Set) stateLine() string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // plain structs of strings: cannot fail
	}
	return stateMarker + string(b) + "\n"
}
