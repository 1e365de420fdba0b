//! The decoders of `benches/decode.rs` (the same spans, native JSON and OTLP records of 64),
//! each run a fixed number of rounds, for instruction counts that a loaded machine cannot
//! skew: `valgrind --tool=callgrind --toggle-collect='decode_count::run' \
//! target/release/examples/decode_count <json|proto|otlp_json|prost|none> 2` (built with
//! `cargo build --profile bench -p glassbox-benches --example decode_count`). Without valgrind
//! it prints spans/s.
use std::hint::black_box;

use glassbox_benches::otlp::otlp_batches;
use glassbox_benches::{lenient, payloads};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

const N: usize = 4_096;

#[inline(never)]
fn run(mode: &str, rounds: usize, input: &[Vec<u8>], proto: &[Vec<u8>], json: &[Vec<u8>]) -> usize {
    let decoder = lenient();
    let mut n = 0;
    for _ in 0..rounds {
        match mode {
            "json" => {
                for p in input {
                    n += usize::from(black_box(decoder.decode(black_box(p), 0)).is_ok());
                }
            }
            "proto" => {
                for r in proto {
                    n += black_box(decoder.decode_otlp_proto(black_box(r), 0).unwrap()).len();
                }
            }
            "otlp_json" => {
                for r in json {
                    n += black_box(decoder.decode_otlp_json(black_box(r), 0).unwrap()).len();
                }
            }
            "prost" => {
                for r in proto {
                    n += black_box(ExportTraceServiceRequest::decode(black_box(&r[..])).unwrap())
                        .resource_spans
                        .len();
                }
            }
            "none" => {}
            _ => panic!("mode"),
        }
    }
    n
}

fn main() {
    let mode = std::env::args().nth(1).expect("mode");
    let rounds: usize = std::env::args().nth(2).map_or(3, |r| r.parse().unwrap());
    let input = payloads(N, 1_764_316_800_000, 1_000.0);
    let requests = otlp_batches(&input);
    let proto: Vec<Vec<u8>> = requests.iter().map(Message::encode_to_vec).collect();
    let json: Vec<Vec<u8>> = requests
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    let t = std::time::Instant::now();
    let n = run(&mode, rounds, &input, &proto, &json);
    let el = t.elapsed();
    eprintln!(
        "{mode}: {n} in {el:?}: {:.0} spans/s",
        (rounds * N) as f64 / el.as_secs_f64()
    );
}
