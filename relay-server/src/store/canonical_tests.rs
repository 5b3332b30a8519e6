//! Migration 0005: stored addresses put in canonical form, with every row that names them.

use std::borrow::Cow;
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::{SqliteStore, Store};

#[tokio::test]
async fn stored_addresses_become_canonical_and_look_alikes_keep_out() {
    let path = std::env::temp_dir().join(format!(
        "restsip-canonical-{}-{}.db",
        std::process::id(),
        rand::random::<u32>()
    ));
    let url = format!("sqlite:{}", path.display());
    // A database as the relay left it before migration 0005.
    let options = SqliteConnectOptions::from_str(&url)
        .expect("url")
        .create_if_missing(true)
        .foreign_keys(true);
    let db = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open");
    let all = sqlx::migrate!("migrations/sqlite");
    let before = Migrator {
        migrations: Cow::Owned(
            all.migrations
                .iter()
                .filter(|m| m.version < 5)
                .cloned()
                .collect(),
        ),
        ..all
    };
    before.run(&db).await.expect("old schema");
    for statement in [
        "INSERT INTO users (email, password_hash, created) VALUES \
         ('Jan@Example.NET.', 'h1', 1), ('b@x.net', 'h2', 5), ('B@X.NET', 'h3', 1)",
        "INSERT INTO contacts (email, id, expires_at, source) VALUES ('Jan@Example.NET.', 1, 9999999999999, 'web')",
        "INSERT INTO mail (owner, sender, created) VALUES ('Jan@Example.NET.', 'B@X.NET', 1)",
        "INSERT INTO calls (id, owner, created) VALUES ('c1', 'Jan@Example.NET.', 1)",
        "INSERT INTO participants (call_id, id, login, user) VALUES \
         ('c1', 1, '/login/Jan@Example.NET./1', 'Jan@Example.NET.')",
        "INSERT INTO sends (seq, msg_id, sender, to_email, to_contact, target, body, sent, status) \
         VALUES (1, 'm', 'b@x.net', 'Jan@Example.NET.', 1, '/login/Jan@Example.NET.', '{}', 1, 'queued')",
        "INSERT INTO webhooks (id, owner, target, resource, updates, secret, created) VALUES \
         ('w', 'Jan@Example.NET.', 'http://h/', '/login/Jan@Example.NET./1', 'diff', 's', 1)",
    ] {
        sqlx::query(statement).execute(&db).await.expect(statement);
    }
    db.close().await;

    let store = SqliteStore::open(&url).await.expect("migrated");
    let user = store.user("jan@example.net").await.expect("read");
    assert_eq!(user.map(|u| u.password_hash).as_deref(), Some("h1"));
    assert_eq!(
        store
            .contacts("jan@example.net", 0)
            .await
            .expect("contacts")
            .len(),
        1
    );
    let rows = |sql: &'static str| {
        let db = store.writer.clone();
        async move {
            sqlx::query_scalar::<_, String>(sql)
                .fetch_all(&db)
                .await
                .expect(sql)
        }
    };
    assert_eq!(rows("SELECT owner FROM mail").await, ["jan@example.net"]);
    assert_eq!(
        rows("SELECT sender FROM mail").await,
        ["B@X.NET"],
        "a sender that stayed"
    );
    assert_eq!(rows("SELECT owner FROM calls").await, ["jan@example.net"]);
    assert_eq!(
        rows("SELECT login || ' ' || user FROM participants").await,
        ["/login/jan@example.net/1 jan@example.net"]
    );
    assert_eq!(
        rows("SELECT to_email || ' ' || target FROM sends").await,
        ["jan@example.net /login/jan@example.net"]
    );
    assert_eq!(
        rows("SELECT owner || ' ' || resource FROM webhooks").await,
        ["jan@example.net /login/jan@example.net/1"]
    );
    // b@x.net was already canonical: it keeps the address; its look-alike stays apart.
    assert_eq!(
        rows("SELECT email || ' ' || password_hash FROM users ORDER BY email").await,
        ["B@X.NET h3", "b@x.net h2", "jan@example.net h1"]
    );
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
