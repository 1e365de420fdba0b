//! Scoring and evaluation with the real models (MiniLM for English, e5 for Chinese).

mod common;

use std::sync::OnceLock;

use glassbox_quality::grounding::ItemKind;
use glassbox_quality::{Lang, ScoreConfig, Scorer, run_eval};

fn scorer() -> &'static Scorer {
    static S: OnceLock<Scorer> = OnceLock::new();
    S.get_or_init(|| {
        Scorer::new(common::minilm(), ScoreConfig::default())
            .unwrap()
            .with_chinese(common::e5())
    })
}

const REFUND: [&str; 3] = [
    "Refunds are accepted within 14 days of purchase. The item must be unused.",
    "Shipping is free for orders above 50 dollars.",
    "Gift cards cannot be refunded.",
];

#[test]
fn english_faithful_beats_wrong_number() {
    let s = scorer();
    let q = "How long do I have to return an item?";
    let good = s
        .score(
            q,
            &REFUND,
            "You can return an unused item within two weeks of purchase.",
        )
        .unwrap();
    let bad = s
        .score(
            q,
            &REFUND,
            "You can return an unused item within 30 days of purchase.",
        )
        .unwrap();
    assert_eq!(good.lang, Lang::En);
    assert!(
        good.sentences[0].ungrounded.is_empty(),
        "{:?}",
        good.sentences[0].ungrounded
    );
    assert_eq!(bad.sentences[0].ungrounded.len(), 1);
    assert_eq!(bad.sentences[0].ungrounded[0].kind, ItemKind::Number);
    assert!(
        good.faithfulness_min > bad.faithfulness_min,
        "{good:?}\n{bad:?}"
    );
    assert!(!good.hallucination);
    assert!(bad.hallucination, "{bad:?}");
    // Formula: support = cosine − penalty × ungrounded items.
    let b = &bad.sentences[0];
    let penalty = s.config().penalty;
    assert!((b.support - (b.cosine - penalty)).abs() < 1e-6);
    assert_eq!(b.best_chunk, Some(0));
}

#[test]
fn english_added_claim_is_the_weakest_sentence() {
    let s = scorer();
    let answer = "Refunds are accepted within 14 days if the item is unused. \
                  We also plant a tree for every order shipped to Norway.";
    let r = s
        .score("What is the refund policy?", &REFUND, answer)
        .unwrap();
    assert_eq!(r.sentences.len(), 2);
    assert!(r.sentences[1].support < r.sentences[0].support, "{r:?}");
    assert!(r.sentences[1].unsupported);
    assert!(r.hallucination);
    assert!(r.faithfulness_min <= r.faithfulness && r.faithfulness <= r.sentences[0].support);
    // Relevance: the chunks are about refunds, and so is the question.
    assert!(r.context_relevance_max >= r.context_relevance);
    assert!(r.context_relevance_max > 0.4, "{r:?}");
    assert!(r.answer_relevance > 0.3, "{r:?}");
}

#[test]
fn chinese_numerals_are_grounded_and_changes_flagged() {
    let s = scorer();
    let chunks = [
        "购买后十四天内可申请退款，商品须未使用。",
        "订单满50元免运费。",
    ];
    let q = "退货期限是多久？";
    let good = s
        .score(q, &chunks, "未使用的商品可以在购买后两周内申请退款。")
        .unwrap();
    let bad = s
        .score(q, &chunks, "未使用的商品可以在购买后三十天内申请退款。")
        .unwrap();
    assert_eq!(good.lang, Lang::Zh);
    assert!(
        good.sentences[0].ungrounded.is_empty(),
        "{:?}",
        good.sentences[0].ungrounded
    );
    assert_eq!(bad.sentences[0].ungrounded[0].text, "三十天");
    assert!(good.faithfulness_min > bad.faithfulness_min);
    assert!(bad.hallucination);
}

#[test]
fn edge_cases() {
    let s = scorer();
    let empty = s.score("q?", &REFUND, "").unwrap();
    assert!(empty.sentences.is_empty());
    assert_eq!(
        (
            empty.faithfulness,
            empty.hallucination,
            empty.answer_relevance
        ),
        (1.0, false, 0.0)
    );
    let no_chunks = s
        .score("q?", &[] as &[&str], "Refunds take 14 days.")
        .unwrap();
    assert_eq!(no_chunks.sentences[0].best_chunk, None);
    assert_eq!(no_chunks.sentences[0].cosine, 0.0);
    assert!(no_chunks.hallucination);
    assert_eq!(no_chunks.context_relevance, 0.0);
}

#[test]
fn identical_input_gives_identical_scores_cache_cold_or_warm() {
    let s = scorer();
    let q = "How long do I have to return an item?";
    let a = "You can return it within 14 days. Gift cards are excluded.";
    let chunks = [
        "A chunk seen only by this test: returns within 14 days.",
        REFUND[2],
    ];
    let cold = s.score(q, &chunks, a).unwrap();
    let warm = s.score(q, &chunks, a).unwrap();
    assert_eq!(cold, warm);
    s.embedder(Lang::En).clear_cache();
    assert_eq!(s.score(q, &chunks, a).unwrap(), cold);
}

#[test]
fn eval_on_a_small_fixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/eval_small.jsonl"
    );
    let report = run_eval(path, scorer()).unwrap();
    assert_eq!(report.cases.len(), 4);
    assert_eq!(report.auc("en", "combined"), Some(1.0), "{report}");
    assert_eq!(report.auc("zh", "combined"), Some(1.0), "{report}");
    assert!(report.threshold(Lang::En).is_some());
    let text = report.to_string();
    assert!(
        text.contains("suggested thresholds") && text.contains("combined"),
        "{text}"
    );
}

/// Guards the grounding and polarity checks on the labelled set
/// (`testdata/faithfulness_cases.jsonl`): combined must beat cosine alone and stay above what
/// was measured (2026-11: all 0.794, en 0.829, zh 0.853; negation 0.806 against cosine 0.618)
/// minus 0.02.
#[test]
fn labelled_set_auc() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/faithfulness_cases.jsonl"
    );
    let report = run_eval(path, scorer()).unwrap();
    eprintln!("{report}");
    for (group, floor) in [
        ("all", 0.77),
        ("en", 0.80),
        ("zh", 0.83),
        ("negation", 0.78),
    ] {
        let cosine = report.auc(group, "cosine").unwrap();
        let combined = report.auc(group, "combined").unwrap();
        assert!(
            combined >= cosine,
            "{group}: combined {combined:.3} < cosine {cosine:.3}\n{report}"
        );
        assert!(
            combined >= floor,
            "{group}: combined AUC {combined:.3} < floor {floor}\n{report}"
        );
    }
}
