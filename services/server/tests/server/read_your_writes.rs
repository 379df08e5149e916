//! Read-your-writes for schema across the cluster: a database, table or column that an
//! acknowledged write created is visible to the very next query, through any router and any
//! querier, over HTTP and Flight SQL — even though the queriers' schema caches follow a
//! change feed that lags the catalog.

use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::CommandGetTables;
use arrow_flight::sql::client::FlightSqlServiceClient;
use ferrite_testkit::cluster::{ClusterOptions, TestCluster};
use futures::TryStreamExt;
use tonic::transport::{Channel, Endpoint};

use super::binary;

const ITERATIONS: usize = 300;

/// What one iteration creates and reads back.
struct Case {
    database: String,
    table: String,
    tag: String,
    field: String,
    /// Half of the writes carry a bad line too: a partial write must create the same schema.
    partial: bool,
}

impl Case {
    /// One good line with the case's tag and field (value 7), and a bad one when partial.
    fn body(&self) -> String {
        let good = format!("{},{}=x {}=7i 1000", self.table, self.tag, self.field);
        if self.partial {
            format!(
                "{good}\n{},{}=y {}= 2000\n",
                self.table, self.tag, self.field
            )
        } else {
            format!("{good}\n")
        }
    }

    fn sql(&self) -> String {
        format!(
            "SELECT \"{}\", \"{}\" FROM \"{}\" WHERE \"{}\" IS NOT NULL",
            self.tag, self.field, self.table, self.field
        )
    }
}

/// A front door's clients: HTTP and a Flight SQL channel.
struct Door {
    url: String,
    http: reqwest::Client,
    flight: Channel,
}

impl Door {
    async fn new(url: String) -> Self {
        let flight = Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            url,
            http: crate::client(),
            flight,
        }
    }

    /// Write the case's lines; `Err` describes a response other than the expected one.
    async fn write(&self, case: &Case) -> Result<(), String> {
        let r = self
            .http
            .post(format!(
                "{}/api/v3/write_lp?db={}&precision=nanosecond",
                self.url, case.database
            ))
            .body(case.body())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        match (case.partial, status) {
            (false, 204) => Ok(()),
            (true, 400) if text.contains("\"line_number\":2") => Ok(()),
            _ => Err(format!("write answered {status}: {text}")),
        }
    }

    /// The case's query over HTTP: one row, the tag `x` and the field 7.
    async fn query_http(&self, case: &Case) -> Result<(), String> {
        let r = self
            .http
            .get(format!("{}/api/v3/query_sql", self.url))
            .query(&[("db", case.database.as_str()), ("q", case.sql().as_str())])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let want = serde_json::json!([{ case.tag.as_str(): "x", case.field.as_str(): 7 }]);
        if status == 200 && serde_json::from_str::<serde_json::Value>(&text).ok() == Some(want) {
            Ok(())
        } else {
            Err(format!("HTTP query answered {status}: {text}"))
        }
    }

    fn flight_sql(&self, database: &str) -> FlightSqlServiceClient<Channel> {
        let mut client = FlightSqlServiceClient::new(self.flight.clone());
        client.set_token(crate::ADMIN_TOKEN.to_string());
        client.set_header("database", database);
        client
    }

    /// `GetTables` lists the case's table with its new column, then the statement returns
    /// the row.
    async fn query_flight_sql(&self, case: &Case) -> Result<(), String> {
        let mut client = self.flight_sql(&case.database);
        let command = CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("iox".into()),
            table_name_filter_pattern: Some(case.table.clone()),
            table_types: vec![],
            include_schema: true,
        };
        let info = client
            .get_tables(command)
            .await
            .map_err(|e| format!("GetTables: {e}"))?;
        let tables = fetch(&mut client, info).await?;
        let listed = tables.iter().any(|b| {
            let names = b.column_by_name("table_name").unwrap().as_string::<i32>();
            let schemas = b.column_by_name("table_schema").unwrap().as_binary::<i32>();
            (0..b.num_rows()).any(|i| {
                names.value(i) == case.table
                    && ipc_schema_has(schemas.value(i), &[&case.tag, &case.field])
            })
        });
        if !listed {
            return Err(format!(
                "GetTables does not list {} with {} and {}",
                case.table, case.tag, case.field
            ));
        }
        let info = client
            .execute(case.sql(), None)
            .await
            .map_err(|e| format!("statement: {e}"))?;
        let rows: usize = fetch(&mut client, info)
            .await?
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        if rows == 1 {
            Ok(())
        } else {
            Err(format!("statement returned {rows} rows"))
        }
    }
}

async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: arrow_flight::FlightInfo,
) -> Result<Vec<RecordBatch>, String> {
    let ticket = info.endpoint[0].ticket.clone().ok_or("no ticket")?;
    client
        .do_get(ticket)
        .await
        .map_err(|e| format!("DoGet: {e}"))?
        .try_collect()
        .await
        .map_err(|e| format!("DoGet stream: {e}"))
}

/// Does the IPC-encoded schema (as GetTables sends it) have every one of `columns`?
fn ipc_schema_has(ipc: &[u8], columns: &[&str]) -> bool {
    arrow::ipc::convert::try_schema_from_ipc_buffer(ipc)
        .is_ok_and(|schema| columns.iter().all(|c| schema.field_with_name(c).is_ok()))
}

/// Run `cases` as write through `a`, then at once HTTP and Flight SQL through `b`; every
/// failure, described.
async fn run(a: &Door, b: &Door, cases: impl Iterator<Item = Case>) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let outcome = async {
            a.write(&case).await?;
            b.query_http(&case).await?;
            b.query_flight_sql(&case).await
        }
        .await;
        if let Err(e) = outcome {
            failures.push(format!("{}.{}: {e}", case.database, case.table));
        }
    }
    failures
}

fn assert_none(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} of {ITERATIONS} iterations failed, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_databases_tables_and_columns_are_queryable_at_once_through_any_router_and_querier() {
    let opts = ClusterOptions {
        routers: 2,
        queriers: 2,
        ..crate::cluster_options()
    };
    let c = TestCluster::start(binary(), opts).await.unwrap();
    let a = Door::new(c.routers[0].url()).await;
    let b = Door::new(c.routers[1].url()).await;
    // 300 new columns on one table: above the default limit of 250.
    let r = a
        .http
        .post(format!("{}/api/v0/databases", a.url))
        .json(&serde_json::json!({ "name": "ryw", "maxColumnsPerTable": 1000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Both queriers have the database cached before the new tables arrive.
    let seed = Case {
        database: "ryw".into(),
        table: "seed".into(),
        tag: "host".into(),
        field: "v".into(),
        partial: false,
    };
    a.write(&seed).await.unwrap();
    for _ in 0..4 {
        b.query_http(&seed).await.unwrap();
    }

    let tables = (0..ITERATIONS).map(|i| Case {
        database: "ryw".into(),
        table: format!("table_{i}"),
        tag: format!("tag_{i}"),
        field: format!("field_{i}"),
        partial: i % 2 == 1,
    });
    assert_none("new tables", &run(&a, &b, tables).await);

    let databases = (0..ITERATIONS).map(|i| Case {
        database: format!("ryw_db_{i}"),
        table: "m".into(),
        tag: "host".into(),
        field: "v".into(),
        partial: i % 2 == 1,
    });
    assert_none("new databases", &run(&a, &b, databases).await);

    // A new field per iteration (a new tag each time would make a 300-tag primary key).
    let columns = (0..ITERATIONS).map(|i| Case {
        database: "ryw".into(),
        table: "seed".into(),
        tag: "host".into(),
        field: format!("column_{i}"),
        partial: i % 2 == 1,
    });
    assert_none("new columns", &run(&a, &b, columns).await);

    // A miss that stays a miss is still answered as one, with the name quoted.
    let r = b
        .http
        .get(format!("{}/api/v3/query_sql", b.url))
        .query(&[("db", "never_written"), ("q", "SELECT 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("database 'never_written' not found")
    );
}
