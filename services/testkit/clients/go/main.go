// ferrite-sql-go drives ferrite the way Grafana's Flight SQL datasource does, and prints one
// JSON document with what it saw. The Python end-to-end tests
// (services/testkit/python/tests/test_sql_clients.py) run it and assert on that document.
//
// What Grafana's plugin (influxdata/grafana-flightsql-datasource, pkg/flightsql) does, and so
// what this program does, in order:
//
//	connect      plaintext h2c to host:port (the plugin's `secure=false`)
//	auth         token: `authorization: Bearer <t>` on every call;
//	             user/password: Handshake with Basic auth (AuthenticateBasicToken), then the
//	             `authorization` header the server returns on every call
//	metadata     user-entered pairs; here `database: <db>` (or --database-header)
//	health       `select 1` (CheckHealth)
//	sql-info     GetSqlInfo(all) + DoGet             (resource /flightsql/sql-info)
//	tables       GetTables(["BASE TABLE","table"])   (resource /flightsql/tables)
//	columns      GetTables(name, include_schema)     (resource /flightsql/columns),
//	             then the IPC schema in column `table_schema`
//	             (the three metadata steps are skipped with --no-metadata)
//	queries      macros expanded with the plugin's macro set over grafana-plugin-sdk-go's
//	             sqlutil.Interpolate, then GetFlightInfo(CommandStatementQuery) and DoGet of
//	             the single endpoint (any other endpoint count is an error in the plugin)
//
// The plugin's own Go package cannot be imported: its go.mod names another module
// (github.com/grafana/flight-datasource), the Go proxy refuses to serve it, and its macros
// are unexported. So the client is the arrow-go Flight SQL client the plugin is built on,
// and the plugin's macro table is reproduced in macros.go.
//
// Exit status: 0 when every step behaved as asked (--query steps and the metadata steps
// succeeded, every --error-query failed), 1 otherwise, 2 on bad usage. The JSON document is
// printed in every case but bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data/sqlutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// namedSQL is a repeatable `NAME=SQL` flag; order is kept.
type namedSQL struct {
	items []namedItem
}

type namedItem struct{ name, value string }

func (n *namedSQL) String() string { return fmt.Sprint(n.items) }

func (n *namedSQL) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	n.items = append(n.items, namedItem{name, value})
	return nil
}

type options struct {
	addr, database, databaseHeader, token, user, password, table string
	from, to                                                     time.Time
	interval                                                     time.Duration
	timeout                                                      time.Duration
	noMetadata                                                   bool
	queries, errorQueries, databaseOf                            namedSQL
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("ferrite-sql-go", flag.ContinueOnError)
	o := &options{}
	var from, to string
	fs.StringVar(&o.addr, "addr", "", "host:port of ferrite (HTTP and gRPC share it)")
	fs.StringVar(&o.database, "database", "", "database, sent as gRPC metadata on every call")
	fs.StringVar(&o.databaseHeader, "database-header", "database", "metadata key for the database (database, bucket, bucket-name)")
	fs.StringVar(&o.token, "token", "", "token, sent as `authorization: Bearer <token>`")
	fs.StringVar(&o.user, "user", "", "user name for Basic auth via Handshake (with --password)")
	fs.StringVar(&o.password, "password", "", "password for Basic auth via Handshake")
	fs.StringVar(&o.table, "table", "", "table whose columns are listed (GetTables with include_schema)")
	fs.StringVar(&from, "from", "", "dashboard time range start, RFC 3339")
	fs.StringVar(&to, "to", "", "dashboard time range end, RFC 3339")
	fs.DurationVar(&o.interval, "interval", time.Minute, "panel interval ($__interval, $__dateBin)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "deadline of each RPC")
	fs.BoolVar(&o.noMetadata, "no-metadata", false, "skip the sql-info, tables and columns steps")
	fs.Var(&o.queries, "query", "NAME=SQL with Grafana macros; must succeed (repeatable)")
	fs.Var(&o.errorQueries, "error-query", "NAME=SQL with Grafana macros; must fail (repeatable)")
	fs.Var(&o.databaseOf, "database-of", "NAME=DB: run query NAME against database DB instead (repeatable)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.addr == "" || o.database == "" {
		return nil, errors.New("--addr and --database are required")
	}
	if o.token == "" && (o.user == "" || o.password == "") {
		return nil, errors.New("--token or --user and --password are required (as in the plugin's config)")
	}
	var err error
	if o.from, err = time.Parse(time.RFC3339Nano, from); err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	if o.to, err = time.Parse(time.RFC3339Nano, to); err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	return o, nil
}

// --- the JSON document -----------------------------------------------------------------------

type rpcError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type column struct {
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Nullable bool              `json:"nullable"`
	Metadata map[string]string `json:"metadata"`
}

// result is one Flight SQL call: FlightInfo, then DoGet of its endpoint.
type result struct {
	Endpoints int       `json:"endpoints"`
	Schema    []column  `json:"schema"`
	Rows      [][]any   `json:"rows"`
	Error     *rpcError `json:"error,omitempty"`
	// Columns the plugin cannot copy into a Grafana data frame (it has no case for them,
	// e.g. Dictionary): they would show up empty in Grafana.
	GrafanaUnsupported []string `json:"grafana_unsupported"`
}

type queryResult struct {
	Name     string `json:"name"`
	Database string `json:"database"`
	Raw      string `json:"raw"`
	SQL      string `json:"sql"`
	result
}

type handshake struct {
	Authorization string    `json:"authorization,omitempty"`
	Error         *rpcError `json:"error,omitempty"`
}

type report struct {
	Client    string         `json:"client"`
	Handshake *handshake     `json:"handshake"`
	Health    result         `json:"health"`
	SQLInfo   *result        `json:"sql_info"`
	Tables    *result        `json:"tables"`
	Columns   *columnsResult `json:"columns"`
	Queries   []queryResult  `json:"queries"`
	Failures  []string       `json:"failures"`
}

type columnsResult struct {
	Table   string    `json:"table"`
	Columns []column  `json:"columns"`
	Error   *rpcError `json:"error,omitempty"`
}

func toRPCError(err error) *rpcError {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return &rpcError{Code: st.Code().String(), Message: st.Message()}
	}
	// arrow-go wraps stream errors; find the gRPC status inside.
	var withStatus interface{ GRPCStatus() *status.Status }
	if errors.As(err, &withStatus) {
		st := withStatus.GRPCStatus()
		return &rpcError{Code: st.Code().String(), Message: st.Message()}
	}
	return &rpcError{Code: "client", Message: err.Error()}
}

// --- the client ------------------------------------------------------------------------------

type session struct {
	o      *options
	client *flightsql.Client
	md     metadata.MD // what the plugin puts on every call
}

func (s *session) ctx(database string) (context.Context, context.CancelFunc) {
	md := s.md.Copy()
	md.Set(s.o.databaseHeader, database)
	ctx, cancel := context.WithTimeout(context.Background(), s.o.timeout)
	return metadata.NewOutgoingContext(ctx, md), cancel
}

// fetch runs DoGet on the only endpoint of info and reads every batch.
func (s *session) fetch(ctx context.Context, info *flight.FlightInfo, r *result) {
	r.Endpoints = len(info.Endpoint)
	if len(info.Endpoint) != 1 {
		r.Error = &rpcError{Code: "client", Message: fmt.Sprintf("unsupported endpoint count in response: %d", len(info.Endpoint))}
		return
	}
	reader, err := s.client.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		r.Error = toRPCError(err)
		return
	}
	defer reader.Release()
	r.Schema = describeSchema(reader.Schema())
	r.GrafanaUnsupported = grafanaUnsupported(reader.Schema())
	r.Rows = [][]any{}
	for reader.Next() {
		rec := reader.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]any, rec.NumCols())
			for c := range row {
				row[c] = jsonValue(rec.Column(c), i)
			}
			r.Rows = append(r.Rows, row)
		}
	}
	if err := reader.Err(); err != nil && !errors.Is(err, io.EOF) {
		r.Error = toRPCError(err)
	}
}

func (s *session) run(database string, call func(ctx context.Context) (*flight.FlightInfo, error)) result {
	ctx, cancel := s.ctx(database)
	defer cancel()
	var r result
	info, err := call(ctx)
	if err != nil {
		r.Error = toRPCError(err)
		return r
	}
	s.fetch(ctx, info, &r)
	return r
}

func (s *session) columns(table string) *columnsResult {
	out := &columnsResult{Table: table}
	ctx, cancel := s.ctx(s.o.database)
	defer cancel()
	info, err := s.client.GetTables(ctx, &flightsql.GetTablesOpts{TableNameFilterPattern: &table, IncludeSchema: true})
	if err != nil {
		out.Error = toRPCError(err)
		return out
	}
	if len(info.Endpoint) != 1 {
		out.Error = &rpcError{Code: "client", Message: fmt.Sprintf("unsupported endpoint count in response: %d", len(info.Endpoint))}
		return out
	}
	reader, err := s.client.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		out.Error = toRPCError(err)
		return out
	}
	defer reader.Release()
	// As the plugin: the first row's `table_schema`, an IPC-serialised schema.
	if !reader.Next() {
		out.Error = &rpcError{Code: "client", Message: "table not found"}
		if err := reader.Err(); err != nil {
			out.Error = toRPCError(err)
		}
		return out
	}
	rec := reader.RecordBatch()
	idx := rec.Schema().FieldIndices("table_schema")
	if len(idx) == 0 {
		out.Error = &rpcError{Code: "client", Message: "table_schema field not found"}
		return out
	}
	var raw []byte
	switch col := rec.Column(idx[0]).(type) {
	case *array.Binary:
		raw = col.Value(0)
	case *array.String:
		raw = []byte(col.Value(0))
	default:
		out.Error = &rpcError{Code: "client", Message: "table_schema is " + col.DataType().String()}
		return out
	}
	schema, err := flight.DeserializeSchema(raw, memory.DefaultAllocator)
	if err != nil {
		out.Error = &rpcError{Code: "client", Message: "table_schema: " + err.Error()}
		return out
	}
	out.Columns = describeSchema(schema)
	return out
}

// --- Arrow to JSON ---------------------------------------------------------------------------

func describeSchema(schema *arrow.Schema) []column {
	cols := make([]column, 0, schema.NumFields())
	for _, f := range schema.Fields() {
		md := map[string]string{}
		for i, k := range f.Metadata.Keys() {
			md[k] = f.Metadata.Values()[i]
		}
		cols = append(cols, column{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable, Metadata: md})
	}
	return cols
}

// The Arrow types the plugin copies into data frames (pkg/flightsql/arrow.go).
var grafanaTypes = map[arrow.Type]bool{
	arrow.STRING: true, arrow.INT8: true, arrow.INT16: true, arrow.INT32: true, arrow.INT64: true,
	arrow.UINT8: true, arrow.UINT16: true, arrow.UINT32: true, arrow.UINT64: true,
	arrow.FLOAT32: true, arrow.FLOAT64: true, arrow.BOOL: true, arrow.TIMESTAMP: true,
	arrow.DURATION: true, arrow.DENSE_UNION: true,
}

func grafanaUnsupported(schema *arrow.Schema) []string {
	out := []string{}
	for _, f := range schema.Fields() {
		if !grafanaTypes[f.Type.ID()] {
			out = append(out, f.Name)
		}
	}
	return out
}

// jsonValue renders one cell. Timestamps are their raw int64 (the unit is in the schema);
// the plugin reads them as nanoseconds whatever the unit, so the tests demand ns.
func jsonValue(col arrow.Array, i int) any {
	if col.IsNull(i) {
		return nil
	}
	switch c := col.(type) {
	case *array.Timestamp:
		return int64(c.Value(i))
	case *array.String:
		return c.Value(i)
	case *array.LargeString:
		return c.Value(i)
	case *array.Int64:
		return c.Value(i)
	case *array.Int32:
		return c.Value(i)
	case *array.Uint64:
		return c.Value(i)
	case *array.Uint32:
		return c.Value(i)
	case *array.Float64:
		return c.Value(i)
	case *array.Boolean:
		return c.Value(i)
	case *array.Binary:
		return c.Value(i)
	case *array.Dictionary:
		return jsonValue(c.Dictionary(), c.GetValueIndex(i))
	default:
		return c.ValueStr(i)
	}
}

// --- main ------------------------------------------------------------------------------------

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferrite-sql-go:", err)
		os.Exit(2)
	}
	rep := scenario(o)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "ferrite-sql-go: encoding the report:", err)
		os.Exit(1)
	}
	if len(rep.Failures) > 0 {
		fmt.Fprintln(os.Stderr, "ferrite-sql-go: unexpected:", strings.Join(rep.Failures, "; "))
		os.Exit(1)
	}
}

func scenario(o *options) *report {
	rep := &report{Client: "arrow-go/v18 flightsql + grafana-plugin-sdk-go sqlutil (flightsql datasource macros)", Failures: []string{}}
	fail := func(format string, args ...any) { rep.Failures = append(rep.Failures, fmt.Sprintf(format, args...)) }

	client, err := flightsql.NewClient(o.addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail("connect: %v", err)
		return rep
	}
	defer client.Close()
	s := &session{o: o, client: client, md: metadata.MD{}}

	if o.user != "" || o.password != "" {
		hs := &handshake{}
		rep.Handshake = hs
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		authCtx, err := client.Client.AuthenticateBasicToken(ctx, o.user, o.password)
		cancel()
		if err != nil {
			hs.Error = toRPCError(err)
			fail("handshake: %v", err)
			return rep
		}
		authMD, _ := metadata.FromOutgoingContext(authCtx)
		hs.Authorization = strings.Join(authMD.Get("authorization"), ",")
		s.md = metadata.Join(s.md, authMD)
	} else {
		s.md.Set("authorization", "Bearer "+o.token)
	}

	step := func(name string, r result) *result {
		if r.Error != nil {
			fail("%s: %s: %s", name, r.Error.Code, r.Error.Message)
		}
		return &r
	}
	rep.Health = *step("health", s.run(o.database, func(ctx context.Context) (*flight.FlightInfo, error) {
		return client.Execute(ctx, "select 1")
	}))
	if !o.noMetadata {
		rep.SQLInfo = step("sql_info", s.run(o.database, func(ctx context.Context) (*flight.FlightInfo, error) {
			return client.GetSqlInfo(ctx, []flightsql.SqlInfo{})
		}))
		rep.Tables = step("tables", s.run(o.database, func(ctx context.Context) (*flight.FlightInfo, error) {
			return client.GetTables(ctx, &flightsql.GetTablesOpts{TableTypes: []string{"BASE TABLE", "table"}})
		}))
	}
	if o.table != "" && !o.noMetadata {
		rep.Columns = s.columns(o.table)
		if rep.Columns.Error != nil {
			fail("columns: %s: %s", rep.Columns.Error.Code, rep.Columns.Error.Message)
		}
	}

	dbOf := map[string]string{}
	for _, it := range o.databaseOf.items {
		dbOf[it.name] = it.value
	}
	runQuery := func(it namedItem, mustFail bool) {
		q := queryResult{Name: it.name, Database: o.database, Raw: it.value}
		if db, ok := dbOf[it.name]; ok {
			q.Database = db
		}
		sql, err := expandMacros(it.value, o.from, o.to, o.interval)
		if err != nil {
			q.Error = &rpcError{Code: "client", Message: "macro interpolation: " + err.Error()}
			fail("query %s: %v", it.name, err)
			rep.Queries = append(rep.Queries, q)
			return
		}
		q.SQL = sql
		q.result = s.run(q.Database, func(ctx context.Context) (*flight.FlightInfo, error) {
			return client.Execute(ctx, sql)
		})
		switch {
		case mustFail && q.Error == nil:
			fail("query %s: succeeded but should have failed", it.name)
		case !mustFail && q.Error != nil:
			fail("query %s: %s: %s", it.name, q.Error.Code, q.Error.Message)
		}
		rep.Queries = append(rep.Queries, q)
	}
	for _, it := range o.queries.items {
		runQuery(it, false)
	}
	for _, it := range o.errorQueries.items {
		runQuery(it, true)
	}
	return rep
}

// expandMacros does what the plugin's decodeQueryRequest does with a panel query.
func expandMacros(raw string, from, to time.Time, interval time.Duration) (string, error) {
	q := &sqlutil.Query{
		RawSQL:    raw,
		Interval:  interval,
		TimeRange: backend.TimeRange{From: from.UTC(), To: to.UTC()},
		Format:    sqlutil.FormatOptionTable,
	}
	return sqlutil.Interpolate(q, pluginMacros)
}
