//! Several relays of one cluster (`--cluster nats://… --node NAME`) on this machine: real relay
//! processes sharing one SQLite file and the NATS server on 127.0.0.1:4222, under a cluster
//! name of their own so parallel tests never hear each other.

use anyhow::Result;

use serde_json::json;

use crate::{Client, Relay};

/// The NATS server of the tests (and CI).
pub const NATS: &str = "nats://127.0.0.1:4222";

/// Relays of one new cluster over one database; the directory holds it.
pub struct Cluster {
    /// The relays, in the order of the node names they were started with.
    pub relays: Vec<Relay>,
    /// The cluster's name (`--cluster-name`).
    pub name: String,
    /// `--database` of every relay.
    pub database: String,
    /// Holds the database file.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a relay per name in `nodes` (node names `--node`), each with `extra` flags, in a
    /// cluster named after `test` and this process.
    pub async fn start(test: &str, nodes: &[&str], extra: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let database = format!("sqlite:{}", dir.path().join("shared.db").display());
        let name = format!("{test}-{}-{:08x}", std::process::id(), unique());
        let mut relays = Vec::with_capacity(nodes.len());
        // One after the other: the first creates the database.
        for node in nodes {
            relays.push(start_node(&database, &name, node, extra).await?);
        }
        Ok(Self {
            relays,
            name,
            database,
            _dir: dir,
        })
    }

    /// Starts one more relay of this cluster (a new node, or one that was killed, again).
    pub async fn join(&self, node: &str, extra: &[&str]) -> Result<Relay> {
        start_node(&self.database, &self.name, node, extra).await
    }
}

async fn start_node(database: &str, name: &str, node: &str, extra: &[&str]) -> Result<Relay> {
    let mut args = vec![
        "--database",
        database,
        "--cluster",
        NATS,
        "--node",
        node,
        "--cluster-name",
        name,
    ];
    args.extend_from_slice(extra);
    Relay::start(&args).await
}

/// A number that differs between calls of one process (clusters of one test name).
fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() ^ (t.as_secs() as u32).rotate_left(7))
        .wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The same user on `relay` (signed up on any relay of the cluster with the password
/// `pw-{email}`, as [`Relay::user`] gives).
pub fn on(relay: &Relay, email: &str) -> Client {
    relay.client(email, &format!("pw-{email}"))
}

/// A new call of `owner` (subject `cluster`); its path.
pub async fn call(owner: &Client) -> String {
    let res = owner
        .request("POST", "/call", Some(json!({"subject": "cluster"})))
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", res.body);
    res.body["url"].as_str().unwrap().to_owned()
}

/// `who` (logged in as `login`) joins `call`; returns the participant's path.
pub async fn join(who: &Client, call: &str, login: &str) -> String {
    let res = who
        .request("POST", call, Some(json!({"url": login, "session": "v=0"})))
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", res.body);
    res.body["url"].as_str().unwrap().to_owned()
}
