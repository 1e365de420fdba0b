//! OTLP/JSON records: `JsonDecoder::decode_otlp_json` and `InputFormat::OtlpJson.spans_alone`.
//! Never a panic; every accepted span keeps the contract; every span cut out alone — by
//! `spans_alone` or as a `RejectedSpan`'s record — decodes alone to exactly the span (or the
//! refusal) it was in its batch.
#![no_main]

use glassbox_fuzz::{NOW_MS, check_batch, check_error, plain, same_but_text, same_span, with_text};
use glassbox_schemas::{DecodeLimits, InputFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
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
    check_batch(&batch, &limits, NOW_MS);

    let text = with_text()
        .decode_otlp_json(data, NOW_MS)
        .expect("the text decoder reads it too");
    assert_eq!(batch.len(), text.len());
    for (a, b) in batch.iter().zip(&text) {
        let strip = |s: &Result<_, glassbox_schemas::RejectedSpan>| s.clone().map_err(|r| r.error);
        same_but_text(&strip(a), &strip(b));
    }

    let at: Vec<usize> = cut.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        at,
        (0..batch.len().min(3)).collect::<Vec<_>>(),
        "spans_alone cut"
    );
    let alone = |record: &[u8]| {
        let mut alone = decoder
            .decode_otlp_json(record, NOW_MS)
            .expect("a span cut out alone decodes");
        assert_eq!(alone.len(), 1, "one span alone");
        alone.pop().unwrap()
    };
    for (i, record) in &cut {
        same_span(&batch[*i], &alone(record));
    }
    for rejected in batch.iter().filter_map(|s| s.as_ref().err()) {
        same_span(&Err(rejected.clone()), &alone(&rejected.record));
    }
});
