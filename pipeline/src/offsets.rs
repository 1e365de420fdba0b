//! Which input offset may be committed: the largest one whose every derived output is durable.
//!
//! Each consumed record has a *derived time*: the end of the last window it contributes to
//! (0 when it contributes to none, e.g. it was dead-lettered). Offset `o` of a partition may be
//! committed (as "next to read: o") when every record before `o` has its derived time below the
//! durable frontier and every dead-letter copy before `o` has been acknowledged. Because a
//! partition's records do not arrive in event-time order, the rule is about the *prefix maximum*
//! of derived times, which is a step function of the offset: only its steps are kept, so the
//! state is a handful of entries per partition rather than one per record.

use std::collections::{BTreeSet, VecDeque};

/// The commit bookkeeping of one partition.
#[derive(Debug, Default)]
pub struct CommitTracker {
    /// Offset after the last consumed record.
    next: Option<i64>,
    /// Largest derived time over everything consumed.
    prefix_max: u64,
    /// `(offset, t)`: from `offset` on, the prefix maximum is `t`; increasing in both.
    steps: VecDeque<(i64, u64)>,
    /// Dead-letter copies not yet acknowledged.
    dead_letters: BTreeSet<i64>,
    /// Last committed "next offset".
    committed: Option<i64>,
}

impl CommitTracker {
    /// Records that `offset` was consumed and its outputs end at `derived` (ms).
    pub fn consumed(&mut self, offset: i64, derived: u64) {
        if derived > self.prefix_max {
            self.prefix_max = derived;
            self.steps.push_back((offset, derived));
        }
        self.next = Some(offset + 1);
    }

    /// Records that a dead-letter copy of `offset` is being produced.
    pub fn dead_letter_sent(&mut self, offset: i64) {
        self.dead_letters.insert(offset);
    }

    /// Records that the dead-letter copy of `offset` was acknowledged.
    pub fn dead_letter_acked(&mut self, offset: i64) {
        self.dead_letters.remove(&offset);
    }

    /// The offset to commit now, given that every output at a time `< durable` is durable
    /// (`None`: everything is durable), or `None` when there is nothing new to commit.
    pub fn commit_point(&mut self, durable: Option<u64>) -> Option<i64> {
        let next = self.next?;
        // Steps below the durable frontier are satisfied for good: the frontier only advances.
        while let Some(&(_, t)) = self.steps.front() {
            if durable.is_none_or(|d| t < d) {
                self.steps.pop_front();
            } else {
                break;
            }
        }
        let mut point = self.steps.front().map_or(next, |&(o, _)| o);
        if let Some(&first) = self.dead_letters.first() {
            point = point.min(first);
        }
        if self.committed.is_some_and(|c| c >= point) {
            return None;
        }
        self.committed = Some(point);
        Some(point)
    }

    /// The largest derived time seen.
    pub fn max_derived(&self) -> u64 {
        self.prefix_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_consumed_nothing_to_commit() {
        assert_eq!(CommitTracker::default().commit_point(None), None);
    }

    #[test]
    fn commits_up_to_the_first_record_with_undurable_output() {
        let mut t = CommitTracker::default();
        t.consumed(10, 60); // window ending 60
        t.consumed(11, 120); // window ending 120
        t.consumed(12, 60); // an out-of-order record: still behind offset 11's step
        t.consumed(13, 180);
        assert_eq!(t.commit_point(Some(60)), Some(10)); // nothing durable yet
        assert_eq!(t.commit_point(Some(61)), Some(11)); // 60 durable: offset 10 done
        assert_eq!(t.commit_point(Some(61)), None); // no progress, no commit
        assert_eq!(t.commit_point(Some(121)), Some(13)); // 11 and 12 done, 13 owes 180
        assert_eq!(t.commit_point(None), Some(14)); // everything durable
    }

    #[test]
    fn an_unacknowledged_dead_letter_holds_the_commit_back() {
        let mut t = CommitTracker::default();
        t.consumed(0, 60);
        t.consumed(1, 0);
        t.dead_letter_sent(1);
        t.consumed(2, 60);
        assert_eq!(t.commit_point(None), Some(1));
        t.dead_letter_acked(1);
        assert_eq!(t.commit_point(None), Some(3));
    }

    #[test]
    fn a_late_record_behind_an_earlier_step_does_not_commit_early() {
        let mut t = CommitTracker::default();
        t.consumed(0, 300);
        t.consumed(1, 60);
        // offset 1's window (60) is durable, but offset 0's (300) is not: nothing may be committed.
        assert_eq!(t.commit_point(Some(100)), Some(0));
        assert_eq!(t.commit_point(Some(301)), Some(2));
    }
}
