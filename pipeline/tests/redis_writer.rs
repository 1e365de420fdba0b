//! The Redis writer against real servers: the test stack's (`GLASSBOX_TEST_REDIS_URL`, set by
//! `integration/scripts/test-all.sh` or by sourcing `stack.sh`'s env file), and private
//! `redis-server` processes started here for the outage and AUTH tests. Every test writes
//! under a key prefix and channel of its own.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glassbox::records::metrics::{Distribution, MetricsRecord, Tokens};
use glassbox::sinks::Keyed;
use glassbox::sinks::redis::{RedisConfig, RedisWriter};
use glassbox::sinks::threaded::Writer;
use redis::Value;

/// A minute-aligned window end, and the one after it.
const W1: u64 = 1_700_000_040_000;
const W2: u64 = W1 + 60_000;
const A: &str = "provider=openai,model=gpt-4o,tenant=acme,feature=search";
const B: &str = "provider=anthropic,model=claude-sonnet,tenant=acme,feature=chat";
const C: &str = "provider=openai,model=gpt-4o-mini,tenant=beta,feature=search";

fn stack_url() -> String {
    std::env::var("GLASSBOX_TEST_REDIS_URL").expect(
        "GLASSBOX_TEST_REDIS_URL is not set: run the tests with ./integration/scripts/test-all.sh, \
         or start redis with `integration/scripts/stack.sh start redis` and source its env file",
    )
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("gbtest-{name}-{}-{nanos}", std::process::id())
}

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        enabled: true,
        url: url.to_owned(),
        key_prefix: prefix.to_owned(),
        channel: format!("{prefix}:windows"),
        timeout_ms: 2_000,
        ..RedisConfig::default()
    }
}

fn connect(url: &str) -> redis::Connection {
    let con = redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    con
}

/// A window record of `series`: `requests` calls, a quarter of them errors, 100 input and
/// 20 output tokens each; latency and TTFT when `latency`.
fn keyed(view: &str, series: &str, end_ms: u64, requests: i64, latency: bool) -> Arc<Keyed> {
    let minutes: i64 = if view == "sliding_5m" { 5 } else { 1 };
    let errors = requests / 4;
    let (input, output) = (requests * 100, requests * 20);
    let dist = |p50: f64, p95: f64| Distribution {
        count: requests,
        mean: 250.5,
        min: 20.0,
        max: 900.0,
        p50,
        p90: 600.0,
        p95,
        p99: 880.125,
    };
    Arc::new(Keyed {
        key: series.to_owned(),
        record: MetricsRecord {
            schema_version: 1,
            view: view.to_owned(),
            window_start_ms: end_ms - minutes as u64 * 60_000,
            window_end_ms: end_ms,
            series: series
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
            requests,
            errors,
            errors_by_type: [("rate_limit".to_owned(), errors)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect(),
            truncations: 0,
            error_rate: errors as f64 / requests as f64,
            truncation_rate: 0.0,
            rpm: requests as f64 / minutes as f64,
            tpm: (input + output) as f64 / minutes as f64,
            tokens: Tokens {
                input,
                output,
                cache_read: requests * 10,
                cache_write: 0,
                reasoning: requests * 2,
            },
            latency_ms: latency.then(|| dist(210.25, 700.5)),
            ttft_ms: latency.then(|| dist(40.0, 95.5)),
            tpot_ms: None,
            sketch_relative_error: 0.01,
            cost: None,
        },
    })
}

/// Window 1 and window 2 of series A, B, C (C reports latency only in window 1).
fn window(end: u64) -> Vec<Arc<Keyed>> {
    let (a, b, c) = if end == W1 { (30, 12, 5) } else { (40, 8, 7) };
    vec![
        keyed("tumbling_1m", A, end, a, true),
        keyed("tumbling_1m", B, end, b, false),
        keyed("tumbling_1m", C, end, c, end == W1),
    ]
}

fn hgetall(con: &mut redis::Connection, key: &str) -> BTreeMap<String, String> {
    redis::cmd("HGETALL").arg(key).query(con).unwrap()
}

fn zrange(con: &mut redis::Connection, key: &str) -> Vec<(String, f64)> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(con)
        .unwrap()
}

fn get(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

fn ttl(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(con).unwrap()
}

fn keys(con: &mut redis::Connection, pattern: &str) -> Vec<String> {
    let mut cursor = 0u64;
    let mut found = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(con)
            .unwrap();
        found.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    found.sort();
    found.dedup();
    found
}

/// What a key holds, for comparing whole states.
#[derive(Debug, PartialEq)]
enum Content {
    Hash(BTreeMap<String, String>),
    ZSet(Vec<(String, String)>),
    Str(String),
}

/// Every key under `prefix` (named without it) and its content.
fn snapshot(con: &mut redis::Connection, prefix: &str) -> BTreeMap<String, Content> {
    keys(con, &format!("{prefix}:*"))
        .into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(con).unwrap();
            let content = match kind.as_str() {
                "hash" => Content::Hash(hgetall(con, &key)),
                "zset" => Content::ZSet(
                    redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query(con)
                        .unwrap(),
                ),
                "string" => Content::Str(get(con, &key).unwrap()),
                other => panic!("unexpected type {other} of {key}"),
            };
            (key[prefix.len()..].to_owned(), content)
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn a_batch_of_two_windows_reads_back_exactly() {
    let url = stack_url();
    let p = unique("exact");
    let mut writer = RedisWriter::new(&config(&url, &p)).unwrap();
    // Newer and older windows interleaved in one batch, newer first for A: `latest` must
    // still hold window 2 of every series.
    let (w1, w2) = (window(W1), window(W2));
    let sliding = keyed("sliding_5m", A, W2, 150, false);
    let batch = vec![
        w2[0].clone(),
        w1[0].clone(),
        w1[1].clone(),
        w2[1].clone(),
        w1[2].clone(),
        w2[2].clone(),
        sliding.clone(),
    ];
    writer.write(&batch).unwrap();

    let mut con = connect(&url);
    let s = |v: &str| v.to_owned();
    let expected_a: BTreeMap<String, String> = [
        ("window_start_ms", s("1700000040000")),
        ("window_end_ms", s("1700000100000")),
        ("requests", s("40")),
        ("errors", s("10")),
        ("error_rate", s("0.25")),
        ("truncation_rate", s("0")),
        ("rpm", s("40")),
        ("tpm", s("4800")),
        ("tokens_input", s("4000")),
        ("tokens_output", s("800")),
        ("tokens_cache_read", s("400")),
        ("tokens_cache_write", s("0")),
        ("tokens_reasoning", s("80")),
        ("latency_p50_ms", s("210.25")),
        ("latency_p95_ms", s("700.5")),
        ("latency_p99_ms", s("880.125")),
        ("ttft_p95_ms", s("95.5")),
        ("json", serde_json::to_string(&w2[0].record).unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(
        hgetall(&mut con, &format!("{p}:latest:tumbling_1m:{A}")),
        expected_a
    );

    let b = hgetall(&mut con, &format!("{p}:latest:tumbling_1m:{B}"));
    assert_eq!(
        (b["window_end_ms"].as_str(), b["requests"].as_str()),
        ("1700000100000", "8")
    );
    assert!(!b.contains_key("latency_p50_ms"), "{b:?}");
    // C had latency in window 1 only: window 2 replaced the hash, so no latency field is left.
    let c = hgetall(&mut con, &format!("{p}:latest:tumbling_1m:{C}"));
    assert_eq!(
        (c["window_end_ms"].as_str(), c["requests"].as_str()),
        ("1700000100000", "7")
    );
    assert_eq!(
        c.keys()
            .filter(|k| k.contains("latency") || k.contains("ttft"))
            .count(),
        0,
        "{c:?}"
    );
    assert_eq!(c.len(), 14, "13 plain fields and json: {c:?}");

    let sl = hgetall(&mut con, &format!("{p}:latest:sliding_5m:{A}"));
    assert_eq!(
        (
            sl["window_start_ms"].as_str(),
            sl["rpm"].as_str(),
            sl["tpm"].as_str()
        ),
        ("1699999800000", "30", "3600")
    );

    assert_eq!(
        zrange(&mut con, &format!("{p}:rpm:tumbling_1m:{W1}")),
        vec![(s(C), 5.0), (s(B), 12.0), (s(A), 30.0)]
    );
    assert_eq!(
        zrange(&mut con, &format!("{p}:rpm:tumbling_1m:{W2}")),
        vec![(s(C), 7.0), (s(B), 8.0), (s(A), 40.0)]
    );
    assert_eq!(
        zrange(&mut con, &format!("{p}:rpm:sliding_5m:{W2}")),
        vec![(s(A), 30.0)]
    );
    // The reader's top-N recipe: GET the last window, then ZREVRANGE it.
    let last = get(&mut con, &format!("{p}:last_window:tumbling_1m")).unwrap();
    assert_eq!(last, W2.to_string());
    let top: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
        .arg(format!("{p}:rpm:tumbling_1m:{last}"))
        .arg(0)
        .arg(1)
        .arg("WITHSCORES")
        .query(&mut con)
        .unwrap();
    assert_eq!(top, vec![(s(A), 40.0), (s(B), 8.0)]);
    assert_eq!(
        get(&mut con, &format!("{p}:last_window:sliding_5m")),
        Some(W2.to_string())
    );
    assert_eq!(keys(&mut con, &format!("{p}:latest:*")).len(), 4);
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn replays_neither_regress_nor_inflate_and_keys_expire() {
    let url = stack_url();
    let mut con = connect(&url);

    let once = unique("once");
    let mut writer = RedisWriter::new(&config(&url, &once)).unwrap();
    writer.write(&window(W1)).unwrap();
    writer.write(&window(W2)).unwrap();

    // The newer window, the older one again, the newer again, then both in one batch.
    let replayed = unique("replayed");
    let mut writer = RedisWriter::new(&config(&url, &replayed)).unwrap();
    writer.write(&window(W2)).unwrap();
    writer.write(&window(W1)).unwrap();
    writer.write(&window(W2)).unwrap();
    writer.write(&[window(W1), window(W2)].concat()).unwrap();

    let expected = snapshot(&mut con, &once);
    assert_eq!(
        expected.len(),
        3 + 2 + 1,
        "3 latest, 2 top-N sets, 1 last_window: {expected:?}"
    );
    assert_eq!(snapshot(&mut con, &replayed), expected);

    let defaults = RedisConfig::default();
    for series in [A, B, C] {
        let t = ttl(&mut con, &format!("{replayed}:latest:tumbling_1m:{series}"));
        assert!(t > 0 && t <= defaults.ttl_secs as i64, "latest TTL {t}");
    }
    for key in [
        format!("{replayed}:rpm:tumbling_1m:{W1}"),
        format!("{replayed}:rpm:tumbling_1m:{W2}"),
        format!("{replayed}:last_window:tumbling_1m"),
    ] {
        let t = ttl(&mut con, &key);
        assert!(
            t > 0 && t <= defaults.top_n_ttl_secs as i64,
            "{key}: TTL {t}"
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn subscribers_receive_exactly_the_records_written() {
    let url = stack_url();
    let p = unique("pubsub");
    let cfg = config(&url, &p);
    let mut writer = RedisWriter::new(&cfg).unwrap();
    let mut sub = connect(&url);
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe(&cfg.channel).unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    let batch = [window(W1), vec![keyed("sliding_5m", B, W1, 60, true)]].concat();
    // Byte for byte the metrics topic's JSON (compared as text: a parsed f64 may lose its
    // last bit without serde_json's float_roundtrip).
    let expected: Vec<String> = batch
        .iter()
        .map(|k| serde_json::to_string(&k.record).unwrap())
        .collect();
    for attempt in 0..2 {
        // The second write is a replay: published again, identical.
        writer.write(&batch).unwrap();
        let got: Vec<String> = (0..batch.len())
            .map(|_| {
                let msg = pubsub.get_message().unwrap();
                assert_eq!(msg.get_channel_name(), cfg.channel);
                msg.get_payload::<String>().unwrap()
            })
            .collect();
        assert_eq!(got, expected, "attempt {attempt}");
    }
    pubsub
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let extra = pubsub.get_message();
    assert!(
        extra.is_err(),
        "nothing more is published: {:?}",
        extra.map(|m| m.get_payload_bytes().to_vec())
    );
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn a_key_of_the_wrong_type_rejects_the_batch() {
    let url = stack_url();
    let p = unique("wrongtype");
    let mut con = connect(&url);
    let _: () = redis::cmd("SET")
        .arg(format!("{p}:latest:tumbling_1m:{B}"))
        .arg("not a hash")
        .query(&mut con)
        .unwrap();
    let mut writer = RedisWriter::new(&config(&url, &p)).unwrap();
    let err = writer.write(&window(W1)).unwrap_err();
    assert!(
        !err.retryable && err.message.contains("WRONGTYPE"),
        "{err:?}"
    );
}

/// A private `redis-server`, killed when dropped.
struct Server {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
}

impl Server {
    fn start(port: u16, args: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            port,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (integration/scripts/install.sh installs it)");
        self.child = Some(child);
        // Ready once it answers, even if only to say it wants a password.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let client = redis::Client::open(self.url()).unwrap();
            if let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) {
                match redis::cmd("PING").query::<Value>(&mut con) {
                    Ok(_) => return,
                    Err(e) if e.code().is_some() => return,
                    Err(_) => {}
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn the_writer_reconnects_after_an_outage() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let p = unique("outage");
    let mut writer = RedisWriter::new(&config(&url, &p)).unwrap();

    // Nothing listens yet.
    let err = writer.write(&window(W1)).unwrap_err();
    assert!(
        err.retryable && err.message.contains(&format!("127.0.0.1:{port}")),
        "{err:?}"
    );

    let mut server = Server::start(port, &[]);
    writer.write(&window(W1)).unwrap();
    server.kill();
    let err = writer.write(&window(W2)).unwrap_err();
    assert!(err.retryable, "{err:?}");

    // Back (empty: no persistence): the same writer reconnects and reloads its script.
    server.restart();
    writer.write(&window(W1)).unwrap();
    let mut con = connect(&server.url());
    assert_eq!(
        hgetall(&mut con, &format!("{p}:latest:tumbling_1m:{A}"))["window_end_ms"],
        W1.to_string()
    );

    // The server forgets the script while connected: the writer falls back to EVAL.
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
    writer.write(&window(W2)).unwrap();
    writer.write(&window(W1)).unwrap();
    assert_eq!(
        hgetall(&mut con, &format!("{p}:latest:tumbling_1m:{A}"))["window_end_ms"],
        W2.to_string()
    );
    assert_eq!(
        get(&mut con, &format!("{p}:last_window:tumbling_1m")),
        Some(W2.to_string())
    );
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn authentication_works_and_never_reveals_the_password() {
    // Edition 2024 makes `set_var` unsafe and the workspace forbids unsafe code, so the
    // `env:` reference points at a variable every run of these tests has: the stack's URL.
    let password = stack_url();
    let server = Server::start(free_port(), &["--requirepass", &password]);
    let p = unique("auth");

    let mut by_env = config(&server.url(), &p);
    by_env.password = Some("env:GLASSBOX_TEST_REDIS_URL".into());
    RedisWriter::new(&by_env)
        .unwrap()
        .write(&window(W1))
        .unwrap();

    let file = std::env::temp_dir().join(format!("{p}-password"));
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let mut by_file = config(&server.url(), &p);
    by_file.username = Some("default".into());
    by_file.password = Some(format!("file:{}", file.display()));
    let written = RedisWriter::new(&by_file).unwrap().write(&window(W2));
    std::fs::remove_file(&file).unwrap();
    written.unwrap();

    let wrong = format!("not-the-password-{p}");
    let mut bad = config(&server.url(), &p);
    bad.password = Some(wrong.clone());
    let err = RedisWriter::new(&bad)
        .unwrap()
        .write(&window(W1))
        .unwrap_err();
    assert!(
        err.retryable && err.message.contains("authentication"),
        "{err:?}"
    );
    assert!(
        !err.message.contains(&wrong) && !err.message.contains(&password),
        "{err:?}"
    );

    let none = config(&server.url(), &p);
    let err = RedisWriter::new(&none)
        .unwrap()
        .write(&window(W1))
        .unwrap_err();
    assert!(
        err.retryable && err.message.contains("authentication"),
        "{err:?}"
    );
}
