//! The InfluxDB line-protocol renderer (`glassbox::sinks::influx::lines` and `alert_lines`),
//! on window records and alert events whose texts (series dimension names and values, the
//! view, error types, unpriced model names, alert ids, keys, rules, severities, labels and
//! summaries) and numbers come from the fuzz input. Every rendered line is parsed back with
//! InfluxDB IOx's line-protocol parser (`influxdb-line-protocol`, a port of InfluxDB's Go
//! parser), and asserted:
//! - one line per point rendered, each ending in `\n`: no text can end a point or start one
//!   (no point injection), and every line parses;
//! - the measurement, every tag key and value, is `stored_text` of the input, every string
//!   field `stored_string_field` of it (the documented canonical forms); tags with an empty
//!   value and dimensions named like a reserved tag key are left out;
//! - every integer field is the input's, every float field the input's exact bits (non-finite
//!   floats are left out), the timestamp is the window's.
//!
//! Where the parser differs from InfluxDB 1.x and VictoriaMetrics (integration/README.md,
//! "Fuzzing"): it takes a tab as a separator, where both servers keep it as a character of the
//! name, tag or value (the round trip of `pipeline/tests/influx_writer.rs` writes tabs to both
//! real servers and reads them back), so tabs are swapped for U+E000 in the rendered text and in
//! the expected text alike before parsing.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use glassbox::records::metrics::{CostRecord, Distribution, MetricsRecord, Tokens};
use glassbox::sinks::influx::{
    RESERVED_TAG_KEYS, alert_lines, lines, stored_string_field, stored_text,
};
use glassbox_operators::alerts::AlertEvent;
use influxdb_line_protocol::{FieldValue, ParsedLine, parse_lines};
use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "gb";
/// Line protocol timestamps are nanoseconds in an i64: the latest window start (ms) that a
/// server can store. Windows start at decoded spans' times, inside the decoder's horizon.
const MAX_TS_MS: u64 = i64::MAX as u64 / 1_000_000;
/// The tab's stand-in (see the module docs).
const TAB: char = '\u{E000}';

/// Names the renderer treats specially, and common ones.
const NAMES: &[&str] = &[
    "view",
    "error_type",
    "unpriced_model",
    "time",
    "_measurement",
    "_field",
    "rule",
    "severity",
    "kind",
    "model",
    "tenant",
    "provider",
    "summary",
];
/// Characters that are special somewhere in line protocol, or to one of its servers.
const HOSTILE: &[char] = &[
    '\\', ',', '=', ' ', '"', '\n', '\r', '\t', '#', '\'', '\u{0}', '＼', '\u{85}', '\u{2028}',
    '\u{feff}', '\u{200b}', 'é', '中', '😀', 'i', 'u', 'T', '0', '-', '.', TAB,
];

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    let len = u.int_in_range(0..=24)?;
    let mut s = String::new();
    for _ in 0..len {
        let b: u8 = u.arbitrary()?;
        s.push(match b {
            0..=127 => b as char,
            128..=191 => HOSTILE[usize::from(b - 128) % HOSTILE.len()],
            _ => u.arbitrary::<char>()?,
        });
    }
    Ok(s)
}

/// A dimension or label name: a known one or any text that configuration accepts (not blank).
fn name(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    let s = if u.ratio(1, 4)? {
        (*u.choose(NAMES)?).to_owned()
    } else {
        text(u)?
    };
    Ok((!s.trim().is_empty()).then_some(s))
}

fn float(u: &mut Unstructured<'_>) -> Result<f64> {
    Ok(match u.int_in_range(0..=3)? {
        0 => f64::from_bits(u.arbitrary()?),
        1 => u.int_in_range(-1_000_000..=1_000_000)? as f64 / 1_000.0,
        2 => *u.choose(&[
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MIN_POSITIVE,
        ])?,
        _ => u.arbitrary::<u32>()? as f64,
    })
}

fn distribution(u: &mut Unstructured<'_>) -> Result<Option<Distribution>> {
    if !u.arbitrary()? {
        return Ok(None);
    }
    Ok(Some(Distribution {
        count: u.arbitrary()?,
        mean: float(u)?,
        min: float(u)?,
        max: float(u)?,
        p50: float(u)?,
        p90: float(u)?,
        p95: float(u)?,
        p99: float(u)?,
    }))
}

/// Names whose stored forms are distinct: two names that store alike (`a\n`, `a\r`) would be
/// one tag key twice in a line (and, for the oracle, a tab and its stand-in are alike). Names
/// are configuration (metrics.dimensions, alert rules' `by`), not input: see
/// integration/README.md, "Fuzzing".
fn distinct_names(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
    let mut seen = std::collections::BTreeSet::new();
    pairs
        .into_iter()
        .filter(|(k, _)| seen.insert(untab(&stored_text(k))))
        .collect()
}

fn record(u: &mut Unstructured<'_>) -> Result<MetricsRecord> {
    let mut series = Vec::new();
    for _ in 0..u.int_in_range(0..=5)? {
        if let Some(k) = name(u)? {
            series.push((k, text(u)?));
        }
    }
    let mut errors_by_type = BTreeMap::new();
    for _ in 0..u.int_in_range(0..=3)? {
        errors_by_type.insert(text(u)?, u.arbitrary()?);
    }
    let cost = if u.arbitrary()? {
        let mut unpriced = BTreeMap::new();
        for _ in 0..u.int_in_range(0..=3)? {
            unpriced.insert(text(u)?, u.arbitrary()?);
        }
        let mut by_class_pico = BTreeMap::new();
        for class in ["input", "cache_read", "cache_write", "output", "reasoning"] {
            if u.arbitrary()? {
                by_class_pico.insert(class, u.arbitrary()?);
            }
        }
        Some(CostRecord {
            usd: float(u)?,
            total_pico: u.arbitrary()?,
            by_class_pico,
            unpriced_calls: u.arbitrary()?,
            unpriced,
            usage: Vec::new(),
        })
    } else {
        None
    };
    let window_start_ms = u.int_in_range(0..=MAX_TS_MS)?;
    Ok(MetricsRecord {
        schema_version: 1,
        view: text(u)?,
        window_start_ms,
        window_end_ms: window_start_ms.saturating_add(60_000),
        series: distinct_names(series),
        requests: u.arbitrary()?,
        errors: u.arbitrary()?,
        errors_by_type,
        truncations: u.arbitrary()?,
        error_rate: float(u)?,
        truncation_rate: float(u)?,
        rpm: float(u)?,
        tpm: float(u)?,
        tokens: Tokens {
            input: u.arbitrary()?,
            output: u.arbitrary()?,
            cache_read: u.arbitrary()?,
            cache_write: u.arbitrary()?,
            reasoning: u.arbitrary()?,
        },
        latency_ms: distribution(u)?,
        ttft_ms: distribution(u)?,
        tpot_ms: distribution(u)?,
        sketch_relative_error: 0.01,
        cost,
    })
}

fn alert(u: &mut Unstructured<'_>) -> Result<AlertEvent> {
    let mut labels = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        if let Some(k) = name(u)? {
            labels.push((k, text(u)?));
        }
    }
    let mut annotations = serde_json::Map::new();
    if u.arbitrary()? {
        annotations.insert("summary".into(), text(u)?.into());
    }
    if u.arbitrary()? {
        annotations.insert(text(u)?, text(u)?.into());
    }
    let end_ms = u.int_in_range(60_000..=MAX_TS_MS)?;
    let event = serde_json::json!({
        "id": text(u)?, "key": text(u)?,
        "kind": *u.choose(&["pending", "firing", "resolved", "cancelled"])?,
        "rule": text(u)?, "severity": text(u)?,
        "labels": distinct_names(labels),
        "active_at_ms": u.int_in_range(0..=MAX_TS_MS)?, "starts_at_ms": null, "ends_at_ms": null,
        "window": {"view": text(u)?, "start_ms": end_ms - 60_000, "end_ms": end_ms},
        "requests": u.arbitrary::<i64>()?, "terms": [], "exemplars": [],
        "annotations": annotations,
    });
    Ok(serde_json::from_value(event).expect("an alert event"))
}

/// A field as expected: an integer, a float (by its bits) or a string.
#[derive(Debug, PartialEq)]
enum Want {
    Int(i64),
    Float(u64),
    Str(String),
}

/// A point as expected: measurement, tags (stored forms, by key), fields in order, time.
#[derive(Debug, PartialEq)]
struct Point {
    measurement: String,
    tags: BTreeMap<String, String>,
    fields: Vec<(String, Want)>,
    ts: i64,
}

fn untab(s: &str) -> String {
    s.replace('\t', &TAB.to_string())
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let tags: BTreeMap<String, String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (untab(&stored_text(k)), untab(&stored_text(v))))
        .collect();
    assert_eq!(
        tags.len(),
        pairs.iter().filter(|(_, v)| !v.is_empty()).count()
    );
    tags
}

fn float_field(name: &str, v: f64) -> Option<(String, Want)> {
    v.is_finite()
        .then(|| (name.to_owned(), Want::Float(v.to_bits())))
}

fn int_field(name: &str, v: i64) -> Option<(String, Want)> {
    Some((name.to_owned(), Want::Int(v)))
}

fn point(
    measurement: &str,
    tags: BTreeMap<String, String>,
    fields: Vec<Option<(String, Want)>>,
    ts: u64,
) -> Point {
    Point {
        measurement: stored_text(&format!("{PREFIX}_{measurement}")),
        tags,
        fields: fields.into_iter().flatten().collect(),
        ts: i64::try_from(ts).unwrap(),
    }
}

fn expected_lines(r: &MetricsRecord) -> Vec<Point> {
    let mut base: Vec<(&str, &str)> = vec![("view", r.view.as_str())];
    base.extend(
        r.series
            .iter()
            .filter(|(k, _)| !RESERVED_TAG_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let ts = r.window_start_ms;
    let mut out = vec![
        point(
            "requests",
            tags(&base),
            vec![
                int_field("requests", r.requests),
                int_field("errors", r.errors),
                int_field("truncations", r.truncations),
                float_field("error_rate", r.error_rate),
                float_field("truncation_rate", r.truncation_rate),
                float_field("rpm", r.rpm),
                float_field("tpm", r.tpm),
            ],
            ts,
        ),
        point(
            "tokens",
            tags(&base),
            vec![
                int_field("input", r.tokens.input),
                int_field("output", r.tokens.output),
                int_field("cache_read", r.tokens.cache_read),
                int_field("cache_write", r.tokens.cache_write),
                int_field("reasoning", r.tokens.reasoning),
            ],
            ts,
        ),
    ];
    for (m, d) in [
        ("latency_ms", &r.latency_ms),
        ("ttft_ms", &r.ttft_ms),
        ("tpot_ms", &r.tpot_ms),
    ] {
        if let Some(d) = d {
            out.push(point(
                m,
                tags(&base),
                vec![
                    int_field("count", d.count),
                    float_field("mean", d.mean),
                    float_field("min", d.min),
                    float_field("max", d.max),
                    float_field("p50", d.p50),
                    float_field("p90", d.p90),
                    float_field("p95", d.p95),
                    float_field("p99", d.p99),
                ],
                ts,
            ));
        }
    }
    for (t, n) in &r.errors_by_type {
        let mut with = base.clone();
        with.push(("error_type", t));
        out.push(point(
            "errors",
            tags(&with),
            vec![int_field("count", *n)],
            ts,
        ));
    }
    if let Some(c) = &r.cost {
        let class = |name: &str| c.by_class_pico.get(name).copied().unwrap_or(0);
        out.push(point(
            "cost",
            tags(&base),
            vec![
                int_field("total_pico", c.total_pico),
                int_field("input_pico", class("input")),
                int_field("cache_read_pico", class("cache_read")),
                int_field("cache_write_pico", class("cache_write")),
                int_field("output_pico", class("output")),
                int_field("reasoning_pico", class("reasoning")),
                float_field("usd", c.usd),
                int_field("unpriced_calls", c.unpriced_calls),
            ],
            ts,
        ));
        for (m, n) in &c.unpriced {
            let mut with = base.clone();
            with.push(("unpriced_model", m));
            out.push(point(
                "unpriced",
                tags(&with),
                vec![int_field("calls", *n)],
                ts,
            ));
        }
    }
    out
}

fn expected_alert(e: &AlertEvent) -> Point {
    let own = ["rule", "severity", "kind"];
    let mut pairs: Vec<(&str, &str)> = vec![
        ("rule", e.rule.as_str()),
        ("severity", e.severity.as_str()),
        ("kind", e.kind.name()),
    ];
    pairs.extend(
        e.labels
            .iter()
            .filter(|(k, _)| !RESERVED_TAG_KEYS.contains(&k.as_str()) && !own.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let summary = e.annotations.get("summary").unwrap_or(&e.key);
    let string = |name: &str, v: &str| Some((name.to_owned(), Want::Str(stored_string_field(v))));
    point(
        "alert_events",
        tags(&pairs),
        vec![
            string("id", &e.id),
            string("key", &e.key),
            string("summary", summary),
            int_field("requests", e.requests),
            int_field("active_at_ms", i64::try_from(e.active_at_ms).unwrap()),
        ],
        e.window.end_ms,
    )
}

fn parsed(line: &ParsedLine<'_>) -> Point {
    let tags: Vec<(String, String)> = line
        .series
        .tag_set
        .iter()
        .flatten()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let n = tags.len();
    let tags: BTreeMap<String, String> = tags.into_iter().collect();
    assert_eq!(tags.len(), n, "a tag key twice: {line:?}");
    Point {
        measurement: line.series.measurement.to_string(),
        tags,
        fields: line
            .field_set
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    FieldValue::I64(i) => Want::Int(*i),
                    FieldValue::F64(f) => Want::Float(f.to_bits()),
                    FieldValue::String(s) => Want::Str(s.to_string()),
                    other => panic!("a field of another type: {other:?} in {line:?}"),
                };
                (k.to_string(), v)
            })
            .collect(),
        ts: line.timestamp.expect("every point has its timestamp"),
    }
}

/// InfluxDB 1.x's own rules for a line's series key (`models/points.go`, `scanKey`), which
/// the IOx parser is more lenient about: a byte is escaped when a backslash precedes it; every
/// backslash escapes a `,`, `=` or space (the renderer writes no other, so InfluxDB and
/// VictoriaMetrics read the key alike); a tag value holds no unescaped `=`.
fn check_go_key_rules(line: &str) {
    let bytes = line.as_bytes();
    let escaped = |i: usize| i > 0 && bytes[i - 1] == b'\\';
    let end = (0..bytes.len())
        .find(|&i| bytes[i] == b' ' && !escaped(i))
        .expect("a space before the fields");
    for i in 0..end {
        if bytes[i] == b'\\' {
            assert!(
                matches!(bytes.get(i + 1), Some(b',' | b'=' | b' ')),
                "a backslash that escapes nothing: {line}"
            );
        }
    }
    let mut start = 0;
    let mut parts = Vec::new();
    for i in 0..end {
        if bytes[i] == b',' && !escaped(i) {
            parts.push(&bytes[start..i]);
            start = i + 1;
        }
    }
    parts.push(&bytes[start..end]);
    for tag in &parts[1..] {
        let at = |i: &usize| tag[*i] == b'=' && !(*i > 0 && tag[*i - 1] == b'\\');
        let eq: Vec<usize> = (0..tag.len()).filter(at).collect();
        assert_eq!(eq.len(), 1, "a tag is key=value: {line}");
        assert!(
            eq[0] > 0 && eq[0] + 1 < tag.len(),
            "an empty tag key or value: {line}"
        );
    }
}

/// Renders, parses back and compares.
fn check(rendered: &str, want: Vec<Point>) {
    for line in rendered.lines() {
        check_go_key_rules(line);
    }
    assert_eq!(
        rendered.matches('\n').count(),
        want.len(),
        "one line per point:\n{rendered}"
    );
    assert!(rendered.ends_with('\n'));
    let text = untab(rendered);
    let got: Vec<Point> = parse_lines(&text)
        .map(|line| match line {
            Ok(line) => parsed(&line),
            Err(e) => panic!("unparseable line protocol ({e}):\n{rendered}"),
        })
        .collect();
    // Strings of the expected points were made with tabs swapped as well.
    let want: Vec<Point> = want
        .into_iter()
        .map(|p| Point {
            fields: p
                .fields
                .into_iter()
                .map(|(k, v)| match v {
                    Want::Str(s) => (k, Want::Str(untab(&s))),
                    v => (k, v),
                })
                .collect(),
            ..p
        })
        .collect();
    assert_eq!(got, want, "rendered:\n{rendered}");
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(record) = record(&mut u) else { return };
    let mut out = String::new();
    lines(&record, PREFIX, &mut out);
    check(&out, expected_lines(&record));

    let Ok(event) = alert(&mut u) else { return };
    let mut out = String::new();
    alert_lines(&event, PREFIX, &mut out);
    check(&out, vec![expected_alert(&event)]);
});
