package enrich

import (
	"bytes"
	"encoding/json"
	"testing"
)

// pgJSON is an appointment payload as PostgreSQL renders a json value built by
// json_build_object: a space around every colon and after every comma.
const pgJSON = `{"id" : 123, "date" : "2025-01-23T00:00:00.000Z", "startTime" : "09:00", "endTime" : "09:15", "notes" : "Observações: \"sala 2\", \\ fila", ` +
	`"doctor" : {"id" : 1, "name" : "Dr. Ana", "phone" : null, "procedures" : [{"id" : 1, "name" : "Consulta"}, {"id" : 2, "name" : "Retorno"}]}, ` +
	`"patient" : {"id" : 7, "name" : "José"}, "status" : {"id" : 1, "name" : "agendado"}, "procedures" : [], "accountId" : 1, "updatedAt" : "2025-01-23T09:00:00.000Z"}`

func TestCompact(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		pgJSON,
		`{}`,
		`{"a":1}`,
		"{\"a\" :\t[1 ,\n2]\r}",
		`{"k" : " spaced \" value "}`,
		`{"k" : "\\"}`,
		`{"k" : "ok"`,      // unterminated: json.Compact's error
		`{"k" : "ok}`,      // unterminated string
		`{"k" : [1, 2}`,    // brackets that do not match
		`{"k" : ok} `,      // balanced but invalid: PostgreSQL never renders it
		`"just a string" `, // not an object
	} {
		var want bytes.Buffer
		wantErr := json.Compact(&want, []byte(in))
		got, err := compact([]byte(in))
		if wantErr == nil && (err != nil || string(got) != want.String()) {
			t.Errorf("compact(%q) = %q, %v; want %q", in, got, err, want.String())
		}
		if wantErr != nil && err == nil && json.Valid([]byte(in)) {
			t.Errorf("compact(%q) accepted what json.Compact refuses: %v", in, wantErr)
		}
	}
}

// FuzzCompact: on every valid JSON text, compact gives what json.Compact gives.
func FuzzCompact(f *testing.F) {
	f.Add([]byte(pgJSON))
	f.Add([]byte(`{"a" : "b\\\"c", "d" : [1, {"e" : null}]}`))
	f.Add([]byte(`{"k" : "ok"`))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := compact(in)
		if !json.Valid(in) {
			return
		}
		var want bytes.Buffer
		if cerr := json.Compact(&want, in); cerr != nil {
			t.Fatalf("json.Compact(%q) of valid JSON: %v", in, cerr)
		}
		if err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("compact(%q) = %q, %v; want %q", in, got, err, want.Bytes())
		}
	})
}

// BenchmarkCompact is the per-row cost of compacting an enrichment payload.
func BenchmarkCompact(b *testing.B) {
	src := []byte(pgJSON)
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := compact(src); err != nil {
			b.Fatal(err)
		}
	}
}
