//! OTLP/JSON records: `JsonDecoder::decode_otlp_json` and `InputFormat::OtlpJson.spans_alone`.
//! Never a panic; every accepted span keeps the contract; every span cut out alone — by
//! `spans_alone` or as a `RejectedSpan`'s record — decodes alone to exactly the span (or the
//! refusal) it was in its batch.
#![no_main]

use glassbox_fuzz::{NOW_MS, check_error, check_otlp_batch, plain};
use glassbox_schemas::InputFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoder = plain();
    let cut = InputFormat::OtlpJson.spans_alone(data, &[0, 1, 2]);
    let batch = match decoder.decode_otlp_json(data, NOW_MS) {
        Ok(batch) => batch,
        Err(error) => {
            check_error(&error);
            assert_eq!(error.reason(), "invalid_otlp");
            return;
        }
    };
    check_otlp_batch(data, &batch, &cut, |d, bytes| {
        d.decode_otlp_json(bytes, NOW_MS)
    });
});
