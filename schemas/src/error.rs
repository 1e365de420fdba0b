//! Why a record is not a span.
//!
//! Bad input is the sender's fault: the pipeline dead-letters the record with
//! [`DecodeError::reason`] as a header and counts it, it never panics or drops silently. No
//! message ever contains an attribute value of unknown size (prompt or answer text, ids, model
//! names): messages name the field and, where useful, the offending number.

use std::fmt;

/// Which side of the accepted time window a span fell on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Horizon {
    /// Older than `now − horizon_past_ms`.
    Past,
    /// Later than `now + horizon_future_ms`.
    Future,
}

impl fmt::Display for Horizon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Horizon::Past => "past",
            Horizon::Future => "future",
        })
    }
}

/// A record that could not be decoded into a [`crate::Span`].
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// Not JSON, or JSON whose top level is not an object. `message` is serde_json's syntax
    /// message with its line and column, or a fixed description of the shape found.
    #[error("invalid JSON: {message}")]
    InvalidJson {
        /// What is wrong, and where.
        message: String,
    },
    /// A required field is absent (or `null`).
    #[error("missing required field `{field}`")]
    MissingField {
        /// The field, by its snake_case name.
        field: &'static str,
    },
    /// A field or recognised attribute has a JSON type that cannot be read as its value.
    #[error("`{field}` has the wrong type: expected {expected}")]
    BadType {
        /// The field or attribute key.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A field or recognised attribute has the right type but an impossible value.
    #[error("`{field}` has an invalid value: expected {expected}")]
    BadValue {
        /// The field or attribute key.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// `end_time_unix_nano < start_time_unix_nano`.
    #[error("end_time_unix_nano {end} is before start_time_unix_nano {start}")]
    EndBeforeStart {
        /// Start, ns since the Unix epoch.
        start: u64,
        /// End, ns since the Unix epoch.
        end: u64,
    },
    /// A token count below zero.
    #[error("token count `{field}` is negative ({value})")]
    NegativeTokens {
        /// The attribute key.
        field: &'static str,
        /// The count (saturated to `i64::MIN` if even lower).
        value: i64,
    },
    /// A token count above [`crate::DecodeLimits::max_tokens`].
    #[error("token count `{field}` = {value} is above the limit of {max}")]
    AbsurdTokens {
        /// The attribute key.
        field: &'static str,
        /// The count (saturated to `u64::MAX` if even higher).
        value: u64,
        /// The configured limit.
        max: u64,
    },
    /// A duration (the span's, or its time to first token) above
    /// [`crate::DecodeLimits::max_duration_ms`]: a broken clock or a hostile record, whose
    /// microseconds would otherwise overflow the window's sums.
    #[error("`{field}` of {value_ms} ms is above the limit of {max_ms} ms")]
    AbsurdDuration {
        /// `end_time_unix_nano` (the span's duration) or the TTFT attribute.
        field: &'static str,
        /// The duration, ms.
        value_ms: u64,
        /// The configured limit, ms.
        max_ms: u64,
    },
    /// The span starts outside the accepted window around the decoder's clock.
    #[error(
        "span start {start_ms} ms is beyond the {direction} horizon (now {now_ms} ms, limit {limit_ms} ms)"
    )]
    BeyondHorizon {
        /// The span start, ms since the Unix epoch.
        start_ms: u64,
        /// The decoder's clock, ms since the Unix epoch.
        now_ms: u64,
        /// The configured horizon on that side, ms.
        limit_ms: u64,
        /// Which side.
        direction: Horizon,
    },
    /// A trace or span id that is not 2–64 hex digits in pairs.
    #[error("`{field}` is not a hex id: {problem}")]
    BadId {
        /// `trace_id`, `span_id` or `parent_span_id`.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// An empty trace or span id.
    #[error("`{field}` is empty")]
    EmptyId {
        /// `trace_id` or `span_id`.
        field: &'static str,
    },
    /// An OTLP record (`otlp_proto` or `otlp_json`) that is not a trace batch at all, or one
    /// with more spans than a record may carry; the record is refused whole.
    #[error("invalid OTLP: {message}")]
    InvalidOtlp {
        /// What is wrong, and where (never a value of the record).
        message: String,
    },
    /// An `avro_registry` record whose framing or Avro body is broken, or whose body does not
    /// fit its registered schema.
    #[error("invalid Avro: {message}")]
    InvalidAvro {
        /// What is wrong, and where (never a value of the record).
        message: String,
    },
    /// An `avro_registry` record naming a schema id that the registry does not have.
    #[error("schema id {id} is not in the registry")]
    UnknownSchema {
        /// The schema id of the record's framing.
        id: u32,
    },
    /// A record over [`crate::DecodeLimits::max_record_bytes`], refused before parsing.
    #[error("the record is {bytes} bytes, above the limit of {max}")]
    TooLarge {
        /// The record's size.
        bytes: usize,
        /// The configured limit.
        max: usize,
    },
    /// A span with more attributes than [`crate::DecodeLimits::max_attributes`].
    #[error("the span has {count} attributes, above the limit of {max}")]
    TooManyAttributes {
        /// Attributes of the span.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// A name or dimension value longer than [`crate::DecodeLimits::max_value_bytes`].
    #[error("`{field}` is {bytes} bytes long, above the limit of {max}")]
    ValueTooLong {
        /// The span field (`name`, `tenant`, `request_model`, …).
        field: &'static str,
        /// Its length, bytes.
        bytes: usize,
        /// The configured limit.
        max: usize,
    },
    /// With `decode.format = "auto"`: a record that no enabled format claims.
    #[error("unknown format: {message}")]
    UnknownFormat {
        /// What the record looks like (its length and first byte, never its content).
        message: String,
    },
}

impl DecodeError {
    /// Every value [`DecodeError::reason`] can return, e.g. to register counters up front.
    pub const REASONS: [&'static str; 19] = [
        "invalid_json",
        "missing_field",
        "bad_type",
        "bad_value",
        "end_before_start",
        "negative_tokens",
        "absurd_tokens",
        "absurd_duration",
        "beyond_horizon",
        "future",
        "bad_id",
        "empty_id",
        "invalid_otlp",
        "invalid_avro",
        "unknown_schema",
        "unknown_format",
        "too_large",
        "too_many_attributes",
        "value_too_long",
    ];

    /// A short, stable machine code for the dead-letter header and the counter label.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::InvalidJson { .. } => "invalid_json",
            DecodeError::MissingField { .. } => "missing_field",
            DecodeError::BadType { .. } => "bad_type",
            DecodeError::BadValue { .. } => "bad_value",
            DecodeError::EndBeforeStart { .. } => "end_before_start",
            DecodeError::NegativeTokens { .. } => "negative_tokens",
            DecodeError::AbsurdTokens { .. } => "absurd_tokens",
            DecodeError::AbsurdDuration { .. } => "absurd_duration",
            DecodeError::BeyondHorizon {
                direction: Horizon::Future,
                ..
            } => "future",
            DecodeError::BeyondHorizon { .. } => "beyond_horizon",
            DecodeError::BadId { .. } => "bad_id",
            DecodeError::EmptyId { .. } => "empty_id",
            DecodeError::InvalidOtlp { .. } => "invalid_otlp",
            DecodeError::InvalidAvro { .. } => "invalid_avro",
            DecodeError::UnknownSchema { .. } => "unknown_schema",
            DecodeError::UnknownFormat { .. } => "unknown_format",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::TooManyAttributes { .. } => "too_many_attributes",
            DecodeError::ValueTooLong { .. } => "value_too_long",
        }
    }

    /// The field or attribute key at fault, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DecodeError::MissingField { field }
            | DecodeError::BadType { field, .. }
            | DecodeError::BadValue { field, .. }
            | DecodeError::NegativeTokens { field, .. }
            | DecodeError::AbsurdTokens { field, .. }
            | DecodeError::AbsurdDuration { field, .. }
            | DecodeError::BadId { field, .. }
            | DecodeError::ValueTooLong { field, .. }
            | DecodeError::EmptyId { field } => Some(field),
            DecodeError::EndBeforeStart { .. } => Some("end_time_unix_nano"),
            DecodeError::BeyondHorizon { .. } => Some("start_time_unix_nano"),
            DecodeError::InvalidJson { .. }
            | DecodeError::InvalidOtlp { .. }
            | DecodeError::InvalidAvro { .. }
            | DecodeError::UnknownSchema { .. }
            | DecodeError::UnknownFormat { .. }
            | DecodeError::TooLarge { .. }
            | DecodeError::TooManyAttributes { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field_and_number() {
        let e = DecodeError::AbsurdTokens {
            field: "gen_ai.usage.input_tokens",
            value: 20_000_000,
            max: 10_000_000,
        };
        assert_eq!(
            e.to_string(),
            "token count `gen_ai.usage.input_tokens` = 20000000 is above the limit of 10000000"
        );
        assert_eq!(e.reason(), "absurd_tokens");
        assert_eq!(e.field(), Some("gen_ai.usage.input_tokens"));
        let e = DecodeError::BeyondHorizon {
            start_ms: 1,
            now_ms: 700_000_000,
            limit_ms: 604_800_000,
            direction: Horizon::Past,
        };
        assert_eq!(
            e.to_string(),
            "span start 1 ms is beyond the past horizon (now 700000000 ms, limit 604800000 ms)"
        );
    }
}
