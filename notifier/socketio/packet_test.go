package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
	"github.com/pgnotifier/notifier/notifier/hub"
)

// Frames captured between socket.io-client 4.8.4 and socket.io 4.8.4
// (docs/socketio-protocol.md), as seeds and table cases.
var capturedClientFrames = []string{
	`40{"token":"good-token"}`,
	`40`,
	`40{"pid":"yqTjVuT967ckYGSSAAAB","offset":"Q80xAxB","token":"good-token"}`,
	`41`,
	`3`,
	`2probe`,
	`5`,
	`1`,
	`41` + "\x1e" + `1`,
	`451-["x",{"_placeholder":true,"num":0}]`,
	`431["ok"]`,
	`42["appointments.created",{"id":1,"patient":"Ada","at":"2024-01-01T10:00:00Z"}]`,
	`44/ns,{"message":"Invalid namespace"}`,
	`40/admin,{"token":"t"}`,
	`bAQID`,
}

func TestParseSIOPacket(t *testing.T) {
	for _, tc := range []struct {
		in      string
		typ     byte
		nsp     string
		ack     int64
		attach  int
		data    string
		wantErr bool
	}{
		{in: `0{"token":"good-token"}`, typ: '0', nsp: "/", ack: -1, data: `{"token":"good-token"}`},
		{in: `0`, typ: '0', nsp: "/", ack: -1},
		{in: `1`, typ: '1', nsp: "/", ack: -1},
		{in: `2["a",{"x":1}]`, typ: '2', nsp: "/", ack: -1, data: `["a",{"x":1}]`},
		{in: `21["a"]`, typ: '2', nsp: "/", ack: 1, data: `["a"]`},
		{in: `2/chat,17["a"]`, typ: '2', nsp: "/chat", ack: 17, data: `["a"]`},
		{in: `0/admin,{"token":"t"}`, typ: '0', nsp: "/admin", ack: -1, data: `{"token":"t"}`},
		{in: `0/admin`, typ: '0', nsp: "/admin", ack: -1},
		{in: `31["ok"]`, typ: '3', nsp: "/", ack: 1, data: `["ok"]`},
		{in: `51-["x",{"_placeholder":true,"num":0}]`, typ: '5', nsp: "/", ack: -1, attach: 1, data: `["x",{"_placeholder":true,"num":0}]`},
		{in: `2[7]`, typ: '2', nsp: "/", ack: -1, data: `[7]`},
		{in: ``, wantErr: true},
		{in: `7`, wantErr: true},
		{in: `2`, wantErr: true},
		{in: `2[]`, wantErr: true},
		{in: `2[{}]`, wantErr: true},
		{in: `2{"a":1}`, wantErr: true},
		{in: `0["x"]`, wantErr: true},
		{in: `1{}`, wantErr: true},
		{in: `2["a"`, wantErr: true},
		{in: `5["x"]`, wantErr: true},
		{in: `5-["x"]`, wantErr: true},
		{in: `21234567890123456["a"]`, wantErr: true},
		{in: "2/a\x01b,[\"a\"]", wantErr: true},
		{in: `0/` + strings.Repeat("n", maxNamespaceBytes+1) + `,{}`, wantErr: true},
	} {
		p, err := parseSIOPacket([]byte(tc.in))
		if tc.wantErr {
			if err == nil {
				t.Errorf("parse %q = %+v, want an error", tc.in, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("parse %q: %v", tc.in, err)
			continue
		}
		if p.Type != tc.typ || p.Namespace != tc.nsp || p.AckID != tc.ack || p.Attachments != tc.attach || string(p.Data) != tc.data {
			t.Errorf("parse %q = %+v (data %s)", tc.in, p, p.Data)
		}
	}
}

func TestEachEIOPacket(t *testing.T) {
	var got []string
	err := eachEIOPacket([]byte("40{\"token\":\"t\"}\x1e3\x1e41"), func(p eioPacket) error {
		got = append(got, string(p.Type)+"|"+string(p.Data))
		return nil
	})
	if err != nil || strings.Join(got, " ") != `4|0{"token":"t"} 3| 4|1` {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"", "\x1e", "3\x1e", "x", "3\x1e9"} {
		if err := checkEIOPayload([]byte(bad)); !errors.Is(err, errMalformed) {
			t.Errorf("payload %q: %v, want errMalformed", bad, err)
		}
	}
	if err := checkEIOPayload([]byte("3\x1ebAQID")); !errors.Is(err, errBinary) {
		t.Errorf("binary: %v", err)
	}
}

func TestEventFrame(t *testing.T) {
	hd := New(Config{Events: decode.AllKinds}, nil, nil)
	s := &session{hd: hd}
	m := hub.NewMessage(enrich.Event{ID: 184467, Kind: decode.AppointmentCreated, AccountID: 1, Data: []byte(`{"id":1}`)})
	if got, want := string(s.appendEvent(nil, m)), `42["appointments.created",{"id":1},"184467"]`; got != want {
		t.Fatalf("frame = %s, want %s", got, want)
	}
	empty := &hub.Message{ID: 2, Kind: decode.DoctorCreated}
	if got, want := string(s.appendEvent(nil, empty)), `42["doctors.created",null,"2"]`; got != want {
		t.Fatalf("frame = %s, want %s", got, want)
	}
}

func TestPID(t *testing.T) {
	r := recovery{key: []byte("k")}
	pid := r.newPID(42, 1234)
	if len(pid) > maxPIDLen {
		t.Fatalf("pid %q too long", pid)
	}
	if pos, err := r.verifyPID(pid, 42); err != nil || pos != 1234 {
		t.Fatalf("verify = %d %v", pos, err)
	}
	if r.newPID(42, 1234) == pid {
		t.Fatal("pids repeat")
	}
	// Another instance with the same key accepts it; another key, another account,
	// or any change does not.
	if _, err := (recovery{key: []byte("k")}).verifyPID(pid, 42); err != nil {
		t.Fatalf("same key refused: %v", err)
	}
	if _, err := (recovery{key: []byte("other")}).verifyPID(pid, 42); !errors.Is(err, errPIDUnverified) {
		t.Fatalf("other key: %v", err)
	}
	if _, err := r.verifyPID(pid, 43); !errors.Is(err, errPIDUnverified) {
		t.Fatalf("other account: %v", err)
	}
	n, rest, _ := strings.Cut(pid, ".")
	_, mac, _ := strings.Cut(rest, ".")
	flipped := "A"
	if pid[len(pid)-1] == 'A' {
		flipped = "B"
	}
	for _, bad := range []string{n + ".1235." + mac, pid[:len(pid)-1] + flipped} {
		if _, err := r.verifyPID(bad, 42); !errors.Is(err, errPIDUnverified) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for _, bad := range []string{"", pid + "x", pid[:len(pid)-1], n + ".01234." + mac, n + ".-1." + mac, strings.Replace(pid, ".", "", 1)} {
		if _, err := r.verifyPID(bad, 42); !errors.Is(err, errPIDMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// The socket id is stable for a pid, differs between pids, and is not the pid.
	sid := r.socketID(pid)
	if sid != (recovery{key: []byte("k")}).socketID(pid) || sid == r.socketID(r.newPID(42, 1234)) || strings.Contains(pid, sid) {
		t.Fatal("socket ids")
	}
}

func TestParseOffset(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "7": 7, "9223372036854775807": 1<<63 - 1} {
		if got, ok := parseOffset(in); !ok || got != want {
			t.Errorf("parseOffset(%q) = %d %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-1", "01", "1.5", "9223372036854775808", "Q80xAxB", " 1"} {
		if _, ok := parseOffset(in); ok {
			t.Errorf("parseOffset(%q) accepted", in)
		}
	}
}

func FuzzParseEIOPayload(f *testing.F) {
	for _, s := range capturedClientFrames {
		f.Add([]byte(s))
	}
	f.Add([]byte("\x1e\x1e"))
	f.Add([]byte("4"))
	f.Add([]byte("40{\"tok"))
	f.Add([]byte("en\":\"t\"}\x1e3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := eachEIOPacket(b, func(p eioPacket) error {
			n++
			if p.Type < eioOpen || p.Type > eioNoop {
				t.Fatalf("type %q accepted", p.Type)
			}
			if bytes.IndexByte(p.Data, recordSeparator) >= 0 {
				t.Fatal("a packet holds a record separator")
			}
			if p.Type == eioMessage {
				_, _ = parseSIOPacket(p.Data)
			}
			return nil
		})
		if (err == nil) != (checkEIOPayload(b) == nil) {
			t.Fatal("checkEIOPayload disagrees")
		}
		if err == nil && n != bytes.Count(b, []byte{recordSeparator})+1 {
			t.Fatalf("%d packets from %q", n, b)
		}
	})
}

func FuzzParseSIOPacket(f *testing.F) {
	for _, s := range capturedClientFrames {
		if len(s) > 1 && s[0] == '4' {
			f.Add([]byte(s[1:]))
		}
	}
	f.Add([]byte(`2/chat,17["a"]`))
	f.Add([]byte(`2["a"`))
	f.Add([]byte(`]`))
	f.Add([]byte(`0/`))
	f.Add([]byte(`5999999-`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseSIOPacket(b)
		if err != nil {
			return
		}
		if p.Type < sioConnect || p.Type > sioBinaryAck || p.AckID < -1 || p.Attachments < 0 {
			t.Fatalf("accepted %+v", p)
		}
		if p.Namespace == "" || p.Namespace[0] != '/' || !printable([]byte(p.Namespace)) {
			t.Fatalf("namespace %q", p.Namespace)
		}
		if len(p.Data) > 0 && !bytes.HasSuffix(b, p.Data) {
			t.Fatal("data is not the packet's tail")
		}
		if p.Type == sioConnect {
			var a connectAuth
			_ = json.Unmarshal(p.Data, &a)
			_, _ = jsonString(a.Token)
		}
		// Re-encoding what was read yields a packet that reads the same.
		again, err := parseSIOPacket(appendSIO(nil, p.Type, p.Namespace, p.Data)[1:])
		if p.Type != sioBinaryEvent && p.Type != sioBinaryAck && p.AckID < 0 && (err != nil || again.Type != p.Type || again.Namespace != p.Namespace || !bytes.Equal(again.Data, p.Data)) {
			t.Fatalf("round trip of %q: %+v, %v", b, again, err)
		}
	})
}

func FuzzVerifyPID(f *testing.F) {
	r := recovery{key: []byte("fuzz")}
	f.Add(r.newPID(1, 0), int64(1))
	f.Add(r.newPID(7, 99), int64(8))
	f.Add("a.b.c", int64(1))
	f.Add("yqTjVuT967ckYGSSAAAB", int64(1))
	f.Fuzz(func(t *testing.T, pid string, account int64) {
		pos, err := r.verifyPID(pid, account)
		if err == nil && (pos < 0 || r.mac(strings.SplitN(pid, ".", 3)[0], strings.SplitN(pid, ".", 3)[1], account) != strings.SplitN(pid, ".", 3)[2]) {
			t.Fatalf("accepted %q for %d", pid, account)
		}
	})
}

// BenchmarkEventFrame measures framing one event into a polling answer: the
// per-connection cost of our encoding, a prefix, the shared data and the offset.
func BenchmarkEventFrame(b *testing.B) {
	hd := New(Config{Events: decode.AllKinds}, nil, nil)
	s := &session{hd: hd}
	data := []byte(`{"id":123,"date":"2025-01-23T00:00:00.000Z","startTime":"09:00","endTime":"09:15","accountId":1,"doctor":{"id":1,"name":"Dr. Victor"},"patient":{"id":456,"name":"João Silva","contact":{"phone":"(81) 99999-9999"}},"status":{"id":1,"name":"Agendado"}}`)
	m := hub.NewMessage(enrich.Event{ID: 184467, Kind: decode.AppointmentCreated, AccountID: 1, Data: data})
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(s.appendEvent(nil, m))))
	for b.Loop() {
		buf = s.appendEvent(buf[:0], m)
	}
}
