//! Avro bodies (`JsonDecoder::decode_avro`) with the shipped span schema (`span_schema()`)
//! and with a team's own schema of other field names (as in `schemas/src/avro.rs`'s tests), and
//! the Confluent framing (`confluent_frame`). Never a panic; an accepted span keeps the
//! contract; keeping text changes nothing but the text; the framing cuts exactly 5 bytes off a
//! record that starts with 0 and re-frames to the same bytes.
#![no_main]

use std::sync::OnceLock;

use apache_avro::Schema;
use glassbox_fuzz::{NOW_MS, check_error, check_span, check_text, plain, same_but_text, with_text};
use glassbox_schemas::{
    CONFLUENT_MAGIC, DecodeLimits, confluent_frame, confluent_framed, span_schema,
};
use libfuzzer_sys::fuzz_target;

/// A team's schema: camelCase OTLP names, a field glassbox does not know, attributes as a map
/// of strings, longs, doubles and string arrays.
const THEIRS: &str = r#"{"type":"record","name":"LlmCall","fields":[
  {"name":"service","type":"string"},
  {"name":"traceId","type":"string"},
  {"name":"spanId","type":"string"},
  {"name":"startTimeUnixNano","type":"long"},
  {"name":"endTimeUnixNano","type":"long"},
  {"name":"attributes","type":{"type":"map","values":["string","long","double",
    {"type":"array","items":"string"}]}}]}"#;

fn schemas() -> &'static [Schema; 2] {
    static SCHEMAS: OnceLock<[Schema; 2]> = OnceLock::new();
    SCHEMAS.get_or_init(|| [span_schema(), Schema::parse_str(THEIRS).unwrap()])
}

fn decode(schema: &Schema, id: u32, body: &[u8]) {
    let limits = DecodeLimits::default();
    let span = plain().decode_avro(schema, id, body, NOW_MS);
    match &span {
        Ok(span) => check_span(span, &limits, NOW_MS),
        Err(error) => check_error(error),
    }
    let text = with_text().decode_avro(schema, id, body, NOW_MS);
    if let Ok(span) = &text {
        check_text(span);
    }
    same_but_text(&span, &text);
}

fuzz_target!(|data: &[u8]| {
    let [shipped, theirs] = schemas();
    decode(shipped, 1, data);
    decode(theirs, 2, data);
    match confluent_frame(data) {
        Ok((id, body)) => {
            assert_eq!(body.len() + 5, data.len());
            assert_eq!(confluent_framed(id, body), data);
            decode(shipped, id, body);
        }
        Err(error) => {
            assert_eq!(error.reason(), "invalid_avro");
            assert!(data.first() != Some(&CONFLUENT_MAGIC) || data.len() < 5);
        }
    }
});
