//! The guard for outgoing HTTP to users' targets: URLs checked when they are given, and a
//! resolver for reqwest that checks every address when connecting (names are resolved again
//! for each connection, so a name that changes its answer after the check is caught then).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use super::{Egress, Refused};

/// Checks a user's target URL before it is accepted: no credentials in it, and its host (an
/// address, or a name resolved now) is allowed. A name that does not resolve yet is accepted:
/// it is checked again on every connection.
pub async fn check_url(egress: &Egress, url: &Url) -> Result<(), Refused> {
    check_literal(egress, url)?;
    let host = url.host_str().unwrap_or_default();
    match egress
        .resolve(host, url.port_or_known_default().unwrap_or(0))
        .await
    {
        Ok(_) | Err(Refused::Unresolvable) => Ok(()),
        Err(refused) => Err(refused),
    }
}

/// What can be checked of a URL without resolving: no credentials, and a literal address
/// (which reqwest connects to without asking the resolver) allowed.
pub fn check_literal(egress: &Egress, url: &Url) -> Result<(), Refused> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    let port = url.port_or_known_default().unwrap_or(0);
    // The URL parser has already read numeric spellings of IPv4 (`127.1`, `0x7f.1`) as
    // dotted quads, and IPv6 hosts are bracketed.
    let host = url.host_str().ok_or(Refused::Unresolvable)?;
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => egress.check(SocketAddr::new(ip, port)).map(drop),
        Err(_) => Ok(()),
    }
}

/// A reqwest client builder for users' targets: every name resolved through the guard, no
/// proxy from the environment (a proxy would resolve and connect for us, unchecked), no
/// redirects (a 3xx could point anywhere).
pub fn client_builder(egress: Egress) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(Guarded(egress)))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// Resolves names with the system resolver and refuses forbidden answers.
struct Guarded(Egress);

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = self.0;
        Box::pin(async move {
            // The port is filled in by reqwest from the URL.
            let addrs = egress.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Whether a reqwest error comes from the guard refusing the target.
pub fn is_refusal(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.downcast_ref::<Refused>() == Some(&Refused::Forbidden) {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("a URL")
    }

    #[tokio::test]
    async fn urls_are_checked_for_credentials_and_addresses() {
        let strict = Egress::new(false);
        let open = Egress::new(true);
        for bad in [
            "http://127.0.0.1/h",
            "http://127.1/h",
            "http://2130706433/h",
            "http://0x7f.1/h",
            "http://0.0.0.0:8080/h",
            "http://[::1]/h",
            "http://[::ffff:127.0.0.1]/h",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/h",
            "http://192.168.0.1/h",
            "http://localhost/h",
        ] {
            assert_eq!(
                check_url(&strict, &url(bad)).await,
                Err(Refused::Forbidden),
                "{bad}"
            );
            assert_eq!(check_url(&open, &url(bad)).await, Ok(()), "{bad}");
        }
        for creds in ["http://u:p@app.example/h", "http://u@8.8.8.8/h"] {
            assert_eq!(
                check_url(&open, &url(creds)).await,
                Err(Refused::Credentials)
            );
        }
        assert_eq!(check_url(&strict, &url("http://8.8.8.8/h")).await, Ok(()));
    }
}
