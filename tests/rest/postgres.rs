//! The relay on PostgreSQL (`--database postgres://…`): the article's flow (sign up, log in,
//! a call, a SEND to a WebSocket, offline mail) on a database of its own, and kill -9 with a
//! restart losing nothing acknowledged. PostgreSQL must be reachable (`RESTSIP_TEST_POSTGRES`,
//! default `postgres://postgres@127.0.0.1:5432`): without it the test fails and says so.

use restsip_e2e::Relay;
use restsip_protocol::EventKind;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::durability::Durable;
use crate::users::sign_up;

fn server() -> String {
    std::env::var("RESTSIP_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

async fn connect(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url} ({e}): start it or set RESTSIP_TEST_POSTGRES"
            )
        })
}

/// A fresh database on the test server, dropped by [`Database::drop`].
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Self {
        let name = format!("restsip_e2e_{:016x}", rand_u64());
        let admin = connect(&format!("{}/postgres", server())).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = format!("{}/{name}", server());
        Self { name, url }
    }
}

/// Dropped with the test, passed or failed: on a thread of its own, outside the test's runtime.
impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = connect(&format!("{}/postgres", server())).await;
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await;
                admin.close().await;
            });
        })
        .join();
        if dropped.is_err() {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

#[tokio::test]
async fn the_article_flow_runs_on_postgres_and_survives_kill_dash_nine() {
    let db = Database::create().await;
    let mut relay = Relay::start(&["--database", &db.url]).await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    // Sign-up twice: the taken address is a conflict, from PostgreSQL's unique key.
    let again = sign_up(&relay, "alice@example.net", "another-pw-1").await;
    assert_eq!(again.status, 409);
    let mut durable = Durable::call(&alice, &bob, "on postgres").await;
    let call = &durable.call;

    // A SEND reaches bob's WebSocket.
    let inbox = format!("/login/bob@example.net/{}", durable.bob_login);
    let mut ws = bob.ws().await.unwrap();
    ws.send(json!({"op": "subscribe", "path": inbox}))
        .await
        .unwrap();
    assert_eq!(ws.next_event().await.unwrap().kind, EventKind::State);
    let sent = alice
        .request(
            "SEND",
            &inbox,
            Some(json!({"command": "invite", "url": call})),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, 200);
    let msg = ws.next_event().await.unwrap();
    assert_eq!(msg.kind, EventKind::Message);
    assert_eq!(msg.data["body"]["url"], *call);
    drop(ws);

    // Offline mail, and SENDs acknowledged while nobody listens, then kill -9.
    durable.mail_and_queue(&alice).await;

    // It is PostgreSQL that holds them, not a file beside the relay.
    let direct = connect(&db.url).await;
    let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM users ORDER BY email")
        .fetch_all(&direct)
        .await
        .unwrap();
    assert_eq!(emails, ["alice@example.net", "bob@example.net"]);
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sends WHERE status = 'queued'")
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(queued, 20);
    direct.close().await;

    relay.kill_and_restart().await.unwrap();

    // What was acknowledged is kept (the signing key is in the database too).
    durable.assert_kept(&relay).await;
    // /readyz's store check writes nothing but needs a writable PostgreSQL.
    let ready = relay.anonymous().get("/readyz").await.unwrap();
    assert_eq!(
        ready.body["checks"]["store"]["status"], "ok",
        "{:?}",
        ready.body
    );
    relay.terminate().await.unwrap();
    drop(db);
}
