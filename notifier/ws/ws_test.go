package ws

import (
	"strings"
	"testing"

	"github.com/pgnotifier/notifier/notifier/decode"
)

func TestParseQuery(t *testing.T) {
	t.Parallel()
	checkin := decode.Set(0).With(decode.AppointmentCheckin)
	created := decode.Set(0).With(decode.AppointmentCreated)
	tests := []struct {
		since, events string
		allowed       decode.Set
		wantSince     int64
		wantSet       decode.Set
		wantErr       string
	}{
		{"", "", decode.AllKinds, -1, decode.AllKinds, ""},
		{"0", "", decode.AllKinds, 0, decode.AllKinds, ""},
		{"9223372036854775807", "", decode.AllKinds, 9223372036854775807, decode.AllKinds, ""},
		{"", "appointments.checkin", decode.AllKinds, -1, checkin, ""},
		{"", " appointments.checkin , appointments.created", decode.AllKinds, -1, checkin | created, ""},
		{"", "", created, -1, created, ""},
		{"-1", "", decode.AllKinds, 0, 0, "since"},
		{"1e3", "", decode.AllKinds, 0, 0, "since"},
		{"9223372036854775808", "", decode.AllKinds, 0, 0, "since"},
		{strings.Repeat("9", 200), "", decode.AllKinds, 0, 0, "..."},
		{"", "doctors.fired", decode.AllKinds, 0, 0, "unknown event"},
		{"", strings.Repeat("x", 5000), decode.AllKinds, 0, 0, "..."},
		{"", "appointments.checkin", created, 0, 0, "not allowed"},
		{"", ",", decode.AllKinds, 0, 0, "unknown event"},
	}
	for _, tt := range tests {
		since, set, err := ParseQuery(tt.since, tt.events, decode.NewCatalog(), tt.allowed)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseQuery(%q, %q) error = %v, want %q", tt.since, tt.events, err, tt.wantErr)
			}
			continue
		}
		if err != nil || since != tt.wantSince || set != tt.wantSet {
			t.Errorf("ParseQuery(%q, %q) = %d, %b, %v", tt.since, tt.events, since, set, err)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("12", "appointments.created,doctors.created")
	f.Add("", "")
	f.Add("-0", ",,")
	f.Add("007", "appointments.checkin,appointments.checkin")
	f.Fuzz(func(t *testing.T, since, events string) {
		allowed := decode.Set(0).With(decode.AppointmentCreated).With(decode.DoctorCreated)
		s, set, err := ParseQuery(since, events, decode.NewCatalog(), allowed)
		if err != nil {
			if len(err.Error()) > 300 {
				t.Fatalf("error echoes too much input: %d bytes", len(err.Error()))
			}
			return
		}
		if s < -1 || set == 0 || set&^allowed != 0 {
			t.Fatalf("accepted since %d set %b from %q %q", s, set, since, events)
		}
	})
}
