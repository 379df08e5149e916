//! The management API over gRPC: `ferrite.management.v1`'s `DatabaseService`,
//! `TableService` and `TokenService`, answering like `/api/v0` with gRPC status codes.

use ferrite_catalog::{DatabaseInfo, LimitsUpdate, Status as Listing, TableInfo};
use ferrite_model::{DatabaseId, PartitionTemplate, TableId, TemplatePart, TimeFormat};
use ferrite_proto::ferrite::management::v1 as pb;
use pb::database_service_server::{DatabaseService, DatabaseServiceServer};
use pb::table_service_server::{TableService, TableServiceServer};
use pb::token_service_server::{TokenService, TokenServiceServer};
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use super::{ApiError, Management, NewDatabase, PermissionSpec, TokenView, token_id};
use crate::authorizer::Caller;
use crate::layer::grpc_caller;

/// `routes` with the three management services added.
pub fn add_grpc_services(routes: Routes, management: Management) -> Routes {
    routes
        .add_service(DatabaseServiceServer::new(management.clone()))
        .add_service(TableServiceServer::new(management.clone()))
        .add_service(TokenServiceServer::new(management))
}

type RpcResult<T> = Result<Response<T>, Status>;

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        e.to_status()
    }
}

/// The caller and the message of `request`.
fn split<T>(request: Request<T>) -> Result<(Caller, T), Status> {
    let caller = grpc_caller(&request)?;
    Ok((caller, request.into_inner()))
}

fn timestamp(ns: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        // In 0..1e9: fits.
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

/// ns since the epoch; `None` for a time beyond what an i64 of ns holds (year 2262).
fn nanos(t: &prost_types::Timestamp) -> Option<i64> {
    t.seconds
        .checked_mul(1_000_000_000)?
        .checked_add(i64::from(t.nanos))
}

fn listing(status: i32) -> Result<Listing, Status> {
    match pb::Status::try_from(status) {
        Ok(pb::Status::Unspecified | pb::Status::Active) => Ok(Listing::Active),
        Ok(pb::Status::Deleted) => Ok(Listing::Deleted),
        Ok(pb::Status::All) => Ok(Listing::All),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown status {status}: expected ACTIVE, DELETED or ALL"
        ))),
    }
}

fn database(d: DatabaseInfo) -> pb::Database {
    pb::Database {
        id: d.id.get(),
        name: d.name,
        retention_period_ns: d.limits.retention_period_ns,
        max_tables: d.limits.max_tables,
        max_columns_per_table: d.limits.max_columns_per_table,
        deleted_at: d.deleted_at.map(timestamp),
        partition_template: Some(template_message(&d.partition_template)),
    }
}

fn table(t: TableInfo) -> pb::Table {
    pb::Table {
        id: t.id.get(),
        name: t.name,
        deleted_at: t.deleted_at.map(timestamp),
        partition_template: Some(template_message(&t.partition_template)),
    }
}

fn template_message(t: &PartitionTemplate) -> pb::PartitionTemplate {
    use pb::template_part::Part;
    pb::PartitionTemplate {
        parts: t
            .parts()
            .iter()
            .map(|p| pb::TemplatePart {
                part: Some(match p {
                    TemplatePart::TagValue(tag) => Part::TagValue(tag.clone()),
                    TemplatePart::TagBucket { tag, buckets } => Part::TagBucket(pb::TagBucket {
                        tag: tag.clone(),
                        buckets: *buckets,
                    }),
                    TemplatePart::TimeFormat(f) => Part::TimeFormat(f.pattern().to_string()),
                }),
            })
            .collect(),
    }
}

/// The parts of a requested template; an empty or unset template is the default.
fn template_parts(t: Option<pb::PartitionTemplate>) -> Result<Option<Vec<TemplatePart>>, Status> {
    use pb::template_part::Part;
    let Some(t) = t.filter(|t| !t.parts.is_empty()) else {
        return Ok(None);
    };
    t.parts
        .into_iter()
        .map(|p| match p.part {
            Some(Part::TagValue(tag)) => Ok(TemplatePart::TagValue(tag)),
            Some(Part::TagBucket(b)) => Ok(TemplatePart::TagBucket {
                tag: b.tag,
                buckets: b.buckets,
            }),
            Some(Part::TimeFormat(f)) => TimeFormat::parse(&f)
                .map(TemplatePart::TimeFormat)
                .map_err(|e| Status::invalid_argument(format!("invalid partition template: {}", e.0))),
            None => Err(Status::invalid_argument(
                "invalid partition template: a part sets none of tag_value, tag_bucket, time_format",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn token(t: TokenView) -> pb::Token {
    pb::Token {
        id: t.id.hyphenated().to_string(),
        description: t.description,
        permissions: t
            .permissions
            .into_iter()
            .map(|p| pb::Permission {
                action: p.action,
                resource: p.resource,
            })
            .collect(),
        created_at: Some(timestamp(t.created_at)),
        expires_at: t.expires_at.map(timestamp),
        revoked_at: t.revoked_at.map(timestamp),
    }
}

fn specs(permissions: Vec<pb::Permission>) -> Vec<PermissionSpec> {
    permissions
        .into_iter()
        .map(|p| PermissionSpec {
            action: p.action,
            resource: p.resource,
        })
        .collect()
}

#[tonic::async_trait]
impl DatabaseService for Management {
    async fn create_database(
        &self,
        request: Request<pb::CreateDatabaseRequest>,
    ) -> RpcResult<pb::CreateDatabaseResponse> {
        let (caller, r) = split(request)?;
        let new = NewDatabase {
            name: r.name,
            retention_period_ns: r.retention_period_ns,
            max_tables: r.max_tables,
            max_columns_per_table: r.max_columns_per_table,
            partition_template: template_parts(r.partition_template)?,
        };
        let db = Management::create_database(self, &caller, new).await?;
        Ok(Response::new(pb::CreateDatabaseResponse {
            database: Some(database(db)),
        }))
    }

    async fn list_databases(
        &self,
        request: Request<pb::ListDatabasesRequest>,
    ) -> RpcResult<pb::ListDatabasesResponse> {
        let (caller, r) = split(request)?;
        let dbs = Management::list_databases(self, &caller, listing(r.status)?).await?;
        Ok(Response::new(pb::ListDatabasesResponse {
            databases: dbs.into_iter().map(database).collect(),
        }))
    }

    async fn update_database(
        &self,
        request: Request<pb::UpdateDatabaseRequest>,
    ) -> RpcResult<pb::UpdateDatabaseResponse> {
        let (caller, r) = split(request)?;
        let update = LimitsUpdate {
            retention_period_ns: r.retention_period_ns,
            max_tables: r.max_tables,
            max_columns_per_table: r.max_columns_per_table,
        };
        let db = Management::update_database(self, &caller, &r.name, update).await?;
        Ok(Response::new(pb::UpdateDatabaseResponse {
            database: Some(database(db)),
        }))
    }

    async fn delete_database(
        &self,
        request: Request<pb::DeleteDatabaseRequest>,
    ) -> RpcResult<pb::DeleteDatabaseResponse> {
        let (caller, r) = split(request)?;
        Management::delete_database(self, &caller, &r.name).await?;
        Ok(Response::new(pb::DeleteDatabaseResponse {}))
    }

    async fn undelete_database(
        &self,
        request: Request<pb::UndeleteDatabaseRequest>,
    ) -> RpcResult<pb::UndeleteDatabaseResponse> {
        let (caller, r) = split(request)?;
        let db = Management::undelete_database(self, &caller, DatabaseId(r.id)).await?;
        Ok(Response::new(pb::UndeleteDatabaseResponse {
            database: Some(database(db)),
        }))
    }

    async fn rename_database(
        &self,
        request: Request<pb::RenameDatabaseRequest>,
    ) -> RpcResult<pb::RenameDatabaseResponse> {
        let (caller, r) = split(request)?;
        let db = Management::rename_database(self, &caller, &r.name, &r.new_name).await?;
        Ok(Response::new(pb::RenameDatabaseResponse {
            database: Some(database(db)),
        }))
    }
}

#[tonic::async_trait]
impl TableService for Management {
    async fn create_table(
        &self,
        request: Request<pb::CreateTableRequest>,
    ) -> RpcResult<pb::CreateTableResponse> {
        let (caller, r) = split(request)?;
        let template = template_parts(r.partition_template)?;
        let t = Management::create_table(self, &caller, &r.database, &r.name, template).await?;
        Ok(Response::new(pb::CreateTableResponse {
            table: Some(table(t)),
        }))
    }

    async fn list_tables(
        &self,
        request: Request<pb::ListTablesRequest>,
    ) -> RpcResult<pb::ListTablesResponse> {
        let (caller, r) = split(request)?;
        let tables =
            Management::list_tables(self, &caller, &r.database, listing(r.status)?).await?;
        Ok(Response::new(pb::ListTablesResponse {
            tables: tables.into_iter().map(table).collect(),
        }))
    }

    async fn delete_table(
        &self,
        request: Request<pb::DeleteTableRequest>,
    ) -> RpcResult<pb::DeleteTableResponse> {
        let (caller, r) = split(request)?;
        Management::delete_table(self, &caller, &r.database, &r.name).await?;
        Ok(Response::new(pb::DeleteTableResponse {}))
    }

    async fn undelete_table(
        &self,
        request: Request<pb::UndeleteTableRequest>,
    ) -> RpcResult<pb::UndeleteTableResponse> {
        let (caller, r) = split(request)?;
        let t = Management::undelete_table(self, &caller, &r.database, TableId(r.id)).await?;
        Ok(Response::new(pb::UndeleteTableResponse {
            table: Some(table(t)),
        }))
    }

    async fn rename_table(
        &self,
        request: Request<pb::RenameTableRequest>,
    ) -> RpcResult<pb::RenameTableResponse> {
        let (caller, r) = split(request)?;
        let t = Management::rename_table(self, &caller, &r.database, &r.name, &r.new_name).await?;
        Ok(Response::new(pb::RenameTableResponse {
            table: Some(table(t)),
        }))
    }
}

#[tonic::async_trait]
impl TokenService for Management {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> RpcResult<pb::CreateTokenResponse> {
        let (caller, r) = split(request)?;
        let expires_at = match &r.expires_at {
            None => None,
            Some(t) => Some(nanos(t).ok_or_else(|| {
                Status::invalid_argument("expires_at is out of range (after the year 2262)")
            })?),
        };
        let created = Management::create_token(
            self,
            &caller,
            r.description,
            &specs(r.permissions),
            expires_at,
        )
        .await?;
        Ok(Response::new(pb::CreateTokenResponse {
            token: Some(token(created.token)),
            access_token: created.secret,
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> RpcResult<pb::ListTokensResponse> {
        let (caller, r) = split(request)?;
        let tokens = Management::list_tokens(self, &caller, r.include_revoked).await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: tokens.into_iter().map(token).collect(),
        }))
    }

    async fn get_token(
        &self,
        request: Request<pb::GetTokenRequest>,
    ) -> RpcResult<pb::GetTokenResponse> {
        let (caller, r) = split(request)?;
        let t = Management::get_token(self, &caller, token_id(&r.id)?).await?;
        Ok(Response::new(pb::GetTokenResponse {
            token: Some(token(t)),
        }))
    }

    async fn update_token(
        &self,
        request: Request<pb::UpdateTokenRequest>,
    ) -> RpcResult<pb::UpdateTokenResponse> {
        let (caller, r) = split(request)?;
        let id = token_id(&r.id)?;
        let permissions = (!r.permissions.is_empty()).then(|| specs(r.permissions));
        let t = Management::update_token(self, &caller, id, r.description, permissions.as_deref())
            .await?;
        Ok(Response::new(pb::UpdateTokenResponse {
            token: Some(token(t)),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> RpcResult<pb::RevokeTokenResponse> {
        let (caller, r) = split(request)?;
        Management::revoke_token(self, &caller, token_id(&r.id)?).await?;
        Ok(Response::new(pb::RevokeTokenResponse {}))
    }
}
