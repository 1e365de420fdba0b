//! Native JSON records (`JsonDecoder::decode`): never a panic; an accepted span keeps the
//! contract (`glassbox_fuzz::check_span`); keeping text changes nothing but the text.
#![no_main]

use glassbox_fuzz::{NOW_MS, check_error, check_span, check_text, plain, same_but_text, with_text};
use glassbox_schemas::DecodeLimits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    let span = plain().decode(data, NOW_MS);
    match &span {
        Ok(span) => check_span(span, &limits, NOW_MS),
        Err(error) => check_error(error),
    }
    let text = with_text().decode(data, NOW_MS);
    if let Ok(span) = &text {
        check_text(span);
    }
    same_but_text(&span, &text);
});
