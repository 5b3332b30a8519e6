//! Cluster settings: the NATS server relays share events through (`--cluster`), this relay's
//! name in it (`--node`) and the cluster's name (`--cluster-name`), which prefixes every subject
//! so that several clusters (or parallel tests) can share one NATS server.

/// Cluster settings in force; without `--cluster` the relay runs alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `nats://HOST:PORT` of the NATS server.
    pub url: String,
    /// This relay's name, unique in the cluster.
    pub node: String,
    /// The cluster's name: subjects are `restsip.{name}.…`.
    pub name: String,
}

/// Longest node or cluster name.
const MAX_NAME: usize = 64;

pub(super) fn resolve_cluster(
    url: Option<String>,
    node: Option<String>,
    name: Option<String>,
) -> anyhow::Result<Option<ClusterConfig>> {
    let Some(url) = url else {
        anyhow::ensure!(
            node.is_none() && name.is_none(),
            "node and cluster-name need --cluster nats://HOST:PORT"
        );
        return Ok(None);
    };
    let url = url.trim().to_owned();
    anyhow::ensure!(
        ["nats://", "tls://"].iter().any(|s| url.starts_with(s)) && url.len() > 7,
        "cluster: {url:?} is not nats://HOST:PORT"
    );
    let node = node.unwrap_or_else(default_node);
    let name = name.unwrap_or_else(|| "default".to_owned());
    for (what, value) in [("node", &node), ("cluster-name", &name)] {
        anyhow::ensure!(
            !value.is_empty()
                && value.len() <= MAX_NAME
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{what}: {value:?} must be 1 to {MAX_NAME} letters, digits, '-' or '_'"
        );
    }
    Ok(Some(ClusterConfig { url, node, name }))
}

/// The host name and process id: unique on a host, and across hosts with distinct names.
fn default_node() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(40)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "relay".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_without_cluster_and_checked_with_it() {
        assert_eq!(resolve_cluster(None, None, None).ok(), Some(None));
        assert!(resolve_cluster(None, Some("a".into()), None).is_err());
        let c = resolve_cluster(Some("nats://127.0.0.1:4222".into()), Some("a".into()), None)
            .ok()
            .flatten();
        assert_eq!(
            c.map(|c| (c.node, c.name)),
            Some(("a".into(), "default".into()))
        );
        let default = resolve_cluster(Some("nats://h:4222".into()), None, None)
            .ok()
            .flatten()
            .map(|c| c.node);
        assert!(default.is_some_and(|n| n.ends_with(&std::process::id().to_string())));
        for (url, node) in [
            ("http://h", "a"),
            ("nats://", "a"),
            ("nats://h", "a.b"),
            ("nats://h", ""),
            ("nats://h", "*"),
        ] {
            assert!(
                resolve_cluster(Some(url.into()), Some(node.into()), None).is_err(),
                "{url} {node}"
            );
        }
    }
}
