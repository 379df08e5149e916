//! Catalog types ↔ `ferrite.catalog.v1` messages.
//!
//! Encoding never fails. Decoding can (an unknown column type code, a bad UUID, a missing
//! required message); it returns the reason as text and the caller decides what that means:
//! the server answers `INVALID_ARGUMENT`, the client reports the reply as
//! [`Error::Corrupt`](crate::Error::Corrupt), like `SqlCatalog` does for a row it cannot read.

use std::collections::BTreeMap;

use ferrite_model::{
    ColumnId, ColumnType, DatabaseId, DatabaseLimits, DatabaseSchema, ParquetFileId, PartitionId,
    PartitionTemplate, TableId, TableSchema,
};
use ferrite_proto::ferrite::catalog::v1 as proto;

use crate::{
    Action, Column, Database, LevelStats, NewToken, ParquetFile, ParquetFileParams, Partition,
    PartitionSummary, Permission, Resource, SkippedCompaction, Table, TokenRecord,
};

/// Why a message could not be decoded.
pub(crate) type Invalid = String;

/// A catalog column type code as sent on the wire.
pub(crate) fn column_type(code: i32) -> Result<ColumnType, Invalid> {
    i16::try_from(code)
        .ok()
        .and_then(ColumnType::from_code)
        .ok_or_else(|| format!("unknown column type code {code}"))
}

/// A required message field.
pub(crate) fn required<T>(field: Option<T>, name: &str) -> Result<T, Invalid> {
    field.ok_or_else(|| format!("missing `{name}`"))
}

/// A token id as sent on the wire.
pub(crate) fn token_id(text: &str) -> Result<uuid::Uuid, Invalid> {
    uuid::Uuid::parse_str(text).map_err(|e| format!("token id '{text}': {e}"))
}

impl From<Permission> for proto::Permission {
    fn from(p: Permission) -> Self {
        let action = match p.action {
            Action::Read => proto::permission::Action::Read,
            Action::Write => proto::permission::Action::Write,
        };
        Self {
            action: action.into(),
            database_id: match p.resource {
                Resource::AllDatabases => 0,
                Resource::Database(id) => id.get(),
            },
        }
    }
}

/// A permission from the wire.
pub(crate) fn permission(p: &proto::Permission) -> Result<Permission, Invalid> {
    let action = match proto::permission::Action::try_from(p.action) {
        Ok(proto::permission::Action::Read) => Action::Read,
        Ok(proto::permission::Action::Write) => Action::Write,
        _ => return Err(format!("unknown permission action {}", p.action)),
    };
    let resource = match p.database_id {
        0 => Resource::AllDatabases,
        id => Resource::Database(DatabaseId(id)),
    };
    Ok(Permission { action, resource })
}

/// Permissions from the wire.
pub(crate) fn permissions(ps: &[proto::Permission]) -> Result<Vec<Permission>, Invalid> {
    ps.iter().map(permission).collect()
}

impl From<TokenRecord> for proto::Token {
    fn from(t: TokenRecord) -> Self {
        Self {
            id: t.id.hyphenated().to_string(),
            description: t.description,
            hash: t.hash,
            permissions: t.permissions.into_iter().map(Into::into).collect(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

impl From<NewToken> for proto::Token {
    /// A token to create travels as the record it will become (no creation time yet).
    fn from(t: NewToken) -> Self {
        TokenRecord {
            id: t.id,
            description: t.description,
            hash: t.hash,
            permissions: t.permissions,
            created_at: 0,
            expires_at: t.expires_at,
            revoked_at: None,
        }
        .into()
    }
}

/// A stored token from the wire.
pub(crate) fn token_record(t: proto::Token) -> Result<TokenRecord, Invalid> {
    Ok(TokenRecord {
        id: token_id(&t.id)?,
        permissions: permissions(&t.permissions)?,
        description: t.description,
        hash: t.hash,
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
    })
}

/// A token to create from the wire.
pub(crate) fn new_token(t: proto::Token) -> Result<NewToken, Invalid> {
    Ok(NewToken {
        id: token_id(&t.id)?,
        permissions: permissions(&t.permissions)?,
        description: t.description,
        hash: t.hash,
        expires_at: t.expires_at,
    })
}

impl From<Database> for proto::Database {
    fn from(db: Database) -> Self {
        Self {
            id: db.id.get(),
            name: db.name,
        }
    }
}

impl From<proto::Database> for Database {
    fn from(db: proto::Database) -> Self {
        Self {
            id: DatabaseId(db.id),
            name: db.name,
        }
    }
}

impl From<Table> for proto::Table {
    fn from(t: Table) -> Self {
        Self {
            id: t.id.get(),
            database_id: t.database_id.get(),
            name: t.name,
        }
    }
}

impl From<proto::Table> for Table {
    fn from(t: proto::Table) -> Self {
        Self {
            id: TableId(t.id),
            database_id: DatabaseId(t.database_id),
            name: t.name,
        }
    }
}

impl From<Column> for proto::Column {
    fn from(c: Column) -> Self {
        Self {
            id: c.id.get(),
            table_id: c.table_id.get(),
            column_type: c.column_type.code().into(),
            name: c.name,
        }
    }
}

pub(crate) fn column(c: proto::Column) -> Result<Column, Invalid> {
    Ok(Column {
        id: ColumnId(c.id),
        table_id: TableId(c.table_id),
        column_type: column_type(c.column_type).map_err(|e| format!("column '{}': {e}", c.name))?,
        name: c.name,
    })
}

impl From<Partition> for proto::Partition {
    fn from(p: Partition) -> Self {
        Self {
            id: p.id.get(),
            table_id: p.table_id.get(),
            key: p.key,
            sort_key: p.sort_key.map(|tags| proto::SortKey { tags }),
        }
    }
}

impl From<proto::Partition> for Partition {
    fn from(p: proto::Partition) -> Self {
        Self {
            id: PartitionId(p.id),
            table_id: TableId(p.table_id),
            key: p.key,
            sort_key: p.sort_key.map(|k| k.tags),
        }
    }
}

impl From<ParquetFileParams> for proto::ParquetFileParams {
    fn from(p: ParquetFileParams) -> Self {
        Self {
            database_id: p.database_id.get(),
            table_id: p.table_id.get(),
            partition_id: p.partition_id.get(),
            object_store_id: p.object_store_id.hyphenated().to_string(),
            min_time: p.min_time,
            max_time: p.max_time,
            row_count: p.row_count,
            file_size_bytes: p.file_size_bytes,
            compaction_level: p.compaction_level.into(),
            max_sequence_number: p.max_sequence_number,
        }
    }
}

pub(crate) fn parquet_file_params(
    p: proto::ParquetFileParams,
) -> Result<ParquetFileParams, Invalid> {
    Ok(ParquetFileParams {
        database_id: DatabaseId(p.database_id),
        table_id: TableId(p.table_id),
        partition_id: PartitionId(p.partition_id),
        object_store_id: uuid::Uuid::parse_str(&p.object_store_id)
            .map_err(|e| format!("object_store_id '{}': {e}", p.object_store_id))?,
        min_time: p.min_time,
        max_time: p.max_time,
        row_count: p.row_count,
        file_size_bytes: p.file_size_bytes,
        compaction_level: i16::try_from(p.compaction_level)
            .map_err(|_| format!("compaction_level {} out of range", p.compaction_level))?,
        max_sequence_number: p.max_sequence_number,
    })
}

impl From<ParquetFile> for proto::ParquetFile {
    fn from(f: ParquetFile) -> Self {
        Self {
            id: f.id.get(),
            params: Some(f.params.into()),
            created_at: f.created_at,
        }
    }
}

pub(crate) fn parquet_file(f: proto::ParquetFile) -> Result<ParquetFile, Invalid> {
    Ok(ParquetFile {
        id: ParquetFileId(f.id),
        params: parquet_file_params(required(f.params, "params")?)?,
        created_at: f.created_at,
    })
}

impl From<PartitionSummary> for proto::PartitionSummary {
    fn from(p: PartitionSummary) -> Self {
        Self {
            partition: Some(p.partition.into()),
            database_id: p.database_id.get(),
            database: p.database,
            table: p.table,
            levels: p
                .levels
                .iter()
                .map(|l| proto::LevelStats {
                    files: l.files,
                    rows: l.rows,
                    bytes: l.bytes,
                })
                .collect(),
            newest_l0_at: p.newest_l0_at,
            skipped_at: p.skipped.as_ref().map_or(0, |s| s.skipped_at),
            skip_reason: p.skipped.map(|s| s.reason),
        }
    }
}

pub(crate) fn partition_summary(p: proto::PartitionSummary) -> Result<PartitionSummary, Invalid> {
    let mut levels = [LevelStats::default(); 3];
    if p.levels.len() != levels.len() {
        return Err(format!(
            "partition summary has {} levels, expected {}",
            p.levels.len(),
            levels.len()
        ));
    }
    for (stats, l) in levels.iter_mut().zip(p.levels) {
        *stats = LevelStats {
            files: l.files,
            rows: l.rows,
            bytes: l.bytes,
        };
    }
    Ok(PartitionSummary {
        partition: required(p.partition, "partition")?.into(),
        database_id: DatabaseId(p.database_id),
        database: p.database,
        table: p.table,
        levels,
        newest_l0_at: p.newest_l0_at,
        skipped: p.skip_reason.map(|reason| SkippedCompaction {
            reason,
            skipped_at: p.skipped_at,
        }),
    })
}

pub(crate) fn object_ids(ids: Vec<String>) -> Result<Vec<uuid::Uuid>, Invalid> {
    ids.iter()
        .map(|id| uuid::Uuid::parse_str(id).map_err(|e| format!("object_store_id '{id}': {e}")))
        .collect()
}

/// `ferrite_model` types are foreign here too, so schemas encode through functions.
pub(crate) fn table_schema_message(t: TableSchema) -> proto::TableSchema {
    proto::TableSchema {
        id: t.id.get(),
        name: t.name,
        // BTreeMap order: by name, as the contract says.
        columns: t
            .columns
            .into_iter()
            .map(|(name, (id, column_type))| proto::ColumnSchema {
                name,
                id: id.get(),
                column_type: column_type.code().into(),
            })
            .collect(),
        partition_template: if t.partition_template.is_default() {
            String::new()
        } else {
            t.partition_template.to_json()
        },
    }
}

pub(crate) fn table_schema(t: proto::TableSchema) -> Result<TableSchema, Invalid> {
    let columns = t
        .columns
        .into_iter()
        .map(|c| {
            let column_type = column_type(c.column_type)
                .map_err(|e| format!("column '{}' of table '{}': {e}", c.name, t.name))?;
            Ok((c.name, (ColumnId(c.id), column_type)))
        })
        .collect::<Result<BTreeMap<_, _>, Invalid>>()?;
    Ok(TableSchema {
        partition_template: PartitionTemplate::from_json(&t.partition_template)
            .map_err(|e| format!("table '{}': {e}", t.name))?,
        id: TableId(t.id),
        name: t.name,
        columns,
    })
}

pub(crate) fn database_schema_message(db: DatabaseSchema) -> proto::DatabaseSchema {
    proto::DatabaseSchema {
        id: db.id.get(),
        name: db.name,
        tables: db.tables.into_values().map(table_schema_message).collect(),
        retention_period_ns: db.limits.retention_period_ns,
        max_tables: db.limits.max_tables,
        max_columns_per_table: db.limits.max_columns_per_table,
    }
}

pub(crate) fn database_schema(db: proto::DatabaseSchema) -> Result<DatabaseSchema, Invalid> {
    let tables = db
        .tables
        .into_iter()
        .map(|t| table_schema(t).map(|t| (t.name.clone(), t)))
        .collect::<Result<BTreeMap<_, _>, Invalid>>()?;
    Ok(DatabaseSchema {
        id: DatabaseId(db.id),
        name: db.name,
        limits: DatabaseLimits {
            retention_period_ns: db.retention_period_ns,
            max_tables: db.max_tables,
            max_columns_per_table: db.max_columns_per_table,
        },
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_files_round_trip_exactly() {
        let file = ParquetFile {
            id: ParquetFileId(7),
            params: ParquetFileParams {
                database_id: DatabaseId(1),
                table_id: TableId(2),
                partition_id: PartitionId(3),
                object_store_id: uuid::Uuid::new_v4(),
                min_time: -5,
                max_time: i64::MAX,
                row_count: 1000,
                file_size_bytes: 1 << 40,
                compaction_level: i16::MAX,
                max_sequence_number: i64::MAX,
            },
            created_at: 1_709_596_800_000_000_000,
        };
        assert_eq!(parquet_file(file.clone().into()).unwrap(), file);
    }

    #[test]
    fn schemas_round_trip_exactly() {
        let cpu = TableSchema {
            id: TableId(2),
            name: "cpu".into(),
            columns: ColumnType::ALL
                .into_iter()
                .enumerate()
                .map(|(i, t)| (format!("c{i}"), (ColumnId(i as i64 + 10), t)))
                .collect(),
            partition_template: ferrite_model::PartitionTemplate::new(vec![
                ferrite_model::TemplatePart::TagBucket {
                    tag: "c6".into(),
                    buckets: 10,
                },
                ferrite_model::TemplatePart::TimeFormat(ferrite_model::TimeFormat::Week),
            ])
            .unwrap(),
        };
        let empty = TableSchema {
            id: TableId(3),
            name: "disk".into(),
            columns: BTreeMap::new(),
            partition_template: Default::default(),
        };
        let db = DatabaseSchema {
            id: DatabaseId(1),
            name: "telegraf".into(),
            limits: DatabaseLimits {
                retention_period_ns: 3_600_000_000_000,
                max_tables: 7,
                max_columns_per_table: 9,
            },
            tables: [("cpu".to_owned(), cpu), ("disk".to_owned(), empty)].into(),
        };
        assert_eq!(
            database_schema(database_schema_message(db.clone())).unwrap(),
            db
        );
    }

    #[test]
    fn undecodable_messages_say_why() {
        assert_eq!(column_type(99).unwrap_err(), "unknown column type code 99");
        assert_eq!(
            column_type(70_000).unwrap_err(),
            "unknown column type code 70000"
        );
        let mut params: proto::ParquetFileParams = ParquetFileParams {
            database_id: DatabaseId(1),
            table_id: TableId(2),
            partition_id: PartitionId(3),
            object_store_id: uuid::Uuid::nil(),
            min_time: 0,
            max_time: 0,
            row_count: 0,
            file_size_bytes: 0,
            compaction_level: 0,
            max_sequence_number: 0,
        }
        .into();
        params.object_store_id = "not-a-uuid".into();
        assert!(
            parquet_file_params(params)
                .unwrap_err()
                .starts_with("object_store_id 'not-a-uuid'")
        );
    }
}
