//! `glassbox loadgen`: the synthetic spans of [`glassbox_support::loadgen`] published to Kafka
//! with real-time timestamps.

use crate::kafka::source::now_ms;
use glassbox_support::loadgen::Generator;

/// Publishes synthetic spans with real-time timestamps at `rate` per second, keyed by trace id.
pub fn publish(
    brokers: &str,
    topic: &str,
    rate: f64,
    count: Option<u64>,
    seed: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> rdkafka::error::KafkaResult<()> {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use std::time::{Duration, Instant};
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()?;
    let mut generator = Generator::new(seed, now_ms(), rate);
    let started = Instant::now();
    let mut sent = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && count.is_none_or(|c| sent < c) {
        let due = ((started.elapsed().as_secs_f64() * rate) as u64).min(count.unwrap_or(u64::MAX));
        while sent < due {
            let mut span = generator.next_span();
            span.start_ns = now_ms() * 1_000_000;
            let payload = span.to_json();
            match producer.send(BaseRecord::to(topic).key(&span.trace_id).payload(&payload)) {
                Ok(()) => sent += 1,
                Err(_) => producer.poll(Duration::from_millis(10)),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    producer.flush(Duration::from_secs(30))?;
    tracing::info!(sent, "loadgen finished");
    Ok(())
}
