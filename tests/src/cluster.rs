//! Several relays of one cluster (`--cluster nats://… --node NAME`) on this machine: real relay
//! processes sharing one SQLite file and the NATS server on 127.0.0.1:4222, under a cluster
//! name of their own so parallel tests never hear each other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

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
            relays.push(start_node(&database, &name, NATS, node, extra).await?);
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
        start_node(&self.database, &self.name, NATS, node, extra).await
    }

    /// Starts one more relay of this cluster reaching NATS at `nats` (a [`Link`]'s URL).
    pub async fn join_via(&self, nats: &str, node: &str, extra: &[&str]) -> Result<Relay> {
        start_node(&self.database, &self.name, nats, node, extra).await
    }
}

impl Drop for Cluster {
    /// Stops the relays still held here and removes the cluster's JetStream stream
    /// (`RESTSIP_{name}`: a test's cluster name needs no escaping), so test runs leave no
    /// streams on the NATS server. Relays moved out of `relays` stop right after.
    fn drop(&mut self) {
        self.relays.clear();
        let stream = format!("RESTSIP_{}", self.name);
        let removed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = async_nats::connect(NATS).await?;
                async_nats::jetstream::new(client)
                    .delete_stream(&stream)
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(e)) = removed {
            eprintln!("the cluster's stream was not removed: {e:#}");
        }
    }
}

async fn start_node(
    database: &str,
    name: &str,
    nats: &str,
    node: &str,
    extra: &[&str],
) -> Result<Relay> {
    let mut args = vec![
        "--database",
        database,
        "--cluster",
        nats,
        "--node",
        node,
        "--cluster-name",
        name,
    ];
    args.extend_from_slice(extra);
    Relay::start(&args).await
}

/// A link to the NATS server that a test can cut: a TCP proxy on 127.0.0.1 forwarding each
/// connection to 127.0.0.1:4222. [`Link::cut`] drops its connections and closes every new one
/// at once (as a network failure or a NATS restart does) until [`Link::restore`].
pub struct Link {
    /// `nats://127.0.0.1:PORT`, for `--cluster`.
    pub url: String,
    /// Whether it is cut.
    cut: Arc<AtomicBool>,
    /// The connections forwarded now.
    open: Arc<Mutex<Vec<AbortHandle>>>,
    /// The accepting task.
    accepting: AbortHandle,
}

impl Link {
    /// Listens on a free port of 127.0.0.1.
    pub async fn open() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("nats://{}", listener.local_addr()?);
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::<AbortHandle>::new()));
        let (is_cut, conns) = (cut.clone(), open.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut inside, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let task = tokio::spawn(async move {
                    let target = NATS.trim_start_matches("nats://");
                    if let Ok(mut outside) = TcpStream::connect(target).await {
                        let _ = copy_bidirectional(&mut inside, &mut outside).await;
                    }
                });
                let mut conns = conns.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(task.abort_handle());
            }
        })
        .abort_handle();
        Ok(Self {
            url,
            cut,
            open,
            accepting,
        })
    }

    /// Drops every connection and closes new ones at once.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

/// A number that differs between calls of one process (clusters of one test name).
fn unique() -> u32 {
    use std::sync::atomic::AtomicU32;
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
