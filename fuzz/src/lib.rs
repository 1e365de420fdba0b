//! What the decoder targets share: the clock, the two decoders every input is decoded with,
//! and the checks every decoded span must pass.

use glassbox_schemas::{DecodeError, DecodeLimits, JsonDecoder, OtlpBatch, Span, TextOptions};

/// The decoders' clock: 30 s after the newest Kafka timestamp of the captured OTLP fixtures
/// (`schemas/testdata/otlp/*.truth.json`), so that the seeds' spans are inside the horizon and
/// the fuzzer starts from records that decode all the way to a span.
pub const NOW_MS: u64 = 1_796_294_337_000;

/// The metrics path's decoder: default limits, no text.
pub fn plain() -> JsonDecoder {
    JsonDecoder::new(DecodeLimits::default())
}

/// The quality path's decoder: it keeps text, with tiny caps so that cutting on a character
/// boundary and dropping chunks are exercised by short inputs.
pub fn with_text() -> JsonDecoder {
    plain().with_text(TextOptions {
        keep_text: true,
        max_text_bytes: 7,
        max_chunks: 2,
    })
}

/// The contract of every accepted span (schemas/README.md, `DecodeLimits`): time runs
/// forward, the duration and time to first token are bounded, the start is inside the horizon
/// around the clock, token counts are within `max_tokens`, ids are lowercase hex.
pub fn check_span(span: &Span, limits: &DecodeLimits, now_ms: u64) {
    assert!(span.end_unix_nano >= span.start_unix_nano, "{span:?}");
    let max_ns = limits.max_duration_ms.saturating_mul(1_000_000);
    assert!(span.duration_ns() <= max_ns, "duration: {span:?}");
    if let Some(ttft) = span.ttft_ns {
        assert!(ttft <= max_ns, "ttft: {span:?}");
    }
    let start_ms = span.start_unix_nano / 1_000_000;
    assert!(
        start_ms >= now_ms.saturating_sub(limits.horizon_past_ms)
            && start_ms <= now_ms.saturating_add(limits.horizon_future_ms),
        "start outside the horizon: {span:?}"
    );
    let u = &span.usage;
    for n in [u.input, u.output, u.cache_read, u.cache_write, u.reasoning]
        .into_iter()
        .flatten()
    {
        assert!(n <= limits.max_tokens, "tokens: {span:?}");
    }
    for id in [
        Some(&span.trace_id),
        Some(&span.span_id),
        span.parent_span_id.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            !id.is_empty() && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "id {id:?}"
        );
    }
}

/// The text kept by [`with_text`] is within its caps.
pub fn check_text(span: &Span) {
    if let Some(text) = &span.text {
        for s in text.query.iter().chain(&text.answer).chain(&text.chunks) {
            assert!(s.len() <= 7, "text longer than max_text_bytes: {s:?}");
        }
        assert!(text.chunks.len() <= 2, "more chunks than max_chunks");
    }
}

/// A refusal names itself: a reason, a message that renders.
pub fn check_error(error: &DecodeError) {
    assert!(!error.reason().is_empty());
    let _ = error.to_string();
    let _ = error.field();
}

/// The same span without its text: what the metrics path sees of a span the text decoder
/// made.
pub fn without_text(span: &Span) -> Span {
    Span {
        text: None,
        ..span.clone()
    }
}

/// The plain decoder's and the text decoder's results of one record agree on everything but
/// the text: keeping text never changes a span's metrics, nor whether it is accepted.
pub fn same_but_text(plain: &Result<Span, DecodeError>, text: &Result<Span, DecodeError>) {
    match (plain, text) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.text, None);
            assert_eq!(*a, without_text(b));
        }
        (Err(a), Err(b)) => assert_eq!(a.reason(), b.reason()),
        (a, b) => panic!("the text decoder disagrees: {a:?} vs {b:?}"),
    }
}

/// Every span of a batch is checked, every refusal too; a refused span's record is not empty.
pub fn check_batch(batch: &OtlpBatch, limits: &DecodeLimits, now_ms: u64) {
    for span in batch {
        match span {
            Ok(span) => check_span(span, limits, now_ms),
            Err(rejected) => {
                check_error(&rejected.error);
                assert!(!rejected.record.is_empty());
            }
        }
    }
}

/// One span of a batch as the record of it alone decodes: the same span, or a refusal for
/// the same reason.
pub fn same_span(
    whole: &Result<Span, glassbox_schemas::RejectedSpan>,
    alone: &Result<Span, glassbox_schemas::RejectedSpan>,
) {
    match (whole, alone) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "a span decodes differently alone"),
        (Err(a), Err(b)) => {
            assert_eq!(a.error.reason(), b.error.reason());
            assert_eq!((&a.trace_id, &a.span_id), (&b.trace_id, &b.span_id));
        }
        (a, b) => panic!("a span decodes differently alone: {a:?} vs {b:?}"),
    }
}

/// What both OTLP targets check of an accepted batch: every span keeps the contract, the
/// text decoder agrees but for text, `spans_alone` cut exactly the first min(n, 3) spans, and
/// each span cut out alone — by `spans_alone` (`cut`) or as a `RejectedSpan`'s record — decodes
/// alone (with `decode`) to exactly the span or refusal it was in its batch.
pub fn check_otlp_batch(
    data: &[u8],
    batch: &OtlpBatch,
    cut: &[(usize, Vec<u8>)],
    decode: impl Fn(&JsonDecoder, &[u8]) -> Result<OtlpBatch, DecodeError>,
) {
    check_batch(batch, &DecodeLimits::default(), NOW_MS);
    let text = decode(&with_text(), data).expect("the text decoder reads it too");
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
    let decoder = plain();
    let alone = |record: &[u8]| {
        let mut alone = decode(&decoder, record).expect("a span cut out alone decodes");
        assert_eq!(alone.len(), 1, "one span alone");
        alone.pop().unwrap()
    };
    for (i, record) in cut {
        same_span(&batch[*i], &alone(record));
    }
    for rejected in batch.iter().filter_map(|s| s.as_ref().err()) {
        same_span(&Err(rejected.clone()), &alone(&rejected.record));
    }
}
