//! `glassbox loadgen`: the synthetic spans of [`glassbox_support::loadgen`] published to Kafka
//! with real-time timestamps, as native JSON or as Confluent-framed Avro.

use crate::config::registry::RegistryConfig;
use crate::kafka::source::now_ms;
use glassbox_support::loadgen::Generator;

/// How loadgen writes each span.
#[derive(Clone, Debug)]
pub enum Encoding {
    /// Native JSON records.
    Json,
    /// `schemas/span.avsc` Avro bodies in the Confluent framing; the schema is registered
    /// under `{topic}-value` first (the Confluent serializers' default subject).
    Avro(RegistryConfig),
}

/// Publishes synthetic spans with real-time timestamps at `rate` per second, keyed by trace id.
pub fn publish(
    brokers: &str,
    topic: &str,
    rate: f64,
    count: Option<u64>,
    seed: u64,
    encoding: &Encoding,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), String> {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use std::time::{Duration, Instant};
    let avro = match encoding {
        Encoding::Json => None,
        Encoding::Avro(registry) => {
            let id = crate::registry::register(
                registry,
                &format!("{topic}-value"),
                glassbox_schemas::SPAN_AVSC,
            )?;
            tracing::info!(id, subject = %format!("{topic}-value"), "span schema registered");
            Some((id, glassbox_schemas::span_schema()))
        }
    };
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .map_err(|e| format!("producer: {e}"))?;
    let mut generator = Generator::new(seed, now_ms(), rate);
    let started = Instant::now();
    let mut sent = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && count.is_none_or(|c| sent < c) {
        let due = ((started.elapsed().as_secs_f64() * rate) as u64).min(count.unwrap_or(u64::MAX));
        while sent < due {
            let mut span = generator.next_span();
            span.start_ns = now_ms() * 1_000_000;
            let mut payload = span.to_json();
            if let Some((id, schema)) = &avro {
                let body = glassbox_schemas::native_to_avro(&payload, schema)?;
                payload = glassbox_schemas::confluent_framed(*id, &body);
            }
            match producer.send(BaseRecord::to(topic).key(&span.trace_id).payload(&payload)) {
                Ok(()) => sent += 1,
                Err(_) => producer.poll(Duration::from_millis(10)),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|e| format!("flush: {e}"))?;
    tracing::info!(sent, "loadgen finished");
    Ok(())
}
