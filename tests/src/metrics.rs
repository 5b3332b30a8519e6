//! Reading the relay's `/metrics` as Prometheus does: the text format parsed into samples
//! (name, labels, value), looked up by name and some of their labels.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// One scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// Every sample: name, labels, value.
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
    /// The text as served.
    pub text: String,
}

impl Scrape {
    /// GETs `url` (a `/metrics` URL); it must answer 200 in the text format.
    pub async fn get(url: &str) -> Result<Self> {
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await?;
        if status != 200 || !kind.starts_with("text/plain") {
            bail!("GET {url}: {status} {kind}: {text}");
        }
        Self::parse(&text)
    }

    /// Scrapes `url` until `done` holds for the scrape (the relay counts some things just
    /// after it answers: a stream's claim of a SEND, a WebSocket's upgrade) or `crate::WAIT`
    /// passes; the last scrape.
    pub async fn until(url: &str, done: impl Fn(&Scrape) -> bool) -> Result<Self> {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            let scrape = Self::get(url).await;
            let late = tokio::time::Instant::now() > deadline;
            match scrape {
                Ok(scrape) if late || done(&scrape) => return Ok(scrape),
                Err(e) if late => return Err(e),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Parses the Prometheus text format (comments skipped).
    pub fn parse(text: &str) -> Result<Self> {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .ok_or_else(|| anyhow!("no value in {line:?}"))?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("value of {line:?}"))?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix('}')
                        .ok_or_else(|| anyhow!("unclosed labels in {line:?}"))?;
                    (name, parse_labels(inner)?)
                }
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_owned(), labels, value));
        }
        Ok(Self {
            samples,
            text: text.to_owned(),
        })
    }

    /// The sum of the samples named `name` whose labels include `labels` (0 if none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|(_, _, v)| *v).sum()
    }

    /// Whether any sample named `name` has all of `labels`.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a (String, BTreeMap<String, String>, f64)> + 'a {
        self.samples.iter().filter(move |(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// `a="x",b="y"` (values with `\"` and `\\` escapes).
fn parse_labels(inner: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .ok_or_else(|| anyhow!("bad labels {inner:?}"))?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(if e == 'n' { '\n' } else { e });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| anyhow!("unclosed value in {inner:?}"))?;
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_parses_into_samples() {
        let scrape = Scrape::parse(
            "# TYPE a counter\na_total{method=\"GET\",route=\"/login/{email}\"} 3\n\
             b 1.5\nc{x=\"q\\\"uote\"} 2\n",
        )
        .unwrap();
        assert_eq!(scrape.sum("a_total", &[("route", "/login/{email}")]), 3.0);
        assert_eq!(scrape.sum("b", &[]), 1.5);
        assert!(scrape.has("c", &[("x", "q\"uote")]));
        assert!(!scrape.has("a_total", &[("method", "POST")]));
    }
}
