//! `[cluster]`: several glassbox processes as one timely cluster. Empty `hosts`: one process,
//! exactly as without the section.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The processes of one cluster (`[cluster]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Every process's `host:port` for timely's exchange, in process order, the same list on
    /// every process (e.g. a StatefulSet's pods through its headless Service:
    /// `glassbox-0.glassbox:2101`, …). Empty (or one entry): one process. The port is where
    /// this process listens; the network between processes must be private (timely's exchange
    /// has neither authentication nor encryption).
    pub hosts: Vec<String>,
    /// This process's index in `hosts` (0-based). Unset: the number after the last `-` of the
    /// host name (a StatefulSet pod `glassbox-2` is process 2), or an error naming this field.
    pub process: Option<usize>,
    /// A file created once every process of the cluster is connected (and removed at start):
    /// a readiness probe's `test -f` (on an `emptyDir`; the root file system may be
    /// read-only). Empty: none. A single process creates it at start.
    pub ready_file: String,
}

/// Where this process stands in its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// This process's index.
    pub process: usize,
    /// Every process's address (one entry: no cluster).
    pub hosts: Vec<String>,
}

impl Placement {
    /// The number of processes.
    pub fn processes(&self) -> usize {
        self.hosts.len().max(1)
    }
}

impl ClusterConfig {
    /// Checks the settings; the error names the field (`cluster.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: String| Err(ConfigError::Invalid { field, message });
        for (i, host) in self.hosts.iter().enumerate() {
            let port = host.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
            if !matches!(port, Some((h, Ok(p))) if !h.trim().is_empty() && p > 0) {
                return bad(
                    "cluster.hosts",
                    format!("entry {i} must be `host:port`, got `{host}`"),
                );
            }
            if self.hosts[..i].contains(host) {
                return bad("cluster.hosts", format!("`{host}` is listed twice"));
            }
        }
        if let Some(p) = self.process
            && p >= self.hosts.len().max(1)
        {
            return bad(
                "cluster.process",
                format!(
                    "{p} is not an index of `cluster.hosts` ({} processes)",
                    self.hosts.len().max(1)
                ),
            );
        }
        Ok(())
    }

    /// This process's place, given its host name (for the StatefulSet ordinal).
    pub fn placement(&self, hostname: Option<&str>) -> Result<Placement, ConfigError> {
        self.validate()?;
        if self.hosts.len() <= 1 {
            return Ok(Placement {
                process: 0,
                hosts: self.hosts.clone(),
            });
        }
        let process = match self.process {
            Some(p) => p,
            None => hostname
                .and_then(|h| h.rsplit_once('-'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
                .filter(|&n| n < self.hosts.len())
                .ok_or_else(|| ConfigError::Invalid {
                    field: "cluster.process",
                    message: format!(
                        "unset, and the host name {hostname:?} does not end in `-N` with N below \
                         {} (the number of `cluster.hosts`)",
                        self.hosts.len()
                    ),
                })?,
        };
        Ok(Placement {
            process,
            hosts: self.hosts.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("glassbox-{i}.glassbox:2101"))
            .collect()
    }

    #[test]
    fn no_hosts_is_one_process_and_a_statefulset_ordinal_names_the_process() {
        let one = ClusterConfig::default()
            .placement(Some("whatever"))
            .unwrap();
        assert_eq!((one.process, one.processes()), (0, 1));
        let three = ClusterConfig {
            hosts: hosts(3),
            ..ClusterConfig::default()
        };
        assert_eq!(three.placement(Some("glassbox-2")).unwrap().process, 2);
        assert_eq!(three.placement(Some("glassbox-2")).unwrap().processes(), 3);
        let set = ClusterConfig {
            process: Some(1),
            ..three.clone()
        };
        assert_eq!(set.placement(Some("glassbox-2")).unwrap().process, 1);
        for name in [
            None,
            Some("glassbox"),
            Some("glassbox-3"),
            Some("glassbox-x"),
        ] {
            let err = three.placement(name).unwrap_err().to_string();
            assert!(err.contains("`cluster.process`"), "{err}");
        }
    }

    #[test]
    fn bad_hosts_and_processes_are_refused_naming_the_field() {
        for (config, field) in [
            (
                ClusterConfig {
                    hosts: vec!["a:1".into(), "b".into()],
                    process: Some(0),
                    ..ClusterConfig::default()
                },
                "`cluster.hosts`",
            ),
            (
                ClusterConfig {
                    hosts: vec!["a:1".into(), "a:1".into()],
                    process: Some(0),
                    ..ClusterConfig::default()
                },
                "`cluster.hosts`",
            ),
            (
                ClusterConfig {
                    hosts: vec!["a:1".into(), ":2".into()],
                    process: Some(0),
                    ..ClusterConfig::default()
                },
                "`cluster.hosts`",
            ),
            (
                ClusterConfig {
                    hosts: hosts(2),
                    process: Some(2),
                    ..ClusterConfig::default()
                },
                "`cluster.process`",
            ),
        ] {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
