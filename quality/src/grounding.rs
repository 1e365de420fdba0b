//! Grounding: the checkable facts an answer sentence states — numbers, dates, identifiers,
//! proper names — and whether the retrieved chunks state them too.
//!
//! Embedding cosine barely moves when one number changes ("30 days" vs "14 days"), so this
//! check catches what [`crate::score`] cannot see. An item is **grounded** when:
//!
//! | kind | grounded when the evidence has … |
//! |---|---|
//! | number | the same canonical quantity (value × unit factor, same dimension), or the same bare value where the answer or the evidence gives no unit |
//! | date | a date agreeing on every component both give (year, month, day), or all its numbers |
//! | identifier | the same text, case-insensitive (`ABC-123`, `v1.2.3`, `EC2`, `gpt-4o`) |
//! | name | the same phrase case-insensitive, or each of its words as a word |
//!
//! Normalisation of numbers: `1,000` = 1000; `5k` = 5000; `3 million` = 3e6; Chinese numerals
//! (`三十五`, `两千`, `一百零五`, `3万`) are read as their value; English number words count only
//! before a unit (`two weeks`, `five percent`; a bare "one" is mostly a pronoun). Units: percent
//! (`%`, `％`, `percent`, `百分之五` = 5%), durations converted to seconds (`ms`, `s`, `min`,
//! `hours`, `days`, `weeks`, `天`/`日`, `周`/`星期`, `小时`, `分钟`, `秒`; so `两周` = `two weeks`
//! = `14 days`), months and years kept as their own units (a month is not a fixed number of days),
//! money by currency (`$`, `USD`, `dollars`, `美元`; `€`; `£`; `¥`, `元`, `块`).
//!
//! Names: in English, capitalised words not at the start of a sentence, runs of capitalised words
//! (`Apache Kafka`), CamelCase (`PostgreSQL`, `iPhone`) and acronyms (`AWS`). In Chinese text,
//! every Latin-script word is checked as a name. Month and weekday names are left to dates.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

/// What sort of fact an [`Item`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Number,
    Date,
    Identifier,
    Name,
    /// A clause whose negation differs from the chunk clause it copies ([`crate::polarity`]).
    Polarity,
}

/// A checkable fact found in a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub kind: ItemKind,
    /// As written.
    pub text: String,
    /// Normalised form, e.g. `1209600s` for "two weeks", `5%`, `2024-03-?`, `apache kafka`.
    pub key: String,
    #[serde(skip)]
    value: Option<f64>,
    /// The number as written, before unit conversion (`2` of "two weeks").
    #[serde(skip)]
    raw: Option<f64>,
    #[serde(skip)]
    unit: Unit,
    #[serde(skip)]
    date: [Option<u32>; 3],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
enum Unit {
    #[default]
    None,
    Percent,
    /// Canonical value in seconds.
    Seconds,
    Months,
    Years,
    Money(&'static str),
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::None => "",
            Unit::Percent => "%",
            Unit::Seconds => "s",
            Unit::Months => " months",
            Unit::Years => " years",
            Unit::Money(c) => c,
        }
    }
}

/// The facts stated by the retrieved chunks (and whatever else is accepted as evidence).
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    text: String,
    words: HashSet<String>,
    quantities: HashSet<(String, Unit)>,
    bare_values: HashSet<String>,
    /// Values that appear with any unit (`30` of "30 days").
    any_values: HashSet<String>,
    dates: Vec<[Option<u32>; 3]>,
}

impl Evidence {
    /// Gathers the facts of `texts`.
    pub fn new<S: AsRef<str>>(texts: &[S]) -> Self {
        let mut e = Evidence::default();
        for t in texts {
            let t = t.as_ref();
            e.text.push_str(&t.to_lowercase());
            e.text.push('\n');
            for w in words(t) {
                e.words.insert(w.to_lowercase());
            }
            for item in extract(t) {
                match item.kind {
                    ItemKind::Number => {
                        let v = fmt_value(item.value.unwrap_or(0.0));
                        if item.unit == Unit::None {
                            e.bare_values.insert(v.clone());
                        }
                        e.any_values.insert(raw_value(&item));
                        e.any_values.insert(v.clone());
                        e.quantities.insert((v, item.unit));
                    }
                    ItemKind::Date => {
                        e.dates.push(item.date);
                        for v in item.date.iter().flatten() {
                            e.bare_values.insert(v.to_string());
                            e.any_values.insert(v.to_string());
                        }
                    }
                    _ => {}
                }
            }
            // Every plain number also counts as a bare value ("version 3" grounds "3").
            for m in re(&RE_PLAIN_NUMBER, r"\d+(?:\.\d+)?").find_iter(t) {
                e.any_values
                    .insert(fmt_value(m.as_str().parse().unwrap_or(0.0)));
            }
        }
        e
    }

    /// Whether `item` is stated by the evidence (rules in the module docs).
    pub fn supports(&self, item: &Item) -> bool {
        match item.kind {
            // Polarity items come from crate::polarity, never from the evidence.
            ItemKind::Polarity => false,
            ItemKind::Identifier => self.text.contains(&item.text.to_lowercase()),
            ItemKind::Name => {
                let lower = item.text.to_lowercase();
                self.text.contains(&lower)
                    || lower
                        .split_whitespace()
                        .all(|w| self.words.contains(w) || w.len() < 2)
            }
            ItemKind::Number => {
                let v = fmt_value(item.value.unwrap_or(0.0));
                if self.quantities.contains(&(v.clone(), item.unit)) {
                    return true;
                }
                let raw = raw_value(item);
                if item.unit == Unit::None {
                    self.any_values.contains(&raw) || self.any_values.contains(&v)
                } else {
                    self.bare_values.contains(&raw)
                }
            }
            ItemKind::Date => {
                let agree = |d: &[Option<u32>; 3]| {
                    d.iter().zip(&item.date).all(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    })
                };
                self.dates.iter().any(agree)
                    || item
                        .date
                        .iter()
                        .flatten()
                        .all(|v| self.any_values.contains(&v.to_string()))
            }
        }
    }

    /// The items of `sentence` the evidence does not state.
    pub fn ungrounded(&self, sentence: &str) -> Vec<Item> {
        extract(sentence)
            .into_iter()
            .filter(|i| !self.supports(i))
            .collect()
    }
}

/// The value before unit conversion, e.g. `2` for "two weeks".
fn raw_value(item: &Item) -> String {
    fmt_value(item.raw.or(item.value).unwrap_or(0.0))
}

fn fmt_value(v: f64) -> String {
    let r = (v * 1e6).round() / 1e6;
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|e| panic!("bad regex {pattern}: {e}")))
}

static RE_PLAIN_NUMBER: OnceLock<Regex> = OnceLock::new();
static RE_ISO_DATE: OnceLock<Regex> = OnceLock::new();
static RE_ZH_DATE: OnceLock<Regex> = OnceLock::new();
static RE_EN_DATE: OnceLock<Regex> = OnceLock::new();
static RE_EN_DATE2: OnceLock<Regex> = OnceLock::new();
static RE_IDENT: OnceLock<Regex> = OnceLock::new();
static RE_NUMBER: OnceLock<Regex> = OnceLock::new();
static RE_ZH_NUMBER: OnceLock<Regex> = OnceLock::new();
static RE_EN_WORDS: OnceLock<Regex> = OnceLock::new();
static RE_WORD: OnceLock<Regex> = OnceLock::new();
static RE_LATIN: OnceLock<Regex> = OnceLock::new();

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn month_number(word: &str) -> Option<u32> {
    let w = word.to_lowercase();
    let w = w.trim_end_matches('.');
    if w.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| m.starts_with(w) && (w.len() == 3 || w == *m || w == "sept"))
        .map(|i| i as u32 + 1)
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    re(
        &RE_WORD,
        r"[\p{L}\p{N}][\p{L}\p{N}_'\-\.]*[\p{L}\p{N}]|[\p{L}\p{N}]",
    )
    .find_iter(text)
    .map(|m| m.as_str())
}

/// Every checkable item of `text`, in order of appearance.
pub fn extract(text: &str) -> Vec<Item> {
    let mut items: Vec<(usize, Item)> = Vec::new();
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let free = |taken: &Vec<(usize, usize)>, s: usize, e: usize| {
        taken.iter().all(|&(a, b)| e <= a || s >= b)
    };

    // Dates first: their numbers are not quantities.
    let zh_num = "[0-9零〇一二两三四五六七八九十]+";
    let iso = re(&RE_ISO_DATE, r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b");
    for c in iso.captures_iter(text) {
        let m = c.get(0).unwrap_or_else(|| unreachable!());
        let d = [c[1].parse().ok(), c[2].parse().ok(), c[3].parse().ok()];
        push_date(&mut items, &mut taken, m.start(), m.end(), m.as_str(), d);
    }
    let zh = re(
        &RE_ZH_DATE,
        &format!(r"(?:({zh_num})年)?({zh_num})月(?:({zh_num})[日号])?|({zh_num})年"),
    );
    for c in zh.captures_iter(text) {
        let m = c.get(0).unwrap_or_else(|| unreachable!());
        if !free(&taken, m.start(), m.end()) {
            continue;
        }
        let val = |i: usize| c.get(i).and_then(|g| parse_zh_or_arabic(g.as_str()));
        if let Some(y) = c.get(4) {
            // "2024年" is a year; "3年" is a duration, handled as a number.
            match parse_zh_or_arabic(y.as_str()) {
                Some(y) if (1000.0..3000.0).contains(&y) => push_date(
                    &mut items,
                    &mut taken,
                    m.start(),
                    m.end(),
                    m.as_str(),
                    [Some(y as u32), None, None],
                ),
                _ => {}
            }
            continue;
        }
        // "3个月" does not reach here ("个" breaks the match); "3月" alone is March.
        if text[..m.start()].ends_with('个') {
            continue;
        }
        let d = [
            val(1).map(|v| v as u32),
            val(2).map(|v| v as u32),
            val(3).map(|v| v as u32),
        ];
        if d[1].is_some_and(|mth| (1..=12).contains(&mth)) {
            push_date(&mut items, &mut taken, m.start(), m.end(), m.as_str(), d);
        }
    }
    let month = r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?";
    let en2 = re(
        &RE_EN_DATE2,
        &format!(r"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{month}(?:,?\s+(\d{{4}}))?\b"),
    );
    for c in en2.captures_iter(text) {
        let m = c.get(0).unwrap_or_else(|| unreachable!());
        if !free(&taken, m.start(), m.end()) {
            continue;
        }
        let d = [
            c.get(3).and_then(|g| g.as_str().parse().ok()),
            month_number(&c[2]),
            c[1].parse().ok(),
        ];
        push_date(&mut items, &mut taken, m.start(), m.end(), m.as_str(), d);
    }

    let en = re(
        &RE_EN_DATE,
        &format!(r"\b{month}(?:\s+(\d{{1,2}})(?:st|nd|rd|th)?)?(?:,?\s+(\d{{4}}))?\b"),
    );
    for c in en.captures_iter(text) {
        let m = c.get(0).unwrap_or_else(|| unreachable!());
        if !free(&taken, m.start(), m.end()) || (c.get(2).is_none() && c.get(3).is_none()) {
            continue; // a bare month name ("May") is too often a verb
        }
        let d = [
            c.get(3).and_then(|g| g.as_str().parse().ok()),
            month_number(&c[1]),
            c.get(2).and_then(|g| g.as_str().parse().ok()),
        ];
        push_date(&mut items, &mut taken, m.start(), m.end(), m.as_str(), d);
    }
    // Identifiers: codes with a digit, versions.
    let ident = re(
        &RE_IDENT,
        r"\b(?:v\d+(?:\.\d+)*[a-z]?|\d+\.\d+\.\d+(?:\.\d+)*|[A-Za-z][A-Za-z0-9]*(?:[-_/][A-Za-z0-9]+)+|[A-Za-z]+\d+[A-Za-z0-9]*|\d+[A-Za-z]*[A-Z][A-Za-z]*\d*)\b",
    );
    for m in ident.find_iter(text) {
        let s = m.as_str();
        let has_digit = s.chars().any(|c| c.is_ascii_digit());
        let has_alpha = s.chars().any(|c| c.is_ascii_alphabetic());
        if !has_digit || !free(&taken, m.start(), m.end()) {
            continue;
        }
        // "30-day", "5k", "10ms", "24h" are quantities, not identifiers.
        if !s.starts_with(['v', 'V'])
            && s.starts_with(|c: char| c.is_ascii_digit())
            && is_quantity_like(s)
        {
            continue;
        }
        if !has_alpha && !s.contains('.') {
            continue;
        }
        taken.push((m.start(), m.end()));
        items.push((
            m.start(),
            Item {
                kind: ItemKind::Identifier,
                text: s.to_string(),
                key: s.to_lowercase(),
                ..blank()
            },
        ));
    }

    // Arabic numbers with currency, multiplier and unit.
    let num = re(
        &RE_NUMBER,
        r"(?:(US\$|\$|€|£|¥|USD|EUR|GBP|CNY|RMB)\s?)?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?",
    );
    for c in num.captures_iter(text) {
        let m = c.get(0).unwrap_or_else(|| unreachable!());
        if !free(&taken, m.start(), m.end()) {
            continue;
        }
        // Part of a word ("abc123") or a dotted number already taken.
        if text[..m.start()].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '.') {
            continue;
        }
        let digits = c[2].replace(',', "");
        let mut value: f64 = format!("{digits}{}", c.get(3).map_or("", |g| g.as_str()))
            .parse()
            .unwrap_or(0.0);
        let mut end = m.end();
        let (mult, used) = multiplier_after(&text[end..]);
        value *= mult;
        end += used;
        let (mut unit, mut factor) = (Unit::None, 1.0);
        if let Some(cur) = c.get(1) {
            unit = Unit::Money(currency(cur.as_str()));
        } else if let Some((u, f, used)) = unit_after(&text[end..]) {
            (unit, factor) = (u, f);
            end += used;
        }
        taken.push((m.start(), end));
        items.push((
            m.start(),
            number_item(&text[m.start()..end], value, factor, unit),
        ));
    }

    // Chinese numerals: 百分之五, 三天, 两周, 三十五个.
    let zh_num_re = re(
        &RE_ZH_NUMBER,
        r"(百分之)?([零〇一二两三四五六七八九十百千万亿]+)",
    );
    for c in zh_num_re.captures_iter(text) {
        let m = c.get(0).unwrap_or_else(|| unreachable!());
        if !free(&taken, m.start(), m.end()) {
            continue;
        }
        // "两三天", "三四个": an approximate range of two neighbouring digits, read as both.
        let range = zh_range(&c[2]);
        let Some(value) = range.map(|r| r.1).or_else(|| parse_zh(&c[2])) else {
            continue;
        };
        let mut end = m.end();
        let mut factor = 1.0;
        let unit = if c.get(1).is_some() {
            Unit::Percent
        } else if let Some((u, f, used)) = unit_after(&text[end..]) {
            factor = f;
            end += used;
            u
        } else if let Some(used) = zh_counter_after(&text[end..]) {
            // "三个", "五次", "两倍": a count. "一个/一次/一样" is mostly "a/once/same": skipped.
            if value == 1.0 {
                continue;
            }
            end += used;
            Unit::None
        } else if c[2].chars().count() >= 2 && !c[2].starts_with('一')
            || c[2].contains(['十', '百', '千', '万', '亿'])
        {
            Unit::None
        } else {
            continue; // a lone 一/二/三 inside a word (一些, 统一, 三角)
        };
        taken.push((m.start(), end));
        if let Some((low, _)) = range {
            items.push((
                m.start(),
                number_item(&text[m.start()..end], low, factor, unit),
            ));
        }
        items.push((
            m.start(),
            number_item(&text[m.start()..end], value, factor, unit),
        ));
    }

    // English number words, only before a unit ("two weeks", "five percent").
    let en_words = re(
        &RE_EN_WORDS,
        r"(?i)\b((?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|a dozen|dozen)(?:[\s-]+(?:and\s+)?(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion))*)\b",
    );
    for c in en_words.captures_iter(text) {
        let m = c.get(0).unwrap_or_else(|| unreachable!());
        if !free(&taken, m.start(), m.end()) {
            continue;
        }
        let Some(value) = parse_en_words(&c[1]) else {
            continue;
        };
        let Some((unit, factor, used)) = unit_after(&text[m.end()..]) else {
            continue;
        };
        let end = m.end() + used;
        taken.push((m.start(), end));
        items.push((
            m.start(),
            number_item(&text[m.start()..end], value, factor, unit),
        ));
    }

    // Names.
    for (start, name) in names(text) {
        if free(&taken, start, start + name.len()) {
            taken.push((start, start + name.len()));
            items.push((
                start,
                Item {
                    kind: ItemKind::Name,
                    key: name.to_lowercase(),
                    text: name,
                    ..blank()
                },
            ));
        }
    }
    items.sort_by_key(|(s, _)| *s);
    items.into_iter().map(|(_, i)| i).collect()
}

impl Item {
    /// A polarity conflict: `text` is the answer clause, `key` the chunk clause it contradicts.
    pub fn polarity(answer_clause: &str, chunk_clause: &str) -> Item {
        Item {
            kind: ItemKind::Polarity,
            text: answer_clause.to_string(),
            key: format!("contradicts: {chunk_clause}"),
            ..blank()
        }
    }
}

fn blank() -> Item {
    Item {
        kind: ItemKind::Name,
        text: String::new(),
        key: String::new(),
        value: None,
        raw: None,
        unit: Unit::None,
        date: [None; 3],
    }
}

fn number_item(text: &str, raw: f64, factor: f64, unit: Unit) -> Item {
    let value = raw * factor;
    let key = format!("{}{}", fmt_value(value), unit.suffix());
    Item {
        kind: ItemKind::Number,
        text: text.trim().to_string(),
        key,
        value: Some(value),
        raw: Some(raw),
        unit,
        date: [None; 3],
    }
}

fn push_date(
    items: &mut Vec<(usize, Item)>,
    taken: &mut Vec<(usize, usize)>,
    s: usize,
    e: usize,
    text: &str,
    d: [Option<u32>; 3],
) {
    let part = |v: Option<u32>| v.map_or("?".to_string(), |v| format!("{v:02}"));
    let key = format!("{}-{}-{}", part(d[0]), part(d[1]), part(d[2]));
    taken.push((s, e));
    items.push((
        s,
        Item {
            kind: ItemKind::Date,
            text: text.to_string(),
            key,
            date: d,
            ..blank()
        },
    ));
}

fn is_quantity_like(s: &str) -> bool {
    let rest = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ',');
    let rest = rest.trim_start_matches('-');
    let lower = rest.to_lowercase();
    matches!(lower.as_str(), "k" | "m" | "b" | "bn" | "x") || unit_word(&lower).is_some()
}

fn currency(s: &str) -> &'static str {
    match s {
        "$" | "US$" | "USD" => " USD",
        "€" | "EUR" => " EUR",
        "£" | "GBP" => " GBP",
        _ => " CNY",
    }
}

/// `(factor, bytes used)` for a multiplier right after a number: `k`, ` thousand`, `万`, ...
fn multiplier_after(rest: &str) -> (f64, usize) {
    let trimmed = rest.trim_start_matches([' ', '\u{a0}']);
    let skipped = rest.len() - trimmed.len();
    for (w, f) in [
        ("thousand", 1e3),
        ("million", 1e6),
        ("billion", 1e9),
        ("万", 1e4),
        ("亿", 1e8),
        ("千", 1e3),
    ] {
        if let Some(after) = trimmed.strip_prefix(w)
            && !after.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return (f, skipped + w.len());
        }
    }
    for (w, f) in [("k", 1e3), ("K", 1e3), ("M", 1e6), ("bn", 1e9), ("B", 1e9)] {
        if let Some(after) = rest.strip_prefix(w)
            && !after.starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            return (f, w.len());
        }
    }
    (1.0, 0)
}

/// The unit of an English word (lowercase): `(unit, factor to canonical)`.
fn unit_word(w: &str) -> Option<(Unit, f64)> {
    Some(match w {
        "%" | "percent" | "pct" | "per cent" => (Unit::Percent, 1.0),
        "ms" | "millisecond" | "milliseconds" => (Unit::Seconds, 1e-3),
        "s" | "sec" | "secs" | "second" | "seconds" => (Unit::Seconds, 1.0),
        "min" | "mins" | "minute" | "minutes" => (Unit::Seconds, 60.0),
        "h" | "hr" | "hrs" | "hour" | "hours" => (Unit::Seconds, 3600.0),
        "day" | "days" => (Unit::Seconds, 86400.0),
        "week" | "weeks" | "wk" | "wks" => (Unit::Seconds, 604800.0),
        "fortnight" | "fortnights" => (Unit::Seconds, 1209600.0),
        "month" | "months" => (Unit::Months, 1.0),
        "year" | "years" | "yr" | "yrs" => (Unit::Years, 1.0),
        "dollar" | "dollars" | "usd" => (Unit::Money(" USD"), 1.0),
        "euro" | "euros" | "eur" => (Unit::Money(" EUR"), 1.0),
        "yuan" | "rmb" | "cny" => (Unit::Money(" CNY"), 1.0),
        _ => return None,
    })
}

const ZH_UNITS: &[(&str, Unit, f64)] = &[
    ("％", Unit::Percent, 1.0),
    ("%", Unit::Percent, 1.0),
    ("毫秒", Unit::Seconds, 1e-3),
    ("秒钟", Unit::Seconds, 1.0),
    ("秒", Unit::Seconds, 1.0),
    ("分钟", Unit::Seconds, 60.0),
    ("个小时", Unit::Seconds, 3600.0),
    ("小时", Unit::Seconds, 3600.0),
    ("个钟头", Unit::Seconds, 3600.0),
    ("钟头", Unit::Seconds, 3600.0),
    ("个工作日", Unit::Seconds, 86400.0),
    ("工作日", Unit::Seconds, 86400.0),
    ("天", Unit::Seconds, 86400.0),
    ("日", Unit::Seconds, 86400.0),
    ("个星期", Unit::Seconds, 604800.0),
    ("星期", Unit::Seconds, 604800.0),
    ("个礼拜", Unit::Seconds, 604800.0),
    ("礼拜", Unit::Seconds, 604800.0),
    ("周", Unit::Seconds, 604800.0),
    ("个月", Unit::Months, 1.0),
    ("年", Unit::Years, 1.0),
    ("美元", Unit::Money(" USD"), 1.0),
    ("欧元", Unit::Money(" EUR"), 1.0),
    ("元", Unit::Money(" CNY"), 1.0),
    ("块钱", Unit::Money(" CNY"), 1.0),
    ("块", Unit::Money(" CNY"), 1.0),
];

/// A unit right after a number: `(unit, factor, bytes used)`.
fn unit_after(rest: &str) -> Option<(Unit, f64, usize)> {
    for &(w, u, f) in ZH_UNITS {
        if rest.starts_with(w) {
            return Some((u, f, w.len()));
        }
    }
    // English: optional space or hyphen, then a word, maybe after one qualifier
    // ("4 business hours", "30 calendar days").
    let trimmed = rest.trim_start_matches([' ', '-', '\u{a0}']);
    let mut skipped = rest.len() - trimmed.len();
    if skipped > 2 {
        return None;
    }
    let mut trimmed = trimmed;
    for q in [
        "business ",
        "working ",
        "calendar ",
        "full ",
        "consecutive ",
        "more ",
        "additional ",
        "extra ",
    ] {
        if trimmed
            .get(..q.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(q))
        {
            trimmed = &trimmed[q.len()..];
            skipped += q.len();
            break;
        }
    }
    let word: String = trimmed
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if trimmed.starts_with("per cent") {
        return Some((Unit::Percent, 1.0, skipped + "per cent".len()));
    }
    let (u, f) = unit_word(&word.to_lowercase())?;
    // Single letters only glued to the number ("5s", "24h"), never "5 s".
    if word.len() == 1 && skipped > 0 {
        return None;
    }
    Some((u, f, skipped + word.len()))
}

/// A Chinese counter word right after a numeral.
fn zh_counter_after(rest: &str) -> Option<usize> {
    // Not 种/项/步: "两种格式" counts what the chunks list, it is rarely stated as a number.
    [
        "个", "次", "倍", "人", "名", "位", "条", "家", "台", "份", "件", "级", "层",
    ]
    .iter()
    .find(|c| rest.starts_with(**c))
    .map(|c| c.len())
}

fn parse_zh_or_arabic(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().or_else(|| parse_zh(s))
}

/// `两三` = (2, 3), `三四` = (3, 4): two neighbouring digits mean "two or three".
fn zh_range(s: &str) -> Option<(f64, f64)> {
    let mut it = s.chars();
    let (a, b) = (it.next()?, it.next()?);
    if it.next().is_some() || matches!(a, '零' | '〇') {
        return None;
    }
    let (a, b) = (parse_zh(&a.to_string())?, parse_zh(&b.to_string())?);
    (b == a + 1.0).then_some((a, b))
}

/// Reads a Chinese numeral: `三` 3, `十五` 15, `三十五` 35, `一百零五` 105, `两千` 2000,
/// `三万五千` 35000, `二〇二四` 2024 (digit by digit when there is no 十/百/千).
pub fn parse_zh(s: &str) -> Option<f64> {
    let digit = |c: char| -> Option<u64> {
        Some(match c {
            '零' | '〇' => 0,
            '一' => 1,
            '二' | '两' => 2,
            '三' => 3,
            '四' => 4,
            '五' => 5,
            '六' => 6,
            '七' => 7,
            '八' => 8,
            '九' => 9,
            _ => return None,
        })
    };
    if s.is_empty() {
        return None;
    }
    if s.chars().all(|c| digit(c).is_some()) {
        // Digit by digit: "二〇二四" = 2024; a single digit is itself.
        return s
            .chars()
            .try_fold(0u64, |acc, c| Some(acc * 10 + digit(c)?))
            .map(|v| v as f64);
    }
    let (mut total, mut section, mut number) = (0u64, 0u64, 0u64);
    for c in s.chars() {
        if let Some(d) = digit(c) {
            number = d;
            continue;
        }
        let unit = match c {
            '十' => 10,
            '百' => 100,
            '千' => 1000,
            '万' => 10_000,
            '亿' => 100_000_000,
            _ => return None,
        };
        if unit >= 10_000 {
            section += number;
            total += section.max(1) * unit;
            section = 0;
        } else {
            // "十五" = 15: a leading 十 means one ten.
            section += number.max(if c == '十' { 1 } else { 0 }).max(1) * unit;
        }
        number = 0;
    }
    Some((total + section + number) as f64)
}

fn parse_en_words(s: &str) -> Option<f64> {
    let (mut total, mut current) = (0f64, 0f64);
    let mut any = false;
    for w in s
        .to_lowercase()
        .split([' ', '-', '\t', '\n'])
        .filter(|w| !w.is_empty() && *w != "and" && *w != "a")
    {
        let small = [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ];
        let tens = [
            "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
        ];
        any = true;
        if let Some(v) = small.iter().position(|x| *x == w) {
            current += v as f64;
        } else if let Some(v) = tens.iter().position(|x| *x == w) {
            current += (v as f64 + 2.0) * 10.0;
        } else if w == "dozen" {
            current = current.max(1.0) * 12.0;
        } else if w == "hundred" {
            current = current.max(1.0) * 100.0;
        } else {
            let scale = match w {
                "thousand" => 1e3,
                "million" => 1e6,
                "billion" => 1e9,
                _ => return None,
            };
            total += current.max(1.0) * scale;
            current = 0.0;
        }
    }
    any.then_some(total + current)
}

const NOT_NAMES: &[&str] = &[
    "I", "A", "An", "The", "This", "That", "These", "Those", "It", "Its", "They", "We", "You",
    "He", "She", "Yes", "No", "Not", "Note", "OK", "Ok", "Q", "If", "In", "On", "At", "For", "To",
    "And", "Or", "But", "So", "As", "By", "Of", "With", "From", "However", "Also", "Then", "There",
    "Here", "When", "What", "Which", "Who", "How", "Why", "Where", "All", "Each", "Every", "Some",
    "Any", "Our", "Your", "Their", "My", "Please", "Step", "Steps", "First", "Second", "Third",
    "Finally",
];

/// Proper names of `text` with their byte offsets.
fn names(text: &str) -> Vec<(usize, String)> {
    let cjk = text.chars().any(crate::sentences::is_cjk);
    let mut out = Vec::new();
    let toks: Vec<(usize, &str)> = re(
        &RE_WORD,
        r"[\p{L}\p{N}][\p{L}\p{N}_'\-\.]*[\p{L}\p{N}]|[\p{L}\p{N}]",
    )
    .find_iter(text)
    .map(|m| (m.start(), m.as_str()))
    .collect();
    if cjk {
        // In Chinese text every Latin-script word is a name or a term worth checking.
        let latin = |w: &str| {
            w.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.'".contains(c))
        };
        for m in re(&RE_LATIN, r"[A-Za-z][A-Za-z0-9_.'\-]*[A-Za-z0-9]|[A-Za-z]").find_iter(text) {
            let w = m.as_str();
            if latin(w) && w.len() >= 2 && !NOT_NAMES.iter().any(|n| n.eq_ignore_ascii_case(w)) {
                out.push((m.start(), w.to_string()));
            }
        }
        return out;
    }
    let first_word = toks.first().map(|t| t.0);
    let mut i = 0;
    while i < toks.len() {
        let (s, w) = toks[i];
        let capital = |w: &str| w.chars().next().is_some_and(char::is_uppercase);
        let strong = |w: &str| {
            let inner_upper =
                w.chars().skip(1).any(char::is_uppercase) && w.chars().any(char::is_lowercase);
            let acronym = w.chars().filter(|c| c.is_alphabetic()).count() >= 2
                && w.chars().all(|c| !c.is_lowercase());
            (inner_upper || acronym) && w.chars().any(char::is_alphabetic)
        };
        if !(capital(w) || strong(w)) || is_calendar_word(w) {
            i += 1;
            continue;
        }
        // A run of capitalised words, joined by single spaces.
        let mut j = i + 1;
        while j < toks.len()
            && capital(toks[j].1)
            && !is_calendar_word(toks[j].1)
            && text[toks[j - 1].0 + toks[j - 1].1.len()..toks[j].0] == *" "
        {
            j += 1;
        }
        let mut parts: Vec<&str> = toks[i..j].iter().map(|t| t.1).collect();
        let mut start = s;
        let at_start = Some(s) == first_word || sentence_start(text, s);
        if at_start && !strong(parts[0]) {
            parts.remove(0);
            if let Some(&(s2, _)) = toks.get(i + 1) {
                start = s2;
            }
        }
        while parts.first().is_some_and(|p| NOT_NAMES.contains(p)) {
            parts.remove(0);
            start = text[start..].find(' ').map_or(start, |k| start + k + 1);
        }
        if !parts.is_empty() {
            let end = toks[j - 1].0 + toks[j - 1].1.len();
            let name = text[start..end].trim_end_matches('.').to_string();
            if name.chars().any(char::is_alphabetic) && !name.chars().all(|c| c.is_ascii_digit()) {
                out.push((start, name));
            }
        }
        i = j;
    }
    out
}

fn sentence_start(text: &str, s: usize) -> bool {
    let before = text[..s].trim_end_matches([' ', '"', '\'', '(', '“', '*', '-', '•']);
    before.is_empty() || before.ends_with(['.', '!', '?', ':', '\n'])
}

fn is_calendar_word(w: &str) -> bool {
    let l = w.to_lowercase();
    MONTHS.contains(&l.as_str()) || WEEKDAYS.contains(&l.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<(ItemKind, String)> {
        extract(text).into_iter().map(|i| (i.kind, i.key)).collect()
    }

    fn num(k: &str) -> (ItemKind, String) {
        (ItemKind::Number, k.to_string())
    }

    #[test]
    fn chinese_numerals() {
        for (s, v) in [
            ("三", 3.0),
            ("十", 10.0),
            ("十五", 15.0),
            ("三十五", 35.0),
            ("一百零五", 105.0),
            ("两千", 2000.0),
            ("三万五千", 35000.0),
            ("二〇二四", 2024.0),
            ("一亿", 1e8),
        ] {
            assert_eq!(parse_zh(s), Some(v), "{s}");
        }
    }

    #[test]
    fn english_number_words() {
        assert_eq!(parse_en_words("twenty-five"), Some(25.0));
        assert_eq!(parse_en_words("two hundred and five"), Some(205.0));
        assert_eq!(parse_en_words("three thousand"), Some(3000.0));
        assert_eq!(parse_en_words("a dozen"), Some(12.0));
    }

    #[test]
    fn numbers_are_normalised_across_languages() {
        // 三天 = 3天 = 3 days; 两周 = two weeks = 14 days; 百分之五 = 5% = five percent.
        assert_eq!(keys("三天"), vec![num("259200s")]);
        assert_eq!(keys("3天"), vec![num("259200s")]);
        assert_eq!(keys("within 3 days"), vec![num("259200s")]);
        assert_eq!(keys("两周"), vec![num("1209600s")]);
        assert_eq!(keys("two weeks"), vec![num("1209600s")]);
        assert_eq!(keys("14 days"), vec![num("1209600s")]);
        assert_eq!(keys("百分之五"), vec![num("5%")]);
        assert_eq!(keys("5%"), vec![num("5%")]);
        assert_eq!(keys("five percent"), vec![num("5%")]);
        assert_eq!(keys("a 30-day window"), vec![num("2592000s")]);
        assert_eq!(
            keys("$1,200.50 or 3 million users"),
            vec![num("1200.5 USD"), num("3000000")]
        );
        assert_eq!(
            keys("350 ms p99"),
            vec![num("0.35s"), (ItemKind::Identifier, "p99".into())]
        );
        assert_eq!(keys("3个月"), vec![num("3 months")]);
        assert_eq!(keys("3万人"), vec![num("30000")]);
        assert_eq!(keys("一些人统一使用"), vec![]);
        assert_eq!(keys("one of them"), vec![]);
        assert_eq!(keys("5k requests"), vec![num("5000")]);
        assert_eq!(keys("within two business hours"), vec![num("7200s")]);
        assert_eq!(keys("支持两种格式"), vec![]);
        assert_eq!(keys("两三天"), vec![num("172800s"), num("259200s")]);
        let e = Evidence::new(&["通常需要2至3天。"]);
        assert!(e.ungrounded("一般两三天。").is_empty());
    }

    #[test]
    fn dates() {
        assert_eq!(
            keys("on 2024-03-05"),
            vec![(ItemKind::Date, "2024-03-05".into())]
        );
        assert_eq!(
            keys("2024年3月5日发布"),
            vec![(ItemKind::Date, "2024-03-05".into())]
        );
        assert_eq!(
            keys("March 5, 2024"),
            vec![(ItemKind::Date, "2024-03-05".into())]
        );
        assert_eq!(
            keys("5 March 2024"),
            vec![(ItemKind::Date, "2024-03-05".into())]
        );
        assert_eq!(keys("在2024年"), vec![(ItemKind::Date, "2024-?-?".into())]);
        assert_eq!(keys("三年"), vec![num("3 years")]);
        assert_eq!(keys("You may go"), vec![]);
        let e = Evidence::new(&["Released on 2024-03-05."]);
        assert!(e.ungrounded("It shipped March 5, 2024.").is_empty());
        assert_eq!(e.ungrounded("It shipped March 6, 2024.").len(), 1);
    }

    #[test]
    fn identifiers_and_names() {
        let items =
            keys("Use EC2 and ABC-123 with v1.2.3 and gpt-4o, via Apache Kafka and PostgreSQL.");
        assert_eq!(
            items,
            vec![
                (ItemKind::Identifier, "ec2".into()),
                (ItemKind::Identifier, "abc-123".into()),
                (ItemKind::Identifier, "v1.2.3".into()),
                (ItemKind::Identifier, "gpt-4o".into()),
                (ItemKind::Name, "apache kafka".into()),
                (ItemKind::Name, "postgresql".into()),
            ]
        );
        // Sentence-initial capitals are not names; acronyms and CamelCase are.
        assert_eq!(
            keys("The service uses Redis."),
            vec![(ItemKind::Name, "redis".into())]
        );
        assert_eq!(
            keys("AWS bills monthly."),
            vec![(ItemKind::Name, "aws".into())]
        );
        assert_eq!(
            keys("请使用Kafka和Redis 7。"),
            vec![
                (ItemKind::Name, "kafka".into()),
                (ItemKind::Name, "redis".into()),
                num("7"),
            ]
        );
    }

    #[test]
    fn grounding_against_evidence() {
        let e = Evidence::new(&[
            "Refunds are accepted within 14 days of purchase. Contact Acme Support.",
            "退款须在三十天内申请，手续费为百分之五。",
        ]);
        assert!(
            e.ungrounded("You can get a refund within two weeks.")
                .is_empty()
        );
        assert!(e.ungrounded("退款须在30天内申请。").is_empty());
        assert!(e.ungrounded("手续费是5%。").is_empty());
        let bad = e.ungrounded("Refunds are accepted within 30 days via Acme Billing.");
        let texts: Vec<&str> = bad.iter().map(|i| i.text.as_str()).collect();
        // 30 days: the evidence has 30 only as 三十天 — same quantity, grounded; "Acme Billing"
        // is not stated ("Acme" is, "Billing" is not).
        assert_eq!(texts, vec!["Acme Billing"]);
        let bad = e.ungrounded("退款须在两周内申请，手续费为百分之十。");
        let texts: Vec<&str> = bad.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(texts, vec!["百分之十"]);
        // A unit-less number in the evidence grounds a number with a unit and vice versa,
        // different units with the same value do not.
        let e = Evidence::new(&["The limit is 30 per account. The trial lasts 2 days."]);
        assert!(e.ungrounded("The limit is 30 accounts.").is_empty());
        assert!(e.ungrounded("You get 30 days.").is_empty());
        assert_eq!(e.ungrounded("The trial lasts 2 weeks.").len(), 1);
    }
}
