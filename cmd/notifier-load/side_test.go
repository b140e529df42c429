package main

import "testing"

func TestParseFrames(t *testing.T) {
	for _, tc := range []struct {
		name         string
		svc          service
		frame        string
		row, account int64
		ok           bool
	}{
		{"notifier", &notifierService{}, `{"id":1796415819245300,"event":"appointments.created","data":{"id":42,"date":"2026-12-04T20:00:00.000Z","accountId":7,"status":{"id":1}}}`, 42, 7, true},
		{"notifier partial", &notifierService{}, `{"id":5,"event":"appointments.created","partial":true,"data":{"id":43,"accountId":2}}`, 43, 2, true},
		{"notifier resync", &notifierService{}, `{"event":"notifier.resync"}`, 0, 0, false},
		{"peer", &peerService{}, `{"id" : 44, "accountId" : 3}`, 44, 3, true},
		{"peer compact", &peerService{}, `{"id":45,"accountId":10}`, 45, 10, true},
		{"peer no account", &peerService{}, `{"id" : 46}`, 46, 0, false},
		{"peer not JSON", &peerService{}, `hello`, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row, account, ok := tc.svc.parse([]byte(tc.frame))
			if ok != tc.ok || (ok && (row != tc.row || account != tc.account)) {
				t.Errorf("parse(%s) = %d, %d, %v; want %d, %d, %v", tc.frame, row, account, ok, tc.row, tc.account, tc.ok)
			}
		})
	}
}

func TestSummariseSide(t *testing.T) {
	runs := []sideRun{
		{CPUPerMsg: 3, Late: 0, Latency: dist{P50US: 10}},
		{CPUPerMsg: 1, Late: 7, Latency: dist{P50US: 30}},
		{CPUPerMsg: 2, Late: 2, Latency: dist{P50US: 20}},
	}
	s := summariseSide(runs)
	if s.CPUPerMsg != 2 || s.Latency.P50US != 20 {
		t.Errorf("medians: CPU %v, p50 %v; want 2, 20", s.CPUPerMsg, s.Latency.P50US)
	}
	if s.Late != 7 {
		t.Errorf("late %d, want the worst run's 7", s.Late)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of 4 values %v, want 2.5", m)
	}
}
