//! Whether the SQLite store can be written (`/readyz`). The counts `/metrics` samples and the
//! leases are run alike on both engines (`shared.rs`); their SQLite tests are here.

use sqlx::SqlitePool;

use super::StoreResult;

/// Takes the write lock and lets it go (`BEGIN IMMEDIATE`, then a rollback): the database
/// file, its directory and the one writer connection all work. Nothing is written.
pub(super) async fn writable(writer: &SqlitePool) -> StoreResult<()> {
    let tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    tx.rollback().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{SqliteStore, Store};

    #[tokio::test]
    async fn a_lease_is_one_holders_until_it_expires() {
        let dir = tempfile_dir();
        let url = format!("sqlite:{}", dir.join("leases.db").display());
        let store = SqliteStore::open(&url).await.expect("open");
        let take = |holder: &'static str, now: i64| {
            let store = &store;
            async move {
                store
                    .take_lease("leader", holder, now, now + 3000)
                    .await
                    .expect("lease")
            }
        };
        assert!(take("a", 1000).await, "free: taken");
        assert!(!take("b", 2000).await, "held by a");
        assert!(take("a", 3000).await, "renewed by its holder");
        assert!(!take("b", 5999).await, "still a's until 6000");
        assert!(take("b", 6001).await, "expired: taken over");
        assert!(!take("a", 6002).await, "now b's");
        // Read back by prefix (which relays hold id slots).
        store
            .take_lease("slot/3", "c", 0, 60_000)
            .await
            .expect("slot");
        let slots = store.leases("slot/").await.expect("leases");
        assert_eq!(
            slots,
            vec![super::super::Lease {
                name: "slot/3".into(),
                holder: "c".into(),
                until: 60_000
            }]
        );
        assert_eq!(store.leases("lead").await.expect("leases")[0].holder, "b");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "restsip-leases-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
