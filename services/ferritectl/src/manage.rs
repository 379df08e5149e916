//! `database`, `table` and `token`: the management API's commands and how their answers
//! are printed.

use std::process::ExitCode;

use crate::Error;
use crate::api::{DatabaseSettings, Management, NewToken, Permission, Token, TokenChanges};
use crate::cli::{
    CacheCommand, DatabaseCommand, DatabaseLimits, ListFormat, ObjectFormat, PartitionCommand,
    PermissionArgs, StatusFilter, TableCommand, TokenCommand, TokenSort,
};
use crate::duration::{format_retention, parse_duration, parse_retention};
use crate::output::{confirm, json, print, table};

/// A custom partition template as people read it (`tag region | bucket host/16 | time
/// %Y-%m`); `None` for the default (UTC days) or when the server sent none.
fn custom_template(other: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let parts = other.get("partitionTemplate")?.as_array()?;
    let text: Vec<String> = parts
        .iter()
        .filter_map(|p| {
            if let Some(t) = p.get("tagValue").and_then(|v| v.as_str()) {
                return Some(format!("tag {t}"));
            }
            if let Some(b) = p.get("tagBucket") {
                return Some(format!(
                    "bucket {}/{}",
                    b.get("tag")?.as_str()?,
                    b.get("buckets")?
                ));
            }
            Some(format!("time {}", p.get("timeFormat")?.as_str()?))
        })
        .collect();
    (text != ["time %Y-%m-%d"]).then(|| text.join(" | "))
}

fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn limits(l: &DatabaseLimits) -> Result<DatabaseSettings, Error> {
    let retention_period = l
        .retention_period
        .as_deref()
        .map(parse_retention)
        .transpose()
        .map_err(|e| Error::Invalid(format!("--retention-period: {e}")))?;
    Ok(DatabaseSettings {
        retention_period,
        max_tables: l.max_tables,
        max_columns_per_table: l.max_columns,
    })
}

/// The newest of several RFC 3339 times (unparsable ones count as oldest).
fn newest<'a, T>(
    items: impl Iterator<Item = &'a T>,
    at: impl Fn(&T) -> Option<&str>,
) -> Option<&'a T>
where
    T: 'a,
{
    items.max_by_key(|item| {
        at(item)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_nanos_opt().unwrap_or(i64::MAX))
    })
}

/// Whole seconds of a duration argument, at least one.
fn seconds(flag: &str, text: Option<String>) -> Result<Option<u64>, Error> {
    text.map(|t| {
        let d = parse_duration(&t).map_err(|e| Error::Invalid(format!("{flag}: {e}")))?;
        match d.as_secs() {
            0 => Err(Error::Invalid(format!("{flag}: at least one second"))),
            s => Ok(s),
        }
    })
    .transpose()
}

/// Run a `cache` command.
pub async fn cache(api: &Management, command: CacheCommand) -> Result<ExitCode, Error> {
    let created = |c: crate::api::Cache, database: &str| {
        format!(
            "{} cache '{}' created on table '{}' of database '{database}'\n",
            c.kind, c.name, c.table
        )
    };
    match command {
        CacheCommand::CreateLast {
            name,
            key_columns,
            value_columns,
            count,
            ttl,
            database,
            table,
        } => {
            let body = serde_json::json!({
                "kind": "last",
                "name": name,
                "keyColumns": key_columns,
                "valueColumns": value_columns,
                "count": count,
                "ttl": seconds("--ttl", ttl)?,
            });
            let c = api
                .create_cache(&database, &table, &without_nulls(body))
                .await?;
            print(&created(c, &database))?;
        }
        CacheCommand::CreateDistinct {
            name,
            columns,
            max_cardinality,
            max_age,
            database,
            table,
        } => {
            let body = serde_json::json!({
                "kind": "distinct",
                "name": name,
                "columns": columns,
                "maxCardinality": max_cardinality,
                "maxAge": seconds("--max-age", max_age)?,
            });
            let c = api
                .create_cache(&database, &table, &without_nulls(body))
                .await?;
            print(&created(c, &database))?;
        }
        CacheCommand::List { format, database } => {
            let caches = api.list_caches(&database).await?;
            let text = match format {
                ListFormat::Json => json(&caches)?,
                ListFormat::Table => {
                    let list = |key: &str, c: &crate::api::Cache| {
                        c.other
                            .get(key)
                            .and_then(|v| v.as_array())
                            .map(|a| {
                                a.iter()
                                    .filter_map(|v| v.as_str())
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default()
                    };
                    let number = |key: &str, c: &crate::api::Cache| {
                        c.other.get(key).and_then(|v| v.as_u64())
                    };
                    let rows: Vec<Vec<String>> = caches
                        .iter()
                        .map(|c| {
                            let (columns, settings) = if c.kind == "last" {
                                (
                                    format!(
                                        "{} -> {}",
                                        list("keyColumns", c),
                                        list("valueColumns", c)
                                    ),
                                    format!(
                                        "count {}, ttl {}",
                                        or_dash(number("count", c)),
                                        or_dash(number("ttl", c).map(|s| format!("{s}s")))
                                    ),
                                )
                            } else {
                                (
                                    list("columns", c),
                                    format!(
                                        "max cardinality {}, max age {}",
                                        or_dash(number("maxCardinality", c)),
                                        or_dash(number("maxAge", c).map(|s| format!("{s}s")))
                                    ),
                                )
                            };
                            vec![
                                c.table.clone(),
                                c.name.clone(),
                                c.kind.clone(),
                                columns,
                                settings,
                            ]
                        })
                        .collect();
                    table(&["TABLE", "NAME", "KIND", "COLUMNS", "SETTINGS"], &rows)
                }
            };
            print(&text)?;
        }
        CacheCommand::Delete {
            database,
            table,
            kind,
            name,
        } => {
            api.delete_cache(&database, &table, kind.as_str(), &name)
                .await?;
            print(&format!(
                "{} cache '{name}' of table '{table}' in database '{database}' deleted\n",
                kind.as_str()
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `body` without its null fields (settings left to the server's defaults).
fn without_nulls(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(map) = body.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    body
}

/// Run a `database` command.
pub async fn database(api: &Management, command: DatabaseCommand) -> Result<ExitCode, Error> {
    match command {
        DatabaseCommand::Create {
            limits: l,
            template,
            name,
        } => {
            let db = api
                .create_database(&name, &limits(&l)?, template.to_json())
                .await?;
            print(&format!("database '{}' created (id {})\n", db.name, db.id))?;
        }
        DatabaseCommand::List {
            format,
            filter_status,
        } => {
            let mut dbs = api.list_databases(filter_status.as_str()).await?;
            if filter_status == StatusFilter::Deleted {
                dbs.retain(|d| d.deleted_at.is_some());
            }
            let text = match format {
                ListFormat::Json => json(&dbs)?,
                ListFormat::Table => {
                    let mut headers = vec!["ID", "NAME", "RETENTION", "MAX TABLES", "MAX COLUMNS"];
                    let deleted = filter_status != StatusFilter::Active;
                    if deleted {
                        headers.push("DELETED AT");
                    }
                    let templated = dbs.iter().any(|d| custom_template(&d.other).is_some());
                    if templated {
                        headers.push("PARTITIONED BY");
                    }
                    let rows: Vec<Vec<String>> = dbs
                        .iter()
                        .map(|d| {
                            let mut row = vec![
                                d.id.to_string(),
                                d.name.clone(),
                                or_dash(d.retention_period.map(format_retention)),
                                or_dash(d.max_tables),
                                or_dash(d.max_columns_per_table),
                            ];
                            if deleted {
                                row.push(or_dash(d.deleted_at.as_deref()));
                            }
                            if templated {
                                row.push(or_dash(custom_template(&d.other)));
                            }
                            row
                        })
                        .collect();
                    table(&headers, &rows)
                }
            };
            print(&text)?;
        }
        DatabaseCommand::Update { limits: l, name } => {
            let settings = limits(&l)?;
            if settings.is_empty() {
                return Err(Error::Invalid(
                    "nothing to update: give --retention-period, --max-tables or --max-columns"
                        .to_string(),
                ));
            }
            let db = api.update_database(&name, &settings).await?;
            print(&format!(
                "database '{}' updated: retention {}, max tables {}, max columns {}\n",
                db.name,
                or_dash(db.retention_period.map(format_retention)),
                or_dash(db.max_tables),
                or_dash(db.max_columns_per_table)
            ))?;
        }
        DatabaseCommand::Delete { force, names } => {
            let question = format!(
                "Delete database{} {}? (undelete brings {} back)",
                if names.len() > 1 { "s" } else { "" },
                quoted(&names),
                if names.len() > 1 { "them" } else { "it" }
            );
            if !confirm(&question, force)? {
                print("nothing deleted\n")?;
                return Ok(ExitCode::FAILURE);
            }
            for name in &names {
                api.delete_database(name).await?;
                print(&format!("database '{name}' deleted\n"))?;
            }
        }
        DatabaseCommand::Rename { old, new } => {
            let db = api.rename_database(&old, &new).await?;
            print(&format!(
                "database '{old}' renamed to '{}' (id {})\n",
                db.name, db.id
            ))?;
        }
        DatabaseCommand::Undelete { id, name } => {
            let id = match id {
                Some(id) => id,
                None => {
                    let deleted = api.list_databases("deleted").await?;
                    let same_name = deleted
                        .iter()
                        .filter(|d| d.name == name && d.deleted_at.is_some());
                    newest(same_name, |d| d.deleted_at.as_deref())
                        .map(|d| d.id)
                        .ok_or_else(|| {
                            Error::Invalid(format!(
                                "no deleted database named '{name}' (`ferritectl database list \
                                 --filter-status deleted` lists them)"
                            ))
                        })?
                }
            };
            let db = api.undelete_database(&name, id).await?;
            print(&format!(
                "database '{}' undeleted (id {})\n",
                db.name, db.id
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run a `table` command.
/// `ferritectl partition …`.
pub async fn partition(api: &Management, command: PartitionCommand) -> Result<ExitCode, Error> {
    match command {
        PartitionCommand::List {
            format,
            database,
            table: table_name,
            skipped,
        } => {
            let partitions = api
                .list_partitions(database.as_deref(), table_name.as_deref(), skipped)
                .await?;
            let text = match format {
                ListFormat::Json => json(&partitions)?,
                ListFormat::Table => {
                    let headers = [
                        "ID",
                        "DATABASE",
                        "TABLE",
                        "PARTITION",
                        "L0",
                        "L1",
                        "L2",
                        "ROWS",
                        "BYTES",
                        "SKIPPED",
                    ];
                    let rows: Vec<Vec<String>> = partitions
                        .iter()
                        .map(|p| {
                            let files = |level: u8| {
                                p.levels
                                    .iter()
                                    .find(|l| l.level == level)
                                    .map_or(0, |l| l.files)
                                    .to_string()
                            };
                            vec![
                                p.id.to_string(),
                                p.database.clone(),
                                p.table.clone(),
                                p.key.clone(),
                                files(0),
                                files(1),
                                files(2),
                                p.rows.to_string(),
                                p.bytes.to_string(),
                                or_dash(p.skipped.as_ref().map(|s| s.reason.as_str())),
                            ]
                        })
                        .collect();
                    table(&headers, &rows)
                }
            };
            print(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        PartitionCommand::Unskip { id } => {
            api.unskip_partition(id).await?;
            eprintln!("partition {id}: the compactor will try it again in its next cycle");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn table_command(api: &Management, command: TableCommand) -> Result<ExitCode, Error> {
    match command {
        TableCommand::Create {
            template,
            database,
            table: name,
        } => {
            let t = api
                .create_table(&database, &name, template.to_json())
                .await?;
            print(&format!(
                "table '{}' created in database '{database}' (id {})\n",
                t.name, t.id
            ))?;
        }
        TableCommand::List {
            format,
            filter_status,
            database,
        } => {
            let mut tables = api.list_tables(&database, filter_status.as_str()).await?;
            if filter_status == StatusFilter::Deleted {
                tables.retain(|t| t.deleted_at.is_some());
            }
            let text = match format {
                ListFormat::Json => json(&tables)?,
                ListFormat::Table => {
                    let mut headers = vec!["ID", "NAME"];
                    let deleted = filter_status != StatusFilter::Active;
                    if deleted {
                        headers.push("DELETED AT");
                    }
                    let templated = tables.iter().any(|t| custom_template(&t.other).is_some());
                    if templated {
                        headers.push("PARTITIONED BY");
                    }
                    let rows: Vec<Vec<String>> = tables
                        .iter()
                        .map(|t| {
                            let mut row = vec![t.id.to_string(), t.name.clone()];
                            if deleted {
                                row.push(or_dash(t.deleted_at.as_deref()));
                            }
                            if templated {
                                row.push(or_dash(custom_template(&t.other)));
                            }
                            row
                        })
                        .collect();
                    table(&headers, &rows)
                }
            };
            print(&text)?;
        }
        TableCommand::Delete {
            force,
            database,
            table: name,
        } => {
            let question = format!(
                "Delete table '{name}' of database '{database}'? (undelete brings it back)"
            );
            if !confirm(&question, force)? {
                print("nothing deleted\n")?;
                return Ok(ExitCode::FAILURE);
            }
            api.delete_table(&database, &name).await?;
            print(&format!(
                "table '{name}' of database '{database}' deleted\n"
            ))?;
        }
        TableCommand::Undelete {
            id,
            database,
            table: name,
        } => {
            let id = match id {
                Some(id) => id,
                None => {
                    let deleted = api.list_tables(&database, "deleted").await?;
                    let same_name = deleted
                        .iter()
                        .filter(|t| t.name == name && t.deleted_at.is_some());
                    newest(same_name, |t| t.deleted_at.as_deref())
                        .map(|t| t.id)
                        .ok_or_else(|| {
                            Error::Invalid(format!(
                                "no deleted table named '{name}' in database '{database}' \
                                 (`ferritectl table list --filter-status deleted {database}` \
                                 lists them)"
                            ))
                        })?
                }
            };
            let t = api.undelete_table(&database, &name, id).await?;
            print(&format!(
                "table '{}' of database '{database}' undeleted (id {})\n",
                t.name, t.id
            ))?;
        }
        TableCommand::Rename { database, old, new } => {
            let t = api.rename_table(&database, &old, &new).await?;
            print(&format!(
                "table '{old}' of database '{database}' renamed to '{}'\n",
                t.name
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn permissions(args: &PermissionArgs) -> Vec<Permission> {
    let grant = |action: &str, dbs: &[String]| {
        dbs.iter()
            .map(|db| Permission {
                action: action.to_string(),
                resource: db.clone(),
            })
            .collect::<Vec<_>>()
    };
    let mut all = grant("read", &args.read);
    all.extend(grant("write", &args.write));
    all
}

fn describe_permissions(permissions: &[Permission]) -> String {
    if permissions.is_empty() {
        return "(none)".to_string();
    }
    permissions
        .iter()
        .map(|p| format!("{}:{}", p.action, p.resource))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A token's details, one per line.
fn token_details(t: &Token) -> String {
    let mut rows = vec![
        ("ID", t.id.clone()),
        ("Description", t.description.clone()),
        ("Permissions", describe_permissions(&t.permissions)),
        ("Created", t.created_at.clone()),
        (
            "Expires",
            t.expires_at.clone().unwrap_or_else(|| "never".to_string()),
        ),
    ];
    if let Some(revoked) = &t.revoked_at {
        rows.push(("Revoked", revoked.clone()));
    }
    rows.iter()
        .map(|(k, v)| format!("{:<12} {v}\n", format!("{k}:")))
        .collect()
}

/// Run a `token` command.
pub async fn token(api: &Management, command: TokenCommand) -> Result<ExitCode, Error> {
    match command {
        TokenCommand::Create {
            permissions: p,
            expires_at,
            expires_in,
            format,
            description,
        } => {
            let permissions = permissions(&p);
            if permissions.is_empty() {
                return Err(Error::Invalid(
                    "a token needs at least one permission: give --read-database DB and/or \
                     --write-database DB (`*` = every database)"
                        .to_string(),
                ));
            }
            let expires_at = match (expires_at, expires_in) {
                (Some(at), _) => Some(at),
                (None, Some(text)) => {
                    let d = parse_duration(&text)
                        .map_err(|e| Error::Invalid(format!("--expires-in: {e}")))?;
                    let d = chrono::Duration::from_std(d)
                        .map_err(|_| Error::Invalid(format!("--expires-in {text} is too long")))?;
                    let at = chrono::Utc::now().checked_add_signed(d).ok_or_else(|| {
                        Error::Invalid(format!("--expires-in {text} is too long"))
                    })?;
                    Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                }
                (None, None) => None,
            };
            let created = api
                .create_token(&NewToken {
                    description,
                    permissions,
                    expires_at,
                })
                .await?;
            let text = match format {
                ObjectFormat::Json => json(&created)?,
                ObjectFormat::Table => format!(
                    "Token created.\n{}\nThe token's secret follows. It is shown only this once \
                     (the server keeps only its hash): store it now.\n{}\n",
                    token_details(&created),
                    created.access_token.as_deref().unwrap_or("(missing)")
                ),
            };
            print(&text)?;
        }
        TokenCommand::List {
            format,
            sort,
            include_revoked,
        } => {
            let mut tokens = api.list_tokens(include_revoked).await?;
            match sort {
                TokenSort::Id => tokens.sort_by(|a, b| a.id.cmp(&b.id)),
                TokenSort::Description => tokens.sort_by(|a, b| {
                    (a.description.to_lowercase(), &a.id)
                        .cmp(&(b.description.to_lowercase(), &b.id))
                }),
                // RFC 3339 times of one server, all in UTC: text order is time order.
                TokenSort::Created => {
                    tokens.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
                }
            }
            let text = match format {
                ListFormat::Json => json(&tokens)?,
                ListFormat::Table => {
                    let mut headers =
                        vec!["ID", "DESCRIPTION", "PERMISSIONS", "CREATED", "EXPIRES"];
                    if include_revoked {
                        headers.push("REVOKED");
                    }
                    let rows: Vec<Vec<String>> = tokens
                        .iter()
                        .map(|t| {
                            let mut row = vec![
                                t.id.clone(),
                                t.description.clone(),
                                describe_permissions(&t.permissions),
                                t.created_at.clone(),
                                t.expires_at.clone().unwrap_or_else(|| "never".to_string()),
                            ];
                            if include_revoked {
                                row.push(or_dash(t.revoked_at.as_deref()));
                            }
                            row
                        })
                        .collect();
                    table(&headers, &rows)
                }
            };
            print(&text)?;
        }
        TokenCommand::Get { format, id } => {
            let t = api.get_token(&id).await?;
            print(&match format {
                ObjectFormat::Json => json(&t)?,
                ObjectFormat::Table => token_details(&t),
            })?;
        }
        TokenCommand::Update {
            permissions: p,
            description,
            format,
            id,
        } => {
            let permissions = permissions(&p);
            let changes = TokenChanges {
                description,
                permissions: (!permissions.is_empty()).then_some(permissions),
            };
            if changes.description.is_none() && changes.permissions.is_none() {
                return Err(Error::Invalid(
                    "nothing to update: give --description, --read-database or --write-database"
                        .to_string(),
                ));
            }
            let t = api.update_token(&id, &changes).await?;
            print(&match format {
                ObjectFormat::Json => json(&t)?,
                ObjectFormat::Table => format!("Token updated.\n{}", token_details(&t)),
            })?;
        }
        TokenCommand::Revoke { force, ids } => {
            let question = format!(
                "Revoke token{} {}? Clients using {} stop working.",
                if ids.len() > 1 { "s" } else { "" },
                ids.join(", "),
                if ids.len() > 1 { "them" } else { "it" }
            );
            if !confirm(&question, force)? {
                print("nothing revoked\n")?;
                return Ok(ExitCode::FAILURE);
            }
            for id in &ids {
                api.revoke_token(id).await?;
                print(&format!("token {id} revoked\n"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undelete_picks_the_most_recently_deleted() {
        let items = [
            (1, Some("2026-01-01T00:00:00Z")),
            (2, Some("2026-03-01T00:00:00+02:00")),
            (3, Some("2026-02-01T00:00:00Z")),
            (4, None),
        ];
        let best = newest(items.iter(), |(_, at)| *at).unwrap();
        assert_eq!(best.0, 2);
    }

    #[test]
    fn permissions_read_as_action_and_database() {
        let p = permissions(&PermissionArgs {
            read: vec!["a".into(), "*".into()],
            write: vec!["a".into()],
        });
        assert_eq!(describe_permissions(&p), "read:a, read:*, write:a");
    }
}
