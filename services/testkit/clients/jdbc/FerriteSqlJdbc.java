// ferrite-sql-jdbc: drives ferrite through the Apache Arrow Flight SQL JDBC driver
// (org.apache.arrow:flight-sql-jdbc-driver) and prints one JSON document with what it saw.
// The Python end-to-end tests (services/testkit/python/tests/test_sql_clients.py) run it
// (through the wrapper deploy/dev/install-clients.sh writes) and assert on that document.
//
// The scenario, in order:
//   connect     jdbc:arrow-flight-sql://ADDR?useEncryption=false&database=DB plus token or
//               user/password. The driver always runs a Handshake; every unknown URL property
//               (here `database`) goes out as a gRPC header on every call.
//   metadata    (unless --no-metadata) DatabaseMetaData: product name/version (GetSqlInfo), getCatalogs, getSchemas,
//               getTableTypes, getTables, getColumns(TABLE), getPrimaryKeys(TABLE),
//               getTypeInfo (GetXdbcTypeInfo)
//   --query     Statement.executeQuery (the driver prepares every statement: CreatePrepared-
//               Statement, GetFlightInfo(CommandPreparedStatementQuery), DoGet, Close)
//   --prepared  PreparedStatement with `$1`, `$2`... placeholders, bound in order from the
//               NAME's --bind flags (str:VALUE, int:VALUE, float:VALUE)
//   --error-query  as --query, but must fail
//   --unknown-database DB  a second connection to database DB; `SELECT 1` must fail
//
// Timestamps are reported as int64 nanoseconds since the epoch (the JVM runs in UTC, so the
// driver's zone-less Timestamp carries the stored instant). Exit status: 0 when everything
// behaved as asked, 1 otherwise, 2 on bad usage; the JSON document is printed unless usage
// was bad.

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TimeZone;

public final class FerriteSqlJdbc {

    // --- options -----------------------------------------------------------------------------

    private String addr;
    private String database;
    private String token;
    private String user;
    private String password;
    private String table;
    private String unknownDatabase;
    private boolean metadata = true;
    private final List<String[]> queries = new ArrayList<>();
    private final List<String[]> errorQueries = new ArrayList<>();
    private final List<String[]> prepared = new ArrayList<>();
    private final Map<String, List<String>> binds = new LinkedHashMap<>();

    private final List<String> failures = new ArrayList<>();

    public static void main(String[] args) {
        TimeZone.setDefault(TimeZone.getTimeZone("UTC"));
        FerriteSqlJdbc app = new FerriteSqlJdbc();
        try {
            app.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("ferrite-sql-jdbc: " + e.getMessage());
            System.exit(2);
        }
        Map<String, Object> report = app.scenario();
        System.out.println(Json.write(report));
        System.out.flush();
        if (!app.failures.isEmpty()) {
            System.err.println("ferrite-sql-jdbc: unexpected: " + String.join("; ", app.failures));
            System.exit(1);
        }
        System.exit(0);
    }

    private static String[] named(String v) {
        int eq = v.indexOf('=');
        if (eq <= 0) {
            throw new IllegalArgumentException("want NAME=VALUE, got " + v);
        }
        return new String[] {v.substring(0, eq), v.substring(eq + 1)};
    }

    private void parse(String[] args) {
        for (int i = 0; i < args.length; i++) {
            String flag = args[i];
            if (flag.equals("--no-metadata")) {
                metadata = false;
                continue;
            }
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(flag + " needs a value");
            }
            String v = args[++i];
            switch (flag) {
                case "--addr" -> addr = v;
                case "--database" -> database = v;
                case "--token" -> token = v;
                case "--user" -> user = v;
                case "--password" -> password = v;
                case "--table" -> table = v;
                case "--unknown-database" -> unknownDatabase = v;
                case "--query" -> queries.add(named(v));
                case "--error-query" -> errorQueries.add(named(v));
                case "--prepared" -> prepared.add(named(v));
                case "--bind" -> {
                    String[] nv = named(v);
                    binds.computeIfAbsent(nv[0], k -> new ArrayList<>()).add(nv[1]);
                }
                default -> throw new IllegalArgumentException("unknown flag " + flag);
            }
        }
        if (addr == null || database == null) {
            throw new IllegalArgumentException("--addr and --database are required");
        }
        if (token == null && (user == null || password == null)) {
            throw new IllegalArgumentException("--token or --user and --password are required");
        }
    }

    // --- the scenario --------------------------------------------------------------------------

    private Connection connect(String db) throws SQLException {
        String url = "jdbc:arrow-flight-sql://" + addr + "?useEncryption=false&database=" + db;
        Properties props = new Properties();
        if (token != null) {
            props.setProperty("token", token);
        } else {
            props.setProperty("user", user);
            props.setProperty("password", password);
        }
        return DriverManager.getConnection(url, props);
    }

    private Map<String, Object> scenario() {
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("client", "Apache Arrow Flight SQL JDBC driver");
        report.put("failures", failures);
        try (Connection conn = connect(database)) {
            DatabaseMetaData md = conn.getMetaData();
            report.put("driver", md.getDriverName() + " " + md.getDriverVersion());
            report.put("connected", true);
            if (metadata) {
                report.put("metadata", metadata(md));
            }
            List<Object> results = new ArrayList<>();
            for (String[] q : queries) {
                results.add(query(conn, q[0], q[1], false));
            }
            for (String[] q : prepared) {
                results.add(preparedQuery(conn, q[0], q[1]));
            }
            for (String[] q : errorQueries) {
                results.add(query(conn, q[0], q[1], true));
            }
            report.put("queries", results);
        } catch (SQLException | RuntimeException e) {
            report.put("connected", report.containsKey("driver"));
            report.put("error", describe(e));
            failures.add("connection: " + e);
        }
        if (unknownDatabase != null) {
            report.put("unknown_database", unknownDatabaseStep());
        }
        return report;
    }

    private Map<String, Object> unknownDatabaseStep() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("database", unknownDatabase);
        try (Connection conn = connect(unknownDatabase);
             Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery("SELECT 1")) {
            out.put("result", readResultSet(rs));
            failures.add("unknown database " + unknownDatabase + ": SELECT 1 succeeded");
        } catch (SQLException | RuntimeException e) {
            out.put("error", describe(e));
        }
        return out;
    }

    /** Runs one metadata call; a failure is recorded and is unexpected. */
    private interface MetaCall {
        Object call() throws SQLException;
    }

    private Object meta(String name, MetaCall call) {
        try {
            return call.call();
        } catch (SQLException | RuntimeException e) {
            failures.add("metadata " + name + ": " + e);
            Map<String, Object> err = new LinkedHashMap<>();
            err.put("error", describe(e));
            return err;
        }
    }

    private Map<String, Object> metadata(DatabaseMetaData md) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("product_name", meta("product_name", md::getDatabaseProductName));
        out.put("product_version", meta("product_version", md::getDatabaseProductVersion));
        out.put("catalogs", meta("catalogs", () -> rows(md.getCatalogs(), "TABLE_CAT")));
        out.put("schemas", meta("schemas", () -> rows(md.getSchemas(), "TABLE_SCHEM", "TABLE_CATALOG")));
        out.put("table_types", meta("table_types", () -> rows(md.getTableTypes(), "TABLE_TYPE")));
        out.put("tables", meta("tables", () -> rows(md.getTables(null, null, "%", null),
                "TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE")));
        if (table != null) {
            out.put("columns", meta("columns", () -> rows(md.getColumns(null, null, table, "%"),
                    "TABLE_SCHEM", "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME",
                    "ORDINAL_POSITION", "IS_NULLABLE")));
            out.put("primary_keys", meta("primary_keys", () -> rows(md.getPrimaryKeys(null, null, table),
                    "TABLE_NAME", "COLUMN_NAME", "KEY_SEQ")));
        }
        out.put("type_info", meta("type_info", () -> rows(md.getTypeInfo(), "TYPE_NAME", "DATA_TYPE")));
        return out;
    }

    private static List<Object> rows(ResultSet rs, String... cols) throws SQLException {
        List<Object> out = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                Map<String, Object> row = new LinkedHashMap<>();
                for (String c : cols) {
                    row.put(c, rs.getObject(c));
                }
                out.add(row);
            }
        }
        return out;
    }

    private Map<String, Object> query(Connection conn, String name, String sql, boolean mustFail) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("name", name);
        out.put("sql", sql);
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            out.putAll(readResultSet(rs));
            if (mustFail) {
                failures.add("query " + name + ": succeeded but should have failed");
            }
        } catch (SQLException | RuntimeException e) {
            out.put("error", describe(e));
            if (!mustFail) {
                failures.add("query " + name + ": " + e);
            }
        }
        return out;
    }

    private Map<String, Object> preparedQuery(Connection conn, String name, String sql) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("name", name);
        out.put("sql", sql);
        List<String> params = binds.getOrDefault(name, List.of());
        out.put("params", params);
        try (PreparedStatement ps = conn.prepareStatement(sql)) {
            for (int i = 0; i < params.size(); i++) {
                bind(ps, i + 1, params.get(i));
            }
            try (ResultSet rs = ps.executeQuery()) {
                out.putAll(readResultSet(rs));
            }
        } catch (SQLException | RuntimeException e) {
            out.put("error", describe(e));
            failures.add("prepared " + name + ": " + e);
        }
        return out;
    }

    private static void bind(PreparedStatement ps, int index, String typed) throws SQLException {
        int colon = typed.indexOf(':');
        String type = colon < 0 ? "" : typed.substring(0, colon);
        String value = typed.substring(colon + 1);
        switch (type) {
            case "str" -> ps.setString(index, value);
            case "int" -> ps.setLong(index, Long.parseLong(value));
            case "float" -> ps.setDouble(index, Double.parseDouble(value));
            default -> throw new IllegalArgumentException("--bind value must be str:, int: or float:, got " + typed);
        }
    }

    // --- results -------------------------------------------------------------------------------

    private static Map<String, Object> readResultSet(ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        int n = md.getColumnCount();
        List<Object> columns = new ArrayList<>();
        for (int c = 1; c <= n; c++) {
            Map<String, Object> col = new LinkedHashMap<>();
            col.put("name", md.getColumnLabel(c));
            col.put("type", md.getColumnType(c));
            col.put("sql_type", sqlTypeName(md.getColumnType(c)));
            col.put("type_name", md.getColumnTypeName(c));
            col.put("class_name", md.getColumnClassName(c));
            columns.add(col);
        }
        List<Object> rows = new ArrayList<>();
        while (rs.next()) {
            List<Object> row = new ArrayList<>();
            for (int c = 1; c <= n; c++) {
                row.add(cell(rs, c, md.getColumnType(c)));
            }
            rows.add(row);
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("columns", columns);
        out.put("rows", rows);
        return out;
    }

    private static Object cell(ResultSet rs, int c, int sqlType) throws SQLException {
        if (sqlType == Types.TIMESTAMP || sqlType == Types.TIMESTAMP_WITH_TIMEZONE) {
            Timestamp ts = rs.getTimestamp(c);
            if (ts == null) {
                return null;
            }
            return Math.floorDiv(ts.getTime(), 1000L) * 1_000_000_000L + ts.getNanos();
        }
        Object v = rs.getObject(c);
        if (v == null || v instanceof Number || v instanceof Boolean || v instanceof String) {
            return v;
        }
        return v.toString();
    }

    private static String sqlTypeName(int type) {
        for (java.lang.reflect.Field f : Types.class.getFields()) {
            try {
                if (f.getType() == int.class && f.getInt(null) == type) {
                    return f.getName();
                }
            } catch (IllegalAccessException e) {
                // public static fields: not reached
            }
        }
        return Integer.toString(type);
    }

    /**
     * An exception as the test sees it: the JDBC message and SQLState, and the gRPC status
     * code of the Flight error underneath (the driver shades Arrow Flight, so it is found by
     * class name).
     */
    private static Map<String, Object> describe(Throwable e) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("class", e.getClass().getName());
        out.put("message", e.getMessage());
        if (e instanceof SQLException se) {
            out.put("sql_state", se.getSQLState());
        }
        List<Object> chain = new ArrayList<>();
        Object flightCode = null;
        Object flightMessage = null;
        for (Throwable t = e; t != null && chain.size() < 20; t = t.getCause()) {
            chain.add(t.getClass().getSimpleName() + ": " + t.getMessage());
            if (flightCode == null && t.getClass().getSimpleName().equals("FlightRuntimeException")) {
                try {
                    Object status = t.getClass().getMethod("status").invoke(t);
                    flightCode = String.valueOf(status.getClass().getMethod("code").invoke(status));
                    flightMessage = status.getClass().getMethod("description").invoke(status);
                } catch (ReflectiveOperationException re) {
                    flightCode = "unknown (" + re + ")";
                }
            }
            if (t.getCause() == t) {
                break;
            }
        }
        out.put("flight_status", flightCode);
        out.put("flight_message", flightMessage);
        out.put("chain", chain);
        return out;
    }

    // --- a small JSON writer -------------------------------------------------------------------

    static final class Json {
        static String write(Object v) {
            StringBuilder sb = new StringBuilder();
            write(sb, v);
            return sb.toString();
        }

        private static void write(StringBuilder sb, Object v) {
            if (v == null) {
                sb.append("null");
            } else if (v instanceof String s) {
                string(sb, s);
            } else if (v instanceof Boolean || v instanceof Integer || v instanceof Long
                    || v instanceof Short || v instanceof Byte || v instanceof BigDecimal) {
                sb.append(v);
            } else if (v instanceof Double d) {
                sb.append(d.isNaN() || d.isInfinite() ? "null" : d.toString());
            } else if (v instanceof Float f) {
                sb.append(f.isNaN() || f.isInfinite() ? "null" : f.toString());
            } else if (v instanceof Map<?, ?> m) {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!first) {
                        sb.append(',');
                    }
                    first = false;
                    string(sb, String.valueOf(e.getKey()));
                    sb.append(':');
                    write(sb, e.getValue());
                }
                sb.append('}');
            } else if (v instanceof List<?> l) {
                sb.append('[');
                for (int i = 0; i < l.size(); i++) {
                    if (i > 0) {
                        sb.append(',');
                    }
                    write(sb, l.get(i));
                }
                sb.append(']');
            } else if (v instanceof Number) {
                sb.append(v);
            } else {
                string(sb, v.toString());
            }
        }

        private static void string(StringBuilder sb, String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> sb.append("\\\"");
                    case '\\' -> sb.append("\\\\");
                    case '\n' -> sb.append("\\n");
                    case '\r' -> sb.append("\\r");
                    case '\t' -> sb.append("\\t");
                    default -> {
                        if (c < 0x20) {
                            sb.append(String.format("\\u%04x", (int) c));
                        } else {
                            sb.append(c);
                        }
                    }
                }
            }
            sb.append('"');
        }
    }
}
