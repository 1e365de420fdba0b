//! OTLP protobuf records: `JsonDecoder::decode_otlp_proto` (buffa's lazy views,
//! `schemas/src/otlp_wire.rs`) and `InputFormat::OtlpProto.spans_alone` (the same views,
//! cutting spans out alone). Never a panic; every accepted span keeps the contract; a record
//! refused whole is one prost refuses too, and one prost reads is never refused whole (the
//! module's promise); every span cut out alone — by `spans_alone` or as a `RejectedSpan`'s
//! record — decodes alone to exactly the span (or the refusal) it was in its batch.
#![no_main]

use glassbox_fuzz::{NOW_MS, check_error, check_otlp_batch, plain};
use glassbox_schemas::{InputFormat, MAX_SPANS_PER_RECORD};
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    let decoder = plain();
    let batch = decoder.decode_otlp_proto(data, NOW_MS);
    let prost = ExportTraceServiceRequest::decode(data);
    let cut = InputFormat::OtlpProto.spans_alone(data, &[0, 1, 2]);
    let batch = match batch {
        Ok(batch) => batch,
        Err(error) => {
            check_error(&error);
            assert_eq!(error.reason(), "invalid_otlp");
            if let Ok(request) = prost {
                let spans: usize = request
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum();
                assert!(
                    spans > MAX_SPANS_PER_RECORD,
                    "refused whole, but prost reads it: {error}"
                );
            }
            return;
        }
    };
    assert!(prost.is_ok(), "accepted, but prost refuses it: {prost:?}");
    check_otlp_batch(data, &batch, &cut, |d, bytes| {
        d.decode_otlp_proto(bytes, NOW_MS)
    });
});
