package decode

import (
	"errors"
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
		{"unknown event", `{"id":1,"event":"doctors.deleted","row":2,"account":3}`, Change{}, true},
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Payload([]byte(tt.in))
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

func TestKindsAndSets(t *testing.T) {
	t.Parallel()
	for _, k := range Kinds() {
		got, ok := ParseKind(k.String())
		if !ok || got != k {
			t.Fatalf("ParseKind(%q) = %v, %v", k.String(), got, ok)
		}
		if !AllKinds.Has(k) {
			t.Fatalf("AllKinds lacks %v", k)
		}
	}
	if AllKinds.Has(0) || AllKinds.Has(numKinds) {
		t.Fatal("AllKinds has a kind that does not exist")
	}
	s, err := ParseSet([]string{"doctors.created"})
	if err != nil || !s.Has(DoctorCreated) || s.Has(AppointmentCreated) {
		t.Fatalf("ParseSet = %b, %v", s, err)
	}
	if _, err := ParseSet([]string{"nope"}); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("ParseSet(nope) error = %v", err)
	}
	if DoctorCreated.Table() != Doctors || AppointmentCheckin.Table() != Appointments {
		t.Fatal("Table mapping wrong")
	}
}

func FuzzPayload(f *testing.F) {
	f.Add([]byte(`{"id":1,"event":"appointments.created","row":2,"account":3}`))
	f.Add([]byte(`{"id":5,"event":"doctors.created","row":7,"account":1}`))
	f.Add([]byte(`{"id":1,"event":"appointments.checkin","row":2,"acc`))
	f.Add([]byte(`{"id":-1}`))
	f.Add([]byte(`junk from a hand-run NOTIFY`))
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := Payload(p)
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
