//! Operations settings: where `/metrics` is served, how log lines are written and whether the
//! worker threads are pinned to CPUs.

use std::net::SocketAddr;

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Operations settings in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationsConfig {
    /// `/metrics` on its own listener at this address; without it, `/metrics` is served on
    /// the HTTP listener to loopback peers only.
    pub metrics: Option<SocketAddr>,
    /// The log format.
    pub log_format: LogFormat,
    /// Each tokio worker thread kept on a CPU of its own.
    pub pin_workers: bool,
}

/// Checks and fills the operations settings (`--metrics`, `--log-format`, `--pin-workers`).
pub(super) fn resolve_operations(
    metrics: Option<SocketAddr>,
    log_format: Option<String>,
    pin_workers: Option<bool>,
) -> anyhow::Result<OperationsConfig> {
    let log_format = match log_format.as_deref().map(str::trim) {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => anyhow::bail!("log-format: {other:?} is neither text nor json"),
    };
    Ok(OperationsConfig {
        metrics,
        log_format,
        pin_workers: pin_workers.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_is_text_or_json() {
        let json = resolve_operations(None, Some("json".into()), None).expect("json");
        assert_eq!(json.log_format, LogFormat::Json);
        let text = resolve_operations(None, None, None).expect("default");
        assert_eq!(text.log_format, LogFormat::Text);
        let err = resolve_operations(None, Some("xml".into()), None).expect_err("xml");
        assert!(err.to_string().contains("neither text nor json"), "{err}");
    }
}
