//! Evaluation of the faithfulness scores on labelled answers.
//!
//! Input: JSON Lines, one answer a line:
//! `{"id"?, "question", "chunks": [..], "answer", "label": "faithful"|"unfaithful", "lang"?, "kind"?}`
//! (`lang` defaults to [`Lang::detect`] of the answer).
//!
//! For each score `x` (higher = more faithful) and group of lines the report gives
//!
//! ```text
//! AUC = ( #{(f, u): x_f > x_u} + ½ #{(f, u): x_f = x_u} ) / (n_f · n_u)
//! ```
//!
//! over all pairs of a faithful line `f` and an unfaithful line `u` (Mann–Whitney U / n_f n_u,
//! exact, ties count ½): the chance that a faithful answer outscores an unfaithful one. 0.5 is
//! chance, 1 is perfect separation. Scores: `cosine` = [`AnswerScore::cosine_min`] (embeddings
//! only), `combined` = [`AnswerScore::faithfulness_min`] (with the grounding penalty), and the
//! `_mean` variants. Groups: all, each language, each `kind`, and `subtle` (number, entity,
//! negation, added_claim) / `blatant` (off_topic, fabricated).
//!
//! Suggested threshold per language, for `combined`: an answer is flagged when its score is
//! below `t`; `t` maximises Youden's J = TPR − FPR, TPR = flagged unfaithful / unfaithful,
//! FPR = flagged faithful / faithful (balanced accuracy = (1 + J) / 2). Candidates are the
//! midpoints between consecutive distinct scores; among equal J the lowest `t` wins.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::score::{AnswerScore, Lang, ScoreError, Scorer};

/// One labelled line of the input.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Case {
    #[serde(default)]
    pub id: Option<String>,
    pub question: String,
    pub chunks: Vec<String>,
    pub answer: String,
    pub label: Label,
    #[serde(default)]
    pub lang: Option<Lang>,
    #[serde(default)]
    pub kind: Option<String>,
}

/// Ground truth of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Faithful,
    Unfaithful,
}

/// What can go wrong evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{path}:{line}: {source}")]
    Score {
        path: PathBuf,
        line: usize,
        source: ScoreError,
    },
}

/// A scored line.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub lang: Lang,
    pub kind: Option<String>,
    pub label: Label,
    pub score: AnswerScore,
}

/// The scores compared, by name.
/// `relevance` is [`AnswerScore::answer_relevance`]: not faithfulness, but what catches an
/// answer that is true to the chunks and answers another question.
pub const METRICS: [&str; 5] = [
    "cosine",
    "combined",
    "cosine_mean",
    "combined_mean",
    "relevance",
];

fn metric(score: &AnswerScore, name: &str) -> f32 {
    match name {
        "cosine" => score.cosine_min,
        "combined" => score.faithfulness_min,
        "cosine_mean" => score.cosine_mean,
        "relevance" => score.answer_relevance,
        _ => score.faithfulness,
    }
}

/// AUC of each metric over one group of lines.
#[derive(Debug, Clone, Serialize)]
pub struct GroupAuc {
    pub group: String,
    pub faithful: usize,
    pub unfaithful: usize,
    /// Same order as [`METRICS`]; `None` when a class is empty.
    pub auc: Vec<Option<f64>>,
}

/// A suggested unsupported threshold for one language.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    pub lang: Lang,
    pub threshold: f32,
    pub youden_j: f64,
    pub tpr: f64,
    pub fpr: f64,
}

/// Five-number summary of a score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub min: f32,
    pub p25: f32,
    pub median: f32,
    pub p75: f32,
    pub max: f32,
}

/// Everything [`run_eval`] found; `Display` prints it as a report.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub path: PathBuf,
    pub cases: Vec<CaseResult>,
    pub groups: Vec<GroupAuc>,
    pub thresholds: Vec<Threshold>,
    /// `(lang, label, metric) → summary`, metric `cosine` or `combined`.
    pub distribution: Vec<(Lang, Label, String, Summary)>,
}

impl EvalReport {
    /// The AUC of `metric` (one of [`METRICS`]) over `group` (`all`, `en`, `zh`, a kind,
    /// `subtle`, `blatant`, `en/subtle`, ...).
    pub fn auc(&self, group: &str, metric: &str) -> Option<f64> {
        let m = METRICS.iter().position(|x| *x == metric)?;
        self.groups.iter().find(|g| g.group == group)?.auc[m]
    }

    /// The suggested threshold for `lang`.
    pub fn threshold(&self, lang: Lang) -> Option<Threshold> {
        self.thresholds.iter().find(|t| t.lang == lang).copied()
    }
}

/// `subtle` or `blatant` for the dataset's kinds.
pub fn kind_group(kind: &str) -> Option<&'static str> {
    match kind {
        "number" | "entity" | "negation" | "added_claim" => Some("subtle"),
        "off_topic" | "fabricated" => Some("blatant"),
        _ => None,
    }
}

/// Reads `path`, scores every line with `scorer`, computes AUCs, thresholds and distributions.
pub fn run_eval(path: impl AsRef<Path>, scorer: &Scorer) -> Result<EvalReport, EvalError> {
    let path = path.as_ref().to_path_buf();
    let text = std::fs::read_to_string(&path).map_err(|source| EvalError::Io {
        path: path.clone(),
        source,
    })?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let case: Case = serde_json::from_str(line).map_err(|source| EvalError::Parse {
            path: path.clone(),
            line: i + 1,
            source,
        })?;
        let score = scorer
            .score(&case.question, &case.chunks, &case.answer)
            .map_err(|source| EvalError::Score {
                path: path.clone(),
                line: i + 1,
                source,
            })?;
        cases.push(CaseResult {
            id: case.id.clone().unwrap_or_else(|| format!("line-{}", i + 1)),
            lang: case.lang.unwrap_or(score.lang),
            kind: case.kind.clone(),
            label: case.label,
            score,
        });
    }
    Ok(report(path, cases))
}

/// Builds the report from scored lines.
pub fn report(path: PathBuf, cases: Vec<CaseResult>) -> EvalReport {
    let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in cases.iter().enumerate() {
        let mut names = vec!["all".to_string(), c.lang.to_string()];
        if let Some(kind) = &c.kind {
            names.push(kind.clone());
            if let Some(g) = kind_group(kind) {
                names.push(g.to_string());
                names.push(format!("{}/{g}", c.lang));
            }
        }
        for n in names {
            members.entry(n).or_default().push(i);
        }
    }
    let order = |g: &str| match g {
        "all" => 0,
        "en" | "zh" => 1,
        "subtle" | "blatant" => 2,
        g if g.contains('/') => 3,
        _ => 4,
    };
    let mut groups: Vec<GroupAuc> = members
        .into_iter()
        .map(|(group, idx)| {
            let count = |l: Label| idx.iter().filter(|&&i| cases[i].label == l).count();
            let auc = METRICS
                .iter()
                .map(|m| {
                    let (f, u) = split_scores(&cases, &idx, m);
                    auc(&f, &u)
                })
                .collect();
            GroupAuc {
                faithful: count(Label::Faithful),
                unfaithful: count(Label::Unfaithful),
                group,
                auc,
            }
        })
        .collect();
    groups.sort_by(|a, b| (order(&a.group), &a.group).cmp(&(order(&b.group), &b.group)));

    let mut thresholds = Vec::new();
    let mut distribution = Vec::new();
    for lang in [Lang::En, Lang::Zh] {
        let idx: Vec<usize> = (0..cases.len())
            .filter(|&i| cases[i].lang == lang)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let (f, u) = split_scores(&cases, &idx, "combined");
        if let Some((threshold, youden_j, tpr, fpr)) = best_threshold(&f, &u) {
            thresholds.push(Threshold {
                lang,
                threshold,
                youden_j,
                tpr,
                fpr,
            });
        }
        for m in ["cosine", "combined"] {
            let (f, u) = split_scores(&cases, &idx, m);
            for (label, xs) in [(Label::Faithful, f), (Label::Unfaithful, u)] {
                if let Some(s) = summary(&xs) {
                    distribution.push((lang, label, m.to_string(), s));
                }
            }
        }
    }
    EvalReport {
        path,
        cases,
        groups,
        thresholds,
        distribution,
    }
}

fn split_scores(cases: &[CaseResult], idx: &[usize], m: &str) -> (Vec<f32>, Vec<f32>) {
    let mut f = Vec::new();
    let mut u = Vec::new();
    for &i in idx {
        let x = metric(&cases[i].score, m);
        match cases[i].label {
            Label::Faithful => f.push(x),
            Label::Unfaithful => u.push(x),
        }
    }
    (f, u)
}

/// Exact Mann–Whitney AUC: P(faithful > unfaithful) + ½ P(tie). `None` if a class is empty.
pub fn auc(faithful: &[f32], unfaithful: &[f32]) -> Option<f64> {
    if faithful.is_empty() || unfaithful.is_empty() {
        return None;
    }
    let mut wins = 0.0f64;
    for &f in faithful {
        for &u in unfaithful {
            wins += if f > u {
                1.0
            } else if f == u {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (faithful.len() * unfaithful.len()) as f64)
}

/// The threshold maximising Youden's J when "score < t" flags unfaithful:
/// `(t, J, TPR, FPR)`. `None` if a class is empty.
pub fn best_threshold(faithful: &[f32], unfaithful: &[f32]) -> Option<(f32, f64, f64, f64)> {
    if faithful.is_empty() || unfaithful.is_empty() {
        return None;
    }
    let mut all: Vec<f32> = faithful.iter().chain(unfaithful).copied().collect();
    all.sort_by(f32::total_cmp);
    all.dedup();
    let mut candidates: Vec<f32> = all.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    candidates.push(all[0] - 1e-3);
    candidates.push(all[all.len() - 1] + 1e-3);
    candidates.sort_by(f32::total_cmp);
    let rate = |xs: &[f32], t: f32| xs.iter().filter(|&&x| x < t).count() as f64 / xs.len() as f64;
    let mut best: Option<(f32, f64, f64, f64)> = None;
    for t in candidates {
        let (tpr, fpr) = (rate(unfaithful, t), rate(faithful, t));
        let j = tpr - fpr;
        if best.is_none_or(|b| j > b.1 + 1e-12) {
            best = Some((t, j, tpr, fpr));
        }
    }
    best
}

fn summary(xs: &[f32]) -> Option<Summary> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f32::total_cmp);
    // Nearest-rank quantiles.
    let q = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    Some(Summary {
        min: v[0],
        p25: q(0.25),
        median: q(0.5),
        p75: q(0.75),
        max: v[v.len() - 1],
    })
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "faithfulness eval: {} ({} answers)",
            self.path.display(),
            self.cases.len()
        )?;
        writeln!(
            f,
            "AUC (P(faithful scores above unfaithful), ties 1/2; cosine = embeddings only, combined = with grounding and polarity penalties)"
        )?;
        write!(f, "{:<22} {:>4} {:>4}", "group", "f", "u")?;
        for m in METRICS {
            write!(f, " {m:>13}")?;
        }
        writeln!(f)?;
        for g in &self.groups {
            write!(f, "{:<22} {:>4} {:>4}", g.group, g.faithful, g.unfaithful)?;
            for a in &g.auc {
                match a {
                    Some(a) => write!(f, " {a:>13.3}")?,
                    None => write!(f, " {:>13}", "-")?,
                }
            }
            writeln!(f)?;
        }
        writeln!(f, "\nscore distribution (min / p25 / median / p75 / max)")?;
        for (lang, label, m, s) in &self.distribution {
            writeln!(
                f,
                "{lang} {:<10} {m:<8} {:.3} / {:.3} / {:.3} / {:.3} / {:.3}",
                format!("{label:?}").to_lowercase(),
                s.min,
                s.p25,
                s.median,
                s.p75,
                s.max
            )?;
        }
        writeln!(
            f,
            "\nsuggested thresholds (combined score < t flags an answer; max Youden's J)"
        )?;
        for t in &self.thresholds {
            writeln!(
                f,
                "{}: t = {:.3}  J = {:.3}  caught {:.0}% of unfaithful, flagged {:.0}% of faithful",
                t.lang,
                t.threshold,
                t.youden_j,
                t.tpr * 100.0,
                t.fpr * 100.0
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_mann_whitney_with_half_ties() {
        assert_eq!(auc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(auc(&[0.1], &[0.9]), Some(0.0));
        assert_eq!(auc(&[0.5, 0.5], &[0.5, 0.5]), Some(0.5));
        // Pairs: (0.9>0.5) (0.9>0.7) (0.6>0.5) (0.6<0.7) → 3/4.
        assert_eq!(auc(&[0.9, 0.6], &[0.5, 0.7]), Some(0.75));
        // One tie out of two pairs: (0.5 = 0.5) ½ + (0.5 > 0.4) 1 → 0.75.
        assert_eq!(auc(&[0.5], &[0.5, 0.4]), Some(0.75));
        assert_eq!(auc(&[], &[0.1]), None);
    }

    #[test]
    fn youden_threshold() {
        let (t, j, tpr, fpr) = best_threshold(&[0.8, 0.9, 0.7], &[0.2, 0.3, 0.75]).unwrap();
        assert!((t - 0.5).abs() < 1e-6, "{t}");
        assert!((j - 2.0 / 3.0).abs() < 1e-9);
        assert!((tpr - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(fpr, 0.0);
        let (t, j, ..) = best_threshold(&[0.8, 0.9], &[0.1, 0.2]).unwrap();
        assert!((0.2..0.8).contains(&t) && j == 1.0);
    }

    #[test]
    fn summary_quantiles() {
        let s = summary(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(
            (s.min, s.p25, s.median, s.p75, s.max),
            (1.0, 2.0, 3.0, 4.0, 5.0)
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(kind_group("negation"), Some("subtle"));
        assert_eq!(kind_group("off_topic"), Some("blatant"));
        assert_eq!(kind_group("other"), None);
    }

    #[test]
    fn parses_lines() {
        let line = r#"{"id":"x","question":"q","chunks":["c"],"answer":"a","label":"unfaithful","lang":"zh","kind":"number"}"#;
        let c: Case = serde_json::from_str(line).unwrap();
        assert_eq!(
            (c.label, c.lang, c.kind.as_deref()),
            (Label::Unfaithful, Some(Lang::Zh), Some("number"))
        );
        let c: Case =
            serde_json::from_str(r#"{"question":"q","chunks":[],"answer":"a","label":"faithful"}"#)
                .unwrap();
        assert_eq!((c.label, c.lang), (Label::Faithful, None));
    }
}
