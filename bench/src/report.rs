//! The figures as a table, and the relay-to-reference ratios.

use std::time::Duration;

use crate::load::Measured;

/// One line of the table.
pub(crate) struct Row {
    /// What was measured, e.g. `GET /login/{email}`.
    pub(crate) scenario: &'static str,
    /// `relay` or `axum`.
    pub(crate) server: &'static str,
    /// The figures.
    pub(crate) measured: Measured,
}

/// The percentiles shown, with their column titles.
const PERCENTILES: [(f64, &str); 3] = [(0.50, "p50 ms"), (0.90, "p90 ms"), (0.99, "p99 ms")];

/// Prints the table of `rows`, then the failure reasons if any.
pub(crate) fn print_table(rows: &[Row]) {
    let mut header = format!(
        "{:<24} | {:<6} | {:>9} | {:>6} | {:>9}",
        "scenario", "server", "requests", "failed", "req/s"
    );
    for (_, title) in PERCENTILES {
        header.push_str(&format!(" | {title:>8}"));
    }
    header.push_str(&format!(" | {:>8}", "max ms"));
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    for row in rows {
        let m = &row.measured;
        let mut line = format!(
            "{:<24} | {:<6} | {:>9} | {:>6} | {:>9.0}",
            row.scenario,
            row.server,
            m.latencies.len(),
            m.failures,
            m.per_second()
        );
        for (p, _) in PERCENTILES {
            line.push_str(&format!(" | {:>8}", ms(m.percentile(p))));
        }
        line.push_str(&format!(" | {:>8}", ms(m.latencies.last().copied())));
        println!("{line}");
    }
    for row in rows {
        if let Some(why) = &row.measured.first_failure {
            println!(
                "  {} on {}: {} failed; the first: {why}",
                row.scenario, row.server, row.measured.failures
            );
        }
    }
}

/// Prints how the relay compares with bare axum, scenario by scenario.
pub(crate) fn print_ratios(pairs: &[(&Row, &Row)]) {
    println!();
    println!("relay / bare axum (throughput: below 1 is slower; latency: above 1 is slower):");
    for (relay, reference) in pairs {
        let (r, a) = (&relay.measured, &reference.measured);
        let mut line = format!(
            "  {:<24} throughput {}",
            relay.scenario,
            ratio(r.per_second(), a.per_second())
        );
        for (p, title) in PERCENTILES {
            let name = title.trim_end_matches(" ms");
            let value = ratio_of(r.percentile(p), a.percentile(p));
            line.push_str(&format!(", {name} {value}"));
        }
        println!("{line}");
    }
}

/// Prints, scenario by scenario, the median over `rounds` of the relay's throughput divided by
/// the reference's in the same round, with the lowest and highest.
pub(crate) fn print_medians(rounds: &[Vec<(&Row, &Row)>]) {
    println!();
    println!(
        "relay / bare axum throughput over {} rounds (median, lowest to highest):",
        rounds.len()
    );
    let Some(first) = rounds.first() else {
        return;
    };
    for (k, (relay, _)) in first.iter().enumerate() {
        let ratios: Vec<f64> = rounds
            .iter()
            .filter_map(|round| round.get(k))
            .filter(|(_, a)| a.measured.per_second() > 0.0)
            .map(|(r, a)| r.measured.per_second() / a.measured.per_second())
            .collect();
        match median(ratios.clone()) {
            Some(m) => {
                let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                let high = ratios.iter().copied().fold(0.0, f64::max);
                println!(
                    "  {:<24} throughput {m:.2}x ({low:.2}x to {high:.2}x)",
                    relay.scenario
                );
            }
            None => println!("  {:<24} throughput -", relay.scenario),
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count); None when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// A latency in milliseconds, or `-` without one.
fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.3}", d.as_secs_f64() * 1000.0),
        None => "-".to_owned(),
    }
}

/// `a / b` as `0.42x`, or `-` when `b` is zero.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".to_owned()
    }
}

fn ratio_of(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => ratio(a.as_secs_f64(), b.as_secs_f64()),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![0.7]), Some(0.7));
        assert_eq!(median(vec![0.9, 0.3, 0.5]), Some(0.5));
        assert_eq!(median(vec![0.6, 0.2, 0.4, 0.8]), Some(0.5));
    }
}
