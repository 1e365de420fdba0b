//! Everything that talks to Kafka, in data-flow order: [`admin`] (the shared client
//! configuration, the input partitions, the output topics created when missing), [`source`]
//! (the source operator's reader: records → spans → facts under a watermark), [`watermark`]
//! (its idle and watermark decisions, pure), [`outbox`] (the producer every Kafka output and
//! dead letter goes through, with delivery tracking), [`offsets`] (which input offset may be
//! committed) and [`commits`] (where to resume at start, and the commits with the durable
//! frontier).

pub mod admin;
pub mod commits;
pub mod offsets;
pub mod outbox;
pub mod source;
pub mod watermark;
