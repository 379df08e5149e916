//! The management API over gRPC (`ferrite.management.v1`) on `serve` and through a
//! cluster's router: every call, the admin-only check, and each error's status code. A
//! token made over gRPC then opens, and after an update or revoke closes, the HTTP API.

use ferrite_proto::auth::{AuthChannel, Bearer};
use ferrite_proto::ferrite::management::v1 as pb;
use ferrite_testkit::cluster::TestCluster;
use ferrite_testkit::server::{FerriteServer, client_with};
use pb::database_service_client::DatabaseServiceClient;
use pb::table_service_client::TableServiceClient;
use pb::template_part::Part;
use pb::token_service_client::TokenServiceClient;
use tonic::Code;

use super::binary;
use super::lifecycle::SETTLE;

/// The three management clients, all sending one token.
struct Clients {
    databases: DatabaseServiceClient<AuthChannel>,
    tables: TableServiceClient<AuthChannel>,
    tokens: TokenServiceClient<AuthChannel>,
}

async fn clients(url: &str, token: Option<&str>) -> Clients {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let channel = Bearer::new(token).unwrap().channel(channel);
    Clients {
        databases: DatabaseServiceClient::new(channel.clone()),
        tables: TableServiceClient::new(channel.clone()),
        tokens: TokenServiceClient::new(channel),
    }
}

/// A call's answer, which must be a success.
trait Inner<T> {
    fn inner(self) -> T;
}

impl<T> Inner<T> for Result<tonic::Response<T>, tonic::Status> {
    fn inner(self) -> T {
        match self {
            Ok(r) => r.into_inner(),
            Err(s) => panic!("the call failed: {s:?}"),
        }
    }
}

fn code<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> tonic::Status {
    match result {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(status) => status,
    }
}

/// A v3 write of `lines` to `db` with `token`: the HTTP status.
async fn write(url: &str, token: &str, db: &str, lines: &str) -> u16 {
    client_with(Some(token))
        .post(format!("{url}/api/v3/write_lp?db={db}"))
        .body(lines.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn permission(action: &str, resource: &str) -> pb::Permission {
    pb::Permission {
        action: action.to_string(),
        resource: resource.to_string(),
    }
}

async fn walk(url: &str, admin_token: &str) {
    // Without a token: refused before anything is read.
    let mut anonymous = clients(url, None).await;
    let s = code(
        anonymous
            .databases
            .list_databases(pb::ListDatabasesRequest::default())
            .await,
    );
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");

    let mut admin = clients(url, Some(admin_token)).await;

    // Databases: create with settings, and the defaults.
    let db = admin
        .databases
        .create_database(pb::CreateDatabaseRequest {
            name: "grpc_db".into(),
            retention_period_ns: Some(0),
            max_tables: Some(2),
            max_columns_per_table: Some(10),
            partition_template: Some(template(vec![Part::TagValue("region".into())])),
        })
        .await
        .inner()
        .database
        .unwrap();
    assert_eq!(
        (db.name.as_str(), db.max_tables, db.max_columns_per_table),
        ("grpc_db", 2, 10)
    );
    assert_eq!(
        db.partition_template,
        Some(template(vec![
            Part::TagValue("region".into()),
            Part::TimeFormat("%Y-%m-%d".into())
        ])),
        "the default time format is added"
    );
    let defaults = admin
        .databases
        .create_database(pb::CreateDatabaseRequest {
            name: "grpc_defaults".into(),
            ..Default::default()
        })
        .await
        .inner()
        .database
        .unwrap();
    assert_eq!(
        (
            defaults.retention_period_ns,
            defaults.max_tables,
            defaults.max_columns_per_table
        ),
        (0, 500, 250)
    );
    let s = code(
        admin
            .databases
            .create_database(pb::CreateDatabaseRequest {
                name: "grpc_db".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(s.code(), Code::AlreadyExists, "{s:?}");
    let s = code(
        admin
            .databases
            .create_database(pb::CreateDatabaseRequest {
                name: "bad name!".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

    // Tokens: made over gRPC, used over HTTP.
    let created = admin
        .tokens
        .create_token(pb::CreateTokenRequest {
            description: "grpc writer".into(),
            permissions: vec![permission("write", "grpc_db")],
            expires_at: None,
        })
        .await
        .inner();
    let secret = created.access_token.clone();
    let token = created.token.unwrap();
    assert!(secret.len() >= 43, "a 256-bit secret");
    assert_eq!(token.permissions, vec![permission("write", "grpc_db")]);
    assert!(token.created_at.is_some() && token.revoked_at.is_none());
    tokio::time::sleep(SETTLE).await;
    assert_eq!(write(url, &secret, "grpc_db", "m,t=a v=1 1\n").await, 204);

    // A database token is not the admin token.
    let mut writer = clients(url, Some(&secret)).await;
    let s = code(
        writer
            .databases
            .list_databases(pb::ListDatabasesRequest::default())
            .await,
    );
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    let s = code(
        writer
            .tokens
            .list_tokens(pb::ListTokensRequest::default())
            .await,
    );
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");

    // Bad token requests name what is wrong.
    for (permissions, expected) in [
        (vec![], Code::InvalidArgument),
        (vec![permission("delete", "grpc_db")], Code::InvalidArgument),
        (vec![permission("read", "no_such_db")], Code::NotFound),
    ] {
        let s = code(
            admin
                .tokens
                .create_token(pb::CreateTokenRequest {
                    description: "bad".into(),
                    permissions,
                    expires_at: None,
                })
                .await,
        );
        assert_eq!(s.code(), expected, "{s:?}");
    }
    let s = code(
        admin
            .tokens
            .create_token(pb::CreateTokenRequest {
                description: "expired".into(),
                permissions: vec![permission("read", "*")],
                expires_at: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: 0,
                }),
            })
            .await,
    );
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("in the past"), "{s:?}");

    // Get, list, update (replaces permissions), revoke.
    let got = admin
        .tokens
        .get_token(pb::GetTokenRequest {
            id: token.id.clone(),
        })
        .await
        .inner()
        .token
        .unwrap();
    assert_eq!(got, token);
    let s = code(
        admin
            .tokens
            .get_token(pb::GetTokenRequest {
                id: "not-a-uuid".into(),
            })
            .await,
    );
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    let listed = admin
        .tokens
        .list_tokens(pb::ListTokensRequest::default())
        .await
        .inner()
        .tokens;
    assert!(listed.iter().any(|t| t.id == token.id), "{listed:?}");

    let updated = admin
        .tokens
        .update_token(pb::UpdateTokenRequest {
            id: token.id.clone(),
            description: Some("grpc reader".into()),
            permissions: vec![permission("read", "grpc_db")],
        })
        .await
        .inner()
        .token
        .unwrap();
    assert_eq!(updated.description, "grpc reader");
    assert_eq!(updated.permissions, vec![permission("read", "grpc_db")]);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(write(url, &secret, "grpc_db", "m,t=a v=2 2\n").await, 403);

    admin
        .tokens
        .revoke_token(pb::RevokeTokenRequest {
            id: token.id.clone(),
        })
        .await
        .unwrap();
    tokio::time::sleep(SETTLE).await;
    assert_eq!(write(url, &secret, "grpc_db", "m,t=a v=3 3\n").await, 401);
    let active = admin
        .tokens
        .list_tokens(pb::ListTokensRequest {
            include_revoked: false,
        })
        .await
        .inner()
        .tokens;
    assert!(!active.iter().any(|t| t.id == token.id), "{active:?}");
    let all = admin
        .tokens
        .list_tokens(pb::ListTokensRequest {
            include_revoked: true,
        })
        .await
        .inner()
        .tokens;
    let revoked = all.iter().find(|t| t.id == token.id).unwrap();
    assert!(revoked.revoked_at.is_some(), "{revoked:?}");

    // Tables: the write made `m`; max tables is 2.
    let t = admin
        .tables
        .create_table(pb::CreateTableRequest {
            database: "grpc_db".into(),
            name: "t1".into(),
            partition_template: Some(template(vec![Part::TimeFormat("%Y-%m".into())])),
        })
        .await
        .inner()
        .table
        .unwrap();
    assert_eq!(t.name, "t1");
    assert_eq!(
        t.partition_template,
        Some(template(vec![Part::TimeFormat("%Y-%m".into())])),
        "a table's own template"
    );
    let bad = code(
        admin
            .tables
            .create_table(pb::CreateTableRequest {
                database: "grpc_db".into(),
                name: "t2".into(),
                partition_template: Some(template(vec![Part::TimeFormat("%d".into())])),
            })
            .await,
    );
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(
        bad.message().contains("%Y-%m-%d, %Y-%W, %Y-%m, %Y"),
        "{bad:?}"
    );
    let s = code(
        admin
            .tables
            .create_table(pb::CreateTableRequest {
                database: "grpc_db".into(),
                name: "t3".into(),
                partition_template: None,
            })
            .await,
    );
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert!(s.message().contains('2'), "names the limit: {s:?}");
    let renamed = admin
        .tables
        .rename_table(pb::RenameTableRequest {
            database: "grpc_db".into(),
            name: "t1".into(),
            new_name: "t2".into(),
        })
        .await
        .inner()
        .table
        .unwrap();
    assert_eq!((renamed.id, renamed.name.as_str()), (t.id, "t2"));
    admin
        .tables
        .delete_table(pb::DeleteTableRequest {
            database: "grpc_db".into(),
            name: "t2".into(),
        })
        .await
        .unwrap();
    let deleted = admin
        .tables
        .list_tables(pb::ListTablesRequest {
            database: "grpc_db".into(),
            status: pb::Status::Deleted.into(),
        })
        .await
        .inner()
        .tables;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].name, "t2");
    assert!(deleted[0].deleted_at.is_some());
    let back = admin
        .tables
        .undelete_table(pb::UndeleteTableRequest {
            database: "grpc_db".into(),
            id: t.id,
        })
        .await
        .inner()
        .table
        .unwrap();
    assert!(back.deleted_at.is_none(), "{back:?}");
    let mut active: Vec<String> = admin
        .tables
        .list_tables(pb::ListTablesRequest {
            database: "grpc_db".into(),
            status: pb::Status::Active.into(),
        })
        .await
        .inner()
        .tables
        .into_iter()
        .map(|t| t.name)
        .collect();
    active.sort();
    assert_eq!(active, ["m", "t2"]);
    let s = code(
        admin
            .tables
            .list_tables(pb::ListTablesRequest {
                database: "grpc_db".into(),
                status: 42,
            })
            .await,
    );
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

    // Databases: update, rename, soft delete, undelete by id.
    let db = admin
        .databases
        .update_database(pb::UpdateDatabaseRequest {
            name: "grpc_db".into(),
            max_tables: Some(3),
            ..Default::default()
        })
        .await
        .inner()
        .database
        .unwrap();
    assert_eq!((db.max_tables, db.max_columns_per_table), (3, 10));
    let db = admin
        .databases
        .rename_database(pb::RenameDatabaseRequest {
            name: "grpc_db".into(),
            new_name: "grpc_db2".into(),
        })
        .await
        .inner()
        .database
        .unwrap();
    assert_eq!(db.name, "grpc_db2");
    admin
        .databases
        .delete_database(pb::DeleteDatabaseRequest {
            name: "grpc_db2".into(),
        })
        .await
        .unwrap();
    let s = code(
        admin
            .databases
            .delete_database(pb::DeleteDatabaseRequest {
                name: "grpc_db2".into(),
            })
            .await,
    );
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    let deleted = admin
        .databases
        .list_databases(pb::ListDatabasesRequest {
            status: pb::Status::Deleted.into(),
        })
        .await
        .inner()
        .databases;
    assert!(
        deleted
            .iter()
            .any(|d| d.id == db.id && d.name == "grpc_db2" && d.deleted_at.is_some()),
        "{deleted:?}"
    );
    let back = admin
        .databases
        .undelete_database(pb::UndeleteDatabaseRequest { id: db.id })
        .await
        .inner()
        .database
        .unwrap();
    assert_eq!((back.name.as_str(), back.deleted_at), ("grpc_db2", None));
    let active: Vec<String> = admin
        .databases
        .list_databases(pb::ListDatabasesRequest::default())
        .await
        .inner()
        .databases
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert!(
        active.contains(&"grpc_db2".to_string()) && active.contains(&"grpc_defaults".to_string()),
        "{active:?}"
    );
}

#[tokio::test]
async fn serve_answers_the_management_api_over_grpc() {
    let server = FerriteServer::start(binary(), &[]).await.unwrap();
    walk(&server.url(), server.admin_token().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_router_forwards_the_management_grpc_api_to_the_catalog() {
    let c = TestCluster::start(binary(), crate::cluster_options())
        .await
        .unwrap();
    walk(&c.url(), &c.admin_token).await;
}

/// A template message of `parts`.
fn template(parts: Vec<Part>) -> pb::PartitionTemplate {
    pb::PartitionTemplate {
        parts: parts
            .into_iter()
            .map(|p| pb::TemplatePart { part: Some(p) })
            .collect(),
    }
}
