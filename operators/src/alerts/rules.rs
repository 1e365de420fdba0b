//! Composite alert rules: the rules file, the `when` expression language, the figure registry,
//! and the evaluation of a rule against a group's windows. No dataflow here: the operator that
//! runs the rules over event time is [`crate::alerts`].
//!
//! # The rules file
//!
//! ```toml
//! [[rule]]
//! name = "slow-and-failing"          # unique; with the group labels, the alert's key
//! severity = "page"                  # free text, copied into every event (default "warning")
//! by = ["provider", "model"]         # group labels: series dimensions; the others are merged
//! filter = { tenant = "acme", feature = "!=batch", model = "=~gpt-4.*" }
//! view = "sliding_5m"                # the window view the figures are read over
//! when = "p95(latency_ms) > 3000 and error_rate > 0.05"
//! for = "2m"                         # must hold this long before firing (default "0s")
//! keep_firing_for = "5m"             # must be false this long before resolving (default "0s")
//! min_requests = 20                  # fewer requests in the window: the condition is false
//! [rule.annotations]
//! summary = "{{provider}}/{{model}} p95 {{p95(latency_ms)}} ms, errors {{error_rate}}"
//! ```
//!
//! - `by` and `filter` name series dimensions ([`Dimensions`]). A filter value is a matcher:
//!   `"v"` or `"=v"` (equal), `"!=v"` (not equal), `"=~re"` (matches), `"!~re"` (does not match).
//!   Regular expressions are anchored at both ends, as in Prometheus.
//! - Durations are a sequence of `<integer><unit>` with unit `ms`, `s`, `m`, `h`, `d`, e.g.
//!   `"90s"`, `"1h30m"`. Baseline spans and offsets must be multiples of the pane width.
//! - `min_requests` (default 1, and never below 1): a group with fewer requests in the rule's
//!   window evaluates false, so a group without data never fires.
//! - Unknown keys are errors (a typo must not silently disable a rule).
//!
//! # The `when` expression
//!
//! ```text
//! cond    := or
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | cmp
//! cmp     := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
//! sum     := product (("+" | "-") product)*
//! product := unary (("*" | "/") unary)*
//! unary   := "-" unary | atom
//! atom    := number | figure | "(" cond ")"
//! figure  := name | name "(" [metric] ("," key "=" string)* ")"     key: over | offset
//! ```
//!
//! A figure is the value of a registered aggregate ([`FIGURES`]) over the rule's window
//! `[E − L, E)` (`E` the evaluation time, `L` the view's length). A baseline is the same figure
//! over another window, chosen by two named arguments:
//!
//! - `over="1h"`: a trailing window of that length ending at `E` (instead of `L`);
//! - `offset="1d"`: the window shifted back, ending at `E − offset`.
//!
//! e.g. `p95(latency_ms) > 2 * p95(latency_ms, over="1h")` or `rpm < 0.5 * rpm(offset="1d")`;
//! both may be given. Strings take double or single quotes (single quotes read better inside a
//! TOML basic string). Comparisons, `and`, `or` and `not` are conditions; `+ - * /`, numbers and
//! figures are numbers; the checker rejects a number where a condition is needed and vice versa.
//!
//! A figure may have no value: a percentile or mean without samples, a rate over zero
//! requests, a division by zero. A missing value propagates through arithmetic, and a
//! comparison with a missing side is false (`not` of it is then true). Counts (`requests`,
//! `rpm`, `tpm`) of an empty window are 0, not missing: a baseline over a span before the
//! group had data compares against 0, so guard a ratio rule with e.g.
//! `rpm(offset="1d") > 0 and rpm > 2 * rpm(offset="1d")`.
//!
//! Rules are evaluated at every pane end (the slide of every view), so `for` and
//! `keep_firing_for` are measured between pane ends: `for = "90s"` over one-minute panes fires
//! on the third consecutive true evaluation, 2 minutes after the first.
//!
//! Errors carry the rule's 1-based index and name, and for the expression the 1-based line and
//! column inside the `when` text ([`RuleError`]).
//!
//! # Annotations
//!
//! Each annotation is a template: `{{label}}` is a `by` label's value, `{{<expression>}}` any
//! numeric expression (usually one figure) evaluated at the transition, formatted by
//! [`format_value`]. Templates are checked at start-up like `when`.
//!
//! # Adding a figure
//!
//! Add one [`FigureDef`] to [`FIGURES`]: its name, whether it takes a metric argument, and a
//! function of the window's [`WindowMetrics`]. If the figure needs data the windows do not
//! carry yet, that data goes into [`crate::metrics::figures::Figures`] or a new
//! [`crate::metrics::panes::Part`] first. Names listed in [`RESERVED`] are planned figures: using one is
//! an error that says so.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;

use crate::metrics::WindowMetrics;
use crate::metrics::facts::{Dimensions, Series};
use crate::metrics::sketch::Metric;
use crate::metrics::views::Views;

// ---------------------------------------------------------------------------------------------
// Errors

/// A rules file that cannot be used. Indices are 1-based, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The file is not TOML of the expected shape (the message has line and column).
    #[error("rules file: {0}")]
    Toml(String),
    /// A field of one rule is invalid.
    #[error("rule #{index} `{name}`: {field}: {message}")]
    Field {
        /// 1-based position of the rule in the file.
        index: usize,
        /// The rule's name.
        name: String,
        /// Which field (`view`, `by`, `filter.tenant`, `annotations.summary`, …).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The `when` expression (or an annotation template) does not parse or type-check.
    #[error("rule #{index} `{name}`: {field}: {error}")]
    Expr {
        /// 1-based position of the rule in the file.
        index: usize,
        /// The rule's name.
        name: String,
        /// `when` or `annotations.<key>`.
        field: String,
        /// Where and what.
        error: ExprError,
    },
}

/// An expression error at a 1-based line and column (in characters) of the expression text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ExprError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Durations

/// Parses a duration such as `"90s"`, `"2m"`, `"1h30m"`, `"500ms"`, `"1d"` into milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration `{text}`: expected e.g. \"30s\", \"2m\", \"1h30m\"");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// A duration in its shortest exact form: `1d`, `2h`, `5m`, `90s`, `250ms`.
pub fn format_duration(ms: u64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// How annotation templates print a value: integers without a fraction, other values with up
/// to 4 decimals (trailing zeros trimmed), a missing value as `n/a`.
pub fn format_value(value: Option<f64>) -> String {
    match value {
        None => "n/a".to_owned(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => {
            let s = format!("{v:.4}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".to_owned()
            } else {
                s.to_owned()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The figure registry

/// What a figure is computed from: one window of one group.
#[derive(Clone, Copy, Debug)]
pub struct FigureInput<'a> {
    /// The group's merged metrics over the window.
    pub metrics: &'a WindowMetrics,
    /// The window's length, ms (for rates per minute).
    pub length_ms: u64,
    /// The metric argument, for figures that take one.
    pub metric: Option<Metric>,
}

/// One aggregate that rules can use.
#[derive(Debug)]
pub struct FigureDef {
    /// The name in expressions.
    pub name: &'static str,
    /// Whether it takes a metric argument (`latency_ms`, `ttft_ms`, `tpot_ms`).
    pub takes_metric: bool,
    /// Unit and meaning, for documentation.
    pub doc: &'static str,
    /// The value; `None` when the window has no data for it.
    pub value: fn(&FigureInput<'_>) -> Option<f64>,
}

impl PartialEq for FigureDef {
    fn eq(&self, other: &Self) -> bool {
        // Names are unique in the registry.
        self.name == other.name
    }
}

fn with_requests(m: &WindowMetrics, v: f64) -> Option<f64> {
    (m.totals.requests > 0).then_some(v)
}

fn quantile(i: &FigureInput<'_>, q: usize) -> Option<f64> {
    let metric = i.metric.expect("checked at parse: takes a metric");
    i.metrics
        .summary(metric)
        .map(|s| s.quantiles_us[q] as f64 / 1_000.0)
}

/// Every figure a rule may use. The percentile figures read the DDSketch of the group's merged
/// bucket counts (so they carry the sketch's relative error, never an average of percentiles);
/// the others are exact. Durations are in milliseconds.
pub static FIGURES: &[FigureDef] = &[
    FigureDef {
        name: "requests",
        takes_metric: false,
        doc: "model calls in the window",
        value: |i| Some(i.metrics.totals.requests as f64),
    },
    FigureDef {
        name: "rpm",
        takes_metric: false,
        doc: "requests per minute",
        value: |i| Some(i.metrics.rpm(i.length_ms)),
    },
    FigureDef {
        name: "tpm",
        takes_metric: false,
        doc: "tokens (input + output) per minute",
        value: |i| Some(i.metrics.tpm(i.length_ms)),
    },
    FigureDef {
        name: "error_rate",
        takes_metric: false,
        doc: "share of requests that ended in error, 0..1",
        value: |i| with_requests(i.metrics, i.metrics.error_rate()),
    },
    FigureDef {
        name: "truncation_rate",
        takes_metric: false,
        doc: "share of requests cut off by the token limit, 0..1",
        value: |i| with_requests(i.metrics, i.metrics.truncation_rate()),
    },
    FigureDef {
        name: "p50",
        takes_metric: true,
        doc: "median, ms",
        value: |i| quantile(i, 0),
    },
    FigureDef {
        name: "p90",
        takes_metric: true,
        doc: "90th percentile, ms",
        value: |i| quantile(i, 1),
    },
    FigureDef {
        name: "p95",
        takes_metric: true,
        doc: "95th percentile, ms",
        value: |i| quantile(i, 2),
    },
    FigureDef {
        name: "p99",
        takes_metric: true,
        doc: "99th percentile, ms",
        value: |i| quantile(i, 3),
    },
    FigureDef {
        name: "cost_usd",
        takes_metric: false,
        doc: "exact cost of the window's calls, USD (needs cost.enabled; priced calls only)",
        value: |i| {
            let c = i.metrics.cost.as_ref()?;
            Some(c.total() as f64 / crate::cost::PICO_PER_USD as f64)
        },
    },
    FigureDef {
        name: "answers_scored",
        takes_metric: false,
        doc: "RAG answers scored in the window (needs quality.enabled)",
        value: |i| Some(quality(i)[0] as f64),
    },
    FigureDef {
        name: "hallucination_rate",
        takes_metric: false,
        doc: "answers with an unsupported sentence / answers scored, 0..1 (needs quality.enabled)",
        value: |i| quality_ratio(quality(i)[2], quality(i)[0]),
    },
    FigureDef {
        name: "feedback",
        takes_metric: false,
        doc: "user feedback records in the window (needs quality.enabled)",
        value: |i| Some(quality(i)[3] as f64),
    },
    FigureDef {
        name: "negative_feedback_rate",
        takes_metric: false,
        doc: "negative feedback / feedback, 0..1 (needs quality.enabled)",
        value: |i| quality_ratio(quality(i)[4], quality(i)[3]),
    },
    FigureDef {
        name: "avg",
        takes_metric: true,
        doc: "exact mean, ms",
        value: |i| {
            let metric = i.metric.expect("checked at parse: takes a metric");
            i.metrics.mean_us(metric).map(|us| us / 1_000.0)
        },
    },
];

/// Figures planned by later issues, with what they wait for: using one is a clear error.
pub static RESERVED: &[(&str, &str)] = &[];

/// Metric arguments planned by later issues.
pub static RESERVED_METRICS: &[(&str, &str)] = &[];

fn quality<'a>(i: &FigureInput<'a>) -> &'a [i64; 7] {
    &i.metrics.quality
}

fn quality_ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// `avg(faithfulness)`: the mean faithfulness of the answers scored in the window. Not in
/// [`FIGURES`]: it is written as `avg` with the argument `faithfulness`.
pub static AVG_FAITHFULNESS: FigureDef = FigureDef {
    name: "avg",
    takes_metric: false,
    doc: "mean faithfulness of the RAG answers scored in the window, -1..1 (needs quality.enabled)",
    value: |i| {
        let q = quality(i);
        quality_ratio(q[1], q[0]).map(|v| v / 1e6)
    },
};

/// The figures of the quality path (they need `quality.enabled`, and delay the rules that use
/// them by the trace timeout and the scoring time).
pub const QUALITY_FIGURES: [&str; 4] = [
    "answers_scored",
    "hallucination_rate",
    "negative_feedback_rate",
    "feedback",
];

fn figure_def(name: &str) -> Option<&'static FigureDef> {
    FIGURES.iter().find(|f| f.name == name)
}

fn metric_named(name: &str) -> Option<Metric> {
    Metric::ALL.into_iter().find(|m| m.name() == name)
}

// ---------------------------------------------------------------------------------------------
// Windows of a group

/// Which window a figure reads, relative to the evaluation time `E`: `[E − offset − length,
/// E − offset)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame {
    /// Window length, ms.
    pub length_ms: u64,
    /// How far before `E` the window ends, ms.
    pub offset_ms: u64,
}

impl Frame {
    /// The window `[start, end)` this frame denotes at evaluation time `at_ms`, or `None` when
    /// it would end before the epoch.
    pub fn at(&self, at_ms: u64) -> Option<(u64, u64)> {
        let end = at_ms.checked_sub(self.offset_ms)?;
        Some((end.saturating_sub(self.length_ms), end))
    }
}

// ---------------------------------------------------------------------------------------------
// The expression language

/// A reference to a figure over one window: a *term* of the expression, reported in alerts.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    /// The canonical text, e.g. `p95(latency_ms, over="1h")`.
    pub text: String,
    figure: &'static FigureDef,
    metric: Option<Metric>,
    /// Explicit `over`, ms.
    over_ms: Option<u64>,
    offset_ms: u64,
}

impl Term {
    /// The frame this term reads, for a rule whose view has length `view_ms`.
    pub fn frame(&self, view_ms: u64) -> Frame {
        Frame {
            length_ms: self.over_ms.unwrap_or(view_ms),
            offset_ms: self.offset_ms,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// The checked syntax tree. Terms are indices into the rule's term table.
#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Num(f64),
    Term(usize),
    Neg(Box<Expr>),
    Arith(Arith, Box<Expr>, Box<Expr>),
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    fn num(&self, terms: &[Option<f64>]) -> Option<f64> {
        match self {
            Expr::Num(v) => Some(*v),
            Expr::Term(i) => terms[*i],
            Expr::Neg(e) => e.num(terms).map(|v| -v),
            Expr::Arith(op, l, r) => {
                let (l, r) = (l.num(terms)?, r.num(terms)?);
                let v = match op {
                    Arith::Add => l + r,
                    Arith::Sub => l - r,
                    Arith::Mul => l * r,
                    Arith::Div => l / r,
                };
                v.is_finite().then_some(v)
            }
            _ => unreachable!("type-checked: a condition where a number is expected"),
        }
    }

    fn holds(&self, terms: &[Option<f64>]) -> bool {
        match self {
            Expr::Cmp(op, l, r) => match (l.num(terms), r.num(terms)) {
                (Some(l), Some(r)) => match op {
                    Cmp::Lt => l < r,
                    Cmp::Le => l <= r,
                    Cmp::Gt => l > r,
                    Cmp::Ge => l >= r,
                    Cmp::Eq => l == r,
                    Cmp::Ne => l != r,
                },
                _ => false,
            },
            Expr::And(l, r) => l.holds(terms) && r.holds(terms),
            Expr::Or(l, r) => l.holds(terms) || r.holds(terms),
            Expr::Not(e) => !e.holds(terms),
            _ => unreachable!("type-checked: a number where a condition is expected"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Str(String),
    Op(&'static str),
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Num,
    Cond,
}

impl Type {
    fn what(self) -> &'static str {
        match self {
            Type::Num => "a number",
            Type::Cond => "a condition",
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(Tok, Pos)>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut column) = (0, 1, 1);
    let err = |pos: Pos, message: String| ExprError {
        line: pos.line,
        column: pos.column,
        message,
    };
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, column };
        let start = i;
        if c == '\n' {
            i += 1;
            line += 1;
            column = 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            column += 1;
            continue;
        }
        let tok = if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let s: String = chars[start..i].iter().collect();
            if i < chars.len() && (chars[i].is_alphabetic() || chars[i] == '_') {
                return Err(err(
                    pos,
                    format!(
                        "invalid number `{s}{}`: durations go in quotes, e.g. over=\"1h\"",
                        chars[i]
                    ),
                ));
            }
            Tok::Num(
                s.parse()
                    .map_err(|_| err(pos, format!("invalid number `{s}`")))?,
            )
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            Tok::Ident(chars[start..i].iter().collect())
        } else if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c && chars[i] != '\n' {
                i += 1;
            }
            if i >= chars.len() || chars[i] != c {
                return Err(err(pos, "unterminated string".to_owned()));
            }
            i += 1;
            Tok::Str(chars[start + 1..i - 1].iter().collect())
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = ["<=", ">=", "==", "!="]
                .into_iter()
                .find(|o| *o == two)
                .or_else(|| {
                    ["<", ">", "+", "-", "*", "/", "(", ")", ",", "="]
                        .into_iter()
                        .find(|o| o.starts_with(c))
                });
            match op {
                Some(op) => {
                    i += op.len();
                    Tok::Op(op)
                }
                None if c == '&' || c == '|' || c == '!' => {
                    return Err(err(
                        pos,
                        format!("unexpected `{c}`: use `and`, `or`, `not`"),
                    ));
                }
                None => return Err(err(pos, format!("unexpected character `{c}`"))),
            }
        };
        column += i - start;
        out.push((tok, pos));
    }
    out.push((Tok::End, Pos { line, column }));
    Ok(out)
}

/// The parser: recursive descent over the grammar in the module docs, building the term table
/// as it goes.
struct Parser<'t> {
    toks: Vec<(Tok, Pos)>,
    at: usize,
    terms: &'t mut Vec<Term>,
    pane_ms: u64,
}

type Parsed = (Expr, Type, Pos);

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].0
    }

    fn pos(&self) -> Pos {
        self.toks[self.at].1
    }

    fn bump(&mut self) -> (Tok, Pos) {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn err<T>(&self, pos: Pos, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError {
            line: pos.line,
            column: pos.column,
            message: message.into(),
        })
    }

    fn describe(tok: &Tok) -> String {
        match tok {
            Tok::Num(v) => format!("number `{v}`"),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Op(o) => format!("`{o}`"),
            Tok::End => "end of expression".to_owned(),
        }
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == kw)
    }

    fn expect_type(
        &self,
        (e, t, pos): Parsed,
        want: Type,
        context: &str,
    ) -> Result<Expr, ExprError> {
        if t == want {
            Ok(e)
        } else {
            self.err(
                pos,
                format!("{context} needs {}, found {}", want.what(), t.what()),
            )
        }
    }

    fn or(&mut self) -> Result<Parsed, ExprError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.bump();
            let right = self.and()?;
            let pos = left.2;
            let l = self.expect_type(left, Type::Cond, "`or`")?;
            let r = self.expect_type(right, Type::Cond, "`or`")?;
            left = (Expr::Or(Box::new(l), Box::new(r)), Type::Cond, pos);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Parsed, ExprError> {
        let mut left = self.not()?;
        while self.keyword("and") {
            self.bump();
            let right = self.not()?;
            let pos = left.2;
            let l = self.expect_type(left, Type::Cond, "`and`")?;
            let r = self.expect_type(right, Type::Cond, "`and`")?;
            left = (Expr::And(Box::new(l), Box::new(r)), Type::Cond, pos);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Parsed, ExprError> {
        if self.keyword("not") {
            let (_, pos) = self.bump();
            let inner = self.not()?;
            let e = self.expect_type(inner, Type::Cond, "`not`")?;
            return Ok((Expr::Not(Box::new(e)), Type::Cond, pos));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Parsed, ExprError> {
        let left = self.sum()?;
        let op = match self.peek() {
            Tok::Op("<") => Cmp::Lt,
            Tok::Op("<=") => Cmp::Le,
            Tok::Op(">") => Cmp::Gt,
            Tok::Op(">=") => Cmp::Ge,
            Tok::Op("==") => Cmp::Eq,
            Tok::Op("!=") => Cmp::Ne,
            Tok::Op("=") => return self.err(self.pos(), "unexpected `=`: compare with `==`"),
            _ => return Ok(left),
        };
        let (tok, op_pos) = self.bump();
        let right = self.sum()?;
        let pos = left.2;
        let what = format!("comparison {}", Self::describe(&tok));
        let l = self.expect_type(left, Type::Num, &what)?;
        let r = self.expect_type(right, Type::Num, &what)?;
        if matches!(self.peek(), Tok::Op("<" | "<=" | ">" | ">=" | "==" | "!=")) {
            return self.err(
                self.pos(),
                format!(
                    "comparisons do not chain (the one at {}:{} is complete): combine them with `and`",
                    op_pos.line, op_pos.column
                ),
            );
        }
        Ok((Expr::Cmp(op, Box::new(l), Box::new(r)), Type::Cond, pos))
    }

    fn sum(&mut self) -> Result<Parsed, ExprError> {
        let mut left = self.product()?;
        loop {
            let op = match self.peek() {
                Tok::Op("+") => Arith::Add,
                Tok::Op("-") => Arith::Sub,
                _ => return Ok(left),
            };
            let (tok, _) = self.bump();
            let right = self.product()?;
            let pos = left.2;
            let what = Self::describe(&tok);
            let l = self.expect_type(left, Type::Num, &what)?;
            let r = self.expect_type(right, Type::Num, &what)?;
            left = (Expr::Arith(op, Box::new(l), Box::new(r)), Type::Num, pos);
        }
    }

    fn product(&mut self) -> Result<Parsed, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Op("*") => Arith::Mul,
                Tok::Op("/") => Arith::Div,
                _ => return Ok(left),
            };
            let (tok, _) = self.bump();
            let right = self.unary()?;
            let pos = left.2;
            let what = Self::describe(&tok);
            let l = self.expect_type(left, Type::Num, &what)?;
            let r = self.expect_type(right, Type::Num, &what)?;
            left = (Expr::Arith(op, Box::new(l), Box::new(r)), Type::Num, pos);
        }
    }

    fn unary(&mut self) -> Result<Parsed, ExprError> {
        if matches!(self.peek(), Tok::Op("-")) {
            let (_, pos) = self.bump();
            let inner = self.unary()?;
            let e = self.expect_type(inner, Type::Num, "`-`")?;
            return Ok((Expr::Neg(Box::new(e)), Type::Num, pos));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Parsed, ExprError> {
        let (tok, pos) = self.bump();
        match tok {
            Tok::Num(v) => Ok((Expr::Num(v), Type::Num, pos)),
            Tok::Op("(") => {
                let (e, t, _) = self.or()?;
                match self.bump() {
                    (Tok::Op(")"), _) => Ok((e, t, pos)),
                    (other, p) => self.err(
                        p,
                        format!(
                            "expected `)` to close the `(` at {}:{}, found {}",
                            pos.line,
                            pos.column,
                            Self::describe(&other)
                        ),
                    ),
                }
            }
            Tok::Ident(name) if ["and", "or", "not"].contains(&name.as_str()) => self.err(
                pos,
                format!("expected a figure, a number or `(`, found `{name}`"),
            ),
            Tok::Ident(name) => self.figure(name, pos),
            other => self.err(
                pos,
                format!(
                    "expected a figure, a number or `(`, found {}",
                    Self::describe(&other)
                ),
            ),
        }
    }

    fn duration_arg(&self, key: &str, text: &str, pos: Pos) -> Result<u64, ExprError> {
        let ms = match parse_duration(text) {
            Ok(ms) => ms,
            Err(e) => return self.err(pos, format!("{key}: {e}")),
        };
        if !ms.is_multiple_of(self.pane_ms) {
            return self.err(
                pos,
                format!(
                    "{key}: {text} is not a multiple of the pane width {}",
                    format_duration(self.pane_ms)
                ),
            );
        }
        if key == "over" && ms == 0 {
            return self.err(pos, "over: the window must not be empty");
        }
        Ok(ms)
    }

    fn figure(&mut self, name: String, pos: Pos) -> Result<Parsed, ExprError> {
        let Some(mut def) = figure_def(&name) else {
            if let Some((_, why)) = RESERVED.iter().find(|(n, _)| *n == name) {
                return self.err(pos, format!("figure `{name}` is not available yet: {why}"));
            }
            let known: Vec<&str> = FIGURES.iter().map(|f| f.name).collect();
            return self.err(
                pos,
                format!("unknown figure `{name}` (known: {})", known.join(", ")),
            );
        };
        let mut metric = None;
        let mut faithfulness = false;
        let (mut over_ms, mut offset_ms): (Option<u64>, Option<u64>) = (None, None);
        if matches!(self.peek(), Tok::Op("(")) {
            let (_, open) = self.bump();
            let mut first = true;
            while !matches!(self.peek(), Tok::Op(")")) {
                if !first {
                    match self.bump() {
                        (Tok::Op(","), _) => {}
                        (other, p) => {
                            return self.err(
                                p,
                                format!(
                                    "expected `,` or `)` in the arguments of `{name}`, found {}",
                                    Self::describe(&other)
                                ),
                            );
                        }
                    }
                }
                let (tok, p) = self.bump();
                let key = match tok {
                    Tok::Ident(key) => key,
                    Tok::End => {
                        return self.err(
                            p,
                            format!(
                                "expected `)` to close the `(` at {}:{}",
                                open.line, open.column
                            ),
                        );
                    }
                    other => {
                        return self.err(
                            p,
                            format!(
                                "expected an argument of `{name}`, found {}",
                                Self::describe(&other)
                            ),
                        );
                    }
                };
                if matches!(self.peek(), Tok::Op("=")) {
                    self.bump();
                    let (value, vp) = self.bump();
                    let Tok::Str(value) = value else {
                        return self.err(
                            vp,
                            format!(
                                "{key}: expected a quoted duration such as \"1h\", found {}",
                                Self::describe(&value)
                            ),
                        );
                    };
                    let slot = match key.as_str() {
                        "over" => &mut over_ms,
                        "offset" => &mut offset_ms,
                        _ => {
                            return self
                                .err(p, format!("unknown argument `{key}` (known: over, offset)"));
                        }
                    };
                    if slot.is_some() {
                        return self.err(p, format!("`{key}` given twice"));
                    }
                    *slot = Some(self.duration_arg(&key, &value, vp)?);
                } else if first && def.takes_metric && name == "avg" && key == "faithfulness" {
                    def = &AVG_FAITHFULNESS;
                    faithfulness = true;
                } else if first && def.takes_metric {
                    match metric_named(&key) {
                        Some(m) => metric = Some(m),
                        None => {
                            if let Some((_, why)) = RESERVED_METRICS.iter().find(|(n, _)| *n == key)
                            {
                                return self
                                    .err(p, format!("metric `{key}` is not available yet: {why}"));
                            }
                            let known: Vec<&str> = Metric::ALL.iter().map(Metric::name).collect();
                            return self.err(
                                p,
                                format!(
                                    "unknown metric `{key}` for `{name}` (known: {})",
                                    known.join(", ")
                                ),
                            );
                        }
                    }
                } else if first {
                    return self.err(
                        p,
                        format!("`{name}` takes no metric, only over=\"…\" and offset=\"…\""),
                    );
                } else {
                    return self.err(
                        p,
                        format!("expected `over=\"…\"` or `offset=\"…\"`, found `{key}`"),
                    );
                }
                first = false;
            }
            self.bump();
        }
        if def.takes_metric && metric.is_none() {
            return self.err(
                pos,
                format!("`{name}` needs a metric, e.g. {name}(latency_ms)"),
            );
        }
        // The canonical text: metric, then over, then offset, whatever order they were written in.
        let mut inside: Vec<String> = metric.iter().map(|m| m.name().to_owned()).collect();
        if faithfulness {
            inside.push("faithfulness".to_owned());
        }
        inside.extend(over_ms.map(|ms| format!("over=\"{}\"", format_duration(ms))));
        inside.extend(offset_ms.map(|ms| format!("offset=\"{}\"", format_duration(ms))));
        let text = if inside.is_empty() {
            name.clone()
        } else {
            format!("{name}({})", inside.join(", "))
        };
        let offset_ms = offset_ms.unwrap_or(0);
        let term = Term {
            text,
            figure: def,
            metric,
            over_ms,
            offset_ms,
        };
        let index = match self.terms.iter().position(|t| t.text == term.text) {
            Some(i) => i,
            None => {
                self.terms.push(term);
                self.terms.len() - 1
            }
        };
        Ok((Expr::Term(index), Type::Num, pos))
    }
}

/// Parses `text` as an expression of type `want`, adding its figures to `terms`.
fn parse_expr(
    text: &str,
    want: Type,
    terms: &mut Vec<Term>,
    pane_ms: u64,
) -> Result<Expr, ExprError> {
    let mut p = Parser {
        toks: tokenize(text)?,
        at: 0,
        terms,
        pane_ms,
    };
    if matches!(p.peek(), Tok::End) {
        return p.err(p.pos(), "empty expression");
    }
    let parsed = p.or()?;
    if !matches!(p.peek(), Tok::End) {
        let hint = match p.peek() {
            Tok::Op(")") => "unmatched `)`".to_owned(),
            other => format!(
                "unexpected {} after a complete expression",
                Parser::describe(other)
            ),
        };
        return p.err(p.pos(), hint);
    }
    let context = match want {
        Type::Cond => "`when`",
        Type::Num => "a template value",
    };
    p.expect_type(parsed, want, context)
}

/// A parsed `when` condition with its terms, outside any rules file: for tests and tools.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    expr: Expr,
    /// The figures it reads, in order of first appearance.
    pub terms: Vec<Term>,
}

impl Condition {
    /// Parses a condition; baseline spans and offsets must be multiples of `pane_ms`.
    pub fn parse(text: &str, pane_ms: u64) -> Result<Self, ExprError> {
        let mut terms = Vec::new();
        let expr = parse_expr(text, Type::Cond, &mut terms, pane_ms)?;
        Ok(Self { expr, terms })
    }

    /// Whether the condition holds for these term values (in the order of [`Condition::terms`]).
    pub fn holds(&self, values: &[Option<f64>]) -> bool {
        self.expr.holds(values)
    }
}

// ---------------------------------------------------------------------------------------------
// Rules

/// The rules file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    #[serde(default = "default_severity")]
    severity: String,
    #[serde(default)]
    by: Vec<String>,
    #[serde(default)]
    filter: BTreeMap<String, String>,
    view: String,
    when: String,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    min_requests: Option<i64>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn default_severity() -> String {
    "warning".to_owned()
}

/// A label matcher on one series dimension.
#[derive(Clone, Debug)]
enum Matcher {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

impl Matcher {
    fn parse(text: &str) -> Result<Self, String> {
        let re = |s: &str| {
            Regex::new(&format!("^(?:{s})$")).map_err(|e| format!("invalid regex `{s}`: {e}"))
        };
        Ok(if let Some(s) = text.strip_prefix("=~") {
            Matcher::Re(re(s)?)
        } else if let Some(s) = text.strip_prefix("!~") {
            Matcher::NotRe(re(s)?)
        } else if let Some(s) = text.strip_prefix("!=") {
            Matcher::Ne(s.to_owned())
        } else {
            Matcher::Eq(text.strip_prefix('=').unwrap_or(text).to_owned())
        })
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Eq(v) => value == v,
            Matcher::Ne(v) => value != v,
            Matcher::Re(r) => r.is_match(value),
            Matcher::NotRe(r) => !r.is_match(value),
        }
    }
}

/// One piece of an annotation template.
#[derive(Clone, Debug)]
enum Piece {
    Text(String),
    Label(usize),
    Value(Expr),
}

/// What one evaluation of a rule for one group found.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The condition held (and the window had at least `min_requests` requests).
    pub holds: bool,
    /// Requests in the rule's window.
    pub requests: i64,
    /// The value of every term of `when`, in order of first appearance.
    pub terms: Vec<(String, Option<f64>)>,
    /// Values of all terms, annotation-only ones included (for rendering).
    values: Vec<Option<f64>>,
}

/// One checked rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Copied into every event.
    pub severity: String,
    /// Group label names (series dimensions), in rule order.
    pub by: Vec<String>,
    by_index: Vec<usize>,
    matchers: Vec<(usize, Matcher)>,
    /// The view's name.
    pub view: String,
    /// The view's window length, ms.
    pub view_ms: u64,
    /// The `when` text.
    pub when: String,
    condition: Expr,
    /// Terms of `when` first, then those only annotations use.
    terms: Vec<Term>,
    when_terms: usize,
    /// `for`, ms.
    pub for_ms: u64,
    /// `keep_firing_for`, ms.
    pub keep_firing_for_ms: u64,
    /// At least 1.
    pub min_requests: i64,
    annotations: Vec<(String, Vec<Piece>)>,
    /// Every frame read, the main frame first.
    frames: Vec<Frame>,
    /// The longest `length + offset` of the frames.
    history_ms: u64,
}

impl Rule {
    /// The rule's group of `series` (values of the `by` dimensions), or `None` when the filter
    /// rejects it.
    pub fn group_of(&self, series: &Series) -> Option<Series> {
        let values = series.values();
        if !self.matchers.iter().all(|(i, m)| m.matches(&values[*i])) {
            return None;
        }
        Some(Series::new(
            self.by_index.iter().map(|i| values[*i].clone()).collect(),
        ))
    }

    /// The rule's own window: the view's length, ending at the evaluation time.
    pub fn main_frame(&self) -> Frame {
        Frame {
            length_ms: self.view_ms,
            offset_ms: 0,
        }
    }

    /// Every window the rule reads (the main frame first), without duplicates.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// How much history before the evaluation time the rule reads, ms: panes ending at or
    /// before `E − history_ms()` are never needed again at `E` or later.
    pub fn history_ms(&self) -> u64 {
        self.history_ms
    }

    /// The terms of `when`.
    pub fn terms(&self) -> &[Term] {
        &self.terms[..self.when_terms]
    }

    /// Evaluates the rule on one group; `window(frame)` is the group's merged metrics over that
    /// frame (a default [`WindowMetrics`] when the group has no data there).
    pub fn evaluate<'m>(&self, window: impl Fn(Frame) -> &'m WindowMetrics) -> Evaluation {
        let requests = window(self.main_frame()).totals.requests;
        let values: Vec<Option<f64>> = self
            .terms
            .iter()
            .map(|t| {
                let frame = t.frame(self.view_ms);
                (t.figure.value)(&FigureInput {
                    metrics: window(frame),
                    length_ms: frame.length_ms,
                    metric: t.metric,
                })
            })
            .collect();
        let holds = requests >= self.min_requests && self.condition.holds(&values);
        Evaluation {
            holds,
            requests,
            terms: self.terms[..self.when_terms]
                .iter()
                .zip(&values)
                .map(|(t, v)| (t.text.clone(), *v))
                .collect(),
            values,
        }
    }

    /// The annotations rendered for `group` with the values of `evaluation`.
    pub fn render_annotations(
        &self,
        group: &Series,
        evaluation: &Evaluation,
    ) -> BTreeMap<String, String> {
        self.annotations
            .iter()
            .map(|(key, pieces)| {
                let mut s = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => s.push_str(t),
                        Piece::Label(i) => s.push_str(&group.values()[*i]),
                        Piece::Value(e) => s.push_str(&format_value(e.num(&evaluation.values))),
                    }
                }
                (key.clone(), s)
            })
            .collect()
    }

    /// The group labels as (name, value) pairs.
    pub fn labels(&self, group: &Series) -> BTreeMap<String, String> {
        self.by
            .iter()
            .cloned()
            .zip(group.values().iter().cloned())
            .collect()
    }
}

/// Every rule of a rules file, checked against the series dimensions and window views.
#[derive(Clone, Debug)]
pub struct Rules {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// The pane width of the views they were checked against.
    pub pane_ms: u64,
    /// Index of the view whose length is the pane width (the panes the operator reads).
    pub pane_view: u8,
}

impl Rules {
    /// Whether a rule reads a figure of the quality path ([`QUALITY_FIGURES`],
    /// `avg(faithfulness)`): the pipeline then feeds the quality path's parts to the alerts.
    pub fn uses_quality(&self) -> bool {
        self.rules.iter().any(|r| {
            r.terms.iter().any(|t| {
                QUALITY_FIGURES.contains(&t.figure.name)
                    || std::ptr::eq(t.figure, &AVG_FAITHFULNESS)
            })
        })
    }

    /// The longest history any rule reads, ms: a replay that must re-derive the same figures
    /// at `E` needs the spans from `E − history_ms()` on (see [`crate::alerts`] on replay).
    pub fn history_ms(&self) -> u64 {
        self.rules.iter().map(Rule::history_ms).max().unwrap_or(0)
    }

    /// Parses and checks a rules file. Fails on the first error, naming the rule (1-based
    /// index and name), the field, and for expressions the line and column inside it.
    pub fn parse(text: &str, dims: &Dimensions, views: &Views) -> Result<Self, RuleError> {
        let file: RulesFile = toml::from_str(text)
            .map_err(|e| RuleError::Toml(e.to_string().trim_end().to_owned()))?;
        let pane_view = views
            .views
            .iter()
            .position(|v| v.length_ms == views.pane_ms)
            .ok_or_else(|| RuleError::Toml(format!(
                "the views have no tumbling view of the pane width {}: alerts are built from panes",
                format_duration(views.pane_ms)
            )))?;
        let mut rules: Vec<Rule> = Vec::new();
        for (i, spec) in file.rule.into_iter().enumerate() {
            let index = i + 1;
            let field_err = |field: &str, message: String| RuleError::Field {
                index,
                name: spec.name.clone(),
                field: field.to_owned(),
                message,
            };
            if spec.name.trim().is_empty() {
                return Err(field_err("name", "must not be empty".to_owned()));
            }
            if let Some(other) = rules.iter().position(|r| r.name == spec.name) {
                return Err(field_err(
                    "name",
                    format!("duplicate of rule #{}", other + 1),
                ));
            }
            let dim = |field: &str, name: &str| {
                dims.names().iter().position(|d| d == name).ok_or_else(|| {
                    field_err(
                        field,
                        format!(
                            "`{name}` is not a series dimension (dimensions: {})",
                            dims.names().join(", ")
                        ),
                    )
                })
            };
            let mut by_index = Vec::new();
            for name in &spec.by {
                let d = dim("by", name)?;
                if by_index.contains(&d) {
                    return Err(field_err("by", format!("`{name}` given twice")));
                }
                by_index.push(d);
            }
            let mut matchers = Vec::new();
            for (name, text) in &spec.filter {
                let field = format!("filter.{name}");
                let d = dim(&field, name)?;
                matchers.push((d, Matcher::parse(text).map_err(|m| field_err(&field, m))?));
            }
            let Some(view) = views.views.iter().find(|v| v.name == spec.view) else {
                let known: Vec<&str> = views.views.iter().map(|v| v.name.as_str()).collect();
                return Err(field_err(
                    "view",
                    format!("unknown view `{}` (views: {})", spec.view, known.join(", ")),
                ));
            };
            let duration = |field: &str, text: &Option<String>| match text {
                None => Ok(0),
                Some(t) => parse_duration(t).map_err(|m| field_err(field, m)),
            };
            let for_ms = duration("for", &spec.for_)?;
            let keep_firing_for_ms = duration("keep_firing_for", &spec.keep_firing_for)?;
            let min_requests = spec.min_requests.unwrap_or(1);
            if min_requests < 0 {
                return Err(field_err(
                    "min_requests",
                    format!("must not be negative, is {min_requests}"),
                ));
            }
            let expr_err = |field: &str, error: ExprError| RuleError::Expr {
                index,
                name: spec.name.clone(),
                field: field.to_owned(),
                error,
            };
            let mut terms = Vec::new();
            let condition = parse_expr(&spec.when, Type::Cond, &mut terms, views.pane_ms)
                .map_err(|e| expr_err("when", e))?;
            let when_terms = terms.len();
            let mut annotations = Vec::new();
            for (key, template) in &spec.annotations {
                let field = format!("annotations.{key}");
                let pieces = parse_template(template, &spec.by, dims, &mut terms, views.pane_ms)
                    .map_err(|e| expr_err(&field, e))?;
                annotations.push((key.clone(), pieces));
            }
            let mut frames = vec![Frame {
                length_ms: view.length_ms,
                offset_ms: 0,
            }];
            for t in &terms {
                let f = t.frame(view.length_ms);
                if !frames.contains(&f) {
                    frames.push(f);
                }
            }
            let history_ms = frames
                .iter()
                .map(|f| f.length_ms + f.offset_ms)
                .max()
                .expect("the main frame");
            rules.push(Rule {
                frames,
                history_ms,
                name: spec.name,
                severity: spec.severity,
                by: spec.by,
                by_index,
                matchers,
                view: view.name.clone(),
                view_ms: view.length_ms,
                when: spec.when,
                condition,
                terms,
                when_terms,
                for_ms,
                keep_firing_for_ms,
                min_requests: min_requests.max(1),
                annotations,
            });
        }
        if rules.len() > u32::MAX as usize {
            return Err(RuleError::Toml("too many rules".to_owned()));
        }
        Ok(Self {
            rules,
            pane_ms: views.pane_ms,
            pane_view: pane_view as u8,
        })
    }
}

/// Splits a template into text, `{{label}}` and `{{expression}}` pieces. Positions in errors
/// are those of the template text.
fn parse_template(
    template: &str,
    by: &[String],
    dims: &Dimensions,
    terms: &mut Vec<Term>,
    pane_ms: u64,
) -> Result<Vec<Piece>, ExprError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let position = |offset: usize| {
        let before = &template[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, column)
    };
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let inner_start = template.len() - rest.len() + open + 2;
        let Some(close) = rest[open + 2..].find("}}") else {
            let (line, column) = position(inner_start - 2);
            return Err(ExprError {
                line,
                column,
                message: "`{{` without `}}`".to_owned(),
            });
        };
        let inner = &rest[open + 2..open + 2 + close];
        let trimmed = inner.trim();
        if let Some(i) = by.iter().position(|b| b == trimmed) {
            pieces.push(Piece::Label(i));
        } else if dims.names().iter().any(|d| d == trimmed) {
            let (line, column) = position(inner_start + (inner.len() - inner.trim_start().len()));
            return Err(ExprError {
                line,
                column,
                message: format!(
                    "`{trimmed}` is not a `by` label of this rule: a group has one value only for those"
                ),
            });
        } else {
            let expr = parse_expr(inner, Type::Num, terms, pane_ms).map_err(|e| {
                // Re-base the position from the placeholder onto the template.
                let (line, column) = position(inner_start);
                ExprError {
                    line: line + e.line - 1,
                    column: if e.line == 1 {
                        column + e.column - 1
                    } else {
                        e.column
                    },
                    message: e.message,
                }
            })?;
            pieces.push(Piece::Value(expr));
        }
        rest = &rest[open + 2 + close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m5").is_err());
        assert_eq!(format_duration(86_400_000), "1d");
        assert_eq!(format_duration(90_000), "90s");
        assert_eq!(format_duration(0), "0ms");
    }

    #[test]
    fn values_format() {
        assert_eq!(format_value(None), "n/a");
        assert_eq!(format_value(Some(3000.0)), "3000");
        assert_eq!(format_value(Some(0.083333)), "0.0833");
        assert_eq!(format_value(Some(2.5)), "2.5");
        assert_eq!(format_value(Some(-0.00001)), "0");
    }

    #[test]
    fn precedence_and_missing_values() {
        let c = Condition::parse(
            "requests > 1 + 2 * 3 and not error_rate > 0.5 or rpm == 7",
            10_000,
        )
        .unwrap();
        let names: Vec<&str> = c.terms.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(names, ["requests", "error_rate", "rpm"]);
        // requests > 7 and not (error_rate > 0.5), or rpm == 7
        assert!(c.holds(&[Some(8.0), Some(0.1), Some(0.0)]));
        assert!(!c.holds(&[Some(7.0), Some(0.1), Some(0.0)]));
        assert!(!c.holds(&[Some(8.0), Some(0.6), Some(0.0)]));
        assert!(c.holds(&[Some(0.0), Some(0.6), Some(7.0)]));
        // A missing side makes the comparison false, and `not` of it true.
        assert!(c.holds(&[Some(8.0), None, None]));
        assert!(!c.holds(&[None, Some(0.1), None]));
    }

    #[test]
    fn terms_are_canonical_and_shared() {
        let c = Condition::parse(
            "rpm(offset='1d', over='1h') > rpm(over=\"60m\", offset=\"24h\") or p95(ttft_ms) > 0",
            60_000,
        )
        .unwrap();
        let names: Vec<&str> = c.terms.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(names, ["rpm(over=\"1h\", offset=\"1d\")", "p95(ttft_ms)"]);
        assert_eq!(
            c.terms[0].frame(300_000),
            Frame {
                length_ms: 3_600_000,
                offset_ms: 86_400_000
            }
        );
        assert_eq!(
            c.terms[1].frame(300_000),
            Frame {
                length_ms: 300_000,
                offset_ms: 0
            }
        );
        let twice = Condition::parse("rpm(offset='0s', offset='1d') > 1", 60_000).unwrap_err();
        assert_eq!(twice.to_string(), "1:18: `offset` given twice");
    }

    #[test]
    fn division_by_zero_is_missing() {
        let c = Condition::parse("requests / rpm > 1 or requests / rpm <= 1", 10_000).unwrap();
        assert!(!c.holds(&[Some(3.0), Some(0.0)]));
        assert!(c.holds(&[Some(3.0), Some(1.0)]));
    }
}
