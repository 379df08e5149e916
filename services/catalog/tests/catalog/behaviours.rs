//! Behaviours every catalog backend shares. Each takes a fresh [`Fixture`].

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrite_catalog::{Catalog, Error, ParquetFileParams};
use ferrite_model::{ColumnType, DatabaseId, TableId};

use crate::Fixture;

pub async fn create_database_is_idempotent(f: &Fixture) {
    let c = &f.catalog;
    assert_eq!(c.version().await.unwrap(), 0);

    let first = c.create_database("weather").await.unwrap();
    let again = c.create_database("weather").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first.name, "weather");
    // Only a real creation moves the version.
    assert_eq!(c.version().await.unwrap(), 1);

    let other = c.create_database("apps").await.unwrap();
    assert_ne!(other.id, first.id);
    assert_eq!(c.version().await.unwrap(), 2);

    assert_eq!(
        c.database_by_name("weather").await.unwrap(),
        Some(first.clone())
    );
    // Ordered by name.
    assert_eq!(c.list_databases().await.unwrap(), vec![other, first]);
}

pub async fn unknown_names_and_ids(f: &Fixture) {
    let c = &f.catalog;
    assert_eq!(c.database_by_name("nope").await.unwrap(), None);
    assert!(c.list_databases().await.unwrap().is_empty());

    let missing_db = DatabaseId(424242);
    let missing_table = TableId(434343);
    assert!(matches!(
        c.database_schema(missing_db).await,
        Err(Error::DatabaseNotFound(_))
    ));
    assert!(matches!(
        c.create_table(missing_db, "cpu").await,
        Err(Error::DatabaseNotFound(_))
    ));
    assert!(c.list_tables(missing_db).await.unwrap().is_empty());
    assert!(matches!(
        c.table_schema(missing_table).await,
        Err(Error::TableNotFound(t)) if t == missing_table
    ));
    assert!(matches!(
        c.upsert_columns(missing_table, &[("usage", ColumnType::F64)]).await,
        Err(Error::TableNotFound(t)) if t == missing_table
    ));
    assert!(matches!(
        c.create_partition(missing_table, "2024-01-01").await,
        Err(Error::TableNotFound(t)) if t == missing_table
    ));
    assert!(c.list_columns(missing_table).await.unwrap().is_empty());
    assert!(c.parquet_files(missing_table).await.unwrap().is_empty());
    // Nothing above created anything.
    assert_eq!(c.version().await.unwrap(), 0);
}

pub async fn concurrent_creates_agree_on_ids(f: &Fixture) {
    const TASKS: usize = 20;
    let columns = [
        ("host", ColumnType::Tag),
        ("region", ColumnType::Tag),
        ("usage_user", ColumnType::F64),
        ("usage_system", ColumnType::F64),
        ("time", ColumnType::Time),
    ];
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let c = Arc::clone(&f.catalog);
            tokio::spawn(async move {
                let db = c.create_database("telegraf").await.unwrap();
                let table = c.create_table(db.id, "cpu").await.unwrap();
                // Different tasks list the columns in different orders.
                let mut mine = columns.to_vec();
                mine.rotate_left(i % columns.len());
                let cols = c.upsert_columns(table.id, &mine).await.unwrap();
                let ids: BTreeMap<String, _> = cols.into_iter().map(|c| (c.name, c.id)).collect();
                let partition = c.create_partition(table.id, "2024-03-05").await.unwrap();
                (db.id, table.id, ids, partition.id)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let first = &results[0];
    assert_eq!(first.2.len(), columns.len());
    for result in &results {
        assert_eq!(result, first);
    }
    assert_eq!(f.catalog.list_databases().await.unwrap().len(), 1);
    assert_eq!(f.catalog.list_tables(first.0).await.unwrap().len(), 1);
    assert_eq!(
        f.catalog.list_columns(first.1).await.unwrap().len(),
        columns.len()
    );
    // One database, one table, one batch of columns: three creations, however many callers.
    assert_eq!(f.catalog.version().await.unwrap(), 3);
}

pub async fn column_type_conflict_changes_nothing(f: &Fixture) {
    let c = &f.catalog;
    let db = c.create_database("telegraf").await.unwrap();
    let table = c.create_table(db.id, "cpu").await.unwrap();
    let before = c
        .upsert_columns(
            table.id,
            &[("host", ColumnType::Tag), ("usage", ColumnType::F64)],
        )
        .await
        .unwrap();
    let version = c.version().await.unwrap();

    // `region` is new and would be fine on its own; the conflict on `usage` must undo it.
    let err = c
        .upsert_columns(
            table.id,
            &[("region", ColumnType::Tag), ("usage", ColumnType::I64)],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "column 'usage' is float in table 'cpu', got integer"
    );
    assert!(matches!(
        &err,
        Error::ColumnTypeConflict { table, column, existing: ColumnType::F64, requested: ColumnType::I64 }
            if table == "cpu" && column == "usage"
    ));

    let mut expected = before;
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(c.list_columns(table.id).await.unwrap(), expected);
    assert_eq!(c.version().await.unwrap(), version);

    // The same conflict when nothing is new (no write at all).
    let err = c
        .upsert_columns(table.id, &[("usage", ColumnType::I64)])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "column 'usage' is float in table 'cpu', got integer"
    );
}

pub async fn tag_and_field_of_the_same_name_conflict(f: &Fixture) {
    let c = &f.catalog;
    let db = c.create_database("telegraf").await.unwrap();
    let table = c.create_table(db.id, "cpu").await.unwrap();
    c.upsert_columns(table.id, &[("host", ColumnType::Tag)])
        .await
        .unwrap();

    let err = c
        .upsert_columns(table.id, &[("host", ColumnType::String)])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "column 'host' is tag in table 'cpu', got string"
    );

    // Within one call: the first mention wins, the second conflicts, nothing is stored.
    let err = c
        .upsert_columns(
            table.id,
            &[("dc", ColumnType::Tag), ("dc", ColumnType::F64)],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "column 'dc' is tag in table 'cpu', got float"
    );
    let names: Vec<String> = c
        .list_columns(table.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["host"]);
}

pub async fn upsert_columns_adds_missing_and_keeps_input_order(f: &Fixture) {
    let c = &f.catalog;
    let db = c.create_database("telegraf").await.unwrap();
    let table = c.create_table(db.id, "mem").await.unwrap();
    assert!(c.upsert_columns(table.id, &[]).await.unwrap().is_empty());

    let first = c
        .upsert_columns(
            table.id,
            &[("used", ColumnType::U64), ("host", ColumnType::Tag)],
        )
        .await
        .unwrap();
    assert_eq!(
        first
            .iter()
            .map(|c| (c.name.as_str(), c.column_type))
            .collect::<Vec<_>>(),
        [("used", ColumnType::U64), ("host", ColumnType::Tag)]
    );
    assert!(first.iter().all(|col| col.table_id == table.id));
    let version = c.version().await.unwrap();

    let second = c
        .upsert_columns(
            table.id,
            &[
                ("time", ColumnType::Time),
                ("host", ColumnType::Tag),
                ("used", ColumnType::U64),
                ("host", ColumnType::Tag),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["time", "host", "used", "host"]
    );
    assert_eq!(second[1], first[1]);
    assert_eq!(second[2], first[0]);
    assert_eq!(second[3], first[1]);
    assert_eq!(c.version().await.unwrap(), version + 1);

    // Everything known already: no write, no version change.
    c.upsert_columns(table.id, &[("host", ColumnType::Tag)])
        .await
        .unwrap();
    assert_eq!(c.version().await.unwrap(), version + 1);

    let listed = c.list_columns(table.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["host", "time", "used"]
    );
}

pub async fn schema_lists_every_table_and_column(f: &Fixture) {
    let c = &f.catalog;
    let db = c.create_database("telegraf").await.unwrap();
    let other = c.create_database("other").await.unwrap();
    let cpu = c.create_table(db.id, "cpu").await.unwrap();
    let mem = c.create_table(db.id, "mem").await.unwrap();
    let empty = c.create_table(db.id, "disk").await.unwrap();
    c.create_table(other.id, "elsewhere").await.unwrap();
    let cpu_cols = c
        .upsert_columns(
            cpu.id,
            &[
                ("host", ColumnType::Tag),
                ("usage", ColumnType::F64),
                ("time", ColumnType::Time),
            ],
        )
        .await
        .unwrap();
    c.upsert_columns(
        mem.id,
        &[
            ("host", ColumnType::Tag),
            ("free", ColumnType::I64),
            ("ok", ColumnType::Bool),
            ("note", ColumnType::String),
            ("time", ColumnType::Time),
        ],
    )
    .await
    .unwrap();

    assert_eq!(
        c.list_tables(db.id).await.unwrap(),
        vec![cpu.clone(), empty.clone(), mem.clone()]
    );

    let schema = c.database_schema(db.id).await.unwrap();
    assert_eq!(schema.id, db.id);
    assert_eq!(schema.name, "telegraf");
    assert_eq!(
        schema.tables.keys().map(String::as_str).collect::<Vec<_>>(),
        ["cpu", "disk", "mem"]
    );
    let cpu_schema = &schema.tables["cpu"];
    assert_eq!(cpu_schema.id, cpu.id);
    assert_eq!(cpu_schema.name, "cpu");
    let expected: BTreeMap<String, _> = cpu_cols
        .iter()
        .map(|col| (col.name.clone(), (col.id, col.column_type)))
        .collect();
    assert_eq!(cpu_schema.columns, expected);
    assert!(schema.tables["disk"].columns.is_empty());
    assert_eq!(schema.tables["disk"].id, empty.id);
    assert_eq!(
        schema.tables["mem"].column_type("ok"),
        Some(ColumnType::Bool)
    );
    assert_eq!(
        schema.tables["mem"].column_type("note"),
        Some(ColumnType::String)
    );
    assert_eq!(schema.tables["mem"].tag_columns(), ["host"]);

    assert_eq!(&c.table_schema(cpu.id).await.unwrap(), cpu_schema);
    assert_eq!(
        &c.table_schema(mem.id).await.unwrap(),
        &schema.tables["mem"]
    );
}

pub async fn partitions_are_created_once_per_table_and_key(f: &Fixture) {
    let c = &f.catalog;
    let db = c.create_database("telegraf").await.unwrap();
    let cpu = c.create_table(db.id, "cpu").await.unwrap();
    let mem = c.create_table(db.id, "mem").await.unwrap();

    let p = c.create_partition(cpu.id, "2024-03-05").await.unwrap();
    assert_eq!(p.table_id, cpu.id);
    assert_eq!(p.key, "2024-03-05");
    assert_eq!(c.create_partition(cpu.id, "2024-03-05").await.unwrap(), p);

    let next_day = c.create_partition(cpu.id, "2024-03-06").await.unwrap();
    let other_table = c.create_partition(mem.id, "2024-03-05").await.unwrap();
    assert_ne!(next_day.id, p.id);
    assert_ne!(other_table.id, p.id);
    assert_ne!(other_table.id, next_day.id);
    assert_eq!(c.table_partitions(cpu.id).await.unwrap(), vec![p, next_day]);
    assert_eq!(c.table_partitions(mem.id).await.unwrap(), vec![other_table]);
}

pub async fn partition_sort_keys_are_chosen_once_and_only_extended(f: &Fixture) {
    let c = &f.catalog;
    let db = c.create_database("telegraf").await.unwrap();
    let cpu = c.create_table(db.id, "cpu").await.unwrap();
    let p = c.create_partition(cpu.id, "2024-03-05").await.unwrap();
    assert_eq!(p.sort_key, Some(vec![]), "no key before the first persist");
    let tags = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();

    let chosen = c
        .extend_sort_key(p.id, &tags(&["region", "host"]))
        .await
        .unwrap();
    assert_eq!(chosen.sort_key, Some(tags(&["region", "host"])));
    // Known tags keep their place; a new one goes last.
    let extended = c
        .extend_sort_key(p.id, &tags(&["host", "arch", "region"]))
        .await
        .unwrap();
    assert_eq!(extended.sort_key, Some(tags(&["region", "host", "arch"])));
    assert_eq!(
        c.create_partition(cpu.id, "2024-03-05").await.unwrap(),
        extended
    );
    assert_eq!(c.table_partitions(cpu.id).await.unwrap(), vec![extended]);

    // Racing writers each find their tags in the one key that results.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let c = Arc::clone(&f.catalog);
            let mine = tags(&[&format!("t{i}"), &format!("u{}", i % 3), "host"]);
            tokio::spawn(async move {
                let got = c.extend_sort_key(p.id, &mine).await.unwrap();
                (mine, got.sort_key.unwrap())
            })
        })
        .collect();
    for racer in racers {
        let (mine, key) = racer.await.unwrap();
        assert_eq!(key[..3], tags(&["region", "host", "arch"]));
        assert!(mine.iter().all(|t| key.contains(t)), "{mine:?} in {key:?}");
    }
    let key = c.table_partitions(cpu.id).await.unwrap()[0]
        .sort_key
        .clone()
        .unwrap();
    assert_eq!(key.len(), 3 + 8 + 3, "each tag once: {key:?}");

    let err = c
        .extend_sort_key(ferrite_model::PartitionId(i64::MAX), &tags(&["host"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("partition"), "{err}");
}

fn file(
    db: DatabaseId,
    table: TableId,
    partition: ferrite_model::PartitionId,
    min_time: i64,
) -> ParquetFileParams {
    ParquetFileParams {
        database_id: db,
        table_id: table,
        partition_id: partition,
        object_store_id: uuid::Uuid::new_v4(),
        min_time,
        max_time: min_time + 1_000_000_000,
        row_count: 1000,
        file_size_bytes: 64 * 1024,
        compaction_level: 0,
        max_sequence_number: 17,
    }
}

pub async fn parquet_files_register_and_list(f: &Fixture) {
    let c = &f.catalog;
    let db = c.create_database("telegraf").await.unwrap();
    let cpu = c.create_table(db.id, "cpu").await.unwrap();
    let mem = c.create_table(db.id, "mem").await.unwrap();
    let p_cpu = c.create_partition(cpu.id, "2024-03-05").await.unwrap();
    let p_mem = c.create_partition(mem.id, "2024-03-05").await.unwrap();
    assert!(c.parquet_files(cpu.id).await.unwrap().is_empty());

    // Times outside i32 and a compaction level above 0 round-trip exactly.
    let a = file(db.id, cpu.id, p_cpu.id, 1_709_596_800_000_000_000);
    let mut b = file(db.id, cpu.id, p_cpu.id, -5);
    b.compaction_level = 2;
    b.max_sequence_number = i64::MAX;
    let m = file(db.id, mem.id, p_mem.id, 0);

    let version = c.version().await.unwrap();
    let fa = c.add_parquet_file(a.clone()).await.unwrap();
    let fm = c.add_parquet_file(m.clone()).await.unwrap();
    let fb = c.add_parquet_file(b.clone()).await.unwrap();
    assert_eq!(c.version().await.unwrap(), version + 3);
    assert_eq!(fa.params, a);
    assert_eq!(fb.params, b);
    assert!(fa.id < fb.id);
    assert!(
        fa.created_at > 1_700_000_000_000_000_000,
        "created_at is ns"
    );

    assert_eq!(c.parquet_files(cpu.id).await.unwrap(), vec![fa.clone(), fb]);
    assert_eq!(c.parquet_files(mem.id).await.unwrap(), vec![fm]);

    // Registering the same object again (a retry after a lost reply) returns the first row.
    assert_eq!(c.add_parquet_file(a).await.unwrap(), fa);
    assert_eq!(c.version().await.unwrap(), version + 3);
    assert_eq!(c.parquet_files(cpu.id).await.unwrap().len(), 2);

    // A file for a table that does not exist is refused.
    let orphan = file(db.id, TableId(9_999_999), p_cpu.id, 0);
    assert!(matches!(
        c.add_parquet_file(orphan).await,
        Err(Error::TableNotFound(_))
    ));
    let orphan = file(DatabaseId(9_999_999), cpu.id, p_cpu.id, 0);
    assert!(matches!(
        c.add_parquet_file(orphan).await,
        Err(Error::DatabaseNotFound(_))
    ));
}

pub async fn unknown_column_type_code_is_corrupt(f: &Fixture) {
    let c = &f.catalog;
    let db = c.create_database("telegraf").await.unwrap();
    let table = c.create_table(db.id, "cpu").await.unwrap();

    // Write a row this version of ferrite does not understand, behind the catalog's back.
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&f.dsn).await.unwrap();
    sqlx::query("INSERT INTO columns (table_id, name, column_type) VALUES ($1, 'weird', 99)")
        .bind(table.id.get())
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;

    let err = c.list_columns(table.id).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("'weird'"), "{err}");
    assert!(matches!(
        c.database_schema(db.id).await,
        Err(Error::Corrupt(_))
    ));
}

pub async fn reconnect_keeps_data_and_skips_migrations(f: &Fixture) {
    let db = f.catalog.create_database("telegraf").await.unwrap();
    let again = ferrite_catalog::SqlCatalog::connect(&f.dsn).await.unwrap();
    assert_eq!(again.database_by_name("telegraf").await.unwrap(), Some(db));
    assert_eq!(again.version().await.unwrap(), 1);
}

pub async fn concurrent_conflicting_upserts_change_nothing_for_the_losers(f: &Fixture) {
    const TASKS: usize = 20;
    let db = f.catalog.create_database("telegraf").await.unwrap();
    let table = f.catalog.create_table(db.id, "cpu").await.unwrap();
    // Half the tasks say `usage` is a float, half an integer; each also brings a column of
    // its own. Exactly one type wins, and a task that lost must not leave its own column.
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let c = Arc::clone(&f.catalog);
            tokio::spawn(async move {
                let usage = if i % 2 == 0 {
                    ColumnType::F64
                } else {
                    ColumnType::I64
                };
                let own = format!("own_{i:02}");
                let result = c
                    .upsert_columns(
                        table.id,
                        &[(own.as_str(), ColumnType::Tag), ("usage", usage)],
                    )
                    .await;
                (own, usage, result)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    let stored: BTreeMap<String, ColumnType> = f
        .catalog
        .list_columns(table.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.column_type))
        .collect();
    let winner = stored["usage"];
    let mut expected = BTreeMap::from([("usage".to_owned(), winner)]);
    for (own, usage, result) in outcomes {
        if usage == winner {
            result.unwrap();
            expected.insert(own, ColumnType::Tag);
        } else {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, Error::ColumnTypeConflict { column, existing, requested, .. }
                    if column == "usage" && *existing == winner && *requested == usage),
                "{err}"
            );
        }
    }
    assert_eq!(stored, expected);
}

/// The catalog database behind `f`, opened again for what only its owner does (creating
/// databases with settings, soft delete).
async fn admin(f: &Fixture) -> ferrite_catalog::SqlCatalog {
    ferrite_catalog::SqlCatalog::connect(&f.dsn)
        .await
        .expect("open the catalog again")
}

pub async fn limits_refuse_tables_and_columns_beyond_them(f: &Fixture) {
    let limits = ferrite_model::DatabaseLimits {
        retention_period_ns: 3_600_000_000_000,
        max_tables: 1,
        max_columns_per_table: 3,
    };
    admin(f)
        .await
        .create_database_with("lim", limits, &Default::default())
        .await
        .unwrap();
    let c = &f.catalog;
    let db = c.database_by_name("lim").await.unwrap().unwrap();
    assert_eq!(c.database_schema(db.id).await.unwrap().limits, limits);
    let t = c.create_table(db.id, "t1").await.unwrap();
    match c.create_table(db.id, "t2").await {
        Err(Error::TableLimit {
            database,
            table,
            count,
            limit,
        }) => assert_eq!(
            (database.as_str(), table.as_str(), count, limit),
            ("lim", "t2", 1, 1)
        ),
        other => panic!("expected a table limit, got {other:?}"),
    }
    assert_eq!(
        c.create_table(db.id, "t1").await.unwrap(),
        t,
        "existing tables stay reachable"
    );
    let three = [
        ("time", ColumnType::Time),
        ("host", ColumnType::Tag),
        ("v", ColumnType::F64),
    ];
    c.upsert_columns(t.id, &three).await.unwrap();
    match c
        .upsert_columns(t.id, &[("w", ColumnType::F64), ("v", ColumnType::F64)])
        .await
    {
        Err(Error::ColumnLimit {
            table,
            count,
            adding,
            limit,
        }) => assert_eq!((table.as_str(), count, adding, limit), ("t1", 3, 1, 3)),
        other => panic!("expected a column limit, got {other:?}"),
    }
    assert_eq!(
        c.list_columns(t.id).await.unwrap().len(),
        3,
        "nothing added"
    );
}

pub async fn deleted_databases_and_tables_are_invisible_and_come_back(f: &Fixture) {
    let admin = admin(f).await;
    let c = &f.catalog;
    let old = c.create_database("life").await.unwrap();
    let cpu = c.create_table(old.id, "cpu").await.unwrap();
    c.create_table(old.id, "disk").await.unwrap();

    admin.delete_table("life", "disk").await.unwrap();
    let schema = c.database_schema(old.id).await.unwrap();
    assert_eq!(schema.tables.keys().collect::<Vec<_>>(), ["cpu"]);
    assert_eq!(c.list_tables(old.id).await.unwrap().len(), 1);
    let new_disk = c.create_table(old.id, "disk").await.unwrap();
    let deleted = admin
        .tables("life", ferrite_catalog::Status::Deleted)
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert_ne!(deleted[0].id, new_disk.id, "a new table takes the name");
    assert!(matches!(
        admin.undelete_table("life", deleted[0].id).await,
        Err(Error::Conflict(_))
    ));
    admin.rename_table("life", "disk", "disk2").await.unwrap();
    admin.undelete_table("life", deleted[0].id).await.unwrap();
    let names: Vec<String> = c
        .list_tables(old.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["cpu", "disk", "disk2"]);

    admin.delete_database("life").await.unwrap();
    assert_eq!(c.database_by_name("life").await.unwrap(), None);
    assert!(c.list_databases().await.unwrap().is_empty());
    let again = c.create_database("life").await.unwrap();
    assert_ne!(again.id, old.id, "a new database takes the name");
    assert!(matches!(
        admin.undelete_database(old.id).await,
        Err(Error::Conflict(_))
    ));
    admin.rename_database("life", "life2").await.unwrap();
    let back = admin.undelete_database(old.id).await.unwrap();
    assert_eq!((back.name.as_str(), back.deleted_at), ("life", None));
    assert_eq!(
        c.database_by_name("life").await.unwrap().unwrap().id,
        old.id
    );
    assert_eq!(
        c.database_schema(old.id).await.unwrap().tables["cpu"].id,
        cpu.id,
        "it comes back whole"
    );
    let all = admin.databases(ferrite_catalog::Status::All).await.unwrap();
    assert_eq!(all.len(), 2);
}

pub async fn tokens_are_stored_updated_and_revoked(f: &Fixture) {
    use ferrite_catalog::{Action, NewToken, Permission, Resource, TokenUpdate};
    let c = &f.catalog;
    let db = c.create_database("tok").await.unwrap();
    let read = Permission {
        action: Action::Read,
        resource: Resource::Database(db.id),
    };
    let write_all = Permission {
        action: Action::Write,
        resource: Resource::AllDatabases,
    };
    let id = uuid::Uuid::new_v4();
    let new = NewToken {
        id,
        description: "grafana".into(),
        hash: "ab".repeat(32),
        permissions: vec![read],
        expires_at: Some(4_102_444_800_000_000_000),
    };
    let created = c.create_token(new.clone()).await.unwrap();
    assert_eq!(
        (
            created.id,
            created.permissions.clone(),
            created.expires_at,
            created.revoked_at
        ),
        (id, vec![read], new.expires_at, None)
    );
    assert_eq!(
        c.create_token(new).await.unwrap(),
        created,
        "a retried create"
    );
    let v = c.version().await.unwrap();
    let updated = c
        .update_token(
            id,
            TokenUpdate {
                description: None,
                permissions: Some(vec![read, write_all]),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.permissions, vec![read, write_all]);
    assert_eq!(updated.description, "grafana");
    assert!(
        c.version().await.unwrap() > v,
        "a token change moves the version"
    );
    let revoked = c.revoke_token(id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        c.revoke_token(id).await.unwrap(),
        revoked,
        "revoking again changes nothing"
    );
    assert_eq!(c.list_tokens().await.unwrap(), vec![revoked]);
    let unknown = uuid::Uuid::new_v4();
    assert!(matches!(
        c.revoke_token(unknown).await,
        Err(Error::TokenNotFound(u)) if u == unknown
    ));
}

pub async fn caches_are_listed_until_deleted_or_their_table_is(f: &Fixture) {
    use ferrite_model::cache::{CacheKind, CacheSpec};
    let admin = admin(f).await;
    let c = &f.catalog;
    let db = c.create_database("caches").await.unwrap();
    let cpu = c.create_table(db.id, "cpu").await.unwrap();
    c.upsert_columns(
        cpu.id,
        &[
            ("host", ColumnType::Tag),
            ("usage", ColumnType::F64),
            ("time", ColumnType::Time),
        ],
    )
    .await
    .unwrap();
    let before = c.version().await.unwrap();
    let last = admin
        .create_cache("caches", "cpu", None, |t| {
            CacheSpec::last(t, None, None, Some(2), None)
        })
        .await
        .unwrap();
    assert_eq!(last.name, "cpu_host_last_cache");
    assert!(
        c.version().await.unwrap() > before,
        "creating moves the version"
    );
    let distinct = admin
        .create_cache("caches", "cpu", Some("hosts"), |t| {
            CacheSpec::distinct(t, vec!["host".into()], None, None)
        })
        .await
        .unwrap();
    assert_eq!(
        c.list_caches().await.unwrap(),
        [last.clone(), distinct.clone()]
    );
    // A definition is checked against the table, and a name is unique per kind.
    assert!(matches!(
        admin
            .create_cache("caches", "cpu", None, |t| CacheSpec::last(
                t,
                Some(vec!["usage".into()]),
                None,
                None,
                None
            ))
            .await,
        Err(Error::Invalid(m)) if m.contains("key columns must be tags")
    ));
    assert!(matches!(
        admin
            .create_cache("caches", "cpu", Some("hosts"), |t| CacheSpec::distinct(
                t,
                vec!["host".into()],
                None,
                None
            ))
            .await,
        Err(Error::Conflict(_))
    ));

    let before = c.version().await.unwrap();
    admin
        .delete_cache("caches", "cpu", CacheKind::Distinct, "hosts")
        .await
        .unwrap();
    assert!(
        c.version().await.unwrap() > before,
        "deleting moves the version"
    );
    assert!(matches!(
        admin
            .delete_cache("caches", "cpu", CacheKind::Distinct, "hosts")
            .await,
        Err(Error::NotFound(_))
    ));
    // A renamed table keeps its caches under its new name; a deleted one hides them.
    admin.rename_table("caches", "cpu", "cpu2").await.unwrap();
    assert_eq!(c.list_caches().await.unwrap()[0].table, "cpu2");
    admin.delete_table("caches", "cpu2").await.unwrap();
    assert!(c.list_caches().await.unwrap().is_empty());
}
