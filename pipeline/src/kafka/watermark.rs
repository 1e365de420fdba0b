//! The Kafka source's clock, as pure decisions over offsets and instants: when a partition is
//! idle ([`Partition::idle`]) and where the worker's watermark stands ([`Watermark::next`]).
//!
//! Nothing here talks to the broker: the source asks it for a partition's ends only when
//! [`Partition::idle`] needs them (through a closure), and passes in the clock, so the tests
//! drive both with fake instants and offsets.

use std::time::{Duration, Instant};

use rdkafka::Offset;

use crate::kafka::offsets::CommitTracker;

/// One input partition's read state.
#[derive(Debug)]
pub struct Partition {
    /// The largest event time read, ms.
    pub max_event_ms: Option<u64>,
    /// When a record was last read (or reading was paused by back-pressure).
    pub last_record: Instant,
    /// The commit bookkeeping.
    pub commits: CommitTracker,
    /// Where reading started: `Offset::Offset(n)`, `Beginning` or `End`.
    pub start: Offset,
    /// Next offset to read, once a record was read.
    pub position: Option<i64>,
    /// When the partition was last found to have nothing left to read.
    pub caught_up_at: Option<Instant>,
    /// When the broker last could not say where the partition ends: it is not asked again
    /// within [`ENDS_RETRY`] (a broker that is down would otherwise be asked, and the failure
    /// logged, at every activation).
    pub ends_failed_at: Option<Instant>,
    /// Records below this offset were read before a restart (we rewound past them on purpose,
    /// see `source.resume_rewind_records`): they are discarded unprocessed.
    pub skip_below: i64,
    /// Records read but not yet handled, oldest first: they wait for their schema from the
    /// registry, and while any waits the partition is not read further (nor idle).
    pub held: std::collections::VecDeque<Held>,
}

/// A record held back until it can be decoded (its schema is being fetched).
#[derive(Debug)]
pub struct Held {
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Vec<u8>,
    /// Its value.
    pub payload: Vec<u8>,
}

/// What the broker and the consumer say of a partition's ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    /// The consumer's own position (librdkafka's), if it has one.
    pub consumer_position: Option<i64>,
    /// The low watermark.
    pub low: i64,
    /// The high watermark.
    pub high: i64,
}

/// How long a partition whose ends the broker could not tell waits before asking again.
pub const ENDS_RETRY: Duration = Duration::from_secs(1);

impl Partition {
    /// A partition about to be read from `start`, nothing read yet at `now`.
    pub fn new(start: Offset, now: Instant) -> Self {
        Self {
            max_event_ms: None,
            last_record: now,
            commits: CommitTracker::default(),
            start,
            position: None,
            caught_up_at: None,
            ends_failed_at: None,
            skip_below: match start {
                Offset::Offset(c) => c,
                _ => 0,
            },
            held: std::collections::VecDeque::new(),
        }
    }

    /// Quiet for the idle timeout *and* caught up with the broker: only then may it stop
    /// holding the watermark back. Quiet alone is not enough: a partition can be starved by a
    /// busier one while it still has a backlog, and its records would all turn out late.
    ///
    /// `ends` asks the broker (only once the partition has been quiet for `idle`, and not again
    /// within `idle` of finding it caught up); `None`: the broker could not say, and the
    /// partition counts as active.
    pub fn idle(
        &mut self,
        idle: Duration,
        now: Instant,
        ends: impl FnOnce() -> Option<Ends>,
    ) -> bool {
        if now.duration_since(self.last_record) < idle {
            return false;
        }
        if self
            .caught_up_at
            .is_some_and(|at| at >= self.last_record && now.duration_since(at) < idle)
        {
            return true;
        }
        if self
            .ends_failed_at
            .is_some_and(|at| now.duration_since(at) < ENDS_RETRY)
        {
            return false;
        }
        let Some(ends) = ends() else {
            self.ends_failed_at = Some(now);
            return false;
        };
        self.ends_failed_at = None;
        // On Kafka the high watermark is exact: caught up is position = high watermark. The
        // position is librdkafka's as well as ours: after a transaction the partition ends in a
        // commit (or abort) marker that is never handed to us, and only the consumer's position
        // moves past it; with ours alone such a partition would never be caught up, and would
        // hold the watermark back for as long as it stays quiet. (tansu reports the last batch's
        // base offset + 1, which "position ≥ high" also covers.)
        let position = self.position.max(ends.consumer_position);
        let caught_up = match (position, self.start) {
            (Some(pos), _) => pos >= ends.high,
            (None, Offset::Offset(o)) => o >= ends.high,
            (None, Offset::End) => true,
            (None, _) => ends.high <= ends.low,
        };
        if caught_up {
            self.caught_up_at = Some(now);
        }
        caught_up
    }
}

/// A worker's watermark: the minimum, over its active partitions, of (largest event time seen
/// − allowed lateness); never moves back.
#[derive(Debug)]
pub struct Watermark {
    value: u64,
    lateness_ms: u64,
    all_idle_since: Option<Instant>,
}

impl Watermark {
    /// A watermark at 0 trailing the largest event time by `lateness_ms`.
    pub fn new(lateness_ms: u64) -> Self {
        Self {
            value: 0,
            lateness_ms,
            all_idle_since: None,
        }
    }

    /// The watermark after looking at `partitions` — `(idle, largest event time)` of each — at
    /// `now`; `None` when every partition is idle and the input is to be treated as finished
    /// (`finish_when_idle`: `source.stop_when_idle`, or a drain).
    ///
    /// An active partition that has produced nothing yet holds the watermark where it is.
    /// When every partition is idle, event time follows the wall clock from the largest event
    /// time seen (less the lateness), so that windows close.
    pub fn next(
        &mut self,
        partitions: &[(bool, Option<u64>)],
        finish_when_idle: bool,
        now: Instant,
    ) -> Option<u64> {
        let lateness = self.lateness_ms;
        let mut candidate: Option<u64> = None;
        let mut any_active = false;
        let mut blocked = false;
        for &(idle, max_event_ms) in partitions {
            if !idle {
                any_active = true;
                match max_event_ms {
                    None => blocked = true,
                    Some(m) => {
                        let w = m.saturating_sub(lateness);
                        candidate = Some(candidate.map_or(w, |c| c.min(w)));
                    }
                }
            }
        }
        if any_active {
            self.all_idle_since = None;
            if !blocked && let Some(c) = candidate {
                self.value = self.value.max(c);
            }
        } else if finish_when_idle {
            return None;
        } else {
            let since = *self.all_idle_since.get_or_insert(now);
            if let Some(max) = partitions.iter().filter_map(|p| p.1).max() {
                let advanced =
                    max.saturating_sub(lateness) + now.duration_since(since).as_millis() as u64;
                self.value = self.value.max(advanced);
            }
        }
        Some(self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    fn ends(consumer_position: Option<i64>, low: i64, high: i64) -> Option<Ends> {
        Some(Ends {
            consumer_position,
            low,
            high,
        })
    }

    fn never() -> Option<Ends> {
        panic!("the broker must not be asked")
    }

    #[test]
    fn a_partition_is_idle_only_when_quiet_and_caught_up() {
        let t0 = Instant::now();
        let mut p = Partition::new(Offset::Offset(5), t0);
        p.position = Some(8);
        // Quiet for less than the timeout: active, and the broker is not asked.
        assert!(!p.idle(IDLE, t0 + Duration::from_secs(9), never));
        // Quiet, but records are left: active (starved by a busier partition, not idle).
        assert!(!p.idle(IDLE, t0 + IDLE, || ends(Some(8), 0, 12)));
        assert_eq!(p.caught_up_at, None);
        // Quiet and at the end: idle, remembered for the timeout without asking again.
        let t1 = t0 + Duration::from_secs(11);
        assert!(p.idle(IDLE, t1, || ends(Some(8), 0, 8)));
        assert_eq!(p.caught_up_at, Some(t1));
        assert!(p.idle(IDLE, t1 + Duration::from_secs(9), never));
        // After the timeout the broker is asked again.
        assert!(!p.idle(IDLE, t1 + IDLE, || ends(Some(8), 0, 9)));
        // A record read since: active again, whatever was cached.
        p.last_record = t1 + IDLE;
        assert!(!p.idle(IDLE, t1 + IDLE, never));
    }

    #[test]
    fn a_broker_that_cannot_say_is_asked_again_only_after_a_while() {
        let t0 = Instant::now();
        let late = t0 + IDLE;
        let mut p = Partition::new(Offset::Offset(0), t0);
        p.position = Some(4);
        assert!(!p.idle(IDLE, late, || None));
        // Not at every activation: the broker is down, and each failure was logged.
        assert!(!p.idle(IDLE, late + ENDS_RETRY / 2, never));
        assert!(p.idle(IDLE, late + ENDS_RETRY, || ends(None, 0, 4)));
        assert_eq!(p.ends_failed_at, None);
    }

    #[test]
    fn the_consumers_position_gets_a_partition_past_a_transaction_marker() {
        let t0 = Instant::now();
        let late = t0 + IDLE;
        // The last record is offset 9; a commit marker at 10 is never handed to the source.
        let mut p = Partition::new(Offset::Offset(0), t0);
        p.position = Some(10);
        assert!(!p.idle(IDLE, late, || ends(None, 0, 11)));
        assert!(p.idle(IDLE, late, || ends(Some(11), 0, 11)));
    }

    #[test]
    fn a_partition_without_records_is_caught_up_by_where_it_started() {
        let t0 = Instant::now();
        let late = t0 + IDLE;
        let idle = |start, e: Option<Ends>| Partition::new(start, t0).idle(IDLE, late, || e);
        assert!(idle(Offset::Offset(7), ends(None, 0, 7)));
        assert!(!idle(Offset::Offset(7), ends(None, 0, 8)));
        assert!(idle(Offset::End, ends(None, 0, 100)));
        assert!(idle(Offset::Beginning, ends(None, 3, 3)));
        assert!(!idle(Offset::Beginning, ends(None, 3, 4)));
        // The broker could not say: active.
        assert!(!idle(Offset::End, None));
        let p = Partition::new(Offset::Offset(7), t0);
        assert_eq!(p.skip_below, 7);
        assert_eq!(Partition::new(Offset::Beginning, t0).skip_below, 0);
    }

    #[test]
    fn the_watermark_is_the_least_active_partition_less_lateness_and_never_moves_back() {
        let t0 = Instant::now();
        let mut w = Watermark::new(5_000);
        assert_eq!(
            w.next(&[(false, Some(60_000)), (false, Some(40_000))], false, t0),
            Some(35_000)
        );
        // An idle partition does not hold it back.
        assert_eq!(
            w.next(&[(false, Some(60_000)), (true, Some(40_000))], false, t0),
            Some(55_000)
        );
        // An active partition that has produced nothing holds it where it is.
        assert_eq!(
            w.next(&[(false, Some(90_000)), (false, None)], false, t0),
            Some(55_000)
        );
        // It never moves back.
        assert_eq!(w.next(&[(false, Some(10_000))], false, t0), Some(55_000));
    }

    #[test]
    fn with_every_partition_idle_the_watermark_follows_the_wall_clock_or_finishes() {
        let t0 = Instant::now();
        let mut w = Watermark::new(5_000);
        let all_idle = [(true, Some(60_000)), (true, Some(70_000))];
        assert_eq!(w.next(&all_idle, false, t0), Some(65_000));
        assert_eq!(
            w.next(&all_idle, false, t0 + Duration::from_millis(2_500)),
            Some(67_500)
        );
        // A record on one partition: back to event time (which never moves back).
        assert_eq!(
            w.next(&[(false, Some(71_000)), (true, Some(70_000))], false, t0),
            Some(67_500)
        );
        // Idle again: the wall clock counts from the new all-idle instant.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(w.next(&[(true, Some(80_000))], false, t1), Some(75_000));
        assert_eq!(
            w.next(&[(true, Some(80_000))], false, t1 + Duration::from_secs(1)),
            Some(76_000)
        );
        // Nothing read anywhere: stays.
        let mut fresh = Watermark::new(5_000);
        assert_eq!(fresh.next(&[(true, None)], false, t0), Some(0));
        // Finishing when idle: the input is over.
        assert_eq!(w.next(&all_idle, true, t1), None);
        assert_eq!(w.next(&[(false, Some(90_000))], true, t1), Some(85_000));
    }
}
