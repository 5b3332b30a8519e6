//! Operations settings: where `/metrics` is served and how log lines are written.

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
}

/// Checks and fills the operations settings (`--metrics`, `--log-format`).
pub(super) fn resolve_operations(
    metrics: Option<SocketAddr>,
    log_format: Option<String>,
) -> anyhow::Result<OperationsConfig> {
    let log_format = match log_format.as_deref().map(str::trim) {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => anyhow::bail!("log-format: {other:?} is neither text nor json"),
    };
    Ok(OperationsConfig {
        metrics,
        log_format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_is_text_or_json() {
        let json = resolve_operations(None, Some("json".into())).expect("json");
        assert_eq!(json.log_format, LogFormat::Json);
        let text = resolve_operations(None, None).expect("default");
        assert_eq!(text.log_format, LogFormat::Text);
        let err = resolve_operations(None, Some("xml".into())).expect_err("xml");
        assert!(err.to_string().contains("neither text nor json"), "{err}");
    }
}
