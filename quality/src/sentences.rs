//! Sentence splitting for English and Chinese, mixed freely in one text.
//!
//! A sentence ends at:
//! - a line break (answers are often lists);
//! - `。！？；` and the full-width `．！？；` (Chinese needs no space after them);
//! - `!` or `?` followed by a space, the end, or a CJK character;
//! - `.` followed by a space, the end, or a CJK character, unless the word before it is an
//!   abbreviation: `e.g.`, `i.e.`, `Mr.`, `Dr.`, `vs.`, `approx.`, a single-letter initial
//!   (`J. Smith`), or a dotted acronym (`U.S.`, `a.m.`) not followed by a capital; `etc.`
//!   ends a sentence only before a capital. `3.5` and `v1.2` never split (no space after the
//!   dot).
//!
//! Closing quotes and brackets after a terminator stay with its sentence. Pieces are trimmed;
//! pieces without a letter or digit are dropped.

/// Splits `text` into sentences (trimmed sub-slices of `text`, in order).
///
/// ```
/// use glassbox_quality::sentences::split;
/// assert_eq!(
///     split("Prices rose 3.5% in the U.S. last year, e.g. for rent. 退款需三天。可以吗？"),
///     vec!["Prices rose 3.5% in the U.S. last year, e.g. for rent.", "退款需三天。", "可以吗？"]
/// );
/// ```
pub fn split(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut i = 0usize;
    while i < chars.len() {
        let c = chars[i].1;
        let boundary = match c {
            '\n' | '\r' => Some(i + 1),
            '。' | '！' | '？' | '；' | '．' => Some(after_closers(&chars, i + 1)),
            '!' | '?' | '.' => {
                let mut j = i + 1;
                // Runs like "?!" or "..." end together.
                while j < chars.len() && matches!(chars[j].1, '!' | '?' | '.') {
                    j += 1;
                }
                let j = after_closers(&chars, j);
                let next = chars.get(j).map(|&(_, c)| c);
                let ends = match next {
                    None => true,
                    Some(n) if n.is_whitespace() => true,
                    Some(n) => is_cjk(n),
                };
                if ends && (c != '.' || j > i + 1 || !is_abbreviation(text, &chars, i, j)) {
                    Some(j)
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(end_idx) = boundary {
            let end = chars.get(end_idx).map_or(text.len(), |&(p, _)| p);
            push(&mut out, &text[start..end]);
            start = end;
            i = end_idx;
        } else {
            i += 1;
        }
    }
    push(&mut out, &text[start..]);
    out
}

/// [`split`], with fragments of fewer than `min_words` words (CJK characters count as half a
/// word: "是的。" is one) joined to the next sentence, or to the previous one at the end.
/// "Yes. Deleted projects stay in the trash." is one unit: "Yes." alone embeds to nothing
/// useful, yet it carries the answer's polarity.
pub fn units(text: &str, min_words: usize) -> Vec<&str> {
    let parts = split(text);
    let mut out: Vec<&str> = Vec::new();
    let mut pending: Option<usize> = None; // byte start of a short fragment waiting for a partner
    let base = text.as_ptr() as usize;
    let offset = |p: &str| p.as_ptr() as usize - base;
    for p in parts {
        let start = pending.take().unwrap_or_else(|| offset(p));
        let end = offset(p) + p.len();
        let unit = &text[start..end];
        if word_count(unit) < min_words {
            pending = Some(start);
        } else {
            out.push(unit);
        }
    }
    if let Some(start) = pending {
        match out.pop() {
            Some(last) => out.push(&text[offset(last)..text.trim_end().len()]),
            None => out.push(text[start..].trim()),
        }
    }
    out
}

fn word_count(text: &str) -> usize {
    let cjk = text
        .chars()
        .filter(|&c| is_cjk(c) && c.is_alphabetic())
        .count();
    let latin = text
        .split(|c: char| !c.is_alphanumeric() || is_cjk(c))
        .filter(|w| !w.is_empty())
        .count();
    latin + cjk / 2
}

fn push<'a>(out: &mut Vec<&'a str>, piece: &'a str) {
    let piece = piece.trim();
    if piece.chars().any(char::is_alphanumeric) {
        out.push(piece);
    }
}

fn after_closers(chars: &[(usize, char)], mut j: usize) -> usize {
    while j < chars.len()
        && matches!(
            chars[j].1,
            '"' | '\'' | ')' | ']' | '”' | '’' | '」' | '』' | '）' | '》'
        )
    {
        j += 1;
    }
    j
}

/// True for CJK ideographs and CJK punctuation/full-width forms.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x303F | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF
        | 0x20000..=0x2FA1F)
}

const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "eg", "ie", "cf", "vs", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st",
    "approx", "fig", "no", "vol", "ca", "resp", "al", "dept", "est", "inc", "ltd", "corp", "jan",
    "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
];

/// Whether the `.` at `chars[dot]` closes an abbreviation rather than a sentence; `next` is the
/// index after the terminator run and closers.
fn is_abbreviation(text: &str, chars: &[(usize, char)], dot: usize, next: usize) -> bool {
    // The word before the dot, back to whitespace or an opening bracket/quote.
    let mut k = dot;
    while k > 0 && !chars[k - 1].1.is_whitespace() && !matches!(chars[k - 1].1, '(' | '"' | '“') {
        k -= 1;
    }
    if k == dot {
        return false;
    }
    let word = &text[chars[k].0..chars[dot].0];
    let lower = word.to_lowercase();
    let next_word_upper = next_word(chars, next).is_some_and(|c| c.is_uppercase());
    if lower == "etc" {
        return !next_word_upper;
    }
    if ABBREVIATIONS.contains(&lower.as_str()) {
        return true;
    }
    // A single-letter initial: "J. Smith".
    if word.chars().count() == 1 && word.chars().all(|c| c.is_alphabetic() && c.is_uppercase()) {
        return true;
    }
    // Dotted acronyms: "U.S", "a.m", "Ph.D".
    let dotted = word.contains('.')
        && word
            .split('.')
            .all(|p| !p.is_empty() && p.chars().count() <= 2 && p.chars().all(char::is_alphabetic));
    dotted && !next_word_upper
}

fn next_word(chars: &[(usize, char)], mut j: usize) -> Option<char> {
    while j < chars.len() && chars[j].1.is_whitespace() {
        j += 1;
    }
    chars.get(j).map(|&(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::{split, units};

    #[test]
    fn english_basics() {
        assert_eq!(
            split("One. Two! Three? Four"),
            vec!["One.", "Two!", "Three?", "Four"]
        );
        assert_eq!(
            split("Wait?! Really... Yes."),
            vec!["Wait?!", "Really...", "Yes."]
        );
        assert_eq!(
            split("He said \"go.\" Then left."),
            vec!["He said \"go.\"", "Then left."]
        );
        assert_eq!(split("  "), Vec::<&str>::new());
        assert_eq!(split("..."), Vec::<&str>::new());
    }

    #[test]
    fn english_decimals_and_abbreviations() {
        assert_eq!(
            split("It costs 3.5 dollars. Version 1.2.3 is out."),
            vec!["It costs 3.5 dollars.", "Version 1.2.3 is out."]
        );
        assert_eq!(
            split("Use a cache, e.g. an LRU. It helps."),
            vec!["Use a cache, e.g. an LRU.", "It helps."]
        );
        assert_eq!(
            split("Ask Dr. Smith, i.e. the lead. Done."),
            vec!["Ask Dr. Smith, i.e. the lead.", "Done."]
        );
        assert_eq!(
            split("J. R. R. Tolkien wrote it. Yes."),
            vec!["J. R. R. Tolkien wrote it.", "Yes."]
        );
        assert_eq!(
            split("Sold in the U.S. and Canada. Shipped at 9 a.m. daily."),
            vec!["Sold in the U.S. and Canada.", "Shipped at 9 a.m. daily."]
        );
        assert_eq!(
            split("It grew in the U.S. The rest fell."),
            vec!["It grew in the U.S.", "The rest fell."]
        );
        assert_eq!(
            split("Apples, pears, etc. are fruit. Cars etc. Trucks too."),
            vec!["Apples, pears, etc. are fruit.", "Cars etc.", "Trucks too."]
        );
        assert_eq!(
            split("See fig. 3 for details."),
            vec!["See fig. 3 for details."]
        );
    }

    #[test]
    fn chinese_and_full_width() {
        assert_eq!(
            split("退款需要三天。请联系客服！可以吗？好的；谢谢"),
            vec![
                "退款需要三天。",
                "请联系客服！",
                "可以吗？",
                "好的；",
                "谢谢"
            ]
        );
        assert_eq!(
            split("版本是3.5。“好的。”然后呢？"),
            vec!["版本是3.5。", "“好的。”", "然后呢？"]
        );
        assert_eq!(
            split("Kafka is fast.它很快！"),
            vec!["Kafka is fast.", "它很快！"]
        );
        assert_eq!(
            split("价格上涨了百分之五．完"),
            vec!["价格上涨了百分之五．", "完"]
        );
    }

    #[test]
    fn short_fragments_join_a_neighbour() {
        assert_eq!(
            units("Yes. Deleted projects stay for 30 days. Done.", 3),
            vec!["Yes. Deleted projects stay for 30 days. Done."]
        );
        assert_eq!(
            units("No. It is not free. You pay twice a year.", 3),
            vec!["No. It is not free.", "You pay twice a year."]
        );
        assert_eq!(
            units("是的。删除的项目会在回收站保留30天。", 3),
            vec!["是的。删除的项目会在回收站保留30天。"]
        );
        assert_eq!(units("Yes.", 3), vec!["Yes."]);
        assert_eq!(units("", 3), Vec::<&str>::new());
    }

    #[test]
    fn lines_are_boundaries() {
        assert_eq!(
            split("Steps:\n- install it\n- run it"),
            vec!["Steps:", "- install it", "- run it"]
        );
    }
}
