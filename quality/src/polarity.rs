//! Polarity check: an answer clause that says the opposite of the chunk clause it copies.
//!
//! Sentence embeddings hardly see negation ("can be restored" and "cannot be restored" embed
//! within 0.05 of each other), and a flipped claim has no number or name to ground. This check
//! is lexical and deliberately narrow:
//!
//! 1. answer sentence and chunks are cut into clauses at `, ; : ， ； ： 。 . ! ?`;
//!    a leading bare answer ("Yes", "No", "不可以") is dropped, it answers the question rather
//!    than stating a fact;
//! 2. a clause's content = its words without stopwords and negation cues (English, lowercased)
//!    or its CJK character bigrams without cue characters (Chinese);
//! 3. its **match** is the chunk clause covering the largest share of that content, when the
//!    share is ≥ [`MIN_COVER`] and the clause has ≥ [`MIN_CONTENT`] content tokens;
//! 4. a conflict is reported when the number of negation cues of the clause and of its match
//!    differ in parity (`not`, `no`, `never`, `cannot`, `n't`, `none`, `nor`, `neither`,
//!    `nothing`; `不 没 无 非 未 别 勿 禁 否`, minus compounds such as 不同, 不过, 无论, 非常).
//!
//! It misses antonyms ("free" / "costs extra") and can fire on a faithful paraphrase that moves
//! the negation ("no fee" / "free of charge"); [`crate::score`] counts a conflict as one
//! ungrounded item.

use std::collections::HashSet;

use crate::sentences::is_cjk;

/// Least share of a clause's content that its matching chunk clause must cover.
pub const MIN_COVER: f64 = 0.5;
/// Least content tokens (words or CJK bigrams) for a clause to be checked.
pub const MIN_CONTENT: usize = 3;

/// A clause with its content tokens and negation parity.
#[derive(Debug, Clone)]
struct Clause {
    text: String,
    content: HashSet<String>,
    negated: bool,
}

/// The chunk clauses to compare answer clauses with.
#[derive(Debug, Clone, Default)]
pub struct Polarity {
    clauses: Vec<Clause>,
}

/// An answer clause whose polarity differs from the chunk clause it matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub answer_clause: String,
    pub chunk_clause: String,
}

impl Polarity {
    /// Cuts `texts` into clauses.
    pub fn new<S: AsRef<str>>(texts: &[S]) -> Self {
        let clauses = texts
            .iter()
            .flat_map(|t| clauses(t.as_ref(), false))
            .collect();
        Polarity { clauses }
    }

    /// The clauses of `sentence` that contradict their best-matching chunk clause.
    pub fn conflicts(&self, sentence: &str) -> Vec<Conflict> {
        let mut out = Vec::new();
        for clause in clauses(sentence, true) {
            if clause.content.len() < MIN_CONTENT {
                continue;
            }
            let mut best: Option<(f64, &Clause)> = None;
            for c in &self.clauses {
                let shared = clause.content.intersection(&c.content).count();
                let cover = shared as f64 / clause.content.len() as f64;
                if best.is_none_or(|(b, _)| cover > b) {
                    best = Some((cover, c));
                }
            }
            if let Some((cover, c)) = best
                && cover >= MIN_COVER
                && c.negated != clause.negated
            {
                out.push(Conflict {
                    answer_clause: clause.text.clone(),
                    chunk_clause: c.text.clone(),
                });
            }
        }
        out
    }
}

const CLAUSE_BREAKS: &[char] = &[
    ',', ';', ':', '，', '；', '：', '。', '!', '?', '！', '？', '\n',
];

fn clauses(text: &str, drop_answer_word: bool) -> Vec<Clause> {
    let mut parts: Vec<&str> = text
        .split(|c: char| CLAUSE_BREAKS.contains(&c) || c == '.')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if drop_answer_word && parts.len() > 1 && is_bare_answer(parts[0]) {
        parts.remove(0);
    }
    parts
        .into_iter()
        .map(|p| Clause {
            text: p.to_string(),
            content: content(p),
            negated: cue_count(p) % 2 == 1,
        })
        .collect()
}

fn is_bare_answer(clause: &str) -> bool {
    let cjk = clause.chars().filter(|&c| is_cjk(c)).count();
    let words = clause.split_whitespace().count();
    (cjk == 0 && words <= 2) || (cjk > 0 && cjk <= 4 && clause.chars().all(is_cjk))
}

const STOPWORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "to", "of", "in", "on", "at",
    "for", "and", "or", "it", "its", "they", "them", "this", "that", "these", "those", "with",
    "by", "as", "if", "can", "may", "must", "should", "will", "do", "does", "you", "your", "we",
    "our", "i", "also", "even", "only", "so", "but", "there", "their", "from", "into", "any",
    "all", "which",
];

const EN_CUES: &[&str] = &[
    "not", "no", "never", "cannot", "none", "nor", "neither", "nothing",
];
const ZH_CUES: &[char] = &['不', '没', '无', '非', '未', '别', '勿', '禁', '否'];
/// Compounds holding a cue character without negating.
const ZH_NOT_CUES: &[&str] = &[
    "不同",
    "不过",
    "不少",
    "不断",
    "不仅",
    "不管",
    "不论",
    "无论",
    "非常",
    "未来",
    "别的",
    "别人",
    "否则",
    "是否",
    "并非不",
];

fn en_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .filter(|w| !w.is_empty() && !w.chars().any(is_cjk))
        .map(str::to_lowercase)
}

fn cue_count(text: &str) -> usize {
    let en = en_words(text)
        .filter(|w| EN_CUES.contains(&w.as_str()) || w.ends_with("n't"))
        .count();
    let mut zh = text.chars().filter(|c| ZH_CUES.contains(c)).count();
    for compound in ZH_NOT_CUES {
        zh -= text.matches(compound).count().min(zh);
    }
    en + zh
}

fn content(text: &str) -> HashSet<String> {
    let mut out: HashSet<String> = en_words(text)
        .filter(|w| !STOPWORDS.contains(&w.as_str()) && !EN_CUES.contains(&w.as_str()))
        .map(|w| w.trim_end_matches("n't").to_string())
        .filter(|w| !w.is_empty())
        .collect();
    let cjk: Vec<char> = text
        .chars()
        .filter(|&c| is_cjk(c) && c.is_alphabetic() && !ZH_CUES.contains(&c))
        .collect();
    for pair in cjk.windows(2) {
        out.insert(pair.iter().collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flipped_clauses_conflict() {
        let p = Polarity::new(&[
            "Deleting a project moves it to the trash, where it can be restored for 30 days.",
            "Customer data must never be stored on personal devices, even when they are enrolled.",
        ]);
        assert!(
            p.conflicts("Yes. Deleted projects can be restored from the trash for 30 days.")
                .is_empty()
        );
        assert_eq!(
            p.conflicts("No, the project cannot be restored for 30 days.")
                .len(),
            1
        );
        assert_eq!(
            p.conflicts("Yes, customer data may be stored on personal devices.")
                .len(),
            1
        );
        assert!(
            p.conflicts("No, customer data must never be stored on personal devices.")
                .is_empty()
        );
        // Unrelated clauses are not compared.
        assert!(
            p.conflicts("The office does not open on Sundays.")
                .is_empty()
        );
    }

    #[test]
    fn chinese() {
        let p = Polarity::new(&[
            "充电宝严禁托运，只能随身携带。",
            "试用期员工同样享有公司补充医疗保险。",
        ]);
        assert_eq!(p.conflicts("可以，充电宝允许托运。").len(), 1);
        assert!(
            p.conflicts("不可以，充电宝严禁托运，只能随身携带。")
                .is_empty()
        );
        assert_eq!(
            p.conflicts("没有，试用期员工不享有公司的补充医疗保险。")
                .len(),
            1
        );
        assert!(
            p.conflicts("有，试用期员工同样享有公司的补充医疗保险。")
                .is_empty()
        );
    }

    #[test]
    fn cues() {
        assert_eq!(cue_count("It isn't free and never was"), 2);
        assert_eq!(cue_count("不同的套餐不收费"), 1);
        assert_eq!(cue_count("无论如何都非常快"), 0);
    }
}
