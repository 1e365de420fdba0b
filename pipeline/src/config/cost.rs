//! `[cost]`: where prices come from and how they are reloaded, the spend calendar and the
//! budgets. The price table itself and the pricing join are `glassbox_operators::cost` and
//! `glassbox_operators::cost::pricing`; the reload watcher is `pricing`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use glassbox_operators::CostKeying;
use glassbox_operators::cost::{PriceTable, TokenSemantics, usd_to_pico};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[cost]`: pricing, spend periods and budgets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostConfig {
    /// Price every model call and report cost per window (metrics record, InfluxDB) and live
    /// spend per period (Redis, when `redis.enabled`).
    pub enabled: bool,
    /// A LiteLLM `model_prices_and_context_window.json`; `""`: the table shipped with glassbox
    /// (source and date in `operators/prices/README.md`).
    pub prices: String,
    /// A glassbox TOML overlay (custom and fine-tuned models, aliases), applied over `prices`;
    /// `""`: the overlay shipped with glassbox.
    pub overlay: String,
    /// How often the price files are checked for changes (ms); 0: only on `SIGHUP`.
    pub reload_check_ms: u64,
    /// Token semantics per provider (`"inclusive"`: input includes cached tokens, as in OTel;
    /// `"separate"`: cache buckets reported apart, as in Anthropic's API). Unlisted providers:
    /// `anthropic` is `separate`, every other `inclusive`. Example: `{ anthropic = "inclusive" }`.
    pub token_semantics: BTreeMap<String, String>,
    /// Prompt-size tier thresholds (tokens) besides those of the price table, e.g. `[128000]`,
    /// for a table loaded later that introduces them.
    pub tier_thresholds: Vec<u64>,
    /// The spend calendar: days start at 00:00 UTC shifted by this many minutes, e.g. `-300`
    /// for days that start at midnight UTC−5. Months follow the shifted days.
    pub day_offset_minutes: i64,
    /// Days a day's spend keys are kept in Redis.
    pub day_ttl_days: u64,
    /// Days a month's spend keys are kept in Redis.
    pub month_ttl_days: u64,
    /// Budgets and their alert thresholds.
    pub budgets: BudgetsConfig,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            prices: String::new(),
            overlay: String::new(),
            reload_check_ms: 5_000,
            token_semantics: BTreeMap::new(),
            tier_thresholds: Vec::new(),
            day_offset_minutes: 0,
            day_ttl_days: 40,
            month_ttl_days: 400,
            budgets: BudgetsConfig::default(),
        }
    }
}

/// `[cost.budgets]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetsConfig {
    /// Fractions of a budget at which one event is emitted per period, e.g. `[0.8, 1.0]`.
    pub thresholds: Vec<f64>,
    /// Per tenant: `{ acme = { daily_usd = 100, monthly_usd = 2000 } }`.
    pub tenants: BTreeMap<String, Budget>,
    /// Per feature: `{ search = { daily_usd = 50 } }`.
    pub features: BTreeMap<String, Budget>,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        Self {
            thresholds: vec![0.8, 1.0],
            tenants: BTreeMap::new(),
            features: BTreeMap::new(),
        }
    }
}

/// One budget, USD.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budget {
    /// Per day of the spend calendar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_usd: Option<f64>,
    /// Per month of the spend calendar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_usd: Option<f64>,
}

/// A budget resolved to exact pico-USD thresholds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetLine {
    /// `tenant` or `feature`.
    pub scope: &'static str,
    /// The tenant or feature.
    pub name: String,
    /// `day` or `month`.
    pub period: &'static str,
    /// The budget, pico-USD.
    pub amount_pico: i64,
    /// The budget as configured, USD text.
    pub amount_usd: String,
    /// (threshold as text, e.g. `0.8`, spend in pico-USD at which it fires: `⌈amount · t⌉`).
    pub thresholds: Vec<(String, i64)>,
}

fn pico(usd: f64) -> Result<i64, String> {
    if !usd.is_finite() || usd < 0.0 {
        return Err(format!("must be a non-negative amount, got {usd}"));
    }
    let (p, _) = usd_to_pico(&format!("{usd}"))?;
    i64::try_from(p).map_err(|_| format!("{usd} USD is above the 9.2 million USD limit"))
}

impl CostConfig {
    /// Checks the section; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: String| Err(ConfigError::Invalid { field, message });
        for (provider, s) in &self.token_semantics {
            if parse_semantics(s).is_none() {
                return bad(
                    "cost.token_semantics",
                    format!("`{provider}`: must be `inclusive` or `separate`, got `{s}`"),
                );
            }
        }
        if self.day_offset_minutes.abs() >= 24 * 60 {
            return bad(
                "cost.day_offset_minutes",
                format!("must be within ±1439, got {}", self.day_offset_minutes),
            );
        }
        for t in &self.budgets.thresholds {
            if !(t.is_finite() && *t > 0.0 && *t <= 10.0) {
                return bad(
                    "cost.budgets.thresholds",
                    format!("each must be in (0, 10], got {t}"),
                );
            }
        }
        if let Err(message) = self.budget_lines() {
            return bad("cost.budgets", message);
        }
        if self.enabled {
            self.load_table().map_err(|message| ConfigError::Invalid {
                field: "cost.prices",
                message,
            })?;
        }
        Ok(())
    }

    /// Every configured budget with its exact thresholds.
    pub fn budget_lines(&self) -> Result<Vec<BudgetLine>, String> {
        let mut lines = Vec::new();
        let scopes = [
            ("tenant", &self.budgets.tenants),
            ("feature", &self.budgets.features),
        ];
        for (scope, budgets) in scopes {
            for (name, b) in budgets {
                for (period, usd) in [("day", b.daily_usd), ("month", b.monthly_usd)] {
                    let Some(usd) = usd else { continue };
                    let amount =
                        pico(usd).map_err(|m| format!("{scope} `{name}` {period}: {m}"))?;
                    let thresholds = self
                        .budgets
                        .thresholds
                        .iter()
                        .map(|t| {
                            let (num, _) = usd_to_pico(&format!("{t}")).unwrap_or((0, true));
                            // amount · t exactly: t in pico-units (t · 10¹²), rounded up.
                            let exact = i128::from(amount) * i128::from(num);
                            let fire = (exact + 999_999_999_999) / 1_000_000_000_000;
                            (format!("{t}"), i64::try_from(fire).unwrap_or(i64::MAX))
                        })
                        .collect();
                    lines.push(BudgetLine {
                        scope,
                        name: name.clone(),
                        period,
                        amount_pico: amount,
                        amount_usd: format!("{usd}"),
                        thresholds,
                    });
                }
            }
        }
        Ok(lines)
    }

    /// Reads the price table the section names; the error names the file and what is wrong.
    pub fn load_table(&self) -> Result<PriceTable, String> {
        let read = |path: &str| {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))
        };
        let mut table = if self.prices.is_empty() {
            PriceTable::from_litellm_json(glassbox_operators::cost::DEFAULT_PRICES_JSON)
                .map_err(|e| format!("shipped price table: {e}"))?
        } else {
            PriceTable::from_litellm_json(&read(&self.prices)?)
                .map_err(|e| format!("`{}`: {e}", self.prices))?
        };
        if self.overlay.is_empty() {
            table
                .overlay_toml(glassbox_operators::cost::DEFAULT_OVERLAY_TOML)
                .map_err(|e| format!("shipped overlay: {e}"))?;
        } else {
            table
                .overlay_toml(&read(&self.overlay)?)
                .map_err(|e| format!("`{}`: {e}", self.overlay))?;
        }
        Ok(table)
    }

    /// How spans are keyed for pricing under `table`.
    pub fn keying(&self, table: &PriceTable) -> CostKeying {
        let thresholds: BTreeSet<u64> = table
            .tier_thresholds()
            .into_iter()
            .chain(self.tier_thresholds.iter().copied())
            .collect();
        CostKeying {
            thresholds: thresholds.into_iter().collect(),
            semantics: self
                .token_semantics
                .iter()
                .filter_map(|(p, s)| Some((p.to_ascii_lowercase(), parse_semantics(s)?)))
                .collect(),
        }
    }

    /// The files whose changes trigger a reload.
    pub fn watched(&self) -> Vec<PathBuf> {
        [&self.prices, &self.overlay]
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect()
    }

    /// The spend calendar.
    pub fn calendar(&self) -> Calendar {
        Calendar {
            offset_ms: self.day_offset_minutes * 60_000,
        }
    }
}

fn parse_semantics(s: &str) -> Option<TokenSemantics> {
    match s {
        "inclusive" => Some(TokenSemantics::Inclusive),
        "separate" => Some(TokenSemantics::Separate),
        _ => None,
    }
}

/// Days and months of the spend calendar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Shift of the day boundary from 00:00 UTC, ms.
    pub offset_ms: i64,
}

impl Calendar {
    /// The day (`YYYY-MM-DD`) and month (`YYYY-MM`) that event time `ms` falls in, and the
    /// day's start (ms since the epoch).
    pub fn period(&self, ms: u64) -> (String, String, i64) {
        let shifted = i64::try_from(ms).unwrap_or(i64::MAX) + self.offset_ms;
        let days = shifted.div_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        (
            format!("{y:04}-{m:02}-{d:02}"),
            format!("{y:04}-{m:02}"),
            days * 86_400_000 - self.offset_ms,
        )
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_days_and_months_follow_the_offset() {
        let utc = Calendar::default();
        // 2026-11-28T23:30:00Z
        let t = 1_795_908_600_000u64;
        assert_eq!(utc.period(t).0, "2026-11-28");
        let plus_one = Calendar {
            offset_ms: 60 * 60_000,
        };
        assert_eq!(plus_one.period(t).0, "2026-11-29");
        // 2026-12-01T00:10:00Z is still November at UTC−1.
        let dec1 = 1_796_083_800_000u64;
        assert_eq!(utc.period(dec1).1, "2026-12");
        let minus_one = Calendar {
            offset_ms: -60 * 60_000,
        };
        assert_eq!(minus_one.period(dec1).1, "2026-11");
        let (_, _, start) = utc.period(t);
        assert_eq!(start, 1_795_824_000_000);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn budgets_resolve_to_exact_thresholds_and_bad_fields_are_named() {
        let mut c = CostConfig::default();
        c.budgets.tenants.insert(
            "acme".into(),
            Budget {
                daily_usd: Some(100.0),
                monthly_usd: Some(0.3),
            },
        );
        let lines = c.budget_lines().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].amount_pico, 100 * 1_000_000_000_000);
        assert_eq!(
            lines[0].thresholds,
            vec![
                ("0.8".to_owned(), 80 * 1_000_000_000_000),
                ("1".to_owned(), 100 * 1_000_000_000_000)
            ]
        );
        assert_eq!(lines[1].amount_pico, 300_000_000_000);
        assert_eq!(lines[1].thresholds[0].1, 240_000_000_000);
        c.token_semantics.insert("openai".into(), "cached".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("cost.token_semantics") && e.contains("openai"),
            "{e}"
        );
        c.token_semantics.clear();
        c.budgets.thresholds = vec![0.0];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("cost.budgets.thresholds")
        );
        c.budgets.thresholds = vec![0.8];
        c.prices = "/nonexistent/prices.json".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("cost.prices") && e.contains("/nonexistent/prices.json"),
            "{e}"
        );
    }
}
