package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTokenFromRequest(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		target  string
		auth    []string // Authorization header values
		want    string
		wantErr error
	}{
		{name: "header", target: "/ws", auth: []string{"Bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "lower-case bearer", target: "/ws", auth: []string{"bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "upper-case bearer", target: "/ws", auth: []string{"BEARER abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "extra spaces", target: "/ws", auth: []string{"  Bearer   abc.def.ghi  "}, want: "abc.def.ghi"},
		{name: "query param", target: "/ws?access_token=abc.def.ghi", want: "abc.def.ghi"},
		{name: "query param escaped", target: "/ws?since=5&access_token=a%2Eb.c", want: "a.b.c"},
		{name: "header wins", target: "/ws?access_token=from.query.x", auth: []string{"Bearer from.header.x"}, want: "from.header.x"},
		{name: "first header wins", target: "/ws", auth: []string{"Bearer one.x.y", "Bearer two.x.y"}, want: "one.x.y"},
		{name: "basic falls back to query", target: "/ws?access_token=q.q.q", auth: []string{"Basic dXNlcjpwYXNz"}, want: "q.q.q"},
		{name: "empty bearer falls back to query", target: "/ws?access_token=q.q.q", auth: []string{"Bearer "}, want: "q.q.q"},
		{name: "none", target: "/ws", wantErr: ErrNoToken},
		{name: "empty query param", target: "/ws?access_token=", wantErr: ErrNoToken},
		{name: "basic only", target: "/ws", auth: []string{"Basic dXNlcjpwYXNz"}, wantErr: ErrNoToken},
		{name: "scheme only", target: "/ws", auth: []string{"Bearer"}, wantErr: ErrNoToken},
		{name: "bearer prefix without space", target: "/ws", auth: []string{"Bearerabc"}, wantErr: ErrNoToken},
		{name: "other param name", target: "/ws?token=abc", wantErr: ErrNoToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			for _, a := range tt.auth {
				r.Header.Add("Authorization", a)
			}
			got, err := TokenFromRequest(r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("TokenFromRequest error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("TokenFromRequest = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTokenFromRequestNil(t *testing.T) {
	t.Parallel()
	if _, err := TokenFromRequest(nil); !errors.Is(err, ErrNoToken) {
		t.Errorf("nil request error = %v, want %v", err, ErrNoToken)
	}
	if _, err := TokenFromRequest(&http.Request{Header: http.Header{}}); !errors.Is(err, ErrNoToken) {
		t.Errorf("request without URL error = %v, want %v", err, ErrNoToken)
	}
}
