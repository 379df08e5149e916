package main

import (
	"testing"
	"time"
)

// The expansions the Grafana Flight SQL datasource produces for a dashboard on
// 2024-01-01 00:00-01:00 UTC with a 60 s interval.
func TestMacrosExpandAsThePluginDoes(t *testing.T) {
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	cases := []struct{ in, want string }{
		{"select 1", "select 1"},
		{"select * from cpu where $__timeFilter(time)",
			"select * from cpu where time >= '2024-01-01T00:00:00Z' AND time <= '2024-01-01T01:00:00Z'"},
		{"select * from cpu where $__timeRange(time)",
			"select * from cpu where time >= '2024-01-01T00:00:00Z' AND time <= '2024-01-01T01:00:00Z'"},
		{"where $__timeRangeFrom(time) and $__timeRangeTo(time)",
			"where time >= '2024-01-01T00:00:00Z' and time <= '2024-01-01T01:00:00Z'"},
		{"where time >= $__timeFrom() and time < $__timeTo()",
			"where time >= cast('2024-01-01T00:00:00Z' as timestamp) and time < cast('2024-01-01T01:00:00Z' as timestamp)"},
		{"select $__dateBin(time)",
			"select date_bin(interval '60 second', time, timestamp '1970-01-01T00:00:00Z')"},
		{"select $__dateBinAlias(time)",
			"select date_bin(interval '60 second', time, timestamp '1970-01-01T00:00:00Z') as time_binned"},
		{"select date_bin($__interval, time)", "select date_bin(interval '60 second', time)"},
		{"select $__interval_ms", "select 60000"},
		{"group by $__timeGroup(time, hour)",
			"group by datepart('hour', time),datepart('day', time),datepart('month', time),datepart('year', time)"},
		{"select $__timeGroupAlias(time, month)",
			"select datepart('month', time) as time_month,datepart('year', time) as time_year"},
	}
	for _, c := range cases {
		got, err := expandMacros(c.in, from, to, time.Minute)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if got != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}
