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

use std::collections::HashSet;
use std::io::{self, Read};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{InnerDecimalSchema, Name, NamesRef, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::{Schema, util};

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

/// The most apache-avro may allocate for one collection or one string of a body (it checks
/// before it allocates, and refuses beyond), whatever its block counts and lengths claim:
/// `AVRO_ALLOCATION_PER_RECORD_BYTE` times the decoder's `max_record_bytes`, and at least
/// [`AVRO_MIN_ALLOCATION_BYTES`]. The library's own default is 512 MiB, which a 20-byte body
/// could make a worker fill. The bound is the library's process-wide setting, set by the first
/// decode (every decoder of a process shares one configuration).
pub const AVRO_ALLOCATION_PER_RECORD_BYTE: usize = 4;
/// See [`AVRO_ALLOCATION_PER_RECORD_BYTE`]: 16 MiB.
pub const AVRO_MIN_ALLOCATION_BYTES: usize = 16 << 20;

/// The body as apache-avro reads it, except that reading past its end is an error the library
/// cannot take for something else. apache-avro 0.22 decodes a union whose branch index cannot
/// be read because the input has ended as `Union(0, Null)` without consuming a byte, so an
/// array of unions with a block count of millions "decodes" from nothing, item after item (a
/// 20-byte body took seconds and ~1 GiB: `fuzz/regressions/avro/`). With this reader every
/// item of every array or map takes at least one byte of the body, unless the schema has items
/// that take none (refused up front by [`zero_size_items`]), so the work of a decode is bounded
/// by the body's length.
struct StrictEnd<'a>(&'a [u8]);

impl Read for StrictEnd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the body has ended",
            ));
        }
        self.0.read(buf)
    }
}

/// The path of the first array or map in `schema` whose items can be encoded in no bytes at
/// all (`null`, a `fixed` of size 0, a record of such fields): a few bytes could claim billions
/// of them, and no length of body would bound the work of decoding it. Named types are
/// followed through `names`; a name being resolved already (a recursive type) is not zero-size,
/// since a value of it can only end through a union or a collection, which take a byte.
fn zero_size_items(schema: &Schema, names: &NamesRef<'_>) -> Option<String> {
    fn zero_size(schema: &Schema, names: &NamesRef<'_>, seen: &mut HashSet<Name>) -> bool {
        match schema {
            Schema::Null => true,
            Schema::Fixed(fixed) => fixed.size == 0,
            Schema::Decimal(decimal) => {
                matches!(&decimal.inner, InnerDecimalSchema::Fixed(fixed) if fixed.size == 0)
            }
            Schema::Record(record) => {
                seen.insert(record.name.clone())
                    && record
                        .fields
                        .iter()
                        .all(|field| zero_size(&field.schema, names, seen))
            }
            Schema::Ref { name } => match names.get(name) {
                Some(named) if !seen.contains(name) => zero_size(named, names, seen),
                _ => false,
            },
            _ => false,
        }
    }
    fn walk(
        schema: &Schema,
        names: &NamesRef<'_>,
        path: &str,
        visited: &mut HashSet<Name>,
    ) -> Option<String> {
        let items = match schema {
            Schema::Array(array) => Some((&*array.items, "[]")),
            Schema::Map(map) => Some((&*map.types, "{}")),
            _ => None,
        };
        if let Some((items, mark)) = items {
            let path = format!("{path}{mark}");
            if zero_size(items, names, &mut HashSet::new()) {
                return Some(path);
            }
            return walk(items, names, &path, visited);
        }
        match schema {
            Schema::Union(union) => union
                .variants()
                .iter()
                .find_map(|variant| walk(variant, names, path, visited)),
            Schema::Record(record) => {
                if !visited.insert(record.name.clone()) {
                    return None;
                }
                record.fields.iter().find_map(|field| {
                    walk(
                        &field.schema,
                        names,
                        &format!("{path}.{}", field.name),
                        visited,
                    )
                })
            }
            Schema::Ref { name } => match names.get(name) {
                Some(named) if !visited.contains(name) => walk(named, names, path, visited),
                _ => None,
            },
            _ => None,
        }
    }
    walk(schema, names, "", &mut HashSet::new())
}

impl JsonDecoder {
    /// Decodes the Avro `body` of a record written with `schema` (the registry's schema of the
    /// record's id). `schema_id` is only for the messages.
    ///
    /// The work is bounded by the body: collections are capped (see
    /// [`AVRO_ALLOCATION_PER_RECORD_BYTE`]), a body cannot be read past its end (see
    /// `StrictEnd`), and a schema with collections of items that take no bytes is refused.
    pub fn decode_avro(
        &self,
        schema: &Schema,
        schema_id: u32,
        body: &[u8],
        now_ms: u64,
    ) -> Result<Span, DecodeError> {
        self.check_size(body)?;
        util::max_allocation_bytes(
            self.limits()
                .max_record_bytes
                .saturating_mul(AVRO_ALLOCATION_PER_RECORD_BYTE)
                .max(AVRO_MIN_ALLOCATION_BYTES),
        );
        let invalid = |what: String| DecodeError::InvalidAvro {
            message: format!("schema id {schema_id}: {what}"),
        };
        let resolved = ResolvedSchema::try_from(schema)
            .map_err(|_| invalid("the registered schema cannot be resolved".to_owned()))?;
        if let Some(path) = zero_size_items(schema, resolved.get_names()) {
            return Err(invalid(format!(
                "the schema's collection `{path}` holds items that take no bytes, so a body \
                 of any size could hold any number of them"
            )));
        }
        let reader = GenericDatumReader::builder(schema)
            .build()
            .map_err(|_| invalid("the registered schema cannot be resolved".to_owned()))?;
        let mut rest = StrictEnd(body);
        // The library's messages quote values: say what happened in our own words.
        let value = reader.read_value(&mut rest).map_err(|_| {
            invalid(format!(
                "the {}-byte body does not decode with it",
                body.len()
            ))
        })?;
        if !rest.0.is_empty() {
            return Err(invalid(format!(
                "{} bytes left after the record",
                rest.0.len()
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

    /// The clock of the fuzz targets, for the inputs they found.
    const FUZZ_NOW: u64 = 1_796_294_337_000;

    fn regression(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../fuzz/regressions/avro/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn with_text() -> JsonDecoder {
        JsonDecoder::default().with_text(crate::TextOptions {
            keep_text: true,
            ..crate::TextOptions::default()
        })
    }

    #[test]
    fn a_body_cannot_be_read_past_its_end() {
        // Found by the fuzzer: an attribute whose value is an array with a block count of
        // 4,000,000, then the end of the body. The library used to "decode" each item's union
        // from nothing (seconds and ~1 GiB for 20 bytes); now the first item's missing byte
        // ends the decode.
        let schema = span_schema();
        for name in [
            "eof-union-array-20-bytes.avro",
            "timeout-found-by-fuzzer.avro",
        ] {
            let body = regression(name);
            for decoder in [JsonDecoder::default(), with_text()] {
                let error = decoder
                    .decode_avro(&schema, 7, &body, FUZZ_NOW)
                    .unwrap_err();
                assert_eq!(error.reason(), "invalid_avro", "{name}: {error}");
                assert!(error.to_string().contains("does not decode"), "{error}");
            }
        }
        // What the library does with a union at the end of its input, and what the reader
        // makes of it.
        let union = Schema::parse_str(r#"["null","string"]"#).unwrap();
        let reader = GenericDatumReader::builder(&union).build().unwrap();
        assert_eq!(
            reader.read_value(&mut &[][..]).unwrap(),
            Value::Union(0, Box::new(Value::Null))
        );
        assert!(reader.read_value(&mut StrictEnd(&[])).is_err());
        assert_eq!(
            reader.read_value(&mut StrictEnd(&[2, 2, b'x'])).unwrap(),
            Value::Union(1, Box::new(s("x")))
        );
        // The same shape with its array complete decodes, so the refusal is the end alone.
        let mut attributes = attributes();
        attributes.push((
            "k",
            Value::Union(
                5,
                Box::new(Value::Array(vec![Value::Union(0, Box::new(s("x"))); 3])),
            ),
        ));
        let body = write(&schema, span_value(attributes));
        JsonDecoder::default()
            .decode_avro(&schema, 7, &body, NOW)
            .unwrap();
        let error = JsonDecoder::default()
            .decode_avro(&schema, 7, &body[..body.len() - 1], NOW)
            .unwrap_err();
        assert_eq!(error.reason(), "invalid_avro");
    }

    #[test]
    fn a_schema_whose_collections_hold_items_of_no_bytes_is_refused_naming_them() {
        // Six bytes could claim a billion nulls: nothing bounds the work but the schema.
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"S","fields":[
                {"name":"trace_id","type":"string"},
                {"name":"extra","type":["null",{"type":"map","values":
                    {"type":"array","items":{"type":"record","name":"E","fields":[
                        {"name":"nothing","type":"null"}]}}}]}]}"#,
        )
        .unwrap();
        let error = JsonDecoder::default()
            .decode_avro(&schema, 9, &[2, b'a', 0], NOW)
            .unwrap_err();
        assert_eq!(error.reason(), "invalid_avro");
        assert!(
            error.to_string().contains("schema id 9") && error.to_string().contains("`.extra{}[]`"),
            "{error}"
        );
        // A named record used again by reference, and a recursive one, are not zero-size.
        let fine = Schema::parse_str(
            r#"{"type":"record","name":"T","fields":[
                {"name":"a","type":{"type":"record","name":"P","fields":[
                    {"name":"v","type":"long"}]}},
                {"name":"b","type":{"type":"array","items":"P"}},
                {"name":"c","type":{"type":"record","name":"L","fields":[
                    {"name":"next","type":["null","L"]}]}},
                {"name":"d","type":{"type":"array","items":"L"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            zero_size_items(&fine, ResolvedSchema::try_from(&fine).unwrap().get_names()),
            None
        );
        let empty_by_reference = Schema::parse_str(
            r#"{"type":"record","name":"T","fields":[
                {"name":"a","type":{"type":"record","name":"Z","fields":[]}},
                {"name":"b","type":{"type":"array","items":"Z"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            zero_size_items(
                &empty_by_reference,
                ResolvedSchema::try_from(&empty_by_reference)
                    .unwrap()
                    .get_names()
            ),
            Some(".b[]".to_owned())
        );
        // The shipped schema has none.
        let shipped = span_schema();
        assert_eq!(
            zero_size_items(
                &shipped,
                ResolvedSchema::try_from(&shipped).unwrap().get_names()
            ),
            None
        );
    }

    #[test]
    fn text_is_kept_from_avro_records_as_from_native_ones() {
        // Found by the fuzzer: with text kept (quality on), every Avro span with a content
        // attribute was refused as `bad_type attributes`.
        let schema = span_schema();
        let body = regression("text-attribute-refused-when-keeping-text.avro");
        let plain = JsonDecoder::default()
            .decode_avro(&schema, 7, &body, FUZZ_NOW)
            .unwrap();
        let kept = with_text()
            .decode_avro(&schema, 7, &body, FUZZ_NOW)
            .unwrap();
        assert_eq!(kept.text.as_ref().unwrap().query.as_deref(), Some("q"));
        assert_eq!(Span { text: None, ..kept }, plain);

        let mut attributes = attributes();
        attributes.push((
            "gen_ai.output.messages",
            Value::Union(
                1,
                Box::new(s(
                    r#"[{"role":"assistant","parts":[{"type":"text","content":"Paris."}]}]"#,
                )),
            ),
        ));
        attributes.push(("input.value", Value::Union(1, Box::new(s("capital?")))));
        let body = write(&schema, span_value(attributes));
        let native = format!(
            "{}{}",
            native_record().trim_end_matches("}}"),
            r#","gen_ai.output.messages":"[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"Paris.\"}]}]","input.value":"capital?"}}"#
        );
        let from_json = with_text().decode(native.as_bytes(), NOW).unwrap();
        let from_avro = with_text().decode_avro(&schema, 7, &body, NOW).unwrap();
        assert_eq!(from_avro, from_json);
        let text = from_avro.text.unwrap();
        assert_eq!(
            (text.query.as_deref(), text.answer.as_deref()),
            (Some("capital?"), Some("Paris."))
        );
    }
}
