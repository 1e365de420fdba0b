//! What a test broker needs from glassbox's configuration, by the broker's name (`kafka` or
//! `tansu`, as `GLASSBOX_TEST_BROKER` gives it): one table for the tests and the benches.

/// The settings a broker's quirks call for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerQuirks {
    /// `source.resume_rewind_records`: 0 on Apache Kafka (a fetch from a committed offset
    /// inside a record batch returns the records from that offset on), -1 on tansu, which does
    /// not serve such a fetch.
    pub resume_rewind_records: i64,
    /// `kafka.frontier_store`: `metadata` on Apache Kafka, `state_topic` on tansu, which drops
    /// commit metadata.
    pub frontier_store: &'static str,
}

impl BrokerQuirks {
    /// The quirks of the broker called `kind`; anything but `tansu` is taken for Apache Kafka.
    pub fn of(kind: &str) -> Self {
        if kind == "tansu" {
            Self {
                resume_rewind_records: -1,
                frontier_store: "state_topic",
            }
        } else {
            Self {
                resume_rewind_records: 0,
                frontier_store: "metadata",
            }
        }
    }
}
