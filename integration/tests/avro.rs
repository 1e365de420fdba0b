//! Avro spans through a real schema registry (Apicurio Registry 3.0.9, its Confluent-compatible
//! API, started by `stack.sh`) and Apache Kafka: 50k spans in the Confluent wire format written
//! with three registered versions of the span schema (the shipped one, an older one without an
//! optional field, a newer one with an added optional field), corrupt bodies and unknown schema
//! ids among them, and a registry outage of 12 s in the middle: while glassbox cannot reach the
//! registry, the records whose schema it has not seen yet wait (nothing is dead-lettered for
//! it), and afterwards every window equals the ground truth.
//!
//! The outage is made by a TCP relay between glassbox and the registry that the test cuts and
//! restores; the registry itself is the real one.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use glassbox::config::registry::RegistryConfig;
use glassbox::kafka::source::now_ms;
use glassbox::run::{Handles, run};
use glassbox_integration::*;
use glassbox_schemas::{SPAN_AVSC, confluent_framed, native_to_avro};
use glassbox_support::loadgen::{GenSpan, Generator};

const SPANS: usize = 50_000;
/// Spans written before the outage; the rest use a schema version glassbox has not seen.
const BEFORE: usize = 30_000;
const OUTAGE: Duration = Duration::from_secs(12);

/// A TCP relay to `target` that can be cut (every connection closed, new ones refused at once)
/// and restored.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
}

fn relay(target: String) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            if !flag.load(Ordering::SeqCst) {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let flag = flag.clone();
                std::thread::spawn(move || {
                    from.set_read_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    let mut buf = [0u8; 16 * 1024];
                    while flag.load(Ordering::SeqCst) {
                        match from.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => break,
                        }
                    }
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                });
            }
        }
    });
    Relay { port, up }
}

/// The shipped span schema with `edit` applied to its field list.
fn schema_version(edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> String {
    let mut schema: serde_json::Value = serde_json::from_str(SPAN_AVSC).unwrap();
    edit(schema["fields"].as_array_mut().unwrap());
    schema.to_string()
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn avro_spans_of_three_schema_versions_count_exactly_through_a_registry_outage() {
    let registry_url =
        std::env::var("GLASSBOX_TEST_REGISTRY_URL").expect("GLASSBOX_TEST_REGISTRY_URL is not set");
    let (authority, path) = registry_url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .expect("http://host:port/path");
    let direct = RegistryConfig {
        url: registry_url.clone(),
        ..RegistryConfig::default()
    };
    let relay = relay(authority.to_owned());

    // Three versions of the schema under one subject: older (no `name`), shipped, newer
    // (`region` added). Ids are the registry's.
    let subject = unique("avro-spans-value");
    let older = schema_version(|fields| fields.retain(|f| f["name"] != "name"));
    let newer = schema_version(|fields| {
        fields.push(
            serde_json::json!({"name": "region", "type": ["null", "string"], "default": null}),
        )
    });
    let register = |schema: &str| glassbox::registry::register(&direct, &subject, schema).unwrap();
    let (older_id, shipped_id) = (register(&older), register(SPAN_AVSC));
    assert_ne!(older_id, shipped_id);
    let parse = |s: &str| apache_avro::Schema::parse_str(s).unwrap();
    let (older_schema, shipped_schema, newer_schema) =
        (parse(&older), parse(SPAN_AVSC), parse(&newer));

    let input = unique("avro-in");
    create_topic(&input, 4);
    let start_ms = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    let mut generator = Generator::new(11, start_ms, 100.0);
    let spans: Vec<GenSpan> = (0..SPANS).map(|_| generator.next_span()).collect();
    let mut before = Vec::new();
    let mut after_spans = Vec::new();
    let mut want_dlq: BTreeMap<String, u64> = BTreeMap::new();
    for (i, s) in spans.iter().enumerate() {
        let json = s.to_json();
        if i < BEFORE {
            let (id, schema) = if i % 2 == 0 {
                (older_id, &older_schema)
            } else {
                (shipped_id, &shipped_schema)
            };
            let body = native_to_avro(&json, schema).unwrap();
            before.push((s.trace_id.clone(), confluent_framed(id, &body)));
            if i % 1_000 == 0 {
                // A corrupt body under a known id, and a body under an id nobody registered.
                before.push((
                    format!("bad-{i}"),
                    confluent_framed(shipped_id, &body[..body.len() / 3]),
                ));
                before.push((format!("unknown-{i}"), confluent_framed(987_654_321, &body)));
                *want_dlq.entry("invalid_avro".into()).or_default() += 1;
                *want_dlq.entry("unknown_schema".into()).or_default() += 1;
            }
        } else {
            after_spans.push(s);
        }
    }
    produce(&input, &before);

    let mut config = pipeline_config("avro", &input);
    config.registry.url = format!("http://127.0.0.1:{}/{path}", relay.port);
    config.registry.retry_initial_ms = 100;
    config.registry.retry_max_ms = 1_000;
    config.registry.timeout_ms = 2_000;
    config.source.idle_timeout_ms = 5_000;
    let handles = Handles::default();
    let pipeline = {
        let (config, handles) = (config.clone(), handles.clone());
        std::thread::spawn(move || run(&config, handles))
    };
    let consumed = || handles.counters.consumed.load(Ordering::Relaxed);
    wait_for(
        "the records written before the outage",
        Duration::from_secs(300),
        || consumed() >= before.len() as u64,
    );

    // The outage: glassbox cannot reach the registry while records of a version it has not
    // seen arrive.
    relay.up.store(false, Ordering::SeqCst);
    let newer_id = register(&newer);
    let after: Vec<(String, Vec<u8>)> = after_spans
        .iter()
        .map(|s| {
            let body = native_to_avro(&s.to_json(), &newer_schema).unwrap();
            (s.trace_id.clone(), confluent_framed(newer_id, &body))
        })
        .collect();
    produce(&input, &after);
    let dead_before = handles.counters.deadlettered.load(Ordering::Relaxed);
    std::thread::sleep(OUTAGE);
    assert_eq!(
        consumed(),
        before.len() as u64,
        "records whose schema cannot be fetched wait"
    );
    assert_eq!(
        handles.counters.deadlettered.load(Ordering::Relaxed),
        dead_before,
        "nothing is dead-lettered because the registry is down"
    );
    relay.up.store(true, Ordering::SeqCst);
    let total = (before.len() + after.len()) as u64;
    wait_for(
        "the records written during the outage",
        Duration::from_secs(120),
        || consumed() >= total,
    );
    handles.drain.store(true, Ordering::Relaxed);
    pipeline.join().unwrap().expect("pipeline ran");

    let counters = handles.counters.snapshot();
    assert_eq!(counters["consumed"], total, "{counters:?}");
    assert_eq!(counters["late"], 0, "{counters:?}");
    let got_dlq: BTreeMap<String, u64> = handles
        .counters
        .dead_letter_reasons()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(got_dlq, want_dlq);
    let dlq = consume_all(&config.kafka.deadletter_topic, Duration::from_secs(3));
    assert_eq!(dlq.len() as u64, want_dlq.values().sum::<u64>());
    for r in &dlq {
        assert_eq!(r.headers["glassbox.format"], "avro_registry");
        let key = String::from_utf8_lossy(&r.key);
        let want = if key.starts_with("bad-") {
            "invalid_avro"
        } else {
            "unknown_schema"
        };
        assert_eq!(r.headers["glassbox.reason"], want, "{key}");
    }
    let metrics = consume_all(&config.kafka.metrics_topic, Duration::from_secs(3));
    assert_metrics_match(&metrics, ground_truth(&spans, &config.metrics.views()));
}
