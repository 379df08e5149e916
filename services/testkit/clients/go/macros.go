package main

// The Grafana Flight SQL datasource's macro table (influxdata/grafana-flightsql-datasource
// v1.1.1, pkg/flightsql/macro.go), reproduced because the plugin keeps it unexported. It is
// layered over grafana-plugin-sdk-go's sqlutil.DefaultMacros by sqlutil.Interpolate, exactly
// as the plugin does, so $__timeFilter, $__interval_ms, ... are the SDK's own code.
//
//	$__timeFilter(c)        c >= '<from, RFC 3339 UTC>' AND c <= '<to>'          (SDK)
//	$__timeRange(c)         the same                                              (SDK timeFilter)
//	$__timeRangeFrom(c)     c >= '<from>'                                         (SDK timeFrom)
//	$__timeRangeTo(c)       c <= '<to>'                                           (SDK timeTo)
//	$__timeFrom()           cast('<from, RFC 3339>' as timestamp)
//	$__timeTo()             cast('<to>' as timestamp)
//	$__interval             interval '<N> second'
//	$__dateBin(c)           date_bin(interval '<N> second', c, timestamp '1970-01-01T00:00:00Z')
//	$__dateBinAlias(c)      the same + " as c_binned"
//	$__timeGroup(c, hour)   datepart('hour', c),datepart('day', c),datepart('month', c),datepart('year', c)
//	$__timeGroupAlias(c, hour)  the same, each "as c_hour", "as c_day", ...

import (
	"fmt"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data/sqlutil"
)

var pluginMacros = sqlutil.Macros{
	"dateBin":        dateBinMacro(false),
	"dateBinAlias":   dateBinMacro(true),
	"interval":       intervalMacro,
	"timeGroup":      timeGroupMacro(false),
	"timeGroupAlias": timeGroupMacro(true),
	// The plugin moves the SDK's timeFrom/timeTo/timeFilter to timeRange* and gives
	// timeFrom/timeTo a cast-to-timestamp meaning, like Grafana's other SQL datasources.
	"timeRangeFrom": sqlutil.DefaultMacros["timeFrom"],
	"timeRangeTo":   sqlutil.DefaultMacros["timeTo"],
	"timeRange":     sqlutil.DefaultMacros["timeFilter"],
	"timeFrom":      castTimestampMacro(func(q *sqlutil.Query) time.Time { return q.TimeRange.From }),
	"timeTo":        castTimestampMacro(func(q *sqlutil.Query) time.Time { return q.TimeRange.To }),
}

func intervalSQL(q *sqlutil.Query) string {
	return fmt.Sprintf("interval '%d second'", int64(q.Interval.Seconds()))
}

func intervalMacro(q *sqlutil.Query, _ []string) (string, error) {
	return intervalSQL(q), nil
}

func castTimestampMacro(at func(*sqlutil.Query) time.Time) sqlutil.MacroFunc {
	return func(q *sqlutil.Query, _ []string) (string, error) {
		return fmt.Sprintf("cast('%s' as timestamp)", at(q).Format(time.RFC3339)), nil
	}
}

func dateBinMacro(alias bool) sqlutil.MacroFunc {
	return func(q *sqlutil.Query, args []string) (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("%w: expected 1 argument, received %d", sqlutil.ErrorBadArgumentCount, len(args))
		}
		sql := fmt.Sprintf("date_bin(%s, %s, timestamp '1970-01-01T00:00:00Z')", intervalSQL(q), args[0])
		if alias {
			sql += fmt.Sprintf(" as %s_binned", args[0])
		}
		return sql, nil
	}
}

// timeGroupMacro lists datepart() from the given unit up to the year, finest first; an
// unknown unit gives an empty string (as in the plugin).
func timeGroupMacro(alias bool) sqlutil.MacroFunc {
	units := []string{"minute", "hour", "day", "month", "year"}
	return func(_ *sqlutil.Query, args []string) (string, error) {
		if len(args) != 2 {
			return "", fmt.Errorf("%w: expected 2 arguments, received %d", sqlutil.ErrorBadArgumentCount, len(args))
		}
		column, unit := args[0], args[1]
		start := -1
		for i, u := range units {
			if u == unit {
				start = i
			}
		}
		if start < 0 {
			return "", nil
		}
		parts := make([]string, 0, len(units)-start)
		for _, u := range units[start:] {
			part := fmt.Sprintf("datepart('%s', %s)", u, column)
			if alias {
				part += fmt.Sprintf(" as %s_%s", column, u)
			}
			parts = append(parts, part)
		}
		return strings.Join(parts, ","), nil
	}
}
