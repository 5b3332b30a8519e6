//! Checkpoints of the SQLite store's write-ahead log, on a thread of their own.
//!
//! SQLite's default is that the connection whose commit takes the log past 1,000 pages copies
//! the log into the database file there and then, `fsync`s included: under a SEND load that was
//! the SEND group thread, and the group behind that commit waited a few milliseconds (the p99 of
//! `rest-bench`'s SEND scenario). Here no connection of the store checkpoints on commit
//! (`wal_autocheckpoint = 0`); this thread runs a PASSIVE checkpoint every [`EVERY`] instead,
//! which copies what no reader still needs while the writers go on appending to the log. When
//! every frame has been copied, the next write starts the log from its beginning again, so the
//! file stays as small as a period's writes.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is checkpointed.
const EVERY: Duration = Duration::from_millis(50);

/// The checkpointing thread; it stops (closing its connection) when this is dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    /// Dropped to stop the thread.
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (in WAL mode, already migrated).
    pub(super) fn start(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("restsip-checkpoint".into())
            .spawn(move || run(&conn, &stopped))?;
        Ok(Self { _stop: stop })
    }
}

/// Checkpoints every [`EVERY`] until `stopped` is disconnected.
fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
        // A busy database (another relay's checkpoint) is tried again next time.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "WAL checkpoint");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::send_batch::tests::send;
    use crate::store::sqlite_sends::tests::scratch_store;
    use crate::store::{SendRecord, Store};

    /// Size of the write-ahead log file of the database in `dir`.
    fn log_size(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("store.db-wal")).map_or(0, |m| m.len())
    }

    #[tokio::test]
    async fn the_log_is_copied_to_the_database_behind_the_writers_and_stays_small() {
        let (store, dir, c) = scratch_store().await;
        let mut seq = 0;
        let mut sizes = Vec::new();
        // Rounds of 100 commits (a few hundred log frames each; no commit checkpoints), with
        // checkpoints between them.
        for _ in 0..8 {
            for _ in 0..100 {
                seq += 1;
                let send = SendRecord {
                    body: serde_json::json!({"command": "im", "text": "x".repeat(500)}),
                    ..send(seq, c)
                };
                store.queue_sends(&[send]).await.expect("stored");
            }
            sizes.push(log_size(&dir));
            tokio::time::sleep(super::EVERY * 4).await;
        }
        // Without checkpoints the log would hold all eight rounds; with them, each round
        // writes it again from its beginning.
        let (first, last) = (sizes[0], sizes[sizes.len() - 1]);
        assert!(first > 0, "{sizes:?}");
        assert!(
            last < first * 3,
            "the log grew round after round: {sizes:?}"
        );
        // Everything is in the database file itself: a connection that does not read the log
        // (immutable) sees all the rows.
        let url = format!("file:{}?immutable=1", dir.join("store.db").display());
        let db = rusqlite::Connection::open_with_flags(
            url,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .expect("open");
        let in_file: i64 = db
            .query_row("SELECT count(*) FROM sends", [], |r| r.get(0))
            .expect("count");
        assert!(
            in_file >= 700,
            "{in_file} of {seq} rows in the database file"
        );
    }
}
