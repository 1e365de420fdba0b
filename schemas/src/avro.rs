//! Avro spans in the Confluent wire format (`avro_registry`): a magic byte 0, the schema id as
//! 4 bytes big-endian, then the Avro binary body written with that schema.
//!
//! This module is pure: it cuts the framing ([`confluent_frame`]) and decodes a body given its
//! writer schema ([`JsonDecoder::decode_avro`]); fetching the schema from the registry by id,
//! caching it and riding out an outage is the pipeline's (`pipeline/src/registry.rs`).
//!
//! Fields are mapped **by name**, onto the native contract: the decoded record goes through the
//! very mapping of a native JSON record (field names `trace_id`, `span_id`, `parent_span_id`,
//! `kind`, `name`, `start_time_unix_nano`, `end_time_unix_nano`, `status`, `attributes`, and the
//! OTLP/JSON spellings `traceId`, `startTimeUnixNano`, …; attribute keys with every alias of the
//! alias table). So a team whose schema differs (a field added, one dropped, another order,
//! `attributes` as a map of strings only) still gets its metrics, and a record written with an
//! older or newer version of the registered schema decodes as it was written: there is no
//! reader schema to resolve against, only names. What cannot be mapped is refused with the
//! native reasons (`missing_field` naming the field, `bad_type`, …).
//!
//! `schemas/span.avsc` ([`SPAN_AVSC`]) is the contract as an Avro schema; the README tells how
//! to register it.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;

use crate::error::DecodeError;
use crate::json::JsonDecoder;
use crate::span::Span;

/// The span contract as an Avro schema (`schemas/span.avsc`).
pub const SPAN_AVSC: &str = include_str!("../span.avsc");

/// The first byte of a Confluent-framed record.
pub const CONFLUENT_MAGIC: u8 = 0;

/// The schema id and the Avro body of a Confluent-framed record.
pub fn confluent_frame(bytes: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    match bytes {
        [CONFLUENT_MAGIC, a, b, c, d, body @ ..] => {
            Ok((u32::from_be_bytes([*a, *b, *c, *d]), body))
        }
        [CONFLUENT_MAGIC, ..] => Err(DecodeError::InvalidAvro {
            message: format!(
                "{} bytes: too short for the Confluent framing (magic byte and 4-byte schema id)",
                bytes.len()
            ),
        }),
        _ => Err(DecodeError::InvalidAvro {
            message: "no Confluent framing: the first byte is not 0".to_owned(),
        }),
    }
}

/// Frames an Avro body for schema `id` as the Confluent serializers do.
pub fn confluent_framed(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(CONFLUENT_MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The span contract's Avro schema, parsed.
pub fn span_schema() -> Schema {
    Schema::parse_str(SPAN_AVSC).expect("schemas/span.avsc is a valid Avro schema")
}

/// A native JSON record (the contract's field names) written as an Avro body of `schema`
/// (the shipped one, or any schema whose fields those names resolve to: Avro's own schema
/// resolution fills absent optional fields with their defaults and picks each union branch).
/// For producers — `glassbox loadgen --format avro`, the tests and benches; glassbox reads Avro
/// with [`JsonDecoder::decode_avro`].
pub fn native_to_avro(record: &[u8], schema: &Schema) -> Result<Vec<u8>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(record).map_err(|e| format!("not a native JSON record: {e}"))?;
    let value = json_to_avro(json)
        .resolve(schema)
        .map_err(|e| format!("the record does not fit the schema: {e}"))?;
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .map_err(|e| format!("cannot write the Avro body: {e}"))
}

/// A JSON value as the Avro value schema resolution starts from (objects as maps; integers as
/// longs, others as doubles).
fn json_to_avro(json: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Boolean(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Long(i),
            None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(s),
        J::Array(items) => Value::Array(items.into_iter().map(json_to_avro).collect()),
        J::Object(map) => Value::Map(map.into_iter().map(|(k, v)| (k, json_to_avro(v))).collect()),
    }
}

impl JsonDecoder {
    /// Decodes the Avro `body` of a record written with `schema` (the registry's schema of the
    /// record's id). `schema_id` is only for the messages.
    pub fn decode_avro(
        &self,
        schema: &Schema,
        schema_id: u32,
        body: &[u8],
        now_ms: u64,
    ) -> Result<Span, DecodeError> {
        self.check_size(body)?;
        let invalid = |what: String| DecodeError::InvalidAvro {
            message: format!("schema id {schema_id}: {what}"),
        };
        let reader = GenericDatumReader::builder(schema)
            .build()
            .map_err(|_| invalid("the registered schema cannot be resolved".to_owned()))?;
        let mut rest = body;
        // The library's messages quote values: say what happened in our own words.
        let value = reader.read_value(&mut rest).map_err(|_| {
            invalid(format!(
                "the {}-byte body does not decode with it",
                body.len()
            ))
        })?;
        if !rest.is_empty() {
            return Err(invalid(format!(
                "{} bytes left after the record",
                rest.len()
            )));
        }
        if !matches!(value, Value::Record(_)) {
            return Err(invalid("the schema is not a record".to_owned()));
        }
        let value = serde_json::Value::try_from(value)
            .map_err(|_| invalid("a value has no JSON form (NaN or infinity)".to_owned()))?;
        self.decode_value(&value, now_ms, || {
            invalid("the record is not shaped like a span".to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::writer::datum::GenericDatumWriter;

    use super::*;
    use crate::span::{SpanKind, StatusCode};

    const NOW: u64 = 1_764_316_800_000;
    const START: i64 = 1_764_316_800_000_000_000;

    fn write(schema: &Schema, value: Value) -> Vec<u8> {
        GenericDatumWriter::builder(schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap()
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_owned())
    }

    /// A record of the shipped schema (union branches: 0 null, 1 string / Status).
    fn span_value(attributes: Vec<(&str, Value)>) -> Value {
        Value::Record(vec![
            ("trace_id".into(), s("4bf92f3577b34da6a3ce929d0e0e4736")),
            ("span_id".into(), s("00f067aa0ba902b7")),
            (
                "parent_span_id".into(),
                Value::Union(0, Box::new(Value::Null)),
            ),
            ("kind".into(), Value::Union(1, Box::new(s("llm")))),
            ("name".into(), s("chat gpt-4o")),
            ("start_time_unix_nano".into(), Value::Long(START)),
            (
                "end_time_unix_nano".into(),
                Value::Long(START + 1_250_000_000),
            ),
            (
                "status".into(),
                Value::Union(
                    1,
                    Box::new(Value::Record(vec![
                        ("code".into(), s("error")),
                        ("message".into(), Value::Union(0, Box::new(Value::Null))),
                    ])),
                ),
            ),
            (
                "attributes".into(),
                Value::Map(
                    attributes
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                ),
            ),
        ])
    }

    fn attributes() -> Vec<(&'static str, Value)> {
        vec![
            (
                "gen_ai.provider.name",
                Value::Union(1, Box::new(s("openai"))),
            ),
            (
                "gen_ai.request.model",
                Value::Union(1, Box::new(s("gpt-4o"))),
            ),
            (
                "gen_ai.usage.input_tokens",
                Value::Union(2, Box::new(Value::Long(812))),
            ),
            (
                "gen_ai.usage.output_tokens",
                Value::Union(2, Box::new(Value::Long(95))),
            ),
            (
                "gen_ai.response.finish_reasons",
                Value::Union(
                    5,
                    Box::new(Value::Array(vec![Value::Union(0, Box::new(s("length")))])),
                ),
            ),
            (
                "gen_ai.response.time_to_first_chunk",
                Value::Union(3, Box::new(Value::Double(0.42))),
            ),
            ("tenant.id", Value::Union(1, Box::new(s("acme")))),
            (
                "gen_ai.is_streaming",
                Value::Union(4, Box::new(Value::Boolean(true))),
            ),
        ]
    }

    fn native_record() -> String {
        format!(
            r#"{{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
            "kind":"llm","name":"chat gpt-4o","start_time_unix_nano":{START},
            "end_time_unix_nano":{},"status":{{"code":"error"}},
            "attributes":{{"gen_ai.provider.name":"openai","gen_ai.request.model":"gpt-4o",
            "gen_ai.usage.input_tokens":812,"gen_ai.usage.output_tokens":95,
            "gen_ai.response.finish_reasons":["length"],"gen_ai.response.time_to_first_chunk":0.42,
            "tenant.id":"acme","gen_ai.is_streaming":true}}}}"#,
            START + 1_250_000_000
        )
    }

    fn native() -> Span {
        JsonDecoder::default()
            .decode(native_record().as_bytes(), NOW)
            .unwrap()
    }

    #[test]
    fn a_record_of_the_shipped_schema_decodes_like_its_native_json() {
        let schema = span_schema();
        let body = write(&schema, span_value(attributes()));
        let framed = confluent_framed(7, &body);
        let (id, body) = confluent_frame(&framed).unwrap();
        assert_eq!(id, 7);
        let span = JsonDecoder::default()
            .decode_avro(&schema, id, body, NOW)
            .unwrap();
        let mut want = native();
        // JSON objects decode their keys in record order, Avro maps (via serde_json) sorted:
        // the same extras, perhaps in another order.
        want.extra.sort();
        let mut got = span.clone();
        got.extra.sort();
        assert_eq!(got, want);
        assert_eq!(span.kind, SpanKind::Llm);
        assert_eq!(span.status, StatusCode::Error);
        assert_eq!(span.usage.input, Some(812));
        assert_eq!(span.ttft_ns, Some(420_000_000));
        assert!(span.is_truncated());
    }

    #[test]
    fn fields_are_mapped_by_name_whatever_the_writers_schema_version() {
        // A team's own schema: camelCase OTLP names, no kind/status/parent, a field glassbox
        // does not know, attributes as strings and longs only.
        let theirs = Schema::parse_str(
            r#"{"type":"record","name":"LlmCall","fields":[
              {"name":"service","type":"string"},
              {"name":"traceId","type":"string"},
              {"name":"spanId","type":"string"},
              {"name":"startTimeUnixNano","type":"long"},
              {"name":"endTimeUnixNano","type":"long"},
              {"name":"attributes","type":{"type":"map","values":["string","long"]}}]}"#,
        )
        .unwrap();
        let value = Value::Record(vec![
            ("service".into(), s("checkout")),
            ("traceId".into(), s("4bf92f3577b34da6a3ce929d0e0e4736")),
            ("spanId".into(), s("00f067aa0ba902b7")),
            ("startTimeUnixNano".into(), Value::Long(START)),
            ("endTimeUnixNano".into(), Value::Long(START + 1_000)),
            (
                "attributes".into(),
                Value::Map(
                    [
                        ("llm.model_name", Value::Union(0, Box::new(s("gpt-4o")))),
                        (
                            "openinference.span.kind",
                            Value::Union(0, Box::new(s("LLM"))),
                        ),
                        (
                            "llm.token_count.prompt",
                            Value::Union(1, Box::new(Value::Long(5))),
                        ),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
                ),
            ),
        ]);
        let span = JsonDecoder::default()
            .decode_avro(&theirs, 3, &write(&theirs, value), NOW)
            .unwrap();
        assert_eq!(span.kind, SpanKind::Llm);
        assert_eq!(span.model(), Some("gpt-4o"));
        assert_eq!(span.usage.input, Some(5));

        // A later version of the shipped schema with an optional field added: still decodes,
        // the new field is ignored.
        let newer: serde_json::Value = serde_json::from_str(SPAN_AVSC).unwrap();
        let mut newer = newer;
        newer["fields"].as_array_mut().unwrap().push(
            serde_json::json!({"name": "region", "type": ["null", "string"], "default": null}),
        );
        let newer = Schema::parse_str(&newer.to_string()).unwrap();
        let Value::Record(mut fields) = span_value(attributes()) else {
            unreachable!()
        };
        fields.push(("region".into(), Value::Union(1, Box::new(s("eu")))));
        let span = JsonDecoder::default()
            .decode_avro(&newer, 4, &write(&newer, Value::Record(fields)), NOW)
            .unwrap();
        assert_eq!(span.usage.output, Some(95));
    }

    #[test]
    fn a_native_record_written_as_avro_decodes_to_the_same_span() {
        let schema = span_schema();
        let body = native_to_avro(native_record().as_bytes(), &schema).unwrap();
        let mut got = JsonDecoder::default()
            .decode_avro(&schema, 1, &body, NOW)
            .unwrap();
        let mut want = native();
        got.extra.sort();
        want.extra.sort();
        assert_eq!(got, want);
        // A record without the optional fields takes their defaults.
        let minimal = format!(
            r#"{{"trace_id":"ab","span_id":"cd","start_time_unix_nano":{START},"end_time_unix_nano":{START}}}"#
        );
        let body = native_to_avro(minimal.as_bytes(), &schema).unwrap();
        let span = JsonDecoder::default()
            .decode_avro(&schema, 1, &body, NOW)
            .unwrap();
        assert_eq!(span.trace_id, "ab");
        assert_eq!(span.kind, SpanKind::Other);
        assert!(native_to_avro(b"{}", &schema).is_err(), "required fields");
    }

    #[test]
    fn what_cannot_be_mapped_is_refused_naming_the_field_and_never_quoting_values() {
        // No span id: the native reason, naming the field.
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"S","fields":[
              {"name":"trace_id","type":"string"},
              {"name":"start_time_unix_nano","type":"long"},
              {"name":"end_time_unix_nano","type":"long"}]}"#,
        )
        .unwrap();
        let value = Value::Record(vec![
            ("trace_id".into(), s("4bf92f3577b34da6a3ce929d0e0e4736")),
            ("start_time_unix_nano".into(), Value::Long(START)),
            ("end_time_unix_nano".into(), Value::Long(START)),
        ]);
        let error = JsonDecoder::default()
            .decode_avro(&schema, 1, &write(&schema, value), NOW)
            .unwrap_err();
        assert_eq!(error, DecodeError::MissingField { field: "span_id" });
        // A body that is not what its schema says: invalid_avro, no value quoted.
        let shipped = span_schema();
        let mut body = write(&shipped, span_value(attributes()));
        let error = JsonDecoder::default()
            .decode_avro(&shipped, 9, &body[..body.len() / 2], NOW)
            .unwrap_err();
        assert_eq!(error.reason(), "invalid_avro");
        assert!(error.to_string().contains("schema id 9"), "{error}");
        assert!(!error.to_string().contains("gpt-4o"), "{error}");
        body.push(0);
        let error = JsonDecoder::default()
            .decode_avro(&shipped, 9, &body, NOW)
            .unwrap_err();
        assert_eq!(error.reason(), "invalid_avro");
        // Framing.
        assert_eq!(
            confluent_frame(b"\x00\x00\x01").unwrap_err().reason(),
            "invalid_avro"
        );
        assert_eq!(confluent_frame(b"{}").unwrap_err().reason(), "invalid_avro");
    }
}
