//! Sentence splitting and grounding never panic and stay consistent on arbitrary text
//! (they slice UTF-8 by byte offsets, so mixed scripts are the risk).

use glassbox_quality::grounding::{Evidence, extract};
use glassbox_quality::sentences::{split, units};
use proptest::prelude::*;

/// Text from the characters the parsers look at, in any order.
fn mixed_text() -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = "aAzZ eE.g.U.S 0123456789,.-/%$€¥ ?!;:\"'()\n\t\
        一二两三十百千万亿零〇年月日天周个百分之。！？；．”“）价格退款Kafka v1.2.3 ABC-123 e.g. etc. Mr. 5k 3.5"
        .chars()
        .collect();
    proptest::collection::vec(proptest::sample::select(alphabet), 0..120)
        .prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #[test]
    fn split_pieces_are_trimmed_substrings_in_order(text in mixed_text()) {
        let mut from = 0;
        for piece in split(&text) {
            prop_assert!(!piece.is_empty());
            prop_assert_eq!(piece, piece.trim());
            let at = text[from..].find(piece).map(|i| i + from);
            prop_assert!(at.is_some(), "{:?} not found after {} in {:?}", piece, from, text);
            from = at.unwrap_or(0) + piece.len();
        }
        for u in units(&text, 3) {
            prop_assert!(text.contains(u));
        }
    }

    #[test]
    fn text_grounds_itself(text in mixed_text()) {
        let items = extract(&text);
        let evidence = Evidence::new(&[text.as_str()]);
        for item in &items {
            prop_assert!(evidence.supports(item), "{:?} not grounded by its own text {:?}", item, text);
        }
    }

    #[test]
    fn arbitrary_unicode_does_not_panic(text in "\\PC{0,200}") {
        let _ = split(&text);
        let _ = units(&text, 3);
        let _ = Evidence::new(&[text.as_str()]).ungrounded(&text);
    }
}
