//! The tract embedder against onnxruntime reference embeddings
//! (`fixtures/reference_embeddings.json`, made by `fixtures/make_reference_embeddings.py`).

mod common;

use glassbox_quality::{Embedder, cosine};
use serde_json::Value;

fn reference(model: &str) -> Vec<(String, Vec<f32>)> {
    let text = include_str!("fixtures/reference_embeddings.json");
    let v: Value = serde_json::from_str(text).unwrap();
    v["models"][model]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let e = c["embedding"].as_array().unwrap();
            (
                c["text"].as_str().unwrap().to_string(),
                e.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
            )
        })
        .collect()
}

fn check_against_reference(embedder: &Embedder, model: &str) {
    let cases = reference(model);
    assert!(!cases.is_empty());
    for (text, want) in &cases {
        let got = embedder.embed(text).unwrap();
        assert_eq!(got.len(), want.len(), "{text}");
        let norm = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
        let c = cosine(&got, want);
        assert!(c >= 0.999, "{model} {text:?}: cosine to onnxruntime {c}");
    }
}

#[test]
fn minilm_matches_onnxruntime() {
    check_against_reference(&common::minilm(), "all-MiniLM-L6-v2-int8");
}

#[test]
fn e5_matches_onnxruntime() {
    let e5 = common::e5();
    assert_eq!(e5.batch_size(), 1, "e5's graph fixes batch at 1");
    check_against_reference(&e5, "multilingual-e5-small");
}

#[test]
fn minilm_has_no_fixed_batch_and_e5_has_no_token_types() {
    let m = common::minilm();
    assert_eq!(m.dim(), 384);
    assert_eq!(m.batch_size(), 1, "default batch size");
    assert!(format!("{m:?}").contains("TypeIds"));
    assert!(!format!("{:?}", common::e5()).contains("TypeIds"));
}

#[test]
fn batch_matches_single_and_is_deterministic() {
    let mut config = glassbox_quality::EmbedderConfig::minilm(glassbox_quality::models_dir());
    config.batch_size = 4;
    let m = common::load(config);
    assert_eq!(m.batch_size(), 4, "MiniLM's batch dimension is symbolic");
    let texts = [
        "short",
        "A somewhat longer sentence that needs padding partners in its batch.",
        "Refunds are accepted within 30 days.",
    ];
    let batch = m.embed_batch(&texts).unwrap();
    for (t, b) in texts.iter().zip(&batch) {
        let single = m.embed(t).unwrap();
        let c = cosine(&single, b);
        assert!(c > 0.99999, "{t}: batch vs single cosine {c}");
        assert_eq!(
            single,
            m.embed(t).unwrap(),
            "same text twice gave different vectors"
        );
    }
}

#[test]
fn cache_hits_and_returns_the_same_vectors() {
    let m = common::minilm();
    let texts = ["cache me", "cache me too", "cache me"];
    let before = m.cache_stats();
    let first = m.embed_cached(&texts).unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(first[0], first[2]);
    let second = m.embed_cached(&texts).unwrap();
    assert_eq!(first, second);
    let after = m.cache_stats();
    assert!(after.hits >= before.hits + 3, "{before:?} -> {after:?}");
}

#[test]
fn truncates_long_inputs() {
    let m = common::minilm();
    let long = "word ".repeat(2000);
    assert_eq!(m.token_count(&long).unwrap(), m.config().max_length);
    assert_eq!(m.embed(&long).unwrap().len(), 384);
}
