//! Which input offset may be committed: the largest one whose every derived output is durable.
//!
//! Each consumed record has a *derived time*: the end of the last window it contributes to
//! (0 when it contributes to none, e.g. it was dead-lettered). Offset `o` of a partition may be
//! committed (as "next to read: o") when every record before `o` has its derived time below the
//! durable frontier and every dead-letter copy before `o` has been acknowledged. Because a
//! partition's records do not arrive in event-time order, the rule is about the *prefix maximum*
//! of derived times, which is a step function of the offset: only its steps are kept, so the
//! state is a handful of entries per partition rather than one per record.

use std::collections::{BTreeMap, VecDeque};

/// The commit bookkeeping of one partition.
#[derive(Debug, Default)]
pub struct CommitTracker {
    /// Offset after the last consumed record.
    next: Option<i64>,
    /// Largest derived time over everything consumed.
    prefix_max: u64,
    /// `(offset, t)`: from `offset` on, the prefix maximum is `t`; increasing in both.
    steps: VecDeque<(i64, u64)>,
    /// Dead-letter copies not yet acknowledged, per offset (an OTLP record may dead-letter
    /// several of its spans).
    dead_letters: BTreeMap<i64, u32>,
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

    /// Records that a dead-letter copy of (a span of) `offset` is being produced.
    pub fn dead_letter_sent(&mut self, offset: i64) {
        *self.dead_letters.entry(offset).or_default() += 1;
    }

    /// Records that one dead-letter copy of `offset` was acknowledged.
    pub fn dead_letter_acked(&mut self, offset: i64) {
        if let Some(n) = self.dead_letters.get_mut(&offset) {
            *n -= 1;
            if *n == 0 {
                self.dead_letters.remove(&offset);
            }
        }
    }

    /// The offset that may be committed, given that every output at a time `< durable` is
    /// durable (`None`: everything is), or `None` when nothing was consumed yet.
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
        if let Some((&first, _)) = self.dead_letters.first_key_value() {
            point = point.min(first);
        }
        Some(point)
    }

    /// The largest derived time seen.
    pub fn max_derived(&self) -> u64 {
        self.prefix_max
    }
}

/// What the workers of one process may commit, gathered into one OffsetCommit request.
///
/// The request also carries the durable frontier, as the committed "offset" of this process's
/// partition of the state topic: a broker may drop commit metadata (tansu 0.6 does), but it
/// keeps offsets. At restart the largest such frontier tells which windows are already durable.
/// Why the frontier stored is safe:
/// - each worker deposits `min(durable, max derived time of its partitions + 1)`, never past
///   the durable frontier, so every window before the stored maximum is durable;
/// - a window at or after the stored maximum gets no record from below a committed offset
///   (such a record's derived time is below both the frontier its offset was computed with
///   and its worker's deposit), so a restart rebuilds it whole.
#[derive(Debug, Default)]
pub struct CommitBoard {
    offsets: BTreeMap<i32, i64>,
    frontier: u64,
    dirty: bool,
}

impl CommitBoard {
    /// The board of a process that resumed with windows before `resume_ms` already durable:
    /// the stored frontier never goes back below it. (Starting at 0 it did: the first commits
    /// after a restart stored a smaller frontier, and a second crash then re-emitted windows
    /// between the two that it could no longer rebuild whole.) Both halves of the argument
    /// above hold: windows before `resume_ms` were durable before the restart, and a record
    /// skipped as already durable (derived time below `resume_ms`) feeds no window at or
    /// after it.
    pub fn resuming(resume_ms: u64) -> Self {
        Self {
            frontier: resume_ms,
            ..Self::default()
        }
    }

    /// A worker's commit points and frontier.
    pub fn deposit(&mut self, points: impl IntoIterator<Item = (i32, i64)>, frontier: u64) {
        for (partition, offset) in points {
            if self.offsets.insert(partition, offset) != Some(offset) {
                self.dirty = true;
            }
        }
        if frontier > self.frontier {
            self.frontier = frontier;
            self.dirty = true;
        }
    }

    /// Hands out the offsets and frontier again at the next [`Self::take`], changed or not
    /// (the last commit was refused). Nothing while no worker has deposited offsets: a
    /// frontier alone is the one this process resumed from, stored already.
    pub fn again(&mut self) {
        self.dirty |= !self.offsets.is_empty();
    }

    /// The offsets and frontier to commit, if anything changed since the last call.
    pub fn take(&mut self) -> Option<(BTreeMap<i32, i64>, u64)> {
        std::mem::take(&mut self.dirty).then(|| (self.offsets.clone(), self.frontier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_commit_is_handed_out_again_unchanged() {
        let mut board = CommitBoard::default();
        board.again();
        assert_eq!(
            board.take(),
            None,
            "nothing deposited: nothing to send again"
        );
        board.deposit([(0, 10), (1, 4)], 60_000);
        let first = board.take().unwrap();
        assert_eq!(board.take(), None);
        // The broker refused it (a coordinator moving); nothing new arrives after it.
        board.again();
        assert_eq!(board.take(), Some(first.clone()));
        assert_eq!(board.take(), None);
        let mut resumed = CommitBoard::resuming(120_000);
        resumed.again();
        assert_eq!(
            resumed.take(),
            None,
            "the frontier it resumed from is stored already"
        );
    }

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
        assert_eq!(t.commit_point(Some(61)), Some(11)); // no progress
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
    fn every_dead_letter_of_a_record_must_be_acknowledged() {
        let mut t = CommitTracker::default();
        // Three spans of record 4 dead-lettered, the rest of its batch counted in a window.
        t.consumed(4, 60);
        for _ in 0..3 {
            t.dead_letter_sent(4);
        }
        t.consumed(5, 0);
        t.dead_letter_acked(4);
        t.dead_letter_acked(4);
        assert_eq!(
            t.commit_point(None),
            Some(4),
            "one copy still unacknowledged"
        );
        t.dead_letter_acked(4);
        assert_eq!(t.commit_point(None), Some(6));
        // An acknowledgement of nothing outstanding changes nothing.
        t.dead_letter_acked(4);
        assert_eq!(t.commit_point(None), Some(6));
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

    #[test]
    fn after_a_restart_the_stored_frontier_never_goes_back() {
        let mut b = CommitBoard::resuming(600);
        b.deposit([(0, 10)], 120);
        assert_eq!(b.take(), Some((BTreeMap::from([(0, 10)]), 600)));
        b.deposit([(0, 11)], 900);
        assert_eq!(b.take(), Some((BTreeMap::from([(0, 11)]), 900)));
    }

    #[test]
    fn the_board_keeps_the_largest_frontier_and_reports_changes_once() {
        let mut b = CommitBoard::default();
        assert_eq!(b.take(), None);
        b.deposit([(0, 10)], 120);
        b.deposit([(1, 7)], 60);
        assert_eq!(b.take(), Some((BTreeMap::from([(0, 10), (1, 7)]), 120)));
        assert_eq!(b.take(), None);
        b.deposit([(1, 7)], 60);
        assert_eq!(b.take(), None, "nothing new");
        b.deposit([(1, 9)], 60);
        assert_eq!(b.take(), Some((BTreeMap::from([(0, 10), (1, 9)]), 120)));
    }
}
