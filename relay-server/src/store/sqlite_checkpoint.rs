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
//!
//! Under a steady load that moment never comes: a write always lands between a passive
//! checkpoint and the next write, and the log grew by the whole load (638 MB in 11 s of
//! `rest-bench` SENDs). So once the log holds more than [`EMPTY_PAST`] frames, this thread
//! takes the store's turn to write, which holds this relay's writers back, and runs a RESTART
//! checkpoint: it copies what came in during the last passive one, and the next write starts
//! the log over. That holds the writers for 9-24 ms (mostly the database file's `fsync`)
//! about once every 1.2 s under the heaviest SEND load measured, and the file stays under
//! 75 MB (README, "Benchmarks", sixth round).
//!
//! It is not a TRUNCATE checkpoint, which also cuts the file to nothing: freeing 64 MB of
//! blocks took 110-124 ms here, all of it in the writers' turn. Writing over the old frames
//! costs nothing more while their pages are in the kernel's cache. Pages left cold for a
//! minute can be evicted (this machine's kernel pages them out), and a write over an evicted
//! page of the log reads it back from the disk first (a frame is 24 bytes longer than a page,
//! so its writes are never whole blocks); that was seen with a log of 324 MB, written over
//! minutes later. A log cycled every second stays warm.

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// How often the log is checkpointed.
const EVERY: Duration = Duration::from_millis(50);

/// Frames in the log past which it is emptied in the store's turn to write: 64 MiB of 4 KiB
/// pages. Each time holds the writers back for the copy of the last frames and two `fsync`s,
/// so it is rare.
#[cfg(not(test))]
const EMPTY_PAST: i64 = 16_384;
/// A few rounds of the tests' writes.
#[cfg(test)]
const EMPTY_PAST: i64 = 256;

/// How long the emptying waits for readers still reading the log (while this relay's writers
/// wait for it) before it tries again at the next period.
const READERS_FOR: Duration = Duration::from_millis(5);

/// The checkpointing thread; it stops (closing its connection) when this is dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    /// Dropped to stop the thread.
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (in WAL mode, already migrated); `turn` is
    /// the store's turn to write, taken to empty the log.
    pub(super) fn start(path: &Path, turn: Arc<tokio::sync::Mutex<()>>) -> anyhow::Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        conn.busy_timeout(READERS_FOR)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("restsip-checkpoint".into())
            .spawn(move || run(&conn, &turn, &stopped))?;
        Ok(Self { _stop: stop })
    }
}

/// Checkpoints every [`EVERY`] until `stopped` is disconnected.
fn run(conn: &Connection, turn: &tokio::sync::Mutex<()>, stopped: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
        // A busy database (another relay's checkpoint) is tried again next time.
        match checkpoint(conn, "PASSIVE") {
            Ok(frames) if frames > EMPTY_PAST => {
                let started = Instant::now();
                let _turn = turn.blocking_lock();
                let waited = started.elapsed();
                // The next write starts the log over.
                let emptied = checkpoint(conn, "RESTART");
                tracing::debug!(
                    frames,
                    ?waited,
                    took = ?started.elapsed(),
                    ok = emptied.is_ok(),
                    "WAL emptied"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint"),
        }
    }
}

/// Runs a checkpoint in `mode`: the frames in the log.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get::<_, i64>(1)
    })
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

    #[tokio::test]
    async fn under_a_steady_load_the_log_is_emptied_in_the_writers_turn() {
        let (store, dir, c) = scratch_store().await;
        // Four writers of 2,000 rows of 2 KB each, each committing again as soon as its commit
        // returns: there is never a moment with nothing written since the last checkpoint.
        const ROWS: i64 = 2_000;
        let writers: Vec<_> = (0..4i64)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in 0..ROWS {
                        let send = SendRecord {
                            body: serde_json::json!({"command": "im", "text": "x".repeat(2000)}),
                            ..send(1 + w + 4 * n, c)
                        };
                        store.queue_sends(&[send]).await.expect("stored");
                    }
                })
            })
            .collect();
        let mut largest = 0;
        let started = std::time::Instant::now();
        while !writers.iter().all(|w| w.is_finished()) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "the writers did not finish"
            );
            largest = largest.max(log_size(&dir));
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        for w in writers {
            w.await.expect("writer");
        }
        // Every row's bytes go through the log, with its indexes' pages: without the
        // emptying, the log holds all of it, eight to ten times the rows' bytes (128-157 MB
        // for 16 MB of rows here). With it, the log holds what came in between two emptyings:
        // a fifth to a half of the rows' bytes on a quiet machine, more on a busy one, where the
        // checkpoint thread waits for a core too (1.4 times them in CI and 1.6 here beside
        // the other unit tests and a build, on two cores). Four times them leaves room on
        // both sides.
        let written = 4 * ROWS;
        let data = u64::try_from(written).expect("count") * 2000;
        assert!(
            largest < 4 * data,
            "the log grew to {largest} bytes under {data} bytes of rows"
        );
        let stored: i64 = rusqlite::Connection::open(dir.join("store.db"))
            .expect("open")
            .query_row("SELECT count(*) FROM sends", [], |r| r.get(0))
            .expect("count");
        assert_eq!(stored, written, "every row is kept");
    }
}
