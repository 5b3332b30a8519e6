//! Guards at the relay's edges: where users' targets may be (`--allow-private-targets`) and
//! which page origins may use the API from a browser (`--allowed-origin`).

use crate::api::origins::Origins;
use crate::egress::Egress;

/// Edge guards in force.
#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    /// Where webhook and `POST /service` targets may be.
    pub egress: Egress,
    /// The page origins allowed.
    pub origins: Origins,
}

/// Checks and fills the edge guards: `allow_private` from `--allow-private-targets`,
/// `origins` from `--allowed-origin`.
pub(super) fn resolve_guards(
    allow_private: Option<bool>,
    origins: &[String],
) -> anyhow::Result<GuardConfig> {
    Ok(GuardConfig {
        egress: Egress::new(allow_private.unwrap_or(false)),
        origins: Origins::parse(origins).map_err(anyhow::Error::msg)?,
    })
}
