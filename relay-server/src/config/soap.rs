//! SOAP settings: the services SERVICE requests reach.

/// SOAP settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapConfig {
    /// SOAP-over-HTTP endpoints, by the namespace they serve.
    pub endpoints: Vec<crate::soap::Endpoint>,
    /// Time an endpoint has to answer (s).
    pub timeout: u64,
}

pub(super) fn resolve_soap(
    services: Vec<String>,
    timeout: Option<u64>,
) -> anyhow::Result<SoapConfig> {
    let mut endpoints: Vec<crate::soap::Endpoint> = Vec::new();
    for entry in services {
        // The URL starts at the first `=http://` or `=https://`: a namespace may hold `=`.
        let split = ["=http://", "=https://"]
            .iter()
            .filter_map(|s| entry.find(s))
            .min()
            .ok_or_else(|| {
                anyhow::anyhow!("soap-service: {entry:?} is not NAMESPACE=http(s)://URL")
            })?;
        let (namespace, url) = (entry[..split].trim(), entry[split + 1..].trim());
        anyhow::ensure!(
            !namespace.is_empty(),
            "soap-service: {entry:?} has an empty namespace"
        );
        reqwest::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("soap-service: {url:?} is not a URL: {e}"))?;
        anyhow::ensure!(
            endpoints.iter().all(|e| e.namespace != namespace),
            "soap-service: namespace {namespace:?} is given twice"
        );
        endpoints.push(crate::soap::Endpoint {
            namespace: namespace.to_owned(),
            url: url.to_owned(),
        });
    }
    let timeout = timeout.unwrap_or(10);
    anyhow::ensure!(
        (1..=300).contains(&timeout),
        "soap-timeout must be from 1 to 300 seconds"
    );
    Ok(SoapConfig { endpoints, timeout })
}
