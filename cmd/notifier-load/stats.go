package main

import (
	"slices"
	"time"
)

// dist summarises a set of durations. Percentiles use the nearest rank on the sorted
// samples; p50 is the median.
type dist struct {
	N     int     `json:"n"`
	MinUS float64 `json:"min_us"`
	P50US float64 `json:"p50_us"`
	P90US float64 `json:"p90_us"`
	P99US float64 `json:"p99_us"`
	MaxUS float64 `json:"max_us"`
}

// summarise sorts d in place and returns its distribution.
func summarise(d []time.Duration) dist {
	if len(d) == 0 {
		return dist{}
	}
	slices.Sort(d)
	return dist{
		N:     len(d),
		MinUS: us(d[0]),
		P50US: us(rank(d, 50)),
		P90US: us(rank(d, 90)),
		P99US: us(rank(d, 99)),
		MaxUS: us(d[len(d)-1]),
	}
}

// rank returns the p-th percentile of sorted d by nearest rank.
func rank(d []time.Duration, p int) time.Duration {
	i := (len(d)*p + 99) / 100 // ceil(n*p/100), 1-based
	return d[max(i, 1)-1]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
