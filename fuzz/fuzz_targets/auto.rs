//! Format detection and dispatch (`schemas/src/format.rs`): `InputFormat::detect`,
//! `InputFormat::resolve` (without and with a schema registry) and `JsonDecoder::decode_as`.
//! Never a panic; `resolve` agrees with `detect` and refuses only as `unknown_format`; a
//! claimed format has its marker (`{` for JSON, 0x0a for protobuf); `decode_as(Auto)` is exactly
//! the detected format's own decoder; `avro_registry` is never decoded without its schema.
//! (Each format's decoder on any bytes is its own target's work.)
#![no_main]

use glassbox_fuzz::{NOW_MS, check_error, plain};
use glassbox_schemas::{CONFLUENT_MAGIC, Decoded, InputFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let detected = InputFormat::detect(data);
    let resolved = InputFormat::Auto.resolve(data, false);
    match (detected, &resolved) {
        (Some(f), Ok(g)) => assert_eq!(f, *g),
        (None, Err(e)) => assert_eq!(e.reason(), "unknown_format"),
        (d, r) => panic!("detect says {d:?}, resolve {r:?}"),
    }
    let first_non_space = data.iter().find(|b| !b.is_ascii_whitespace());
    match detected {
        Some(InputFormat::NativeJson | InputFormat::OtlpJson) => {
            assert_eq!(first_non_space, Some(&b'{'))
        }
        Some(InputFormat::OtlpProto) => assert_eq!(data[0], 0x0a),
        Some(other) => panic!("detect never claims {other:?}"),
        None => {}
    }
    let with_registry = InputFormat::Auto.resolve(data, true);
    if data.first() == Some(&CONFLUENT_MAGIC) {
        assert_eq!(with_registry, Ok(InputFormat::AvroRegistry));
    } else {
        assert_eq!(with_registry, resolved);
    }
    // A fixed format is taken at its word.
    for f in [
        InputFormat::NativeJson,
        InputFormat::OtlpProto,
        InputFormat::OtlpJson,
        InputFormat::AvroRegistry,
    ] {
        assert_eq!(f.resolve(data, false), Ok(f));
    }

    let decoder = plain();
    let decoded = decoder.decode_as(InputFormat::Auto, data, NOW_MS);
    if let Err(e) = &decoded {
        check_error(e);
    }
    let direct = match detected {
        None => {
            assert_eq!(
                decoded.as_ref().map_err(|e| e.reason()),
                Err("unknown_format")
            );
            return;
        }
        Some(InputFormat::OtlpProto) => decoder.decode_otlp_proto(data, NOW_MS).map(Decoded::Batch),
        Some(InputFormat::OtlpJson) => decoder.decode_otlp_json(data, NOW_MS).map(Decoded::Batch),
        Some(_) => decoder
            .decode(data, NOW_MS)
            .map(|s| Decoded::Span(Box::new(s))),
    };
    assert_eq!(
        decoded, direct,
        "decode_as(Auto) is the detected format's decoder"
    );
    // A registry's record is never decoded without its schema.
    assert_eq!(
        decoder
            .decode_as(InputFormat::AvroRegistry, data, NOW_MS)
            .map_err(|e| e.reason()),
        Err("invalid_avro")
    );
});
