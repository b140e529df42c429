package decode

import (
	"errors"
	"fmt"
	"testing"
)

func TestPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Change
		wantErr bool
	}{
		{"created", `{"id":1,"event":"appointments.created","row":2,"account":3}`, Change{1, AppointmentCreated, 2, 3}, false},
		{"checkin", `{"id":9007199254740993,"event":"appointments.checkin","row":2,"account":3}`, Change{9007199254740993, AppointmentCheckin, 2, 3}, false},
		{"doctor", `{"id":5,"event":"doctors.created","row":7,"account":1}`, Change{5, DoctorCreated, 7, 1}, false},
		{"unknown event", `{"id":1,"event":"doctors.fired","row":2,"account":3}`, Change{}, true},
		{"rule event", `{"id":1,"event":"message_created","row":2,"account":3}`, Change{1, DoctorDeleted + 1, 2, 3}, false},
		{"missing id", `{"event":"doctors.created","row":2,"account":3}`, Change{}, true},
		{"zero id", `{"id":0,"event":"doctors.created","row":2,"account":3}`, Change{}, true},
		{"negative account", `{"id":1,"event":"doctors.created","row":2,"account":-3}`, Change{}, true},
		{"missing row", `{"id":1,"event":"doctors.created","account":3}`, Change{}, true},
		{"missing event", `{"id":1,"row":2,"account":3}`, Change{}, true},
		{"string id", `{"id":"1","event":"doctors.created","row":2,"account":3}`, Change{}, true},
		{"float id", `{"id":1.5,"event":"doctors.created","row":2,"account":3}`, Change{}, true},
		{"junk", `hello`, Change{}, true},
		{"empty", ``, Change{}, true},
		{"array", `[1,2]`, Change{}, true},
		{"escaped name", `{"id":1,"event":"doctors\u002ecreated","row":2,"account":3}`, Change{1, DoctorCreated, 2, 3}, false},
		{"spaced", `{"id": 1, "event": "doctors.created", "row": 2, "account": 3} `, Change{1, DoctorCreated, 2, 3}, false},
		{"other order", `{"event":"doctors.created","id":1,"row":2,"account":3}`, Change{1, DoctorCreated, 2, 3}, false},
		{"max id", `{"id":9223372036854775807,"event":"doctors.created","row":2,"account":3}`, Change{9223372036854775807, DoctorCreated, 2, 3}, false},
		{"id overflows", `{"id":9223372036854775808,"event":"doctors.created","row":2,"account":3}`, Change{}, true},
		{"leading zero", `{"id":01,"event":"doctors.created","row":2,"account":3}`, Change{}, true},
		{"exponent", `{"id":1e3,"event":"doctors.created","row":2,"account":3}`, Change{}, true},
		{"trailing junk", `{"id":1,"event":"doctors.created","row":2,"account":3}x`, Change{}, true},
		{"truncated", `{"id":1,"event":"doctors.created","row":2,"account":3`, Change{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewCatalog()
			if _, err := c.Add("message_created", "messages"); err != nil {
				t.Fatal(err)
			}
			got, err := c.Payload([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrPayload) {
					t.Fatalf("Payload(%q) error = %v, want ErrPayload", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Payload(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	c := NewCatalog()
	for _, k := range c.Kinds() {
		got, ok := c.Kind(c.Name(k))
		if !ok || got != k || c.Name(k) != k.String() {
			t.Fatalf("Kind(%q) = %v, %v", c.Name(k), got, ok)
		}
		if !AllKinds.Has(k) {
			t.Fatalf("AllKinds lacks %v", k)
		}
	}
	if AllKinds.Has(0) {
		t.Fatal("AllKinds has the zero kind")
	}
	k, err := c.Add("message_created", "messages")
	if err != nil || c.Name(k) != "message_created" || c.Rule(k) != "messages" {
		t.Fatalf("Add = %v, %v (%q, %q)", k, err, c.Name(k), c.Rule(k))
	}
	if again, err := c.Add("message_created", ""); err != nil || again != k || c.Rule(k) != "" {
		t.Fatalf("Add again = %v, %v, rule %q: a name keeps its Kind, takes its new rule", again, err, c.Rule(k))
	}
	s, err := c.ParseSet([]string{"doctors.created", "message_created"})
	if err != nil || !s.Has(DoctorCreated) || !s.Has(k) || s.Has(AppointmentCreated) {
		t.Fatalf("ParseSet = %b, %v", s, err)
	}
	if _, err := c.ParseSet([]string{"nope"}); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("ParseSet(nope) error = %v", err)
	}
	for i := len(c.Kinds()) + 1; i <= MaxKinds; i++ {
		if _, err := c.Add(fmt.Sprintf("e%d", i), "r"); err != nil {
			t.Fatalf("Add #%d: %v", i, err)
		}
	}
	if _, err := c.Add("one_too_many", "r"); !errors.Is(err, ErrCatalogFull) {
		t.Fatalf("Add beyond MaxKinds: %v", err)
	}
	if !AllKinds.Has(Kind(MaxKinds)) {
		t.Fatal("AllKinds lacks the last Kind")
	}
}

func FuzzPayload(f *testing.F) {
	f.Add([]byte(`{"id":1,"event":"appointments.created","row":2,"account":3}`))
	f.Add([]byte(`{"id":5,"event":"doctors.created","row":7,"account":1}`))
	f.Add([]byte(`{"id":1,"event":"appointments.checkin","row":2,"acc`))
	f.Add([]byte(`{"id":-1}`))
	f.Add([]byte(`junk from a hand-run NOTIFY`))
	cat := NewCatalog()
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := cat.Payload(p)
		// The canonical form's fast path decodes exactly what encoding/json does.
		if jc, jerr := cat.payloadJSON(p); jc != c || (jerr == nil) != (err == nil) {
			t.Fatalf("Payload(%q) = %+v, %v; encoding/json: %+v, %v", p, c, err, jc, jerr)
		}
		if err != nil {
			if !errors.Is(err, ErrPayload) {
				t.Fatalf("error %v does not wrap ErrPayload", err)
			}
			return
		}
		if c.ID <= 0 || c.RowID <= 0 || c.AccountID <= 0 || !AllKinds.Has(c.Kind) {
			t.Fatalf("accepted invalid change %+v from %q", c, p)
		}
	})
}

// BenchmarkPayload is the decoding of one log entry, in the form notifier.payload()
// writes.
func BenchmarkPayload(b *testing.B) {
	c := NewCatalog()
	p := []byte(`{"id":123456,"event":"appointments.status.changed","row":98765,"account":42}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Payload(p); err != nil {
			b.Fatal(err)
		}
	}
}
