//! Reading glassbox's results back from the real servers, and the servers a test owns.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP client that reports error statuses as responses.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// GET `url`, returning the body; panics on a non-2xx status.
pub fn get(url: &str) -> String {
    let mut r = http()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status();
    let body = r.body_mut().read_to_string().unwrap();
    assert!(status.is_success(), "GET {url}: {status} {body}");
    body
}

/// POST an InfluxQL statement to `/query`.
pub fn influx_query(url: &str, db: &str, q: &str) -> Value {
    let mut r = http()
        .post(&format!("{url}/query"))
        .query("db", db)
        .query("epoch", "ms")
        .query("q", q)
        .send_empty()
        .unwrap_or_else(|e| panic!("query {q}: {e}"));
    let body = r.body_mut().read_to_string().unwrap();
    assert!(r.status().is_success(), "query {q}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Every point of `measurement` in `db`, each as column → value (tags and fields).
pub fn influx_points(url: &str, db: &str, measurement: &str) -> Vec<BTreeMap<String, Value>> {
    let v = influx_query(url, db, &format!("SELECT * FROM \"{measurement}\""));
    let Some(series) = v["results"][0]["series"].as_array() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in series {
        let columns: Vec<String> = s["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        for row in s["values"].as_array().unwrap() {
            out.push(
                columns
                    .iter()
                    .cloned()
                    .zip(row.as_array().unwrap().iter().cloned())
                    .collect(),
            );
        }
    }
    out
}

/// One exported series: its labels and `(timestamp ms, value)` samples.
pub type VmSeries = (BTreeMap<String, String>, Vec<(u64, f64)>);

/// VictoriaMetrics export of every series matching `selector`.
pub fn vm_export(url: &str, selector: &str) -> Vec<VmSeries> {
    get(&format!("{url}/internal/force_flush"));
    let body = get(&format!(
        "{url}/api/v1/export?match[]={}",
        urlencode(selector)
    ));
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let labels = v["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let samples = v["timestamps"]
                .as_array()
                .unwrap()
                .iter()
                .zip(v["values"].as_array().unwrap())
                .map(|(t, x)| (t.as_u64().unwrap(), x.as_f64().unwrap()))
                .collect();
            (labels, samples)
        })
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A server process a test starts, stops and restarts on the same port and data directory.
pub struct Server {
    name: &'static str,
    program: String,
    args: Vec<String>,
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
}

impl Server {
    /// A Redis server with an append-only file, so that a restart keeps its data.
    pub fn redis(dir: &Path) -> Self {
        let port = free_port();
        std::fs::create_dir_all(dir).unwrap();
        let args = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.display().to_string()])
        .collect();
        let mut s = Self {
            name: "redis",
            program: "redis-server".into(),
            args,
            child: None,
            port,
            dir: dir.to_owned(),
        };
        s.start();
        s
    }

    /// An InfluxDB 1.x server with its own config and data directory.
    pub fn influxdb(dir: &Path) -> Self {
        let (port, rpc) = (free_port(), free_port());
        std::fs::create_dir_all(dir).unwrap();
        let d = dir.display();
        let conf = format!(
            "reporting-enabled = false\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n  logging-enabled = false\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  wal-fsync-delay = \"0s\"\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n[http]\n  enabled = true\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             unix-socket-enabled = false\n[logging]\n  suppress-logo = true\n[continuous_queries]\n  enabled = false\n"
        );
        let path = dir.join("influxdb.conf");
        std::fs::write(&path, conf).unwrap();
        let args = vec!["run".into(), "-config".into(), path.display().to_string()];
        let mut s = Self {
            name: "influxdb",
            program: "influxd".into(),
            args,
            child: None,
            port,
            dir: dir.to_owned(),
        };
        s.start();
        s
    }

    /// Starts it (again) and waits until its port accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::File::create(self.dir.join(format!("{}.log", self.name))).unwrap();
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {} (run integration/scripts/install.sh): {e}",
                    self.program
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not start on port {}",
                self.name,
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.name == "influxdb" {
            while http()
                .get(&format!("{}/ping", self.url()))
                .call()
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
                != 204
            {
                assert!(Instant::now() < deadline, "influxdb not ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Stops it (SIGKILL: an outage, not a shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its URL: `redis://…` or `http://…`.
    pub fn url(&self) -> String {
        match self.name {
            "redis" => format!("redis://127.0.0.1:{}", self.port),
            _ => format!("http://127.0.0.1:{}", self.port),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
