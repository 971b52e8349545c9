//! A latency histogram of fixed buckets that a request updates with plain atomic adds.
//!
//! prometheus-client's own `Histogram` takes a lock per observation; this one is what the
//! request path can afford (three relaxed `fetch_add`s, no lock, no allocation). Buckets are
//! stored per bucket, not cumulated, and the count is their sum, so a scrape never shows a
//! `+Inf` bucket smaller than a finite one even while requests are observed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};

/// Upper bounds of the buckets in nanoseconds: 100 µs to 10 s (a gateway adds tens of
/// microseconds; backends take milliseconds to seconds).
const BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Buckets including `+Inf`: the series of one histogram are these, `_sum` and `_count`.
pub(crate) const BUCKETS: usize = BOUNDS_NS.len() + 1;

/// Observations of durations, in seconds when encoded.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Observations per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; BUCKETS],
    /// Sum of the observations in nanoseconds (wraps after 584 years of latency).
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub(crate) fn observe(&self, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let index = BOUNDS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(BOUNDS_NS.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Writes `_bucket`, `_sum` and `_count` series.
    pub(crate) fn encode(&self, encoder: &mut MetricEncoder<'_>) -> std::fmt::Result {
        let mut buckets = [(0.0, 0); BUCKETS];
        let mut count = 0u64;
        for (i, (slot, bucket)) in buckets.iter_mut().zip(&self.buckets).enumerate() {
            let bound = BOUNDS_NS
                .get(i)
                .map_or(f64::INFINITY, |&ns| ns as f64 / 1e9);
            let n = bucket.load(Ordering::Relaxed);
            count = count.wrapping_add(n);
            *slot = (bound, n);
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100)); // on the first bound: first bucket
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(60)); // above every bound
        assert_eq!(h.buckets[0].load(Ordering::Relaxed), 1);
        assert_eq!(h.buckets[1].load(Ordering::Relaxed), 1);
        assert_eq!(h.buckets[BUCKETS - 1].load(Ordering::Relaxed), 1);
        assert_eq!(h.count(), 3);
        assert_eq!(h.sum_ns.load(Ordering::Relaxed), 60_000_201_000);
    }
}
