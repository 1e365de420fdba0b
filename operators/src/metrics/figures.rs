//! [`Figures`]: the additive part of a window's metrics.
//!
//! Counts and sums are exact integers (no `f64`). In the dataflow each field travels as its own
//! part ([`crate::metrics::panes::Part::Sum`]) with the value in the update's integer difference, so that
//! inserting a window adds it and retracting it subtracts it exactly, and a retracted window
//! accumulates to zero and compacts away.

use serde::{Deserialize, Serialize};

use crate::metrics::facts::SpanFacts;

/// Exact counts and sums. Durations in microseconds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Figures {
    /// How many records this difference stands for (spans for totals, values for a bucket).
    pub n: i64,
    /// Model calls.
    pub requests: i64,
    /// Calls that ended in error.
    pub errors: i64,
    /// Calls cut off by the output-token limit.
    pub truncations: i64,
    /// Input tokens (including cached).
    pub input_tokens: i64,
    /// Output tokens (including reasoning).
    pub output_tokens: i64,
    /// Cache-read input tokens.
    pub cache_read_tokens: i64,
    /// Cache-write input tokens.
    pub cache_write_tokens: i64,
    /// Reasoning tokens.
    pub reasoning_tokens: i64,
    /// Sum of end-to-end latencies.
    pub latency_sum_us: i64,
    /// Calls that reported a TTFT.
    pub ttft_n: i64,
    /// Sum of TTFTs.
    pub ttft_sum_us: i64,
    /// Calls with a TPOT.
    pub tpot_n: i64,
    /// Sum of TPOTs.
    pub tpot_sum_us: i64,
}

impl Figures {
    /// The totals one span contributes.
    pub fn of(f: &SpanFacts) -> Self {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            n: 1,
            requests: 1,
            errors: i64::from(f.error.is_some()),
            truncations: i64::from(f.truncated),
            input_tokens: i(f.input_tokens),
            output_tokens: i(f.output_tokens),
            cache_read_tokens: i(f.cache_read_tokens),
            cache_write_tokens: i(f.cache_write_tokens),
            reasoning_tokens: i(f.reasoning_tokens),
            latency_sum_us: i(f.latency_us),
            ttft_n: i64::from(f.ttft_us.is_some()),
            ttft_sum_us: i(f.ttft_us.unwrap_or(0)),
            tpot_n: i64::from(f.tpot_us.is_some()),
            tpot_sum_us: i(f.tpot_us.unwrap_or(0)),
        }
    }

    /// Number of fields, in the order of [`Figures::fields`].
    pub const FIELDS: usize = 14;

    fn fields_mut(&mut self) -> [&mut i64; Self::FIELDS] {
        [
            &mut self.n,
            &mut self.requests,
            &mut self.errors,
            &mut self.truncations,
            &mut self.input_tokens,
            &mut self.output_tokens,
            &mut self.cache_read_tokens,
            &mut self.cache_write_tokens,
            &mut self.reasoning_tokens,
            &mut self.latency_sum_us,
            &mut self.ttft_n,
            &mut self.ttft_sum_us,
            &mut self.tpot_n,
            &mut self.tpot_sum_us,
        ]
    }

    /// Every field, in a fixed order.
    pub fn fields(&self) -> [i64; Self::FIELDS] {
        let mut copy = *self;
        copy.fields_mut().map(|f| *f)
    }

    /// Adds `value` to field `index` (in the order of [`Figures::fields`]).
    pub fn add_field(&mut self, index: usize, value: i64) {
        *self.fields_mut()[index] += value;
    }
}

impl std::ops::AddAssign for Figures {
    fn add_assign(&mut self, rhs: Self) {
        for (l, r) in self.fields_mut().into_iter().zip(rhs.fields()) {
            *l += r;
        }
    }
}
