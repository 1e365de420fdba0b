//! The OTLP decoder on real records: spans made by OpenLLMetry 0.62.4 and OpenInference 0.1.66
//! around the real `openai` SDK, written to Kafka by the real OpenTelemetry Collector, read back
//! byte for byte (`testdata/otlp/`, see its README). Each record's sidecar holds the ground
//! truth the client computed from what the SDK returned; the decoded spans must add up to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use glassbox_schemas::{Decoded, InputFormat, JsonDecoder, Span, StatusCode};
use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/otlp")
}

/// Every `(record bytes, truth)` pair of the fixtures.
fn fixtures() -> Vec<(String, Vec<u8>, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(testdata()).expect("testdata/otlp") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".truth.json") else {
            continue;
        };
        if stem.ends_with("-client") {
            continue; // the client's whole run, not a record
        }
        let truth: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let record = truth["fixture"].as_str().expect("fixture name").to_owned();
        assert!(record.starts_with(stem), "{record} beside {name}");
        let bytes = std::fs::read(testdata().join(&record)).unwrap();
        out.push((record, bytes, truth));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 14, "the fixtures are there: {}", out.len());
    out
}

/// What the truth counts, per model.
#[derive(Debug, Default, PartialEq, Eq)]
struct Figures {
    requests: u64,
    errors: u64,
    truncations: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
    reasoning_tokens: u64,
    with_ttft: u64,
}

fn decode(record: &str, bytes: &[u8], truth: &Value) -> Vec<Span> {
    // The records' own time as the clock, so the horizon check passes on any later day.
    let now_ms = truth["kafka"]["timestamp_ms"].as_u64().unwrap();
    let decoder = JsonDecoder::default();
    let batch = match truth["encoding"].as_str().unwrap() {
        "otlp_proto" => decoder.decode_otlp_proto(bytes, now_ms),
        "otlp_json" => decoder.decode_otlp_json(bytes, now_ms),
        other => panic!("{record}: encoding {other}"),
    }
    .unwrap_or_else(|e| panic!("{record}: {e}"));
    batch
        .into_iter()
        .map(|s| s.unwrap_or_else(|r| panic!("{record}: span {} refused: {}", r.span_id, r.error)))
        .collect()
}

#[test]
fn real_records_decode_to_the_ground_truth_the_client_computed() {
    for (record, bytes, truth) in fixtures() {
        let spans = decode(&record, &bytes, &truth);
        let ids: Vec<(&str, &str)> = truth["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["trace_id"].as_str().unwrap(),
                    s["span_id"].as_str().unwrap(),
                )
            })
            .collect();
        let got_ids: Vec<(&str, &str)> = spans
            .iter()
            .map(|s| (s.trace_id.as_str(), s.span_id.as_str()))
            .collect();
        assert_eq!(got_ids, ids, "{record}: every span, in order");

        let mut got: BTreeMap<String, Figures> = BTreeMap::new();
        for s in &spans {
            let model = s
                .model()
                .unwrap_or_else(|| panic!("{record}: a span without a model"));
            let f = got.entry(model.to_owned()).or_default();
            f.requests += 1;
            f.errors += u64::from(s.status == StatusCode::Error);
            f.truncations += u64::from(s.is_truncated());
            f.input_tokens += s.usage.input.unwrap_or(0);
            f.output_tokens += s.usage.output.unwrap_or(0);
            f.cached_tokens += s.usage.cache_read.unwrap_or(0);
            f.reasoning_tokens += s.usage.reasoning.unwrap_or(0);
            f.with_ttft += u64::from(s.ttft_ns.is_some());
        }
        // OpenLLMetry 0.62.4 drops the reasoning tokens of streamed calls (they stay inside
        // the output tokens): what its spans cannot say is taken out of the truth, by call.
        let lost_reasoning = |model: &str| -> u64 {
            if truth["instrumentation"] != "openllmetry" {
                return 0;
            }
            truth["calls"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["model"] == model && c["stream"] == true && c["error"].is_null())
                .map(|c| c["reasoning_tokens"].as_u64().unwrap())
                .sum()
        };
        let want: BTreeMap<String, Figures> = truth["per_model"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(model, t)| {
                let n = |k: &str| t[k].as_u64().unwrap();
                let f = Figures {
                    requests: n("requests"),
                    errors: n("errors"),
                    truncations: n("truncations"),
                    input_tokens: n("input_tokens"),
                    output_tokens: n("output_tokens"),
                    cached_tokens: n("cached_tokens"),
                    reasoning_tokens: n("reasoning_tokens") - lost_reasoning(model),
                    // TTFT: every streamed call that did not fail.
                    with_ttft: n("streamed_ok"),
                };
                (model.clone(), f)
            })
            .collect();
        assert_eq!(got, want, "{record}");
    }
}

#[test]
fn proto_and_json_records_of_the_same_spans_decode_alike() {
    let all = fixtures();
    let mut compared = 0;
    for (record, bytes, truth) in &all {
        let Some(json_name) = record
            .strip_suffix(".bin")
            .filter(|r| r.contains("-proto-batch"))
            .map(|r| format!("{}.json", r.replace("-proto-", "-json-")))
        else {
            continue;
        };
        let (_, json_bytes, json_truth) = all
            .iter()
            .find(|(r, _, _)| *r == json_name)
            .unwrap_or_else(|| panic!("{json_name} beside {record}"));
        assert_eq!(
            decode(record, bytes, truth),
            decode(&json_name, json_bytes, json_truth),
            "{record} ~ {json_name}"
        );
        compared += 1;
    }
    assert_eq!(compared, 6, "3 batches of each library");
}

#[test]
fn auto_detection_tells_every_real_record_by_its_first_bytes() {
    for (record, bytes, truth) in fixtures() {
        let encoding = truth["encoding"].as_str().unwrap();
        assert_eq!(
            InputFormat::detect(&bytes).map(|f| f.as_str()),
            Some(encoding),
            "{record}"
        );
        let now_ms = truth["kafka"]["timestamp_ms"].as_u64().unwrap();
        let decoded = JsonDecoder::default()
            .decode_as(InputFormat::Auto, &bytes, now_ms)
            .unwrap();
        let Decoded::Batch(batch) = decoded else {
            panic!("{record}: a batch")
        };
        assert_eq!(batch.len(), truth["spans"].as_array().unwrap().len());
    }
}

#[test]
fn resource_attributes_become_dimensions_of_every_span() {
    for (record, bytes, truth) in fixtures() {
        for span in decode(&record, &bytes, &truth) {
            assert_eq!(
                span.dimension("service"),
                truth["service.name"].as_str(),
                "{record}"
            );
            assert_eq!(
                span.dimension("resource.service.name"),
                span.dimension("service")
            );
            assert!(span.dimension("resource.deployment.environment").is_some());
        }
    }
}
