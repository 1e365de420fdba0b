//! What a glassbox span is, and how bytes become one.
//!
//! glassbox reads one span per Kafka record. This crate defines the typed [`Span`] the rest of
//! the pipeline works on and the [`JsonDecoder`] that turns a native JSON record into one, or
//! into a [`DecodeError`] whose [`reason`](DecodeError::reason) becomes the dead-letter header.
//!
//! The decoder accepts the attribute names of the OTel GenAI semantic conventions (current and
//! older), OpenInference and OpenLLMetry ([`ATTRIBUTE_ALIASES`]), and both the plain-object and
//! the OTLP JSON list form of `attributes`. Prompt and answer text is never copied
//! ([`CONTENT_ATTRIBUTE_PREFIXES`]) unless the decoder is built to keep it
//! ([`JsonDecoder::with_text`], [`TextOptions`], [`TEXT_SOURCES`]). The full contract — every field, unit, alias and
//! dead-letter reason — is in the crate's `README.md`; `span.schema.json` is its JSON Schema.
//!
//! ```
//! use glassbox_schemas::{JsonDecoder, SpanKind, StatusCode};
//!
//! let record = br#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
//!   "kind":"llm","name":"chat gpt-4o",
//!   "start_time_unix_nano":1764316800000000000,"end_time_unix_nano":1764316801250000000,
//!   "status":{"code":"ok"},
//!   "attributes":{"gen_ai.provider.name":"openai","gen_ai.request.model":"gpt-4o",
//!     "gen_ai.usage.input_tokens":812,"gen_ai.usage.output_tokens":95,
//!     "gen_ai.response.finish_reasons":["stop"],"gen_ai.response.time_to_first_chunk":0.42,
//!     "tenant.id":"acme","app.feature":"support-chat"}}"#;
//! let span = JsonDecoder::default().decode(record, 1_764_316_800_000).unwrap();
//! assert_eq!(span.kind, SpanKind::Llm);
//! assert_eq!(span.status, StatusCode::Ok);
//! assert_eq!(span.model(), Some("gpt-4o"));
//! assert_eq!(span.usage.output, Some(95));
//! assert_eq!(span.ttft_ns, Some(420_000_000));
//! assert_eq!(span.dimension("tenant"), Some("acme"));
//! ```

mod avro;
mod conventions;
mod error;
mod format;
mod json;
mod otlp;
mod otlp_wire;
mod span;
mod text;

pub use avro::{
    CONFLUENT_MAGIC, SPAN_AVSC, confluent_frame, confluent_framed, native_to_avro, span_schema,
};
pub use conventions::{ATTRIBUTE_ALIASES, CONTENT_ATTRIBUTE_PREFIXES, is_content_attribute};
pub use error::{DecodeError, Horizon};
pub use format::{Decoded, InputFormat};
pub use json::{DecodeLimits, JsonDecoder, MAX_EXTRA_VALUE_LEN};
pub use otlp::{MAX_SPANS_PER_RECORD, OtlpBatch, RejectedSpan};
pub use span::{Span, SpanKind, StatusCode, TokenUsage};
pub use text::{SpanText, TEXT_SOURCES, TextOptions};
