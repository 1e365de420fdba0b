//! `[influx]`: where and how window records are written to InfluxDB (or VictoriaMetrics) as
//! line protocol; the writer is `sink::influx`.

use serde::{Deserialize, Serialize};

use super::secret::Secret;

/// Tag keys that a series dimension may not use: glassbox's own (`view`, `error_type`) and
/// those InfluxDB refuses (`time` in 1.x; `_measurement`, `_field` in 2.x).
pub const RESERVED_TAG_KEYS: [&str; 6] = [
    "view",
    "error_type",
    "unpriced_model",
    "time",
    "_measurement",
    "_field",
];
/// Which HTTP write API to speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    /// InfluxDB 1.x: `POST /write?db=&rp=`, optional basic auth.
    V1,
    /// InfluxDB 2.x / 3.x, VictoriaMetrics: `POST /api/v2/write?org=&bucket=`, token auth.
    #[default]
    V2,
}
/// The InfluxDB sink: where and how window records are written as line protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfluxConfig {
    /// Write window records to InfluxDB. Default `false`.
    pub enabled: bool,
    /// The write API: `"v2"` (InfluxDB 2.x/3.x, VictoriaMetrics; the default) or `"v1"`
    /// (InfluxDB 1.x).
    pub api: InfluxApi,
    /// Base URL of the server, without the API path; a path prefix (reverse proxy) is kept.
    /// Default `"http://localhost:8086"`. Example: `"https://influx.example.com:8086"`.
    pub url: String,
    /// v2: the organization (name). Default `""`; required with `api = "v2"` (VictoriaMetrics
    /// ignores it but it must still be set).
    pub org: String,
    /// v2: the bucket. Default `"glassbox"`.
    pub bucket: String,
    /// v2: the API token, sent as `Authorization: Token …`; a secret: `"env:INFLUX_TOKEN"`,
    /// `"file:/run/secrets/influx-token"` or the token itself. Default `""` (no header).
    pub token: Secret,
    /// v1: the database. Default `"glassbox"`.
    pub database: String,
    /// v1: the retention policy; the database's default policy when absent. Default: absent.
    pub retention_policy: Option<String>,
    /// v1: user name for HTTP basic auth; no auth when absent. Default: absent.
    pub username: Option<String>,
    /// v1: password for HTTP basic auth; a secret like `token`. Default: absent.
    pub password: Option<Secret>,
    /// Measurements are named `{measurement_prefix}_requests`, `…_tokens`, … (the table in
    /// `sink::influx`). Letters, digits and `_`. Default `"glassbox"`.
    pub measurement_prefix: String,
    /// Gzip request bodies (`Content-Encoding: gzip`). Default `true`.
    pub gzip: bool,
    /// At most this many window records per write request. Default `5000`.
    pub batch_records: usize,
    /// Wait at most this long for a batch to fill (ms). Default `200`.
    pub batch_delay_ms: u64,
    /// Give up on a write request after this long and retry it (ms). Default `10000`.
    pub timeout_ms: u64,
}
impl Default for InfluxConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api: InfluxApi::V2,
            url: "http://localhost:8086".into(),
            org: String::new(),
            bucket: "glassbox".into(),
            token: Secret::default(),
            database: "glassbox".into(),
            retention_policy: None,
            username: None,
            password: None,
            measurement_prefix: "glassbox".into(),
            gzip: true,
            batch_records: 5_000,
            batch_delay_ms: 200,
            timeout_ms: 10_000,
        }
    }
}
impl InfluxConfig {
    /// Checks the section when it is enabled; the message names the field (`influx.<field>`).
    /// Secrets are only resolved by `sink::influx::InfluxWriter::new`.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let url = self.url.trim();
        let host = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match host {
            Some(h) if !h.is_empty() && !h.starts_with('/') && !h.contains(['?', '#']) => {}
            _ => {
                return Err(format!(
                    "`influx.url`: must be http://host[:port][/path] or https://…, got `{}`",
                    self.url
                ));
            }
        }
        match self.api {
            InfluxApi::V2 => {
                if self.org.trim().is_empty() {
                    return Err("`influx.org`: must be set when influx.api = \"v2\"".into());
                }
                if self.bucket.trim().is_empty() {
                    return Err("`influx.bucket`: must be set when influx.api = \"v2\"".into());
                }
            }
            InfluxApi::V1 => {
                if self.database.trim().is_empty() {
                    return Err("`influx.database`: must be set when influx.api = \"v1\"".into());
                }
                if self.retention_policy.as_deref() == Some("") {
                    return Err(
                        "`influx.retention_policy`: must not be empty (leave it out for the \
                         database's default policy)"
                            .into(),
                    );
                }
                if self.password.is_some() && self.username.is_none() {
                    return Err("`influx.password`: set without influx.username".into());
                }
            }
        }
        let p = &self.measurement_prefix;
        let starts_well = p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        if !starts_well || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`influx.measurement_prefix`: letters, digits and `_`, starting with a letter \
                 or `_`; got `{p}`"
            ));
        }
        if self.batch_records == 0 {
            return Err("`influx.batch_records`: must be positive".into());
        }
        if self.timeout_ms == 0 {
            return Err("`influx.timeout_ms`: must be positive".into());
        }
        Ok(())
    }
}

/// Checks that no series dimension takes a tag key the sink needs or InfluxDB refuses; for
/// `Config::validate`, the message names `metrics.dimensions`.
pub fn check_dimensions(dimensions: &[String]) -> Result<(), String> {
    match dimensions
        .iter()
        .find(|d| RESERVED_TAG_KEYS.contains(&d.as_str()))
    {
        Some(d) => Err(format!(
            "`metrics.dimensions`: `{d}` is a reserved InfluxDB tag key ({}) and cannot be a \
             dimension while influx.enabled",
            RESERVED_TAG_KEYS.join(", ")
        )),
        None => Ok(()),
    }
}
