//! The schema registry client: the writer schema of each `avro_registry` record, by the id in
//! its Confluent framing (`GET {url}/schemas/ids/{id}`), fetched once and cached.
//!
//! Fetching never happens on a worker thread. [`SchemaRegistry::lookup`] answers from the
//! cache at once: the schema, "the registry does not have this id" (the record is then
//! dead-lettered as `unknown_schema`), or "pending". A pending id is fetched by the client's
//! own thread, which retries a registry that fails or cannot be reached with exponential
//! backoff (`registry.retry_initial_ms` doubling up to `registry.retry_max_ms`), for as long
//! as it takes: an outage is the registry's fault, not the record's, so nothing is
//! dead-lettered because of it. Meanwhile the source holds the records that need the schema,
//! and pauses the partitions they came from (see `kafka::source`).
//!
//! Why not `schema_registry_converter`: its clients run on reqwest (tokio, or reqwest's blocking
//! client, which would block a timely worker for the length of an outage); glassbox already
//! has `ureq` for InfluxDB, and what it needs of the registry is this one cached GET.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::Schema;
use base64::Engine as _;

use crate::config::registry::RegistryConfig;

/// What the cache says of a schema id.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// The writer schema.
    Ready(Arc<Schema>),
    /// The registry does not have it (or it is not an Avro schema): why.
    Unknown(Arc<str>),
    /// Being fetched: ask again later.
    Pending,
}

/// Counters of the registry client.
#[derive(Debug, Default)]
pub struct RegistryCounters {
    /// Schemas fetched.
    pub fetched: AtomicU64,
    /// Requests that failed (unreachable, 5xx, refused credentials) and will be retried.
    pub failures: AtomicU64,
}

/// A cached, retrying client of one registry (see the module docs). Cheap to share.
pub struct SchemaRegistry {
    cache: Arc<Mutex<HashMap<u32, Lookup>>>,
    requests: Mutex<Sender<u32>>,
    stop: Arc<AtomicBool>,
    url: String,
    /// The client's counters.
    pub counters: Arc<RegistryCounters>,
}

impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for SchemaRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the fetcher thread needs.
struct Fetcher {
    agent: ureq::Agent,
    url: String,
    authorization: Option<ureq::http::HeaderValue>,
    retry_initial: Duration,
    retry_max: Duration,
    cache: Arc<Mutex<HashMap<u32, Lookup>>>,
    stop: Arc<AtomicBool>,
    counters: Arc<RegistryCounters>,
}

/// Why one request did not give a schema.
enum Failure {
    /// The registry answered that it has no such schema (or not an Avro one): final.
    Unknown(String),
    /// Anything else: retried.
    Retry(String),
}

impl SchemaRegistry {
    /// Resolves the credentials and starts the fetcher thread. The error names the field.
    pub fn new(config: &RegistryConfig) -> Result<Self, String> {
        config.validate().map_err(|e| e.to_string())?;
        let (agent, authorization) = client(config)?;
        let url = config.url.trim().trim_end_matches('/').to_owned();
        let cache = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(RegistryCounters::default());
        let (requests, pending) = channel();
        let fetcher = Fetcher {
            agent,
            url: url.clone(),
            authorization,
            retry_initial: Duration::from_millis(config.retry_initial_ms),
            retry_max: Duration::from_millis(config.retry_max_ms),
            cache: cache.clone(),
            stop: stop.clone(),
            counters: counters.clone(),
        };
        std::thread::Builder::new()
            .name("schema-registry".into())
            .spawn(move || fetcher.run(pending))
            .map_err(|e| format!("cannot start the schema registry client: {e}"))?;
        Ok(Self {
            cache,
            requests: Mutex::new(requests),
            stop,
            url,
            counters,
        })
    }

    /// The schema of `id` if it is known (see [`Lookup`]); a first ask starts its fetch.
    pub fn lookup(&self, id: u32) -> Lookup {
        let mut cache = self.cache.lock().expect("registry cache lock");
        if let Some(known) = cache.get(&id) {
            return known.clone();
        }
        cache.insert(id, Lookup::Pending);
        // The fetcher lives as long as `self` (it stops on drop), so the send cannot fail
        // while anyone can call this.
        let _ = self.requests.lock().expect("registry queue lock").send(id);
        Lookup::Pending
    }
}

/// The HTTP client and the `Authorization` header of `config` (secrets resolved; the error
/// names the field, never the secret).
fn client(
    config: &RegistryConfig,
) -> Result<(ureq::Agent, Option<ureq::http::HeaderValue>), String> {
    let credentials = match (&config.token, &config.username) {
        (Some(token), _) => Some(format!("Bearer {}", token.resolve("registry.token")?)),
        (None, Some(user)) => {
            let password = match &config.password {
                Some(p) => p.resolve("registry.password")?,
                None => String::new(),
            };
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ))
        }
        (None, None) => None,
    };
    let authorization = credentials
        .map(|c| {
            let mut value = ureq::http::HeaderValue::from_str(&c).map_err(|_| {
                "`registry.token`/`registry.password`: characters not allowed in an HTTP header"
                    .to_owned()
            })?;
            value.set_sensitive(true);
            Ok::<_, String>(value)
        })
        .transpose()?;
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
        .http_status_as_error(false)
        .user_agent(concat!("glassbox/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    Ok((agent, authorization))
}

/// Registers the Avro schema `schema` (its JSON text) under `subject`
/// (`POST {url}/subjects/{subject}/versions`) and returns its id; registering a schema the
/// subject already has returns the id it has. For producers: `glassbox loadgen --format avro`,
/// the tests and benches.
pub fn register(config: &RegistryConfig, subject: &str, schema: &str) -> Result<u32, String> {
    config.validate().map_err(|e| e.to_string())?;
    let (agent, authorization) = client(config)?;
    let url = format!(
        "{}/subjects/{subject}/versions",
        config.url.trim().trim_end_matches('/')
    );
    let mut request = agent
        .post(&url)
        .header("Content-Type", "application/vnd.schemaregistry.v1+json");
    if let Some(auth) = authorization {
        request = request.header("Authorization", auth);
    }
    let body = serde_json::json!({ "schema": schema, "schemaType": "AVRO" }).to_string();
    let mut response = request
        .send(body.as_bytes())
        .map_err(|e| format!("registering under {subject}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    if status != 200 {
        return Err(format!(
            "registering under {subject}: HTTP {status}: {text}"
        ));
    }
    let answer: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| format!("registering under {subject}: not JSON"))?;
    answer["id"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| format!("registering under {subject}: no id in the answer"))
}

impl Fetcher {
    fn run(self, pending: Receiver<u32>) {
        while !self.stop.load(Ordering::Relaxed) {
            let id = match pending.recv_timeout(Duration::from_millis(200)) {
                Ok(id) => id,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut wait = self.retry_initial;
            let mut failures = 0u64;
            let answer = loop {
                match self.fetch(id) {
                    Ok(schema) => break Some(Lookup::Ready(Arc::new(schema))),
                    Err(Failure::Unknown(why)) => {
                        tracing::warn!(id, reason = %why, "schema id not usable: its records are dead-lettered as unknown_schema");
                        break Some(Lookup::Unknown(why.into()));
                    }
                    Err(Failure::Retry(why)) => {
                        failures += 1;
                        self.counters.failures.fetch_add(1, Ordering::Relaxed);
                        // The first failure and then one in ten: an outage is not a log flood.
                        if failures == 1 || failures.is_multiple_of(10) {
                            tracing::warn!(
                                id,
                                url = %self.url,
                                error = %why,
                                failures,
                                retry_in_ms = wait.as_millis() as u64,
                                "schema registry request failed; the records that need this schema wait"
                            );
                        }
                    }
                }
                if !self.sleep(wait) {
                    break None;
                }
                wait = (wait * 2).min(self.retry_max);
            };
            let Some(answer) = answer else { return };
            if failures > 0 {
                tracing::info!(id, failures, "schema registry answered again");
            }
            if matches!(answer, Lookup::Ready(_)) {
                self.counters.fetched.fetch_add(1, Ordering::Relaxed);
            }
            self.cache
                .lock()
                .expect("registry cache lock")
                .insert(id, answer);
        }
    }

    /// Sleeps `wait` unless stopped first; `false` when stopped.
    fn sleep(&self, wait: Duration) -> bool {
        let step = Duration::from_millis(50);
        let mut slept = Duration::ZERO;
        while slept < wait {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(step.min(wait - slept));
            slept += step;
        }
        !self.stop.load(Ordering::Relaxed)
    }

    fn fetch(&self, id: u32) -> Result<Schema, Failure> {
        let mut request = self
            .agent
            .get(format!("{}/schemas/ids/{id}", self.url))
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            );
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth.clone());
        }
        // ureq's errors name the URL at most, which holds no secret.
        let mut response = request
            .call()
            .map_err(|e| Failure::Retry(format!("unreachable: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::Retry(format!("reading the answer: {e}")))?;
        match status {
            200 => {}
            404 => return Err(Failure::Unknown(format!("the registry has no schema {id}"))),
            401 | 403 => {
                return Err(Failure::Retry(format!(
                    "HTTP {status}: the registry refused the credentials (registry.username/password/token)"
                )));
            }
            _ => return Err(Failure::Retry(format!("HTTP {status}"))),
        }
        let answer: serde_json::Value = serde_json::from_str(&body)
            .map_err(|_| Failure::Retry("the answer is not JSON".to_owned()))?;
        let kind = answer["schemaType"].as_str().unwrap_or("AVRO");
        if !kind.eq_ignore_ascii_case("AVRO") {
            return Err(Failure::Unknown(format!("schema {id} is {kind}, not Avro")));
        }
        let text = answer["schema"]
            .as_str()
            .ok_or_else(|| Failure::Retry("the answer has no `schema`".to_owned()))?;
        Schema::parse_str(text)
            .map_err(|_| Failure::Unknown(format!("schema {id} is not a valid Avro schema")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;

    fn config(url: &str) -> RegistryConfig {
        RegistryConfig {
            url: url.into(),
            ..RegistryConfig::default()
        }
    }

    #[test]
    fn credentials_become_one_sensitive_header_from_their_secrets() {
        let (_, none) = client(&config("http://r:8081")).unwrap();
        assert!(none.is_none());
        let file = std::env::temp_dir().join(format!("glassbox-registry-{}", std::process::id()));
        std::fs::write(&file, "s3cret\n").unwrap();
        let basic = RegistryConfig {
            username: Some("key".into()),
            password: Some(Secret::new(format!("file:{}", file.display()))),
            ..config("https://r")
        };
        let (_, header) = client(&basic).unwrap();
        let header = header.unwrap();
        assert!(header.is_sensitive(), "never printed by the HTTP client");
        assert_eq!(
            header.to_str().unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("key:s3cret")
            )
        );
        let bearer = RegistryConfig {
            token: Some(Secret::new("tok-1")),
            ..config("https://r")
        };
        assert_eq!(
            client(&bearer).unwrap().1.unwrap().to_str().unwrap(),
            "Bearer tok-1"
        );
        // A missing secret names the field, never a value.
        let missing = RegistryConfig {
            token: Some(Secret::new("env:GLASSBOX_NO_SUCH_VARIABLE_EVER")),
            ..config("https://r")
        };
        let e = client(&missing).unwrap_err();
        assert!(e.contains("registry.token"), "{e}");
    }

    #[test]
    fn a_bad_registry_config_is_named() {
        let e = |c: RegistryConfig| c.validate().unwrap_err().to_string();
        assert!(e(config("registry:8081")).contains("registry.url"));
        assert!(e(config("http://user:pw@registry")).contains("registry.url"));
        assert!(
            e(RegistryConfig {
                token: Some(Secret::new("t")),
                username: Some("u".into()),
                ..config("http://r")
            })
            .contains("registry.token")
        );
        assert!(
            e(RegistryConfig {
                retry_max_ms: 10,
                ..config("http://r")
            })
            .contains("registry.retry")
        );
        assert!(config("").validate().is_ok(), "off");
    }
}
