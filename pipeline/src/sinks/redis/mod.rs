//! The Redis sink: live per-series state that applications and on-call tools read without
//! InfluxDB.
//!
//! # Data model
//! `{prefix}` is `redis.key_prefix` (default `glassbox`), `{view}` the view name (`tumbling_1m`,
//! `sliding_5m`, …), `{series}` the series key, as in the Kafka key:
//! `provider=openai,model=gpt-4o,tenant=acme,feature=search`.
//!
//! | key | type | content | TTL |
//! |---|---|---|---|
//! | `{prefix}:latest:{view}:{series}` | hash | the latest closed window of the series in the view (fields below) | `redis.ttl_secs` |
//! | `{prefix}:rpm:{view}:{window_end_ms}` | sorted set | member: series key, score: its requests per minute in that window | `redis.top_n_ttl_secs` |
//! | `{prefix}:last_window:{view}` | string | the largest `window_end_ms` written for the view | `redis.top_n_ttl_secs` |
//! | channel `redis.channel` (`glassbox:windows`) | pub/sub | one message per window written: the record as JSON | – |
//!
//! Fields of the `latest` hash (numbers in decimal; integers without a fraction, rates and
//! durations as the shortest decimal that round-trips):
//!
//! | field | content |
//! |---|---|
//! | `window_start_ms`, `window_end_ms` | the window, ms since the epoch (start inclusive, end exclusive) |
//! | `requests`, `errors` | model calls started in the window, and those that ended in error |
//! | `error_rate`, `truncation_rate` | errors / requests, truncations / requests |
//! | `rpm`, `tpm` | requests and (input + output) tokens per minute |
//! | `tokens_input`, `tokens_output`, `tokens_cache_read`, `tokens_cache_write`, `tokens_reasoning` | token totals |
//! | `latency_p50_ms`, `latency_p95_ms`, `latency_p99_ms` | end-to-end latency percentiles (±1%) |
//! | `ttft_p95_ms`, `tpot_p95_ms` | time to first token, time per output token, 95th percentile (±1%) |
//! | `json` | the whole metrics record, as on the metrics topic |
//!
//! A distribution with no values in the window (e.g. no call reported a first token) has no
//! fields: they are absent from the hash, never `0`.
//!
//! # Reading it
//! - Every series' current state: `SCAN 0 MATCH {prefix}:latest:* COUNT 1000`, then `HGETALL`.
//! - Top N series of a view by RPM: `GET {prefix}:last_window:{view}` gives `W`, then
//!   `ZREVRANGE {prefix}:rpm:{view}:W 0 N-1 WITHSCORES`. A window's series may span several
//!   write batches, so the newest window's set can be incomplete for a moment (well under a
//!   second); a reader that needs a complete ranking reads the window before it.
//! - Live feed: `SUBSCRIBE {channel}`; each message is one record (the `json` field's content).
//!
//! # Replays and ordering
//! After a crash, glassbox re-emits every window not yet acknowledged by all sinks (see
//! [`super`]), so a window can be written twice, and an older window can arrive after a newer
//! one (another worker, a replay). Every write therefore *sets* the values of one
//! (view, series, window), never increments: writing it again changes nothing. The `latest`
//! hash and `last_window` never go backwards: a Lua script compares the incoming
//! `window_end_ms` with the stored one and writes only when it is at least as new. Pub/sub
//! has no such guard: a replay publishes the window again, so a subscriber must treat
//! (view, series, `window_end_ms`) as the identity of a message.
//!
//! # Writes
//! One round trip per batch: a pipeline (not a transaction) of the script call (`EVALSHA`),
//! `ZADD` per record, one `EXPIRE` per top-N set, and finally the `PUBLISH`es, so that a
//! subscriber woken by a message already finds the state it announces. The script is loaded
//! once per connection; if the server has lost it (`SCRIPT FLUSH`), the calls that answered
//! `NOSCRIPT` are sent again with `EVAL`.
//!
//! Faults: a connection or I/O error drops the connection and is retried (the threaded sink
//! backs off; the next write reconnects). Authentication failures (`NOAUTH`, `WRONGPASS`,
//! `NOPERM`) are retried too, since a password rotation may fix them. Server states that pass
//! (`LOADING`, `BUSY`, `OOM`, `READONLY`, `MISCONF`, …) are retried; any other refusal (e.g.
//! `WRONGTYPE`: one of our keys holds another type) rejects the batch, which is dead-lettered.
//! Messages never contain the password.

pub mod spend;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ::redis::{
    Client, Cmd, Connection, ConnectionLike, ErrorKind, IntoConnectionInfo, Pipeline, RedisError,
    RedisResult, Script, Value,
};

pub use crate::config::redis::RedisConfig;
use crate::records::metrics::MetricsRecord;
use crate::sinks::Keyed;
use crate::sinks::threaded::{WriteError, Writer};

/// Resolves `env:NAME`, `file:/path` or a literal; the error names the field, never the value.
fn resolve_password(value: &str) -> Result<String, String> {
    crate::config::secret::resolve("redis.password", value)
}

/// Writes the latest window of a series unless a newer one is stored, and raises
/// `last_window` to the incoming window end. KEYS: latest hash, last_window.
/// ARGV: window_end_ms, ttl_secs, top_n_ttl_secs, then field, value, field, value, ….
/// Returns 1 when the hash was written, 0 when a newer window was kept.
const LATEST_SCRIPT: &str = r"
local incoming = tonumber(ARGV[1])
local stored = tonumber(redis.call('HGET', KEYS[1], 'window_end_ms'))
local written = 0
if stored == nil or incoming >= stored then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  written = 1
end
local last = tonumber(redis.call('GET', KEYS[2]))
if last == nil or incoming >= last then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
end
return written
";

/// The key of a series' `latest` hash.
pub fn latest_key(prefix: &str, view: &str, series: &str) -> String {
    format!("{prefix}:latest:{view}:{series}")
}

/// The key of a window's top-N sorted set.
pub fn rpm_key(prefix: &str, view: &str, window_end_ms: u64) -> String {
    format!("{prefix}:rpm:{view}:{window_end_ms}")
}

/// The key holding a view's latest window end.
pub fn last_window_key(prefix: &str, view: &str) -> String {
    format!("{prefix}:last_window:{view}")
}

/// A number as written to Redis: the shortest decimal that reads back as the same `f64`
/// (`1`, `0.25`, `1234.5`), never an exponent.
fn number(v: f64) -> String {
    v.to_string()
}

/// The `latest` hash of `record`, in the module doc's order, `json` last. Fields of an absent
/// distribution are left out.
pub fn latest_fields(record: &MetricsRecord) -> Vec<(&'static str, String)> {
    let r = record;
    let mut fields = vec![
        ("window_start_ms", r.window_start_ms.to_string()),
        ("window_end_ms", r.window_end_ms.to_string()),
        ("requests", r.requests.to_string()),
        ("errors", r.errors.to_string()),
        ("error_rate", number(r.error_rate)),
        ("truncation_rate", number(r.truncation_rate)),
        ("rpm", number(r.rpm)),
        ("tpm", number(r.tpm)),
        ("tokens_input", r.tokens.input.to_string()),
        ("tokens_output", r.tokens.output.to_string()),
        ("tokens_cache_read", r.tokens.cache_read.to_string()),
        ("tokens_cache_write", r.tokens.cache_write.to_string()),
        ("tokens_reasoning", r.tokens.reasoning.to_string()),
    ];
    if let Some(d) = &r.latency_ms {
        fields.push(("latency_p50_ms", number(d.p50)));
        fields.push(("latency_p95_ms", number(d.p95)));
        fields.push(("latency_p99_ms", number(d.p99)));
    }
    if let Some(d) = &r.ttft_ms {
        fields.push(("ttft_p95_ms", number(d.p95)));
    }
    if let Some(d) = &r.tpot_ms {
        fields.push(("tpot_p95_ms", number(d.p95)));
    }
    fields.push((
        "json",
        serde_json::to_string(r).expect("metrics records serialize"),
    ));
    fields
}

/// Whether a server error code can go away by itself (or by an operator's fix elsewhere).
fn transient_code(code: &str) -> bool {
    matches!(
        code,
        "LOADING"
            | "BUSY"
            | "TRYAGAIN"
            | "MASTERDOWN"
            | "CLUSTERDOWN"
            | "READONLY"
            | "OOM"
            | "MISCONF"
            | "NOREPLICAS"
            | "NOSCRIPT"
    )
}

/// Whether a server error code says our credentials or permissions are wrong.
fn auth_code(code: &str) -> bool {
    matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM")
}

/// Writes window records to Redis: see the module doc for the keys and their guarantees.
pub struct RedisWriter {
    client: Client,
    /// The open connection; `None` after an I/O error until the next write reconnects.
    connection: Option<Connection>,
    timeout: Duration,
    /// `host:port`, for messages (never the URL, which could hold credentials).
    target: String,
    /// Only to scrub it from messages, should a server or library ever echo it.
    password: Option<String>,
    prefix: String,
    channel: String,
    ttl_secs: u64,
    top_n_ttl_secs: u64,
    script: Script,
    /// Live spend and budgets (`cost.enabled`), shared with the other workers' writers.
    spend: Option<spend::SharedLedger>,
}

impl RedisWriter {
    /// A writer for `config`, whose password reference is resolved now. Does not connect: the
    /// first write does, so an unreachable server at start is retried like any outage.
    pub fn new(config: &RedisConfig) -> Result<Self, String> {
        let info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("`redis.url`: {e}"))?;
        let password = config
            .password
            .as_deref()
            .map(resolve_password)
            .transpose()?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &config.username {
            settings = settings.set_username(user);
        }
        if let Some(p) = &password {
            settings = settings.set_password(p);
        }
        let target = info.addr().to_string();
        if matches!(info.addr(), ::redis::ConnectionAddr::TcpTls { .. }) {
            // rustls needs a process-wide crypto provider when more than one is compiled in;
            // an `Err` means one is installed already, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = Client::open(info.set_redis_settings(settings))
            .map_err(|e| format!("`redis.url`: {e}"))?;
        Ok(Self {
            client,
            connection: None,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            target,
            password: password.filter(|p| !p.is_empty()),
            prefix: config.key_prefix.clone(),
            channel: config.channel.clone(),
            ttl_secs: config.ttl_secs,
            top_n_ttl_secs: config.top_n_ttl_secs,
            script: Script::new(LATEST_SCRIPT),
            spend: None,
        })
    }

    /// This writer also keeps the live spend `ledger` (see [`super::spend`]).
    pub fn with_spend(mut self, ledger: spend::SharedLedger) -> Self {
        self.spend = Some(ledger);
        self
    }

    /// Runs `f` on the spend ledger with this writer's connection.
    fn on_ledger(
        &mut self,
        f: impl FnOnce(&mut spend::SpendLedger, &mut Connection) -> RedisResult<()>,
    ) -> Result<(), WriteError> {
        let Some(ledger) = self.spend.clone() else {
            return Ok(());
        };
        let result = {
            let con = self.connection()?;
            let mut ledger = ledger.lock().expect("spend ledger lock");
            f(&mut ledger, con)
        };
        result.map_err(|e| {
            if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.code().is_none()
            {
                self.connection_error(&e)
            } else {
                self.server_error(&e)
            }
        })
    }

    /// `message` with the password, should it ever appear, replaced.
    fn scrub(&self, message: String) -> String {
        match &self.password {
            Some(p) => message.replace(p.as_str(), "<redacted>"),
            None => message,
        }
    }

    fn auth_error(&self, e: &RedisError) -> WriteError {
        WriteError::retry(self.scrub(format!(
            "redis {}: authentication failed (check redis.username and redis.password; \
             retrying, as a rotated password may fix it): {e}",
            self.target
        )))
    }

    /// An error that broke the conversation with the server (I/O, timeout, protocol): the
    /// connection is dropped, since replies could now be out of step with requests.
    fn connection_error(&mut self, e: &RedisError) -> WriteError {
        self.connection = None;
        if e.kind() == ErrorKind::AuthenticationFailed {
            return self.auth_error(e);
        }
        WriteError::retry(self.scrub(format!("redis {}: {e}", self.target)))
    }

    /// A command's refusal; the connection stays usable.
    fn server_error(&self, e: &RedisError) -> WriteError {
        let code = e.code().unwrap_or("");
        if auth_code(code) || e.kind() == ErrorKind::AuthenticationFailed {
            self.auth_error(e)
        } else if transient_code(code) {
            WriteError::retry(self.scrub(format!("redis {}: {e}", self.target)))
        } else {
            WriteError::reject(self.scrub(format!("redis {} refused the batch: {e}", self.target)))
        }
    }

    /// The open connection, connecting (and loading the script) first if needed.
    fn connection(&mut self) -> Result<&mut Connection, WriteError> {
        if self.connection.as_ref().is_some_and(|c| c.is_open()) {
            return Ok(self.connection.as_mut().expect("checked just above"));
        }
        self.connection = None;
        let mut con = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| self.connection_error(&e))?;
        con.set_read_timeout(Some(self.timeout))
            .and_then(|()| con.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.connection_error(&e))?;
        match self.script.load(&mut con) {
            Ok(_) => {}
            Err(e) if e.is_io_error() || e.code().is_none() => {
                return Err(self.connection_error(&e));
            }
            Err(e) if auth_code(e.code().unwrap_or("")) => return Err(self.auth_error(&e)),
            // A server that refuses SCRIPT LOAD (renamed or disabled) may still run EVAL:
            // the NOSCRIPT fallback takes care of it.
            Err(e) => tracing::debug!(sink = "redis", error = %e, "script load refused"),
        }
        tracing::debug!(sink = "redis", target = %self.target, "connected");
        Ok(self.connection.insert(con))
    }

    /// The script call writing `fields` (from [`latest_fields`]) for `keyed`: `EVALSHA sha`
    /// or, as a fallback, `EVAL source`.
    fn script_call(&self, keyed: &Keyed, fields: &[(&str, String)], by_source: bool) -> Cmd {
        let r = &keyed.record;
        let mut cmd = if by_source {
            let mut c = ::redis::cmd("EVAL");
            c.arg(LATEST_SCRIPT);
            c
        } else {
            let mut c = ::redis::cmd("EVALSHA");
            c.arg(self.script.get_hash());
            c
        };
        cmd.arg(2)
            .arg(latest_key(&self.prefix, &r.view, &keyed.key))
            .arg(last_window_key(&self.prefix, &r.view))
            .arg(r.window_end_ms)
            .arg(self.ttl_secs)
            .arg(self.top_n_ttl_secs);
        for (field, value) in fields {
            cmd.arg(*field).arg(value);
        }
        cmd
    }

    /// The batch's pipeline: command `i < batch.len()` is record `i`'s script call, then the
    /// `ZADD`s, the `EXPIRE`s and the `PUBLISH`es. Errors come back per command.
    fn pipeline(&self, batch: &[Arc<Keyed>]) -> Pipeline {
        let mut pipe = ::redis::pipe();
        let mut payloads = Vec::with_capacity(batch.len());
        for keyed in batch {
            let fields = latest_fields(&keyed.record);
            pipe.add_command(self.script_call(keyed, &fields, false));
            let (name, json) = fields.last().expect("latest_fields ends with json");
            debug_assert_eq!(*name, "json");
            payloads.push(json.clone());
        }
        let mut sets = BTreeSet::new();
        for keyed in batch {
            let r = &keyed.record;
            let key = rpm_key(&self.prefix, &r.view, r.window_end_ms);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(number(r.rpm))
                .arg(&keyed.key);
            sets.insert(key);
        }
        for key in sets {
            pipe.cmd("EXPIRE").arg(key).arg(self.top_n_ttl_secs);
        }
        if !self.channel.is_empty() {
            for json in payloads {
                pipe.cmd("PUBLISH").arg(&self.channel).arg(json);
            }
        }
        pipe.ignore_errors();
        pipe
    }

    /// Runs `pipe`; `Ok` holds each command's own result.
    fn run(&mut self, pipe: &Pipeline) -> Result<Vec<RedisResult<Value>>, WriteError> {
        let con = self.connection()?;
        match pipe.query::<Vec<RedisResult<Value>>>(con) {
            Ok(results) => Ok(results),
            Err(e) => Err(self.connection_error(&e)),
        }
    }

    /// The batch's verdict from the commands' results: a retryable error wins over a refusal,
    /// since the retry may clear it.
    fn verdict<'a>(&self, errors: impl Iterator<Item = &'a RedisError>) -> Result<(), WriteError> {
        let mut refusal = None;
        for e in errors {
            let err = self.server_error(e);
            if err.retryable {
                return Err(err);
            }
            refusal.get_or_insert(err);
        }
        refusal.map_or(Ok(()), Err)
    }
}

impl Writer for RedisWriter {
    fn write(&mut self, batch: &[Arc<Keyed>]) -> Result<(), WriteError> {
        if batch.is_empty() {
            return Ok(());
        }
        let pipe = self.pipeline(batch);
        let results = self.run(&pipe)?;
        // The server lost the script (SCRIPT FLUSH, or a refused SCRIPT LOAD): send those
        // records' calls again with the source. The rest of the pipeline has been applied.
        let missing: Vec<usize> = results
            .iter()
            .take(batch.len())
            .enumerate()
            .filter(|(_, r)| matches!(r, Err(e) if e.code() == Some("NOSCRIPT")))
            .map(|(i, _)| i)
            .collect();
        self.verdict(
            results
                .iter()
                .enumerate()
                .filter(|(i, _)| missing.binary_search(i).is_err())
                .filter_map(|(_, r)| r.as_ref().err()),
        )?;
        if !missing.is_empty() {
            tracing::debug!(
                sink = "redis",
                calls = missing.len(),
                "script missing; sending it with EVAL"
            );
            let mut pipe = ::redis::pipe();
            for &i in &missing {
                let fields = latest_fields(&batch[i].record);
                pipe.add_command(self.script_call(&batch[i], &fields, true));
            }
            pipe.ignore_errors();
            let results = self.run(&pipe)?;
            self.verdict(results.iter().filter_map(|r| r.as_ref().err()))?;
        }
        self.on_ledger(|ledger, con| ledger.write(con, batch))
    }

    fn idle(&mut self) {
        if let Err(e) = self.on_ledger(|ledger, con| ledger.idle(con)) {
            tracing::warn!(sink = "redis", error = %e.message, "spend housekeeping failed; will retry");
        }
    }
}

/// Applies one alert event to the firing hash, unless a later event of the same alert was
/// applied already (a replay), and publishes it.
/// KEYS: firing hash, state hash. ARGV: alert key, event time, kind, event JSON, channel.
const ALERT_SCRIPT: &str = r"
local t = redis.call('HGET', KEYS[2], ARGV[1])
if t and tonumber(t) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == 'firing' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
elseif ARGV[3] == 'resolved' then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[4]) end
return 1
";

/// Alert events in Redis:
///
/// | key | type | content |
/// |---|---|---|
/// | `{prefix}:alerts:firing` | hash | alert key (`rule{label="v",…}`) → its firing event (JSON), while it fires |
/// | `{prefix}:alerts:state` | hash | alert key → time of the last event applied (replays never go back) |
/// | channel `{prefix}:alerts` | pub/sub | every transition written, as JSON (identity: its `id`) |
impl Writer<glassbox_operators::alerts::AlertEvent> for RedisWriter {
    fn write(
        &mut self,
        batch: &[Arc<glassbox_operators::alerts::AlertEvent>],
    ) -> Result<(), WriteError> {
        let firing = format!("{}:alerts:firing", self.prefix);
        let state = format!("{}:alerts:state", self.prefix);
        let channel = format!("{}:alerts", self.prefix);
        let mut pipe = ::redis::pipe();
        for e in batch {
            let json = serde_json::to_string(e.as_ref()).expect("alert events serialize");
            let mut cmd = ::redis::cmd("EVAL");
            cmd.arg(ALERT_SCRIPT)
                .arg(2)
                .arg(&firing)
                .arg(&state)
                .arg(&e.key)
                .arg(e.window.end_ms)
                .arg(e.kind.name())
                .arg(json)
                .arg(&channel);
            pipe.add_command(cmd);
        }
        pipe.ignore_errors();
        let results = self.run(&pipe)?;
        self.verdict(results.iter().filter_map(|r| r.as_ref().err()))
    }
}

/// Sets a series' latest quality hash unless a later window was written already.
/// KEYS: the hash. ARGV: window end, TTL, then field/value pairs.
const QUALITY_SCRIPT: &str = r"
local t = redis.call('HGET', KEYS[1], 'window_end_ms')
if t and tonumber(t) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Quality records in Redis: `{prefix}:quality:{view}:{series}` (hash), the latest window's
/// figures (`window_start_ms`, `window_end_ms`, `answers_scored`, `faithfulness_mean`,
/// `faithfulness_p10`, `hallucination_rate`, `answer_relevance_mean`,
/// `context_relevance_mean`, `feedback_count`, `negative_feedback_rate`,
/// `feedback_mean_score`, `json`); a figure without data is absent. TTL `redis.ttl_secs`.
impl Writer<crate::records::quality::QualityRecord> for RedisWriter {
    fn write(
        &mut self,
        batch: &[Arc<crate::records::quality::QualityRecord>],
    ) -> Result<(), WriteError> {
        let mut pipe = ::redis::pipe();
        for r in batch {
            let mut cmd = ::redis::cmd("EVAL");
            cmd.arg(QUALITY_SCRIPT)
                .arg(1)
                .arg(format!("{}:quality:{}:{}", self.prefix, r.view, r.key))
                .arg(r.window_end_ms)
                .arg(self.ttl_secs);
            let mut fields: Vec<(&str, String)> = vec![
                ("window_start_ms", r.window_start_ms.to_string()),
                ("window_end_ms", r.window_end_ms.to_string()),
                ("answers_scored", r.answers_scored.to_string()),
                ("feedback_count", r.feedback_count.to_string()),
            ];
            for (name, v) in r.rates() {
                if let Some(v) = v {
                    fields.push((name, number(v)));
                }
            }
            fields.push((
                "json",
                String::from_utf8(crate::sinks::Record::to_json(r.as_ref())).expect("utf-8 json"),
            ));
            for (f, v) in fields {
                cmd.arg(f).arg(v);
            }
            pipe.add_command(cmd);
        }
        pipe.ignore_errors();
        let results = self.run(&pipe)?;
        self.verdict(results.iter().filter_map(|r| r.as_ref().err()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::metrics::{Distribution, Tokens};

    fn record(latency: bool) -> MetricsRecord {
        let dist = |p50: f64, p95: f64, p99: f64| Distribution {
            count: 10,
            mean: 100.0,
            min: 10.0,
            max: 400.0,
            p50,
            p90: 200.0,
            p95,
            p99,
        };
        MetricsRecord {
            schema_version: 1,
            view: "tumbling_1m".into(),
            window_start_ms: 1_700_000_000_000,
            window_end_ms: 1_700_000_060_000,
            series: [("provider", "openai"), ("model", "gpt-4o")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            requests: 40,
            errors: 2,
            errors_by_type: [("timeout".to_owned(), 2)].into_iter().collect(),
            truncations: 1,
            error_rate: 0.05,
            truncation_rate: 0.025,
            rpm: 40.0,
            tpm: 1234.5,
            tokens: Tokens {
                input: 1000,
                output: 234,
                cache_read: 100,
                cache_write: 0,
                reasoning: 17,
            },
            latency_ms: latency.then(|| dist(120.5, 310.25, 398.0)),
            ttft_ms: None,
            tpot_ms: latency.then(|| dist(8.0, 12.125, 14.0)),
            sketch_relative_error: 0.01,
            cost: None,
        }
    }

    #[test]
    fn keys_follow_the_documented_names() {
        let series = "provider=openai,model=gpt-4o,tenant=acme,feature=search";
        assert_eq!(
            latest_key("glassbox", "tumbling_1m", series),
            "glassbox:latest:tumbling_1m:provider=openai,model=gpt-4o,tenant=acme,feature=search"
        );
        assert_eq!(
            rpm_key("gb", "sliding_5m", 1_700_000_060_000),
            "gb:rpm:sliding_5m:1700000060000"
        );
        assert_eq!(
            last_window_key("glassbox", "tumbling_1m"),
            "glassbox:last_window:tumbling_1m"
        );
    }

    #[test]
    fn fields_render_exact_decimals_and_omit_absent_distributions() {
        let r = record(true);
        let fields = latest_fields(&r);
        let expected: Vec<(&str, String)> = vec![
            ("window_start_ms", "1700000000000".into()),
            ("window_end_ms", "1700000060000".into()),
            ("requests", "40".into()),
            ("errors", "2".into()),
            ("error_rate", "0.05".into()),
            ("truncation_rate", "0.025".into()),
            ("rpm", "40".into()),
            ("tpm", "1234.5".into()),
            ("tokens_input", "1000".into()),
            ("tokens_output", "234".into()),
            ("tokens_cache_read", "100".into()),
            ("tokens_cache_write", "0".into()),
            ("tokens_reasoning", "17".into()),
            ("latency_p50_ms", "120.5".into()),
            ("latency_p95_ms", "310.25".into()),
            ("latency_p99_ms", "398".into()),
            ("tpot_p95_ms", "12.125".into()),
            ("json", serde_json::to_string(&r).unwrap()),
        ];
        assert_eq!(fields, expected);

        let names: Vec<&str> = latest_fields(&record(false))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("latency") || n.starts_with("tpot")),
            "{names:?}"
        );
        assert_eq!(names.last(), Some(&"json"));
    }

    #[test]
    fn numbers_round_trip_without_exponents() {
        for v in [0.0, 1.0, 0.1, 1e-7, 123_456_789.125, 1e21, 2.0 / 3.0] {
            let s = number(v);
            assert!(!s.contains('e'), "{s}");
            assert_eq!(s.parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let c = RedisConfig {
            password: Some("hunter2".into()),
            ..RedisConfig::default()
        };
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("<redacted>"),
            "{debug}"
        );
    }

    #[test]
    fn validate_names_the_field_only_when_enabled() {
        let mut c = RedisConfig {
            ttl_secs: 0,
            ..RedisConfig::default()
        };
        assert!(c.validate().is_ok(), "a disabled sink is not checked");
        c.enabled = true;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("redis.ttl_secs"), "{err}");
        for (url, field) in [
            ("http://h:1", "redis.url"),
            ("nonsense", "redis.url"),
            ("redis://:hunter2@h:6379", "redis.url"),
        ] {
            let c = RedisConfig {
                enabled: true,
                url: url.into(),
                ..RedisConfig::default()
            };
            let err = c.validate().unwrap_err().to_string();
            assert!(
                err.contains(field) && !err.contains("hunter2"),
                "{url}: {err}"
            );
        }
        let ok = RedisConfig {
            enabled: true,
            url: "rediss://cache.example:6380/2".into(),
            password: Some("env:REDIS_PASSWORD".into()),
            ..RedisConfig::default()
        };
        assert!(ok.validate().is_ok());
        let c = RedisConfig {
            enabled: true,
            key_prefix: " ".into(),
            ..RedisConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("redis.key_prefix")
        );
    }

    #[test]
    fn config_round_trips_through_toml_and_rejects_unknown_fields() {
        let c = RedisConfig {
            enabled: true,
            username: Some("glassbox".into()),
            password: Some("file:/run/secrets/redis".into()),
            ..RedisConfig::default()
        };
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<RedisConfig>(&text).unwrap(), c);
        assert_eq!(
            toml::from_str::<RedisConfig>("").unwrap(),
            RedisConfig::default()
        );
        let err = toml::from_str::<RedisConfig>("ttl = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ttl"), "{err}");
    }

    #[test]
    fn passwords_resolve_and_errors_name_the_reference_not_the_value() {
        let path = std::env::temp_dir().join(format!("glassbox-redis-pw-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(
            resolve_password(&format!("file:{}", path.display())).unwrap(),
            "s3cret"
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(resolve_password("literal").unwrap(), "literal");
        let err = resolve_password("env:GLASSBOX_TEST_SURELY_UNSET_REDIS_VAR").unwrap_err();
        assert!(
            err.contains("redis.password") && err.contains("GLASSBOX_TEST_SURELY_UNSET_REDIS_VAR"),
            "{err}"
        );
        let err = RedisWriter::new(&RedisConfig {
            password: Some("env:GLASSBOX_TEST_SURELY_UNSET_REDIS_VAR".into()),
            ..RedisConfig::default()
        })
        .err()
        .unwrap();
        assert!(err.contains("redis.password"), "{err}");
    }

    #[test]
    fn server_errors_are_classified() {
        let w = RedisWriter::new(&RedisConfig {
            password: Some("hunter2".into()),
            ..RedisConfig::default()
        })
        .unwrap();
        let server = |code: &str, detail: &str| {
            ::redis::make_extension_error(code.to_owned(), Some(detail.to_owned()))
        };
        let wrongtype = w.server_error(&server(
            "WRONGTYPE",
            "Operation against a key holding the wrong kind of value",
        ));
        assert!(!wrongtype.retryable, "{wrongtype:?}");
        let oom = w.server_error(&server(
            "OOM",
            "command not allowed when used memory > 'maxmemory'.",
        ));
        assert!(oom.retryable, "{oom:?}");
        let auth = w.server_error(&server(
            "WRONGPASS",
            "invalid username-password pair hunter2",
        ));
        assert!(
            auth.retryable && auth.message.contains("authentication"),
            "{auth:?}"
        );
        assert!(!auth.message.contains("hunter2"), "{auth:?}");
    }
}
