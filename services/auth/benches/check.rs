//! What checking a token costs one request, measured alone (`make bench-auth`).
//!
//! ```text
//!  check:   Authorizer::authenticate(secret) + Caller::require(write, "bench")
//!  layer:   a request through the authentication layer to a handler that requires write on
//!           "bench", against the same route with checking off (--without-auth)
//! ```
//!
//! The authorizer holds 1,000 tokens and 100 databases, from an in-memory SQLite catalog.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, criterion_group, criterion_main};
use ferrite_auth::{AuthMode, Authorizer, authenticate, caller_of, generate_token, hash_token};
use ferrite_catalog::{Action, Catalog, CatalogRef, NewToken, Permission, Resource, SqlCatalog};
use tower::ServiceExt;

/// An authorizer over 100 databases and 1,000 tokens; the secret of one with write on
/// `bench`.
async fn authorizer() -> (Arc<Authorizer>, String) {
    let catalog = SqlCatalog::connect("sqlite::memory:").await.unwrap();
    let bench = catalog.create_database("bench").await.unwrap();
    for i in 0..99 {
        catalog.create_database(&format!("db{i}")).await.unwrap();
    }
    let mut secret = String::new();
    for i in 0..1_000 {
        let s = generate_token();
        catalog
            .create_token(NewToken {
                id: uuid::Uuid::new_v4(),
                description: format!("token {i}"),
                hash: hash_token(&s),
                permissions: vec![Permission {
                    action: Action::Write,
                    resource: Resource::Database(bench.id),
                }],
                expires_at: None,
            })
            .await
            .unwrap();
        secret = s;
    }
    let catalog: CatalogRef = Arc::new(catalog);
    let authorizer = Authorizer::new(catalog, hash_token(&generate_token()));
    authorizer.reload().await.unwrap();
    (authorizer, secret)
}

/// A write route that requires write on `bench`, behind the authentication layer.
fn app(mode: AuthMode) -> axum::Router {
    let route = axum::Router::new().route(
        "/api/v2/write",
        axum::routing::post(|request: Request<Body>| async move {
            match caller_of(request.extensions()) {
                Ok(caller) => match caller.require(Action::Write, "bench").await {
                    Ok(()) => StatusCode::NO_CONTENT,
                    Err(e) => e.http_status(),
                },
                Err(e) => e.http_status(),
            }
        }),
    );
    authenticate(route, mode)
}

fn request(secret: &str) -> Request<Body> {
    Request::post("/api/v2/write?bucket=bench")
        .header("authorization", format!("Token {secret}"))
        .body(Body::empty())
        .unwrap()
}

fn check(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (authorizer, secret) = rt.block_on(authorizer());

    c.bench_function("check/authenticate+require", |b| {
        b.iter(|| {
            rt.block_on(async {
                let caller = authorizer.authenticate(&secret).await.unwrap();
                caller.require(Action::Write, "bench").await.unwrap();
            })
        })
    });

    let mut group = c.benchmark_group("layer");
    for (name, mode) in [
        ("without-auth", AuthMode::Disabled),
        ("database-token", AuthMode::Tokens(Arc::clone(&authorizer))),
    ] {
        let app = app(mode);
        // The same answer both ways, or the comparison means nothing.
        let status = rt
            .block_on(app.clone().oneshot(request(&secret)))
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NO_CONTENT, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(app.clone().oneshot(request(&secret))).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
