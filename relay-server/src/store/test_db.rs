//! Fresh stores of both engines for the store tests: SQLite in memory, and PostgreSQL in a
//! database of its own made for the test and dropped after it (`RESTSIP_TEST_POSTGRES` names
//! the server, default `postgres://postgres@127.0.0.1:5432`). A PostgreSQL that cannot be
//! reached fails the test with a message that says so: CI has one, and a skipped engine would
//! pass unseen.

use std::future::Future;
use std::sync::Arc;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use super::{PostgresStore, SqliteStore, Store};

/// The PostgreSQL server of the tests.
pub(crate) fn server() -> String {
    std::env::var("RESTSIP_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// An empty SQLite store in memory.
pub(crate) async fn sqlite() -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open("sqlite::memory:")
            .await
            .expect("in-memory SQLite store"),
    )
}

async fn admin(server: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{server}/postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {server} ({e}): the store tests run on both \
                 engines; start it or set RESTSIP_TEST_POSTGRES"
            )
        })
}

/// A database of its own on the test server, dropped by [`TestDatabase::drop`].
#[derive(Debug)]
pub(crate) struct TestDatabase {
    /// Its URL.
    pub(crate) url: String,
    server: String,
    name: String,
}

impl TestDatabase {
    /// Creates an empty database.
    pub(crate) async fn create() -> Self {
        let server = server();
        let name = format!("restsip_test_{:016x}", rand::random::<u64>());
        let admin = admin(&server).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        admin.close().await;
        Self {
            url: format!("{server}/{name}"),
            server,
            name,
        }
    }

    /// Drops the database, closing whatever still uses it.
    pub(crate) async fn drop(self) {
        let admin = admin(&self.server).await;
        let dropped = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&admin)
        .await;
        if let Err(e) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
        admin.close().await;
    }
}

/// Runs `test` on an empty PostgreSQL store in a fresh database, and drops the database
/// after it, passed or failed.
pub(crate) async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = TestDatabase::create().await;
    let store = PostgresStore::open(&db.url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL store at {}: {e}", db.url));
    let outcome = tokio::spawn(test(Arc::new(store))).await;
    db.drop().await;
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test task: {e}");
    }
}

/// Makes each `async fn name(store) { … }` a module `name` of two tests, `sqlite` and
/// `postgres`, that run the body on a fresh store of that engine.
macro_rules! on_both_engines {
    ($(async fn $name:ident($store:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($store: std::sync::Arc<dyn crate::store::Store>) $body

            #[tokio::test]
            async fn sqlite() {
                body(crate::store::test_db::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                crate::store::test_db::on_postgres(body).await;
            }
        }
    )*};
}
pub(crate) use on_both_engines;
