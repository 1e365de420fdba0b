//! Sink delivery (`sink::deliver`) without servers: scripted sinks that acknowledge when told.
//! Exact tickets and records per sink, the count of records emitted, and the durable frontier
//! (the probe) held at a time until every sink acknowledged that time's ticket.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glassbox::sinks::{Record, Sink, deliver};
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::vec::Input;

#[derive(Debug, PartialEq, Eq)]
struct Note(String);

impl Record for Note {
    fn key(&self) -> &str {
        &self.0
    }

    fn to_json(&self) -> Vec<u8> {
        format!("{:?}", self.0).into_bytes()
    }
}

/// What a scripted sink was given, and the tickets it will acknowledge at its next poll.
#[derive(Debug, Default)]
struct Script {
    submitted: Vec<(u64, Vec<String>)>,
    to_ack: Vec<u64>,
}

struct Scripted {
    name: &'static str,
    script: Rc<RefCell<Script>>,
}

impl Sink<Note> for Scripted {
    fn name(&self) -> &'static str {
        self.name
    }

    fn submit(&mut self, ticket: u64, records: &[Arc<Note>]) {
        let keys = records.iter().map(|r| r.0.clone()).collect();
        self.script.borrow_mut().submitted.push((ticket, keys));
    }

    fn poll(&mut self, acked: &mut Vec<u64>) {
        acked.append(&mut self.script.borrow_mut().to_ack);
    }

    fn backlog(&self) -> usize {
        0
    }
}

/// Steps long enough for the operator's 5 ms re-activation to run a few times.
fn settle(worker: &mut timely::worker::Worker) {
    for _ in 0..10 {
        worker.step_or_park(Some(Duration::from_millis(3)));
    }
}

fn frontier(probe: &ProbeHandle<u64>) -> Option<u64> {
    probe.with_frontier(|f| f.first().copied())
}

#[test]
fn every_sink_gets_one_ticket_per_time_and_the_frontier_waits_for_all_of_them() {
    timely::execute_directly(|worker| {
        let (a, b) = (
            Rc::<RefCell<Script>>::default(),
            Rc::<RefCell<Script>>::default(),
        );
        let sinks: Vec<Box<dyn Sink<Note>>> = vec![
            Box::new(Scripted {
                name: "a",
                script: a.clone(),
            }),
            Box::new(Scripted {
                name: "b",
                script: b.clone(),
            }),
        ];
        let sinks = Rc::new(RefCell::new(sinks));
        let emitted = Rc::new(RefCell::new(0usize));
        let count = emitted.clone();
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, stream) = scope.new_input::<(String, bool)>();
            // Records whose flag is false are not for the sinks (as windows before the resume
            // frontier are not).
            let probe = deliver(
                stream,
                "Test",
                |(key, keep): (String, bool), time| {
                    keep.then(|| Arc::new(Note(format!("{key}@{time}"))))
                },
                sinks,
                move |n| *count.borrow_mut() += n,
            );
            (input, probe)
        });
        input.advance_to(10);
        input.send(("x".into(), true));
        input.send(("skipped".into(), false));
        input.send(("y".into(), true));
        input.advance_to(15);
        // Nothing for the sinks at 15: no ticket, nothing held.
        input.send(("none".into(), false));
        input.advance_to(20);
        input.send(("z".into(), true));
        input.advance_to(30);
        settle(worker);
        let tickets = vec![
            (0, vec!["x@10".to_owned(), "y@10".to_owned()]),
            (1, vec!["z@20".to_owned()]),
        ];
        assert_eq!(a.borrow().submitted, tickets);
        assert_eq!(b.borrow().submitted, tickets);
        assert_eq!(*emitted.borrow(), 3);
        // No acknowledgement yet: the frontier is held at the first time with records.
        assert_eq!(frontier(&probe), Some(10));
        // One sink acknowledged time 10: still held, the other owes it.
        a.borrow_mut().to_ack.push(0);
        settle(worker);
        assert_eq!(frontier(&probe), Some(10));
        // Both: the frontier passes 10 and stops at 20, which both still owe.
        b.borrow_mut().to_ack.push(0);
        settle(worker);
        assert_eq!(frontier(&probe), Some(20));
        // An acknowledgement of an unknown ticket changes nothing.
        a.borrow_mut().to_ack.extend([1, 7]);
        settle(worker);
        assert_eq!(frontier(&probe), Some(20));
        b.borrow_mut().to_ack.push(1);
        settle(worker);
        // Everything durable: the frontier is the input's.
        assert_eq!(frontier(&probe), Some(30));
        drop(input);
        settle(worker);
        assert!(probe.done());
        // No further submissions happened along the way.
        assert_eq!(a.borrow().submitted.len(), 2);
    });
}
