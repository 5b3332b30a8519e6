//! Flood settings: the per-source SIP request rate limit, and the checks of the queue and
//! mailbox caps (which live in [`Limits`]).

use std::num::NonZeroU32;

use restsip_sip::pike::{parse_net, RateConfig};

use super::Limits;

/// The rate limit as given.
#[derive(Debug, Default)]
pub(super) struct RateSettings {
    /// `--sip-rate-limit`: `N/s`, `N` or `off`.
    pub limit: Option<String>,
    /// `--sip-rate-burst`.
    pub burst: Option<u32>,
    /// `--sip-rate-exempt` values.
    pub exempt: Vec<String>,
}

/// The rate limit in force: None when off.
pub(super) fn resolve_rate(s: RateSettings) -> anyhow::Result<Option<RateConfig>> {
    let d = RateConfig::default();
    let per_second = match s.limit.as_deref().map(str::trim) {
        None => d.per_second,
        Some("off") => return Ok(None),
        Some(text) => {
            let n = text.strip_suffix("/s").unwrap_or(text).trim();
            n.parse::<u32>()
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "sip-rate-limit: {text:?} is neither N/s (requests per second per \
                         source, at least 1) nor off"
                    )
                })?
        }
    };
    let burst = match s.burst {
        None => d.burst,
        Some(n) => NonZeroU32::new(n)
            .ok_or_else(|| anyhow::anyhow!("sip-rate-burst must be at least 1"))?,
    };
    let exempt = s
        .exempt
        .iter()
        .map(|e| parse_net(e).map_err(|why| anyhow::anyhow!("sip-rate-exempt: {why}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(RateConfig {
        per_second,
        burst,
        exempt,
    }))
}

/// Checks the queue and mailbox caps.
pub(super) fn check_caps(limits: &Limits) -> anyhow::Result<()> {
    anyhow::ensure!(
        limits.max_queued_per_sender >= 1,
        "max-queued-per-sender must be at least 1"
    );
    anyhow::ensure!(
        limits.max_mailbox_messages >= 1 && limits.max_mailbox_per_sender >= 1,
        "max-mailbox-messages and max-mailbox-per-sender must be at least 1"
    );
    anyhow::ensure!(
        limits.max_mailbox_bytes >= 1024,
        "max-mailbox-bytes must be at least 1024"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(
        limit: Option<&str>,
        burst: Option<u32>,
        exempt: &[&str],
    ) -> anyhow::Result<Option<RateConfig>> {
        resolve_rate(RateSettings {
            limit: limit.map(str::to_owned),
            burst,
            exempt: exempt.iter().map(|e| (*e).to_owned()).collect(),
        })
    }

    #[test]
    fn the_rate_limit_is_on_by_default_and_reads_n_per_second_or_off() {
        let d = rate(None, None, &[]).expect("default").expect("on");
        assert_eq!((d.per_second.get(), d.burst.get()), (100, 500));
        let r = rate(Some("20/s"), Some(40), &["192.0.2.0/24", "::1"])
            .expect("valid")
            .expect("on");
        assert_eq!((r.per_second.get(), r.burst.get()), (20, 40));
        assert_eq!(r.exempt.len(), 2);
        assert_eq!(
            rate(Some("7"), None, &[])
                .expect("n")
                .expect("on")
                .per_second
                .get(),
            7
        );
        assert!(rate(Some("off"), Some(3), &[]).expect("off").is_none());
        for bad in ["0/s", "fast", "-1/s", "10/m"] {
            assert!(rate(Some(bad), None, &[]).is_err(), "{bad}");
        }
        assert!(rate(None, Some(0), &[]).is_err());
        assert!(rate(None, None, &["example.net"]).is_err());
    }
}
