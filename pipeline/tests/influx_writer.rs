//! The InfluxDB writer against real servers: InfluxDB 1.x through the v1 API, VictoriaMetrics
//! through the v2 write API, and a scripted HTTP server for what real servers will not do on
//! demand (413, silence, checking headers).
//!
//! Server URLs come from `integration/scripts/stack.sh` (`GLASSBOX_TEST_INFLUX_V1_URL`,
//! `GLASSBOX_TEST_VM_URL`, set by `integration/scripts/test-all.sh`); the tests that need them
//! are ignored without the `servers` feature, and with it a test whose variable is missing
//! fails and says how to start the servers. Each test writes under a measurement
//! prefix (and database) of its own, so runs never see each other's points.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glassbox::records::metrics::{Distribution, MetricsRecord, Tokens};
use glassbox::sinks::Keyed;
use glassbox::sinks::influx::{InfluxApi, InfluxConfig, InfluxWriter, Secret};
use glassbox::sinks::threaded::Writer;

fn server(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set. Start the test servers with \
             `STACK_DIR=/tmp/gb-stack integration/scripts/stack.sh start influxdb victoria-metrics` \
             and `. /tmp/gb-stack/env`, or run integration/scripts/test-all.sh"
        )
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A name no other run uses: letters, digits and `_`.
fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}_{}_{nanos}", std::process::id())
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn distribution(base: f64, count: i64) -> Distribution {
    Distribution {
        count,
        mean: base + 0.333,
        min: base / 2.0,
        max: base * 3.0 + 0.001,
        p50: base,
        p90: base * 1.5,
        p95: base * 2.0,
        p99: base * 2.5 + 0.1,
    }
}

/// Two views × three series × `windows` windows, with figures that vary per record: rates
/// like 1/3 and 0.1 + 0.2, integral floats, absent TTFT/TPOT, several error types, a tag
/// value with a space, a comma and an equals sign, and an empty one (left out).
fn records(first_window_ms: u64, windows: u64) -> Vec<MetricsRecord> {
    let series: [[(&str, &str); 3]; 3] = [
        [
            ("provider", "openai"),
            ("model", "gpt 4o, mini"),
            ("tenant", "a=b"),
        ],
        [
            ("provider", "anthropic"),
            ("model", "claude"),
            ("tenant", "acme"),
        ],
        [("provider", "openai"), ("model", "gpt-4o"), ("tenant", "")],
    ];
    let mut out = Vec::new();
    let mut i = 0i64;
    for (view, length) in [("tumbling_1m", 60_000u64), ("sliding_5m", 300_000)] {
        for s in &series {
            for w in 0..windows {
                i += 1;
                let requests = 2 + i;
                let errors = i % 4;
                let mut errors_by_type = BTreeMap::new();
                if errors > 0 {
                    errors_by_type.insert("rate_limit".to_owned(), 1);
                }
                if errors > 1 {
                    errors_by_type.insert("server error".to_owned(), errors - 1);
                }
                let start = first_window_ms + w * 60_000;
                out.push(MetricsRecord {
                    schema_version: 1,
                    view: view.into(),
                    window_start_ms: start,
                    window_end_ms: start + length,
                    series: s
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    requests,
                    errors,
                    errors_by_type,
                    truncations: i % 2,
                    error_rate: errors as f64 / requests as f64,
                    truncation_rate: (i % 2) as f64 / requests as f64,
                    rpm: requests as f64 * 60_000.0 / length as f64,
                    tpm: 0.1 + 0.2 * i as f64,
                    tokens: Tokens {
                        input: 1_000 * i,
                        output: 77 * i,
                        cache_read: 10 * i,
                        cache_write: i % 3,
                        reasoning: 0,
                    },
                    latency_ms: Some(distribution(100.25 * i as f64, requests)),
                    ttft_ms: (i % 2 == 0)
                        .then(|| distribution(12.5 + i as f64 / 7.0, requests - 1)),
                    tpot_ms: (i % 3 != 0).then(|| distribution(3.0, requests - 1)),
                    sketch_relative_error: 0.01,
                    cost: None,
                });
            }
        }
    }
    out
}

fn keyed(records: &[MetricsRecord]) -> Vec<Arc<Keyed>> {
    records
        .iter()
        .map(|r| {
            Arc::new(Keyed {
                key: format!("{:?}", r.series),
                record: r.clone(),
            })
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

/// (measurement, tags, time) → fields.
type Points = BTreeMap<(String, BTreeMap<String, String>, u64), BTreeMap<String, Num>>;

/// What the module's measurement table says these records become: an oracle written from
/// the table, not from the renderer.
fn expected_points(records: &[MetricsRecord], prefix: &str) -> Points {
    let mut points = Points::new();
    for r in records {
        let mut tags: BTreeMap<String, String> = r
            .series
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tags.insert("view".into(), r.view.clone());
        let mut add = |suffix: &str, tags: &BTreeMap<String, String>, fields: Vec<(&str, Num)>| {
            let fields = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let key = (
                format!("{prefix}_{suffix}"),
                tags.clone(),
                r.window_start_ms,
            );
            assert!(points.insert(key, fields).is_none(), "duplicate point");
        };
        add(
            "requests",
            &tags,
            vec![
                ("requests", Num::Int(r.requests)),
                ("errors", Num::Int(r.errors)),
                ("truncations", Num::Int(r.truncations)),
                ("error_rate", Num::Float(r.error_rate)),
                ("truncation_rate", Num::Float(r.truncation_rate)),
                ("rpm", Num::Float(r.rpm)),
                ("tpm", Num::Float(r.tpm)),
            ],
        );
        let t = &r.tokens;
        add(
            "tokens",
            &tags,
            vec![
                ("input", Num::Int(t.input)),
                ("output", Num::Int(t.output)),
                ("cache_read", Num::Int(t.cache_read)),
                ("cache_write", Num::Int(t.cache_write)),
                ("reasoning", Num::Int(t.reasoning)),
            ],
        );
        for (suffix, d) in [
            ("latency_ms", &r.latency_ms),
            ("ttft_ms", &r.ttft_ms),
            ("tpot_ms", &r.tpot_ms),
        ] {
            if let Some(d) = d {
                add(
                    suffix,
                    &tags,
                    vec![
                        ("count", Num::Int(d.count)),
                        ("mean", Num::Float(d.mean)),
                        ("min", Num::Float(d.min)),
                        ("max", Num::Float(d.max)),
                        ("p50", Num::Float(d.p50)),
                        ("p90", Num::Float(d.p90)),
                        ("p95", Num::Float(d.p95)),
                        ("p99", Num::Float(d.p99)),
                    ],
                );
            }
        }
        for (error_type, count) in &r.errors_by_type {
            let mut tags = tags.clone();
            tags.insert("error_type".into(), error_type.clone());
            add("errors", &tags, vec![("count", Num::Int(*count))]);
        }
    }
    points
}

const TAG_KEYS: [&str; 5] = ["view", "provider", "model", "tenant", "error_type"];
const SUFFIXES: [&str; 6] = [
    "requests",
    "tokens",
    "latency_ms",
    "ttft_ms",
    "tpot_ms",
    "errors",
];

/// Rows of a CSV document (RFC 4180 quoting, as Go's encoding/csv writes it).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => cell.push(c),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

/// Runs an InfluxQL statement on InfluxDB 1.x and returns the CSV rows (header first). CSV
/// keeps numbers as the server printed them, so floats are compared bit for bit (serde_json's
/// default float parsing is not exact for every 17-digit number).
fn influxql(url: &str, db: &str, q: &str) -> Vec<Vec<String>> {
    let agent = http();
    let endpoint = format!("{url}/query");
    let params = [("db", db), ("q", q), ("epoch", "ms")];
    let accept = "application/csv";
    // InfluxDB 1.x wants statements that change something (CREATE, DROP) as POST.
    let mut response = if q.starts_with("SELECT") || q.starts_with("SHOW") {
        let request = agent.get(&endpoint).query_pairs(params);
        request.header("Accept", accept).call()
    } else {
        let request = agent.post(&endpoint).query_pairs(params);
        request.header("Accept", accept).send_empty()
    }
    .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    assert_eq!(status, 200, "{q}: {text}");
    csv_rows(&text)
}

/// Every point of the test's measurements, read back with InfluxQL; also checks field types.
fn read_influx(url: &str, db: &str, prefix: &str) -> Points {
    let mut points = Points::new();
    for suffix in SUFFIXES {
        let measurement = format!("{prefix}_{suffix}");
        let mut types = BTreeMap::new();
        let rows = influxql(url, db, &format!("SHOW FIELD KEYS FROM \"{measurement}\""));
        for row in rows.iter().skip(1) {
            // name,tags,fieldKey,fieldType
            types.insert(row[2].clone(), row[3].clone());
        }
        let rows = influxql(url, db, &format!("SELECT * FROM \"{measurement}\""));
        let Some((header, rows)) = rows.split_first() else {
            continue;
        };
        assert_eq!(&header[..3], ["name", "tags", "time"], "{header:?}");
        for row in rows {
            let time: u64 = row[2].parse().unwrap();
            let mut tags = BTreeMap::new();
            let mut fields = BTreeMap::new();
            for (column, value) in header.iter().zip(row).skip(3) {
                if value.is_empty() {
                    continue; // absent in this point
                }
                if TAG_KEYS.contains(&column.as_str()) {
                    tags.insert(column.clone(), value.clone());
                    continue;
                }
                let num = match types.get(column).map(String::as_str) {
                    Some("integer") => Num::Int(value.parse().unwrap()),
                    Some("float") => Num::Float(value.parse().unwrap()),
                    other => panic!("{measurement}.{column} has field type {other:?}"),
                };
                fields.insert(column.clone(), num);
            }
            points.insert((measurement.clone(), tags, time), fields);
        }
    }
    points
}

fn show(fields: &BTreeMap<String, Num>) -> Vec<(&str, String)> {
    fields
        .iter()
        .map(|(name, v)| match v {
            Num::Int(i) => (name.as_str(), format!("{i}i")),
            // Bits, so that 0.30000000000000004 never passes for 0.3.
            Num::Float(x) => (name.as_str(), format!("{x} ({:#x})", x.to_bits())),
        })
        .collect()
}

/// Same points, same tags, same timestamps, same field types, same values bit for bit.
fn assert_points_equal(got: &Points, want: &Points) {
    let got_keys: BTreeSet<_> = got.keys().collect();
    let want_keys: BTreeSet<_> = want.keys().collect();
    assert!(
        got_keys == want_keys,
        "{} points read, {} written; missing e.g. {:?}; unexpected e.g. {:?}",
        got.len(),
        want.len(),
        want_keys.difference(&got_keys).next(),
        got_keys.difference(&want_keys).next()
    );
    for (key, fields) in want {
        assert_eq!(show(&got[key]), show(fields), "point {key:?}");
    }
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn v1_writes_exact_points_to_influxdb_and_a_rewrite_changes_nothing() {
    let url = server("GLASSBOX_TEST_INFLUX_V1_URL");
    let db = unique("glassbox_test");
    let prefix = unique("gbv1");
    influxql(&url, "", &format!("CREATE DATABASE \"{db}\""));
    let databases = influxql(&url, "", "SHOW DATABASES");
    assert!(
        databases.iter().any(|row| row.last() == Some(&db)),
        "{databases:?}"
    );

    let first_window = (now_ms() / 60_000 - 10) * 60_000;
    let records = records(first_window, 4);
    let want = expected_points(&records, &prefix);
    assert!(want.len() > 100, "{} points", want.len());
    let mut writer = InfluxWriter::new(&InfluxConfig {
        enabled: true,
        api: InfluxApi::V1,
        url: url.clone(),
        database: db.clone(),
        measurement_prefix: prefix.clone(),
        gzip: true,
        ..InfluxConfig::default()
    })
    .unwrap();
    let batch = keyed(&records);
    writer.write(&batch).unwrap();
    let got = read_influx(&url, &db, &prefix);
    assert_points_equal(&got, &want);

    // A replay (here without gzip, in two batches) rewrites the same points: nothing changes.
    let mut plain = InfluxWriter::new(&InfluxConfig {
        enabled: true,
        api: InfluxApi::V1,
        url: url.clone(),
        database: db.clone(),
        measurement_prefix: prefix.clone(),
        gzip: false,
        ..InfluxConfig::default()
    })
    .unwrap();
    let (a, b) = batch.split_at(batch.len() / 3);
    plain.write(b).unwrap();
    plain.write(a).unwrap();
    let again = read_influx(&url, &db, &prefix);
    assert_points_equal(&again, &want);
    let count = influxql(
        &url,
        &db,
        &format!("SELECT count(requests) FROM \"{prefix}_requests\""),
    );
    assert_eq!(count[1][3], records.len().to_string(), "{count:?}");

    influxql(&url, "", &format!("DROP DATABASE \"{db}\""));
}

/// A VictoriaMetrics series: name and labels.
type SeriesKey = (String, BTreeMap<String, String>);

/// Series → (timestamp, value) samples, sorted.
type Samples = BTreeMap<SeriesKey, Vec<(u64, f64)>>;

fn read_vm(url: &str, prefix: &str) -> Samples {
    let agent = http();
    let flushed = agent
        .get(format!("{url}/internal/force_flush"))
        .call()
        .unwrap();
    assert_eq!(flushed.status().as_u16(), 200);
    let mut response = agent
        .get(format!("{url}/api/v1/export"))
        .query("match[]", format!("{{__name__=~\"{prefix}_.*\"}}"))
        .call()
        .unwrap();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    let mut samples = Samples::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut labels: BTreeMap<String, String> =
            serde_json::from_value(v["metric"].clone()).unwrap();
        let name = labels.remove("__name__").unwrap();
        let values: Vec<f64> = serde_json::from_value(v["values"].clone()).unwrap();
        let timestamps: Vec<u64> = serde_json::from_value(v["timestamps"].clone()).unwrap();
        assert_eq!(values.len(), timestamps.len());
        let entry = samples.entry((name, labels)).or_default();
        entry.extend(timestamps.into_iter().zip(values));
        entry.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    samples
}

fn total(samples: &Samples) -> usize {
    samples.values().map(Vec::len).sum()
}

/// Polls the export until it holds `want` samples, for at most `timeout`.
fn wait_for_vm(url: &str, prefix: &str, want: usize, timeout: Duration) -> Samples {
    let start = Instant::now();
    loop {
        let samples = read_vm(url, prefix);
        if total(&samples) >= want || start.elapsed() > timeout {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Checks series, timestamps and values against the expected points. VictoriaMetrics keeps
/// about 12 significant decimal digits of a float (its documented compression), so floats
/// are compared to 1e-11 relative; integers (all below 2^53 here) exactly. Returns, per
/// (series, timestamp), how many samples were kept.
fn check_vm(samples: &Samples, want: &Points) -> BTreeSet<usize> {
    let mut expected: BTreeMap<SeriesKey, BTreeMap<u64, Num>> = BTreeMap::new();
    for ((measurement, tags, time), fields) in want {
        for (field, value) in fields {
            expected
                .entry((format!("{measurement}_{field}"), tags.clone()))
                .or_default()
                .insert(*time, *value);
        }
    }
    let got_series: BTreeSet<_> = samples.keys().collect();
    let want_series: BTreeSet<_> = expected.keys().collect();
    assert_eq!(
        got_series,
        want_series,
        "series differ (missing first {:?})",
        want_series.difference(&got_series).next()
    );
    let mut multiplicities = BTreeSet::new();
    for (series, points) in &expected {
        let got = &samples[series];
        let times: BTreeSet<u64> = got.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, points.keys().copied().collect(), "{series:?}");
        for (time, want) in points {
            let at: Vec<f64> = got
                .iter()
                .filter(|(t, _)| t == time)
                .map(|(_, v)| *v)
                .collect();
            multiplicities.insert(at.len());
            for v in &at {
                // Every sample at a timestamp has the value written, rewrite or not.
                match want {
                    Num::Int(i) => assert_eq!(*v, *i as f64, "{series:?} @ {time}"),
                    Num::Float(w) => assert!(
                        (v - w).abs() <= 1e-11 * w.abs().max(1.0),
                        "{series:?} @ {time}: {v} != {w}"
                    ),
                }
            }
        }
    }
    multiplicities
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn v2_writes_to_victoria_metrics_and_a_rewrite_keeps_values() {
    let url = server("GLASSBOX_TEST_VM_URL");
    let prefix = unique("gbv2");
    let first_window = (now_ms() / 60_000 - 10) * 60_000;
    let records = records(first_window, 3);
    let want = expected_points(&records, &prefix);
    let fields: usize = want.values().map(BTreeMap::len).sum();
    let mut writer = InfluxWriter::new(&InfluxConfig {
        enabled: true,
        api: InfluxApi::V2,
        url: url.clone(),
        org: "glassbox".into(),
        bucket: "test".into(),
        token: Secret::new("unused-by-victoria-metrics"),
        measurement_prefix: prefix.clone(),
        gzip: true,
        ..InfluxConfig::default()
    })
    .unwrap();
    let batch = keyed(&records);
    writer.write(&batch).unwrap();
    let samples = wait_for_vm(&url, &prefix, fields, Duration::from_secs(10));
    assert_eq!(
        total(&samples),
        fields,
        "one sample per field of every point"
    );
    assert_eq!(check_vm(&samples, &want), BTreeSet::from([1]));

    // The same batch again. VictoriaMetrics without -dedup.minScrapeInterval (as the test
    // stack runs it) keeps both samples at a timestamp; what matters for a replay is that no
    // series or timestamp is added and every sample carries the same value.
    writer.write(&batch).unwrap();
    let samples = wait_for_vm(&url, &prefix, 2 * fields, Duration::from_secs(5));
    let multiplicities = check_vm(&samples, &want);
    assert!(
        multiplicities == BTreeSet::from([2]) || multiplicities == BTreeSet::from([1]),
        "{multiplicities:?}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn a_refusing_server_is_a_reject_with_its_message() {
    let url = server("GLASSBOX_TEST_INFLUX_V1_URL");
    let mut writer = InfluxWriter::new(&InfluxConfig {
        enabled: true,
        api: InfluxApi::V1,
        url,
        database: unique("no_such_database"),
        ..InfluxConfig::default()
    })
    .unwrap();
    let err = writer
        .write(&keyed(&records(now_ms() / 60_000 * 60_000, 1)))
        .unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(
        err.message.contains("404") && err.message.contains("database not found"),
        "{}",
        err.message
    );
}

#[test]
fn a_closed_port_and_a_silent_server_are_retried() {
    let batch = keyed(&records(now_ms() / 60_000 * 60_000, 1));
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut writer = InfluxWriter::new(&InfluxConfig {
        enabled: true,
        org: "o".into(),
        url: format!("http://127.0.0.1:{closed}"),
        timeout_ms: 2_000,
        ..InfluxConfig::default()
    })
    .unwrap();
    let err = writer.write(&batch).unwrap_err();
    assert!(err.retryable, "{err:?}");

    // Accepts the connection, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut writer = InfluxWriter::new(&InfluxConfig {
        enabled: true,
        org: "o".into(),
        url: format!("http://127.0.0.1:{port}"),
        timeout_ms: 300,
        ..InfluxConfig::default()
    })
    .unwrap();
    let start = Instant::now();
    let err = writer.write(&batch).unwrap_err();
    assert!(err.retryable, "{err:?}");
    assert!(
        err.message.to_lowercase().contains("timeout"),
        "{}",
        err.message
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(silent);
}

/// A request as the scripted server saw it.
#[derive(Debug)]
struct Seen {
    request_line: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A one-thread HTTP server answering each request with `answer(&request)` = (status, body).
fn scripted_server(
    answer: impl Fn(&Seen) -> (u16, String) + Send + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            loop {
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    break;
                }
                let mut headers = BTreeMap::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (k, v) = line.split_once(':').unwrap();
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
                let length: usize = headers["content-length"].parse().unwrap();
                let mut raw = vec![0; length];
                reader.read_exact(&mut raw).unwrap();
                let body = if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
                    let mut s = String::new();
                    flate2::read::GzDecoder::new(&raw[..])
                        .read_to_string(&mut s)
                        .unwrap();
                    s
                } else {
                    String::from_utf8(raw).unwrap()
                };
                let request = Seen {
                    request_line: request_line.trim_end().to_owned(),
                    headers,
                    body,
                };
                let (status, text) = answer(&request);
                log.lock().unwrap().push(request);
                let response = format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                );
                reader.get_mut().write_all(response.as_bytes()).unwrap();
            }
        }
    });
    (url, seen)
}

#[test]
fn sends_token_gzip_and_ms_precision_and_splits_a_batch_the_server_finds_too_large() {
    // Refuses bodies of more than 12 lines with 413, as InfluxDB does past its size limit.
    let (url, seen) = scripted_server(|r| {
        if r.body.lines().count() > 12 {
            (413, "{\"code\":\"request too large\"}".into())
        } else {
            (204, String::new())
        }
    });
    let records = records(now_ms() / 60_000 * 60_000, 2);
    let mut writer = InfluxWriter::new(&InfluxConfig {
        enabled: true,
        url: format!("{url}/prefix/"),
        org: "my org".into(),
        bucket: "b".into(),
        token: Secret::new("s3cret-token"),
        measurement_prefix: "gb".into(),
        ..InfluxConfig::default()
    })
    .unwrap();
    writer.write(&keyed(&records)).unwrap();

    let seen = seen.lock().unwrap();
    assert!(seen.len() > 2, "{} requests", seen.len());
    let mut written = String::new();
    for r in seen.iter() {
        assert_eq!(
            r.request_line,
            "POST /prefix/api/v2/write?org=my%20org&bucket=b&precision=ms HTTP/1.1"
        );
        assert_eq!(r.headers["authorization"], "Token s3cret-token");
        assert_eq!(r.headers["content-encoding"], "gzip");
        if r.body.lines().count() <= 12 {
            written.push_str(&r.body);
        }
    }
    // Every record's lines arrived exactly once, in order, after the splits.
    let mut expected = String::new();
    for r in &records {
        glassbox::sinks::influx::lines(r, "gb", &mut expected);
    }
    assert_eq!(written, expected);
}

/// A small PRNG (xorshift64*), seeded per run and printed, so a failure can be replayed with
/// `GLASSBOX_FUZZ_SEED`.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = std::env::var("GLASSBOX_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now_ms() ^ u64::from(std::process::id()) << 40);
        eprintln!("GLASSBOX_FUZZ_SEED={seed}");
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Text of 1 to 24 characters, most of them what line protocol treats specially.
    fn hostile_text(&mut self) -> String {
        const CHARS: &[char] = &[
            '\\', '\\', '\\', ',', '=', ' ', '"', '\n', '\r', '\t', '#', '\'', 'a', 'Z', '0', 'é',
            '中', '😀', '＼', '{', '}', '_', '-', '.', '/', '|', '\u{0}', '\u{1b}', '\u{7f}',
            '\u{200b}', '\u{feff}', 'i', '1', 'T', 'F',
        ];
        let len = 1 + self.next() % 24;
        (0..len)
            .map(|_| CHARS[(self.next() % CHARS.len() as u64) as usize])
            .collect()
    }
}

fn influx_json(url: &str, db: &str, q: &str) -> serde_json::Value {
    let mut response = http()
        .get(format!("{url}/query"))
        .query_pairs([("db", db), ("q", q), ("epoch", "ms")])
        .call()
        .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Rows of one InfluxQL SELECT as JSON arrays (columns in the order selected, time first).
fn influx_rows(url: &str, db: &str, q: &str) -> Vec<Vec<serde_json::Value>> {
    let v = influx_json(url, db, q);
    let series = &v["results"][0]["series"];
    let Some(series) = series.as_array() else {
        panic!("{q}: {v}");
    };
    series
        .iter()
        .flat_map(|s| serde_json::from_value::<Vec<Vec<serde_json::Value>>>(s["values"].clone()))
        .flatten()
        .collect()
}

fn hostile_event(rng: &mut Rng, at_ms: u64) -> glassbox_operators::alerts::AlertEvent {
    serde_json::from_value(serde_json::json!({
        "id": rng.hostile_text(), "key": rng.hostile_text(), "kind": "firing",
        "rule": "r", "severity": "page", "labels": {"tenant": rng.hostile_text()},
        "active_at_ms": at_ms, "starts_at_ms": at_ms, "ends_at_ms": null,
        "window": {"view": "v", "start_ms": at_ms - 60_000, "end_ms": at_ms},
        "requests": 1, "terms": [], "exemplars": [],
        "annotations": {"summary": rng.hostile_text()},
    }))
    .unwrap()
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn hostile_text_round_trips_exactly_through_influxdb_and_victoria_metrics() {
    use glassbox::sinks::influx::{stored_string_field, stored_text};
    let (v1, vm) = (
        server("GLASSBOX_TEST_INFLUX_V1_URL"),
        server("GLASSBOX_TEST_VM_URL"),
    );
    let db = unique("glassbox_fuzz");
    let prefix = unique("gbfz");
    influxql(&v1, "", &format!("CREATE DATABASE \"{db}\""));
    let mut rng = Rng::seeded();
    let first = (now_ms() / 60_000 - 2_000) * 60_000;
    // One record per minute, so every point is distinct whatever its text.
    let mut records = records(first, 1);
    records.truncate(1);
    let template = records.pop().unwrap();
    let records: Vec<MetricsRecord> = (0..400u64)
        .map(|i| {
            let mut r = template.clone();
            r.window_start_ms = first + i * 60_000;
            r.window_end_ms = r.window_start_ms + 60_000;
            r.series = BTreeMap::from([
                ("tenant".into(), rng.hostile_text()),
                ("model".into(), rng.hostile_text()),
            ]);
            r
        })
        .collect();
    let events: Vec<_> = (0..400u64)
        .map(|i| hostile_event(&mut rng, first + i * 60_000 + 60_000))
        .collect();
    let config = |api, url: &str| InfluxConfig {
        enabled: true,
        api,
        url: url.to_owned(),
        database: db.clone(),
        org: "glassbox".into(),
        bucket: "test".into(),
        measurement_prefix: prefix.clone(),
        ..InfluxConfig::default()
    };
    let mut to_v1 = InfluxWriter::new(&config(InfluxApi::V1, &v1)).unwrap();
    let mut to_vm = InfluxWriter::new(&config(InfluxApi::V2, &vm)).unwrap();
    to_v1
        .write(&keyed(&records))
        .expect("InfluxDB takes every point");
    to_vm
        .write(&keyed(&records))
        .expect("VictoriaMetrics takes every point");
    let events: Vec<_> = events.into_iter().map(Arc::new).collect();
    Writer::<glassbox_operators::alerts::AlertEvent>::write(&mut to_v1, &events)
        .expect("InfluxDB takes every alert event");
    Writer::<glassbox_operators::alerts::AlertEvent>::write(&mut to_vm, &events)
        .expect("VictoriaMetrics takes every alert event");

    // InfluxDB 1.x: every point, each tag exactly the stored text of the value.
    let want: BTreeMap<u64, (String, String)> = records
        .iter()
        .map(|r| {
            (
                r.window_start_ms,
                (
                    stored_text(&r.series["tenant"]),
                    stored_text(&r.series["model"]),
                ),
            )
        })
        .collect();
    let got: BTreeMap<u64, (String, String)> = influx_rows(
        &v1,
        &db,
        &format!("SELECT requests, tenant, model FROM \"{prefix}_requests\""),
    )
    .into_iter()
    .map(|row| {
        let text = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
        (row[0].as_u64().unwrap(), (text(&row[2]), text(&row[3])))
    })
    .collect();
    assert_eq!(got.len(), want.len(), "InfluxDB kept every point");
    for (t, w) in &want {
        assert_eq!(got.get(t), Some(w), "InfluxDB at {t}");
    }
    let want_events: BTreeMap<u64, [String; 4]> = events
        .iter()
        .map(|e| {
            (
                e.window.end_ms,
                [
                    stored_string_field(&e.id),
                    stored_string_field(&e.key),
                    stored_string_field(&e.annotations["summary"]),
                    stored_text(&e.labels["tenant"]),
                ],
            )
        })
        .collect();
    let got_events: BTreeMap<u64, [String; 4]> = influx_rows(
        &v1,
        &db,
        &format!("SELECT id, \"key\", summary, tenant FROM \"{prefix}_alert_events\""),
    )
    .into_iter()
    .map(|row| {
        let text = |i: usize| row[i].as_str().unwrap().to_owned();
        (
            row[0].as_u64().unwrap(),
            [text(1), text(2), text(3), text(4)],
        )
    })
    .collect();
    assert_eq!(got_events, want_events, "InfluxDB alert events");

    // VictoriaMetrics: every point's labels exactly the stored text, and no point made up
    // (a line break in a string field would have been read as a point of its own).
    let samples = wait_for_vm(&vm, &prefix, records.len(), Duration::from_secs(20));
    let requests = format!("{prefix}_requests_requests");
    let got: BTreeMap<u64, (String, String)> = samples
        .iter()
        .filter(|((name, _), _)| *name == requests)
        .flat_map(|((_, labels), points)| {
            points
                .iter()
                .map(|(t, _)| (*t, (labels["tenant"].clone(), labels["model"].clone())))
        })
        .collect();
    assert_eq!(got.len(), want.len(), "VictoriaMetrics kept every point");
    for (t, w) in &want {
        assert_eq!(got.get(t), Some(w), "VictoriaMetrics at {t}");
    }
    let names: BTreeSet<&str> = samples.keys().map(|(n, _)| n.as_str()).collect();
    for name in &names {
        let measurement_known = SUFFIXES
            .iter()
            .chain(&["alert_events"])
            .any(|s| name.starts_with(&format!("{prefix}_{s}_")));
        assert!(measurement_known, "a made-up series: {name}");
    }
    let alert_samples: usize = samples
        .iter()
        .filter(|((n, _), _)| n.starts_with(&format!("{prefix}_alert_events_")))
        .map(|(_, p)| p.len())
        .sum();
    // VictoriaMetrics keeps a string field as a sample too: id, key, summary, requests and
    // active_at_ms per event, and nothing more.
    assert_eq!(alert_samples, 5 * events.len(), "five samples per event");
    influxql(&v1, "", &format!("DROP DATABASE \"{db}\""));
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn only_the_record_influxdb_refuses_is_refused_the_rest_of_its_batch_is_written() {
    let url = server("GLASSBOX_TEST_INFLUX_V1_URL");
    let db = unique("glassbox_bisect");
    let prefix = unique("gbbs");
    influxql(&url, "", &format!("CREATE DATABASE \"{db}\""));
    let first = (now_ms() / 60_000 - 1_000) * 60_000;
    let mut template = records(first, 1);
    template.truncate(1);
    let template = template.pop().unwrap();
    // InfluxDB refuses a series key over 64 KB: one record has a 70 KB tenant.
    let bad = 137;
    let records: Vec<MetricsRecord> = (0..300u64)
        .map(|i| {
            let mut r = template.clone();
            r.window_start_ms = first + i * 60_000;
            r.window_end_ms = r.window_start_ms + 60_000;
            if i == bad as u64 {
                r.series.insert("tenant".into(), "t".repeat(70_000));
            }
            r
        })
        .collect();
    let mut writer = InfluxWriter::new(&InfluxConfig {
        enabled: true,
        api: InfluxApi::V1,
        url: url.clone(),
        database: db.clone(),
        measurement_prefix: prefix.clone(),
        ..InfluxConfig::default()
    })
    .unwrap();
    let err = writer.write(&keyed(&records)).unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert_eq!(err.refused, Some(vec![bad]), "{}", err.message);
    assert!(err.message.contains("400"), "{}", err.message);
    let count = influxql(
        &url,
        &db,
        &format!("SELECT count(requests) FROM \"{prefix}_requests\""),
    );
    assert_eq!(count[1][3], (records.len() - 1).to_string(), "{count:?}");
    influxql(&url, "", &format!("DROP DATABASE \"{db}\""));
}
