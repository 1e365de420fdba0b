//! Which format a record is in, and decoding it as that format.
//!
//! A topic may carry native JSON spans, OTLP protobuf batches and OTLP/JSON batches side by
//! side (a team migrating to the Collector, say). [`InputFormat::Auto`] tells them apart by
//! their first bytes, by rules that cannot mistake one for another, and never guesses: a record
//! that none of the rules claims is refused with reason `unknown_format`.
//!
//! - `{` (after ASCII white space) whose first key is `"resourceSpans"`: OTLP/JSON (the only
//!   field of an OTLP/JSON trace request). Any other JSON object, or a broken one that does not
//!   start with 0x0a: a native span (which then says what is wrong with it).
//! - `0x0a`: field 1 (`resource_spans`), length-delimited: OTLP protobuf. A protobuf trace
//!   request whose first field is anything else does not occur: the Collector and the SDKs
//!   write only field 1 at the top level.
//! - `0x00`, when a schema registry is configured: Confluent-framed Avro (`avro_registry`;
//!   magic byte 0, 4-byte schema id, Avro body). Without a registry such a record is unknown:
//!   it could not be decoded.
//! - Anything else (an empty record, text, …): unknown.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::json::JsonDecoder;
use crate::otlp::OtlpBatch;
use crate::span::Span;

/// The format records of the input topic are read as (`decode.format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// Tell each record's format by its first bytes (the module docs give the rules).
    #[default]
    Auto,
    /// One native JSON span per record (`README.md` of this crate).
    NativeJson,
    /// One protobuf OTLP `ExportTraceServiceRequest` / `TracesData` per record.
    OtlpProto,
    /// One OTLP/JSON trace request per record.
    OtlpJson,
    /// One Avro span per record in the Confluent wire format, its schema from the registry.
    AvroRegistry,
}

impl InputFormat {
    /// The format's name in config and headers.
    pub fn as_str(&self) -> &'static str {
        match self {
            InputFormat::Auto => "auto",
            InputFormat::NativeJson => "native_json",
            InputFormat::OtlpProto => "otlp_proto",
            InputFormat::OtlpJson => "otlp_json",
            InputFormat::AvroRegistry => "avro_registry",
        }
    }

    /// The format of `bytes` by the rules of the module docs; `None` when none claims it.
    pub fn detect(bytes: &[u8]) -> Option<InputFormat> {
        // 0x0a is also a newline: an object's start is checked first, and it needs `"` or `}`
        // after the `{`, which no protobuf trace request has there (its byte after a length of
        // 0x7b would be a `ResourceSpans` field tag: 0x0a, 0x12 or 0x1a).
        // Only a record that starts with 0x0a is ambiguous: any other start before the `{` is
        // not protobuf, so a broken JSON object (`{not json`) is still JSON, refused as
        // `invalid_json` rather than `unknown_format`.
        let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
        if let Some(start) = start
            && bytes[start] == b'{'
        {
            let body = &bytes[start + 1..];
            let rest = object_body(body);
            if rest.is_some() || bytes[0] != 0x0a {
                return Some(if rest.is_some_and(|r| first_key_is(r, b"resourceSpans")) {
                    InputFormat::OtlpJson
                } else {
                    InputFormat::NativeJson
                });
            }
        }
        (bytes.first() == Some(&0x0a)).then_some(InputFormat::OtlpProto)
    }
}

/// What follows an object's `{` from its first key's `"` (or its `}`) on, if that is what
/// follows it.
fn object_body(rest: &[u8]) -> Option<&[u8]> {
    let at = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    matches!(rest[at], b'"' | b'}').then_some(&rest[at..])
}

/// Whether an object body starts with the key `key` (unescaped).
fn first_key_is(body: &[u8], key: &[u8]) -> bool {
    body.first() == Some(&b'"')
        && body[1..].starts_with(key)
        && body.get(1 + key.len()) == Some(&b'"')
}

/// A decoded record: one native span, or an OTLP batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A native JSON record's span (boxed: a span is far larger than a batch's vector).
    Span(Box<Span>),
    /// An OTLP record's spans, each decoded or refused on its own.
    Batch(OtlpBatch),
}

impl JsonDecoder {
    /// Decodes one record as `format` (detected first with [`InputFormat::Auto`]). `Err`: the
    /// whole record is refused, with `unknown_format` when no format claims it.
    pub fn decode_as(
        &self,
        format: InputFormat,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Decoded, DecodeError> {
        match format.resolve(bytes, false)? {
            InputFormat::NativeJson | InputFormat::Auto => self
                .decode(bytes, now_ms)
                .map(|s| Decoded::Span(Box::new(s))),
            InputFormat::OtlpProto => self.decode_otlp_proto(bytes, now_ms).map(Decoded::Batch),
            InputFormat::OtlpJson => self.decode_otlp_json(bytes, now_ms).map(Decoded::Batch),
            // Its schema is the registry's: see `crate::avro` and `JsonDecoder::decode_avro`.
            InputFormat::AvroRegistry => Err(DecodeError::InvalidAvro {
                message: "an avro_registry record is decoded with its schema from the registry"
                    .to_owned(),
            }),
        }
    }
}

impl InputFormat {
    /// The format `bytes` are read as: this one, or with [`InputFormat::Auto`] the detected one
    /// (`unknown_format` when no format claims the record). `avro`: a schema registry is
    /// configured, so Confluent-framed Avro is one of the formats auto-detection knows.
    pub fn resolve(self, bytes: &[u8], avro: bool) -> Result<InputFormat, DecodeError> {
        match self {
            InputFormat::Auto if avro && bytes.first() == Some(&crate::CONFLUENT_MAGIC) => {
                Ok(InputFormat::AvroRegistry)
            }
            InputFormat::Auto => {
                InputFormat::detect(bytes).ok_or_else(|| DecodeError::UnknownFormat {
                    message: describe(bytes),
                })
            }
            other => Ok(other),
        }
    }

    /// For a record of this (resolved) OTLP format, the spans at `indices` (ascending
    /// positions in its [`OtlpBatch`]), each alone in a record of the same encoding with its
    /// resource and scope, as [`crate::RejectedSpan::record`] is: what the dead-letter topic
    /// gets for a span refused after decoding (late), so that its good neighbours are not
    /// replayed with it. Empty for a native format (its record is the span).
    pub fn spans_alone(self, bytes: &[u8], indices: &[usize]) -> Vec<(usize, Vec<u8>)> {
        match self {
            InputFormat::OtlpProto => crate::otlp_wire::spans_alone(bytes, indices),
            InputFormat::OtlpJson => crate::otlp::json_spans_alone(bytes, indices),
            InputFormat::Auto | InputFormat::NativeJson | InputFormat::AvroRegistry => Vec::new(),
        }
    }
}

/// What the start of an unclaimed record looks like, without quoting it: its length and first
/// byte in hex (a byte says what framing it is; content is never copied).
fn describe(bytes: &[u8]) -> String {
    match bytes.first() {
        None => "an empty record".to_owned(),
        Some(b) => format!(
            "{} bytes starting with 0x{b:02x}: neither a JSON object, nor an OTLP protobuf trace request",
            bytes.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_is_told_by_its_first_bytes() {
        let cases: [(&[u8], Option<InputFormat>); 16] = [
            (br#"{"trace_id":"ab"}"#, Some(InputFormat::NativeJson)),
            (b"  \n{\"span_id\":1}", Some(InputFormat::NativeJson)),
            (br#"{"resourceSpans":[]}"#, Some(InputFormat::OtlpJson)),
            (b"{ \"resourceSpans\" : []}", Some(InputFormat::OtlpJson)),
            // Another first key, or the name only as a prefix: a native record (which will then
            // say what is wrong with it), never a guess at OTLP.
            (br#"{"resourceSpansX":[]}"#, Some(InputFormat::NativeJson)),
            (b"\x0a\x02\x12\x00", Some(InputFormat::OtlpProto)),
            (b"", None),
            (b"\x00\x00\x00\x00\x07avro", None),
            (b"hello", None),
            // Protobuf is binary: leading white space is not a protobuf record.
            (b" \x0a\x00", None),
            // A JSON record after a newline is JSON; a request of 123 bytes (0x7b = `{`) is not.
            (b"\n{\"trace_id\":1}", Some(InputFormat::NativeJson)),
            (b"\x0a\x7b\x12\x00", Some(InputFormat::OtlpProto)),
            (b"{}", Some(InputFormat::NativeJson)),
            // A broken object is still JSON (and refused as invalid JSON), unless it could be
            // protobuf.
            (b"{not json", Some(InputFormat::NativeJson)),
            (b" {not json", Some(InputFormat::NativeJson)),
            (b"\x0a{not", Some(InputFormat::OtlpProto)),
        ];
        for (bytes, want) in cases {
            assert_eq!(InputFormat::detect(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn confluent_framed_records_are_avro_only_when_a_registry_is_configured() {
        let framed = b"\x00\x00\x00\x00\x07\x02ab";
        assert_eq!(
            InputFormat::Auto.resolve(framed, true),
            Ok(InputFormat::AvroRegistry)
        );
        assert_eq!(
            InputFormat::Auto
                .resolve(framed, false)
                .unwrap_err()
                .reason(),
            "unknown_format"
        );
        // The other formats are told as before, with a registry or without.
        assert_eq!(
            InputFormat::Auto.resolve(b"{}", true),
            Ok(InputFormat::NativeJson)
        );
        assert_eq!(
            InputFormat::Auto.resolve(b"\x0a\x00", true),
            Ok(InputFormat::OtlpProto)
        );
    }

    #[test]
    fn an_unclaimed_record_is_refused_as_unknown_format_without_quoting_it() {
        let decoder = JsonDecoder::default();
        let error = decoder
            .decode_as(InputFormat::Auto, b"secret prompt text", 0)
            .unwrap_err();
        assert_eq!(error.reason(), "unknown_format");
        assert!(!error.to_string().contains("secret"), "{error}");
        assert_eq!(
            decoder
                .decode_as(InputFormat::Auto, b"", 0)
                .unwrap_err()
                .reason(),
            "unknown_format"
        );
        // A fixed format is taken at its word: no detection, that format's own errors.
        let error = decoder
            .decode_as(InputFormat::OtlpProto, br#"{"trace_id":"ab"}"#, 0)
            .unwrap_err();
        assert_eq!(error.reason(), "invalid_otlp");
        let error = decoder
            .decode_as(InputFormat::NativeJson, b"\x0a\x00", 0)
            .unwrap_err();
        assert_eq!(error.reason(), "invalid_json");
    }

    #[test]
    fn spans_are_cut_out_alone_in_the_records_own_encoding() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        use prost::Message;
        let span = |id: u8| Span {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            name: format!("span {id}"),
            ..Default::default()
        };
        let scope = |ids: &[u8]| ScopeSpans {
            spans: ids.iter().map(|&i| span(i)).collect(),
            ..Default::default()
        };
        // Positions count across resources and scopes: 0, 1 | 2 || 3.
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![scope(&[0, 1]), scope(&[2])],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![scope(&[3])],
                    ..Default::default()
                },
            ],
        };
        let ids = |records: Vec<(usize, Vec<u8>)>, json: bool| -> Vec<(usize, u8)> {
            records
                .into_iter()
                .map(|(at, bytes)| {
                    let alone: ExportTraceServiceRequest = if json {
                        serde_json::from_slice(&bytes).unwrap()
                    } else {
                        ExportTraceServiceRequest::decode(&bytes[..]).unwrap()
                    };
                    let spans: Vec<&Span> = alone
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .flat_map(|s| &s.spans)
                        .collect();
                    assert_eq!(spans.len(), 1, "one span alone");
                    (at, spans[0].span_id[0])
                })
                .collect()
        };
        let proto = request.encode_to_vec();
        let cut = InputFormat::OtlpProto.spans_alone(&proto, &[1, 3, 9]);
        assert_eq!(ids(cut, false), vec![(1, 1), (3, 3)]);
        let json = serde_json::to_vec(&request).unwrap();
        let cut = InputFormat::OtlpJson.spans_alone(&json, &[0, 2]);
        assert_eq!(ids(cut, true), vec![(0, 0), (2, 2)]);
        assert!(InputFormat::NativeJson.spans_alone(&json, &[0]).is_empty());
        assert!(
            InputFormat::OtlpProto
                .spans_alone(b"garbage", &[0])
                .is_empty()
        );
    }

    #[test]
    fn the_names_are_the_config_names() {
        for f in [
            InputFormat::Auto,
            InputFormat::NativeJson,
            InputFormat::OtlpProto,
            InputFormat::OtlpJson,
            InputFormat::AvroRegistry,
        ] {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
            assert_eq!(serde_json::from_str::<InputFormat>(&json).unwrap(), f);
        }
    }
}
