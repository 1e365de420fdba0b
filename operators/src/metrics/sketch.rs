//! DDSketch quantiles over retractable bucket counts.
//!
//! A value `v > 0` (microseconds) falls in bucket `k = floor(log_γ v)`, the interval
//! `[γ^k, γ^(k+1))` with `γ = (1 + α) / (1 − α)` (Masson, Rim, Lee, VLDB 2019). The bucket is
//! represented by `2γ^(k+1) / (γ + 1)`, within relative error α of every value in it, so any
//! quantile read off the bucket counts is within relative error α of the exact quantile of the
//! same rank. Values below [`MIN_US`] (including zero) share the bucket [`ZERO_BUCKET`],
//! represented by 0.
//!
//! Bucket counts are additive, so they live in a differential collection with retractions; the
//! [`summarize`] walk runs inside a `reduce` on the sorted `(bucket, count)` pairs of one key.
//! With α = 1% the range 1 µs … 10⁶ s spans ≈ 1,400 buckets, so no bucket collapsing is needed.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::Config;
use std::sync::OnceLock;

/// The relative error bound of every quantile glassbox reports.
pub const ALPHA: f64 = 0.01;
/// Values below this (µs) are counted in [`ZERO_BUCKET`].
pub const MIN_US: u64 = 1;
/// The bucket of values below [`MIN_US`]; sorts before every other bucket.
pub const ZERO_BUCKET: i32 = i32::MIN;
/// The quantiles every summary reports.
pub const QUANTILES: [f64; 4] = [0.50, 0.90, 0.95, 0.99];

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    // max_num_bins and min_value do not matter: we only use the key/value mapping.
    CONFIG.get_or_init(|| Config::new(ALPHA, 4096, 1e-9))
}

/// Which duration a bucket count belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// End-to-end latency.
    Latency,
    /// Time to first token.
    Ttft,
    /// Time per output token.
    Tpot,
}

impl Metric {
    /// All metrics, in output order.
    pub const ALL: [Metric; 3] = [Metric::Latency, Metric::Ttft, Metric::Tpot];

    /// The metric's name in output records (`latency_ms`, `ttft_ms`, `tpot_ms`).
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Latency => "latency_ms",
            Metric::Ttft => "ttft_ms",
            Metric::Tpot => "tpot_ms",
        }
    }
}

/// The bucket of a value in microseconds.
pub fn bucket_of(value_us: u64) -> i32 {
    if value_us < MIN_US {
        ZERO_BUCKET
    } else {
        config().key(value_us as f64)
    }
}

/// The representative value of a bucket, in microseconds (rounded to the nearest µs).
pub fn bucket_value_us(bucket: i32) -> u64 {
    if bucket == ZERO_BUCKET {
        0
    } else {
        config().value(bucket).round() as u64
    }
}

/// A distribution read off a sketch: count, extremes and quantiles, all in microseconds.
///
/// `min_us`, `max_us` and the quantiles carry the sketch's relative error [`ALPHA`]; the exact
/// mean comes from [`crate::Figures`] sums instead.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Summary {
    /// How many values.
    pub count: i64,
    /// Smallest value (bucket representative).
    pub min_us: u64,
    /// Largest value (bucket representative).
    pub max_us: u64,
    /// p50, p90, p95, p99, in the order of [`QUANTILES`].
    pub quantiles_us: [u64; 4],
}

/// The rank (0-based, among `count` sorted values) that quantile `q` reports: `floor(q·(count−1))`.
pub fn rank(q: f64, count: i64) -> i64 {
    ((count - 1) as f64 * q).floor() as i64
}

/// Summarizes `(bucket, count)` pairs sorted by bucket. Returns `None` for an empty sketch.
///
/// Panics if a count is negative: a sketch with negative counts means a retraction without its
/// insertion, a broken invariant of the window operators.
pub fn summarize(buckets: impl Iterator<Item = (i32, i64)> + Clone) -> Option<Summary> {
    let mut count = 0;
    let (mut first, mut last) = (None, None);
    for (b, c) in buckets.clone() {
        assert!(
            c >= 0,
            "sketch bucket {b} has negative count {c}: retraction without insertion"
        );
        if c > 0 {
            count += c;
            first.get_or_insert(b);
            last = Some(b);
        }
    }
    let (first, last) = (first?, last?);
    let ranks = QUANTILES.map(|q| rank(q, count));
    let mut quantiles_us = [0; 4];
    let mut seen = 0;
    let mut next = 0;
    for (b, c) in buckets {
        seen += c;
        while next < ranks.len() && seen > ranks[next] {
            quantiles_us[next] = bucket_value_us(b);
            next += 1;
        }
        if next == ranks.len() {
            break;
        }
    }
    Some(Summary {
        count,
        min_us: bucket_value_us(first),
        max_us: bucket_value_us(last),
        quantiles_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sketch_of(values: &[u64]) -> Vec<(i32, i64)> {
        let mut map = std::collections::BTreeMap::new();
        for v in values {
            *map.entry(bucket_of(*v)).or_insert(0i64) += 1;
        }
        map.into_iter().collect()
    }

    fn within(est: u64, exact: u64) -> bool {
        // ALPHA relative error, plus half a microsecond of rounding.
        (est as f64 - exact as f64).abs() <= ALPHA * exact as f64 + 0.5 + 1e-9
    }

    #[test]
    fn empty_sketch_has_no_summary() {
        assert_eq!(summarize(std::iter::empty()), None);
        assert_eq!(summarize([(3, 0)].into_iter()), None);
    }

    #[test]
    fn single_value() {
        let s = summarize(sketch_of(&[1234]).into_iter()).unwrap();
        assert_eq!(s.count, 1);
        assert!(within(s.min_us, 1234) && within(s.max_us, 1234));
        assert!(s.quantiles_us.iter().all(|q| within(*q, 1234)));
    }

    #[test]
    fn zero_values_sort_first_and_read_as_zero() {
        let s = summarize(sketch_of(&[0, 0, 0, 500]).into_iter()).unwrap();
        assert_eq!(s.min_us, 0);
        assert_eq!(s.quantiles_us[0], 0); // rank floor(0.5*3) = 1 → zero bucket
        assert_eq!(s.quantiles_us, [0; 4]);
        assert!(within(s.max_us, 500));
    }

    proptest! {
        /// Oracle: every quantile is within ALPHA of the exact value of the same rank.
        #[test]
        fn quantiles_within_alpha_of_exact(mut values in prop::collection::vec(0u64..5_000_000_000, 1..400)) {
            let s = summarize(sketch_of(&values).into_iter()).unwrap();
            values.sort_unstable();
            prop_assert_eq!(s.count, values.len() as i64);
            prop_assert!(within(s.min_us, values[0]));
            prop_assert!(within(s.max_us, *values.last().unwrap()));
            for (i, q) in QUANTILES.iter().enumerate() {
                let exact = values[rank(*q, values.len() as i64) as usize];
                prop_assert!(within(s.quantiles_us[i], exact), "q{} est {} exact {}", q, s.quantiles_us[i], exact);
            }
        }
    }
}
