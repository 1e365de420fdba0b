//! Token prices and the cost of one span, in exact integer money.
//!
//! Contract:
//!
//! - **Money is an integer number of pico-USD** (1 pico-USD = 10⁻¹² USD). A price is a `u64`
//!   count of pico-USD per token; a cost is an `i64` count of pico-USD. An `i64` holds up to
//!   ≈ 9.2·10⁶ USD. Aggregates are plain `i64` sums of per-span costs (the differential
//!   difference type of [`crate::metrics::figures`]), which stay exact and order-independent and are
//!   ample for one series in one window; a sum that could exceed 9.2 million USD (a month of a
//!   very large tenant) must be kept in `i128`. No `f64` is ever used for money.
//! - **Prices come from LiteLLM's `model_prices_and_context_window.json`**
//!   ([`PriceTable::from_litellm_json`]), read from the JSON number *text*: a literal with at
//!   most 12 decimal places below the dollar (every real price) converts exactly; a longer one
//!   (a float artefact such as `2.0000000000000002E-7`) is rounded to the nearest pico-USD and
//!   counted in [`PriceTable::rounded_prices`]. A glassbox TOML overlay
//!   ([`PriceTable::overlay_toml`]) adds or replaces models (prices as decimal *strings*, which
//!   must be exact) and adds regex aliases. [`PriceTable::default_table`] is a small table
//!   shipped with glassbox (`operators/prices/`, source and date in its README).
//! - **Lookup** ([`PriceTable::price`]) is case-sensitive and tries, in order: the model name as
//!   given; `{provider}/{model}` with the span's provider and with LiteLLM's prefix for it
//!   ([`litellm_prefix`]); the model with a leading `provider/` stripped (exactly, then with the
//!   provider prefixes); the aliases, first match wins, each target resolved by the same direct
//!   steps (aliases are not chained). A model that resolves to nothing has no price: the caller
//!   counts it as unpriced, it is never priced at zero.
//! - **Cost of a span** ([`span_cost`], DESIGN.md §6). [`TokenSemantics::Inclusive`] (OTel
//!   GenAI, OpenInference): `input` includes the cache reads and writes, so
//!   `uncached = input − cache_read − cache_write`. [`TokenSemantics::Separate`] (Anthropic-style
//!   payloads): `input` is already the uncached count. Under both, `output` includes
//!   `reasoning`. Each token is priced once:
//!   `uncached·p_in + cache_read·p_cache_read + cache_write·p_cache_write +
//!   (output − reasoning)·p_out + reasoning·p_reasoning`. A missing cache price is the input
//!   price (a provider without a cache discount bills those tokens as input); a missing
//!   reasoning price is the output price, so reasoning is then billed exactly as output and
//!   only reported in its own class. A count the span does not report is 0.
//! - **Tiers**: LiteLLM's `*_above_{N}k_tokens` keys (e.g. `input_cost_per_token_above_200k_tokens`,
//!   `cache_read_input_token_cost_above_200k_tokens`) apply to every token of a call whose
//!   prompt (`uncached + cache_read + cache_write`) is *more than* `N·1000` tokens; per price,
//!   the highest such tier that sets it wins, else the base price.
//! - Every component is `0 ≤ c ≤` [`MAX_COMPONENT`] and `total` is exactly their sum, so a span's
//!   cost never overflows and never is negative; counts that disagree (cache above input,
//!   reasoning above output) are clamped and flagged, not rejected.

use std::collections::{BTreeMap, HashMap};

use glassbox_schemas::TokenUsage;
use regex::Regex;
use serde::Deserialize;
use serde_json::value::RawValue;

/// pico-USD in one USD.
pub const PICO_PER_USD: i64 = 1_000_000_000_000;

/// The largest value of one [`SpanCost`] component: `i64::MAX / 8` pico-USD (≈ 1.15·10⁶ USD),
/// so that the five components always add up without overflow.
pub const MAX_COMPONENT: i64 = i64::MAX / 8;

/// LiteLLM's price table (a small subset, see `operators/prices/README.md`).
pub const DEFAULT_PRICES_JSON: &str = include_str!("../../prices/default_prices.json");

/// glassbox's overlay on [`DEFAULT_PRICES_JSON`]: aliases for undated and shorthand names.
/// Apply it to a newer full LiteLLM file too, so these names keep resolving.
pub const DEFAULT_OVERLAY_TOML: &str = include_str!("../../prices/default_overlay.toml");

/// A price table or overlay that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CostError {
    /// The file is not JSON of the expected shape (line and column in the message).
    #[error("price table: invalid JSON: {0}")]
    Json(String),
    /// The overlay is not TOML of the expected shape (line and column in the message).
    #[error("price overlay: invalid TOML: {0}")]
    Toml(String),
    /// One model's entry is malformed.
    #[error("price of model `{model}`: {reason}")]
    Model {
        /// The model's name (the table key).
        model: String,
        /// What is wrong.
        reason: String,
    },
    /// One price of one model is malformed.
    #[error("price of model `{model}`, field `{field}`: {reason}")]
    Field {
        /// The model's name (the table key).
        model: String,
        /// The field, as spelled in the file.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// An alias pattern is not a valid regex.
    #[error("price alias `{pattern}`: {reason}")]
    Alias {
        /// The pattern as given.
        pattern: String,
        /// The regex error.
        reason: String,
    },
}

/// Prices that apply above a prompt size. `None`: the base price applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PriceTier {
    /// The tier applies when the prompt has more than this many tokens.
    pub above_tokens: u64,
    /// pico-USD per uncached input token.
    pub input: Option<u64>,
    /// pico-USD per output token.
    pub output: Option<u64>,
    /// pico-USD per cache-read input token.
    pub cache_read: Option<u64>,
    /// pico-USD per cache-write input token.
    pub cache_write: Option<u64>,
    /// pico-USD per reasoning token.
    pub reasoning: Option<u64>,
}

/// The prices of one model, pico-USD per token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Price {
    /// LiteLLM's `litellm_provider` (or the overlay's `provider`), informative only.
    pub provider: Option<String>,
    /// Per uncached input token (`input_cost_per_token`; 0 when the entry has only an output
    /// price).
    pub input: u64,
    /// Per output token (`output_cost_per_token`; 0 when the entry has only an input price,
    /// e.g. embedding models).
    pub output: u64,
    /// Per cache-read token (`cache_read_input_token_cost`); `None`: the input price.
    pub cache_read: Option<u64>,
    /// Per cache-write token (`cache_creation_input_token_cost`); `None`: the input price.
    pub cache_write: Option<u64>,
    /// Per reasoning token (`output_cost_per_reasoning_token`); `None`: the output price.
    pub reasoning: Option<u64>,
    /// Prompt-size tiers, ascending by `above_tokens`, thresholds distinct.
    pub tiers: Vec<PriceTier>,
}

/// The five prices that apply to one call, pico-USD per token.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Rates {
    /// Per uncached input token.
    pub input: u64,
    /// Per cache-read token.
    pub cache_read: u64,
    /// Per cache-write token.
    pub cache_write: u64,
    /// Per output token that is not a reasoning token.
    pub output: u64,
    /// Per reasoning token.
    pub reasoning: u64,
}

impl Price {
    /// A price with input and output only, pico-USD per token.
    pub fn new(input: u64, output: u64) -> Self {
        Self {
            input,
            output,
            ..Self::default()
        }
    }

    /// The prices for a call whose prompt (uncached + cache read + cache write) has
    /// `prompt_tokens` tokens: per price, the highest tier below the prompt that sets it, else
    /// the base price; then the fallbacks (cache → input, reasoning → output).
    pub fn rates(&self, prompt_tokens: u64) -> Rates {
        let tiered = |base: Option<u64>, get: fn(&PriceTier) -> Option<u64>| {
            self.tiers
                .iter()
                .rev()
                .filter(|tier| prompt_tokens > tier.above_tokens)
                .find_map(get)
                .or(base)
        };
        let input = tiered(Some(self.input), |t| t.input).unwrap_or(self.input);
        let output = tiered(Some(self.output), |t| t.output).unwrap_or(self.output);
        Rates {
            input,
            cache_read: tiered(self.cache_read, |t| t.cache_read).unwrap_or(input),
            cache_write: tiered(self.cache_write, |t| t.cache_write).unwrap_or(input),
            output,
            reasoning: tiered(self.reasoning, |t| t.reasoning).unwrap_or(output),
        }
    }
}

/// How a span's token counts relate to each other on the input side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TokenSemantics {
    /// `input` includes `cache_read` and `cache_write` (OTel GenAI `gen_ai.usage.input_tokens`,
    /// OpenInference `llm.token_count.prompt` with `prompt_details`).
    #[default]
    Inclusive,
    /// `input` excludes the cache buckets, reported separately (Anthropic's Messages API
    /// `usage`: `input_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens`).
    Separate,
}

impl TokenSemantics {
    /// The default for a provider until configuration says otherwise: [`Separate`] for
    /// `anthropic` (compared case-insensitively), [`Inclusive`] for everything else.
    ///
    /// Why: the OTel and OpenInference conventions define input as including cached tokens,
    /// and OpenAI, Gemini and most instrumentations report it so. Anthropic's API reports
    /// `input_tokens` without the cache buckets, and Anthropic instrumentations commonly copy it
    /// unchanged into `gen_ai.usage.input_tokens`. Applying `Inclusive` to such a span would
    /// subtract the cache tokens a second time (clamped at 0 and flagged `inconsistent`), and
    /// applying `Separate` to a span that did include them charges them twice, undetectably:
    /// the numbers alone cannot tell, so a deployment whose Anthropic instrumentation follows
    /// the convention must configure `Inclusive`. Bedrock and Vertex hosting Claude models are
    /// not special-cased here.
    ///
    /// [`Separate`]: TokenSemantics::Separate
    /// [`Inclusive`]: TokenSemantics::Inclusive
    pub fn default_for(provider: Option<&str>) -> Self {
        match provider {
            Some(p) if p.eq_ignore_ascii_case("anthropic") => TokenSemantics::Separate,
            _ => TokenSemantics::Inclusive,
        }
    }
}

/// The cost of one span by token class, pico-USD. Every component is in `0..=MAX_COMPONENT`
/// and `total` is their exact sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SpanCost {
    /// Uncached input tokens.
    pub input: i64,
    /// Cache-read input tokens.
    pub cache_read: i64,
    /// Cache-write input tokens.
    pub cache_write: i64,
    /// Output tokens other than reasoning.
    pub output: i64,
    /// Reasoning tokens (at the output price when the model has no reasoning price).
    pub reasoning: i64,
    /// The sum of the five above.
    pub total: i64,
    /// The counts disagree: cache tokens above input (`Inclusive`) or reasoning above output;
    /// the difference was clamped at 0.
    pub inconsistent: bool,
    /// A component exceeded [`MAX_COMPONENT`] and was clamped (absurd token counts).
    pub saturated: bool,
}

/// The cost of one span: `usage` read under `semantics`, priced at `price` (see the module
/// documentation for the formula, the fallbacks and the tiers).
pub fn span_cost(usage: &TokenUsage, semantics: TokenSemantics, price: &Price) -> SpanCost {
    let n = |v: Option<u64>| v.unwrap_or(0);
    let (input, output) = (n(usage.input), n(usage.output));
    let (cache_read, cache_write, reasoning) = (
        n(usage.cache_read),
        n(usage.cache_write),
        n(usage.reasoning),
    );
    let mut inconsistent = false;
    let uncached = match semantics {
        TokenSemantics::Inclusive => {
            let cached = cache_read.saturating_add(cache_write);
            inconsistent |= cached > input;
            input.saturating_sub(cached)
        }
        TokenSemantics::Separate => input,
    };
    inconsistent |= reasoning > output;
    let plain_output = output.saturating_sub(reasoning);
    let prompt = uncached
        .saturating_add(cache_read)
        .saturating_add(cache_write);
    let rates = price.rates(prompt);

    let mut saturated = false;
    let mut component = |tokens: u64, rate: u64| {
        let exact = u128::from(tokens) * u128::from(rate);
        match i64::try_from(exact) {
            Ok(c) if c <= MAX_COMPONENT => c,
            _ => {
                saturated = true;
                MAX_COMPONENT
            }
        }
    };
    let input = component(uncached, rates.input);
    let cache_read = component(cache_read, rates.cache_read);
    let cache_write = component(cache_write, rates.cache_write);
    let output = component(plain_output, rates.output);
    let reasoning = component(reasoning, rates.reasoning);
    SpanCost {
        input,
        cache_read,
        cache_write,
        output,
        reasoning,
        total: input + cache_read + cache_write + output + reasoning,
        inconsistent,
        saturated,
    }
}

/// LiteLLM's key prefix for an OTel `gen_ai.provider.name` (or older `gen_ai.system`) value,
/// when it differs from the value itself: `aws.bedrock` → `bedrock`, `gcp.gemini`,
/// `gcp.gen_ai` and `google` → `gemini`, `gcp.vertex_ai` → `vertex_ai`, `azure.ai.openai` and
/// `az.ai.openai` → `azure`, `azure.ai.inference` and `az.ai.inference` → `azure_ai`,
/// `mistral_ai` → `mistral`, `x_ai` → `xai`, `ibm.watsonx.ai` → `watsonx`.
pub fn litellm_prefix(provider: &str) -> Option<&'static str> {
    Some(match provider {
        "aws.bedrock" => "bedrock",
        "gcp.gemini" | "gcp.gen_ai" | "google" => "gemini",
        "gcp.vertex_ai" => "vertex_ai",
        "azure.ai.openai" | "az.ai.openai" => "azure",
        "azure.ai.inference" | "az.ai.inference" => "azure_ai",
        "mistral_ai" => "mistral",
        "x_ai" => "xai",
        "ibm.watsonx.ai" => "watsonx",
        _ => return None,
    })
}

/// A regex alias: a model name matching `pattern` is priced as `model`.
#[derive(Clone, Debug)]
pub struct Alias {
    /// Matched against the whole model name with [`Regex::is_match`]: anchor it (`^…$`) to
    /// match the whole name.
    pub pattern: Regex,
    /// The table entry it stands for.
    pub model: String,
}

/// Model prices by name, plus aliases. See the module documentation for the lookup order.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    models: HashMap<String, Price>,
    aliases: Vec<Alias>,
    rounded: usize,
}

/// The LiteLLM keys read, and the [`Price`]/[`PriceTier`] field each sets.
#[derive(Clone, Copy)]
enum Field {
    Input,
    Output,
    CacheRead,
    CacheWrite,
    Reasoning,
}

const LITELLM_FIELDS: [(&str, Field); 5] = [
    ("input_cost_per_token", Field::Input),
    ("output_cost_per_token", Field::Output),
    ("cache_read_input_token_cost", Field::CacheRead),
    ("cache_creation_input_token_cost", Field::CacheWrite),
    ("output_cost_per_reasoning_token", Field::Reasoning),
];

impl PriceTier {
    fn set(&mut self, field: Field, value: u64) {
        let slot = match field {
            Field::Input => &mut self.input,
            Field::Output => &mut self.output,
            Field::CacheRead => &mut self.cache_read,
            Field::CacheWrite => &mut self.cache_write,
            Field::Reasoning => &mut self.reasoning,
        };
        *slot = Some(value);
    }
}

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shipped table: [`DEFAULT_PRICES_JSON`] with [`DEFAULT_OVERLAY_TOML`] applied.
    pub fn default_table() -> Self {
        let mut table = Self::from_litellm_json(DEFAULT_PRICES_JSON)
            .expect("the shipped price table is valid (tested)");
        table
            .overlay_toml(DEFAULT_OVERLAY_TOML)
            .expect("the shipped price overlay is valid (tested)");
        table
    }

    /// Reads LiteLLM's `model_prices_and_context_window.json`.
    ///
    /// Per model it reads `input_cost_per_token`, `output_cost_per_token`,
    /// `cache_read_input_token_cost`, `cache_creation_input_token_cost`,
    /// `output_cost_per_reasoning_token`, their `*_above_{N}k_tokens` tiers and
    /// `litellm_provider`; other keys (batch, priority, flex, audio, image, 1-hour cache
    /// prices, …) are ignored, and so are `sample_spec` and entries with neither an input nor
    /// an output token price. A `null` price counts as absent. Errors name the model and field:
    /// a price that is not a non-negative JSON number, or one above `u64::MAX` pico-USD.
    pub fn from_litellm_json(text: &str) -> Result<Self, CostError> {
        let entries: BTreeMap<String, &RawValue> =
            serde_json::from_str(text).map_err(|e| CostError::Json(e.to_string()))?;
        let mut table = Self::new();
        for (model, entry) in entries {
            if model == "sample_spec" {
                continue;
            }
            let fields: BTreeMap<String, &RawValue> =
                serde_json::from_str(entry.get()).map_err(|_| CostError::Model {
                    model: model.clone(),
                    reason: "entry is not a JSON object".into(),
                })?;
            if let Some(price) = table.litellm_entry(&model, &fields)? {
                table.models.insert(model, price);
            }
        }
        Ok(table)
    }

    fn litellm_entry(
        &mut self,
        model: &str,
        fields: &BTreeMap<String, &RawValue>,
    ) -> Result<Option<Price>, CostError> {
        let mut base = PriceTier::default();
        let mut tiers: BTreeMap<u64, PriceTier> = BTreeMap::new();
        for (key, raw) in fields {
            for (name, field) in LITELLM_FIELDS {
                let Some(rest) = key.strip_prefix(name) else {
                    continue;
                };
                let threshold = if rest.is_empty() {
                    None
                } else {
                    match tier_threshold(rest) {
                        Some(t) => Some(t),
                        None => continue,
                    }
                };
                let Some(value) = self.json_price(model, key, raw)? else {
                    continue;
                };
                match threshold {
                    None => base.set(field, value),
                    Some(above_tokens) => tiers
                        .entry(above_tokens)
                        .or_insert_with(|| PriceTier {
                            above_tokens,
                            ..PriceTier::default()
                        })
                        .set(field, value),
                }
            }
        }
        if base.input.is_none() && base.output.is_none() {
            return Ok(None);
        }
        let provider = fields
            .get("litellm_provider")
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        Ok(Some(Price {
            provider,
            input: base.input.unwrap_or(0),
            output: base.output.unwrap_or(0),
            cache_read: base.cache_read,
            cache_write: base.cache_write,
            reasoning: base.reasoning,
            tiers: tiers.into_values().collect(),
        }))
    }

    fn json_price(
        &mut self,
        model: &str,
        field: &str,
        raw: &RawValue,
    ) -> Result<Option<u64>, CostError> {
        let text = raw.get().trim();
        if text == "null" {
            return Ok(None);
        }
        let error = |reason: String| CostError::Field {
            model: model.into(),
            field: field.into(),
            reason,
        };
        if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Err(error(format!("expected a number, found `{text}`")));
        }
        let (pico, exact) = usd_to_pico(text).map_err(error)?;
        if !exact {
            self.rounded += 1;
        }
        Ok(Some(pico))
    }

    /// Applies a glassbox TOML overlay. All or nothing: on error the table is unchanged.
    ///
    /// ```toml
    /// [[model]]
    /// name = "my-ft-model"          # replaces an entry of the same name
    /// provider = "openai"           # optional, informative
    /// input = "0.000002"            # USD per token, as a decimal string; required
    /// output = "0.000008"           # required
    /// cache_read = "0.0000005"      # optional: default the input price
    /// cache_write = "0.0000025"     # optional: default the input price
    /// reasoning = "0.00001"         # optional: default the output price
    /// [[model.tier]]                # optional, any number
    /// above_tokens = 200000         # applies when the prompt has more tokens than this
    /// input = "0.000004"            # each price optional
    ///
    /// [[alias]]
    /// pattern = "^gpt-4o-2024-.*$"  # regex on the model name; anchor it yourself
    /// model = "gpt-4o"
    /// ```
    ///
    /// Prices are strings so that they are exact: at most 12 decimal places (pico-USD), not
    /// negative. This overlay's aliases are tried before those already in the table (in file
    /// order), so a later overlay overrides an earlier one. Alias targets are not checked here
    /// (see [`PriceTable::unresolved_aliases`]).
    pub fn overlay_toml(&mut self, text: &str) -> Result<(), CostError> {
        let file: OverlayFile = toml::from_str(text).map_err(|e| CostError::Toml(e.to_string()))?;
        let mut models = Vec::with_capacity(file.model.len());
        for m in file.model {
            models.push(m.into_price()?);
        }
        let mut aliases = Vec::with_capacity(file.alias.len() + self.aliases.len());
        for a in file.alias {
            let pattern = Regex::new(&a.pattern).map_err(|e| CostError::Alias {
                pattern: a.pattern.clone(),
                reason: e.to_string(),
            })?;
            aliases.push(Alias {
                pattern,
                model: a.model,
            });
        }
        self.models.extend(models);
        aliases.append(&mut self.aliases);
        self.aliases = aliases;
        Ok(())
    }

    /// Adds or replaces one model.
    pub fn insert(&mut self, name: impl Into<String>, price: Price) {
        self.models.insert(name.into(), price);
    }

    /// Adds an alias, tried after the existing ones.
    pub fn push_alias(&mut self, pattern: Regex, model: impl Into<String>) {
        self.aliases.push(Alias {
            pattern,
            model: model.into(),
        });
    }

    /// The entry named exactly `name`.
    pub fn get(&self, name: &str) -> Option<&Price> {
        self.models.get(name)
    }

    /// The price of `model` as reported by a span of `provider` (see the module documentation
    /// for the lookup order); `None` when the model is unpriced.
    pub fn price(&self, provider: Option<&str>, model: &str) -> Option<&Price> {
        self.resolve(provider, model).map(|(_, price)| price)
    }

    /// Like [`PriceTable::price`], with the name of the entry that matched.
    pub fn resolve(&self, provider: Option<&str>, model: &str) -> Option<(&str, &Price)> {
        self.direct(provider, model).or_else(|| {
            let stripped = strip_prefix(model);
            self.aliases
                .iter()
                .find(|alias| {
                    alias.pattern.is_match(model)
                        || stripped.is_some_and(|s| alias.pattern.is_match(s))
                })
                .and_then(|alias| self.direct(provider, &alias.model))
        })
    }

    /// Exact, provider-prefixed, then prefix-stripped (exact and provider-prefixed).
    fn direct(&self, provider: Option<&str>, model: &str) -> Option<(&str, &Price)> {
        let exact = |name: &str| self.models.get_key_value(name);
        let prefixed = |name: &str| {
            let provider = provider?;
            [Some(provider), litellm_prefix(provider)]
                .into_iter()
                .flatten()
                .find_map(|p| exact(&format!("{p}/{name}")))
        };
        exact(model)
            .or_else(|| prefixed(model))
            .or_else(|| {
                let stripped = strip_prefix(model)?;
                exact(stripped).or_else(|| prefixed(stripped))
            })
            .map(|(name, price)| (name.as_str(), price))
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the table has no model.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The model names, sorted.
    pub fn models(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.models.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The aliases, in the order they are tried.
    pub fn aliases(&self) -> &[Alias] {
        &self.aliases
    }

    /// How many JSON prices had more than 12 decimal places and were rounded to the nearest
    /// pico-USD.
    pub fn rounded_prices(&self) -> usize {
        self.rounded
    }

    /// Every prompt-size tier threshold of the table, ascending, distinct.
    pub fn tier_thresholds(&self) -> Vec<u64> {
        let mut t: Vec<u64> = self
            .models
            .values()
            .flat_map(|p| p.tiers.iter().map(|tier| tier.above_tokens))
            .collect();
        t.sort_unstable();
        t.dedup();
        t
    }

    /// Alias targets that are not entries of the table (worth a warning at load time).
    pub fn unresolved_aliases(&self) -> Vec<&str> {
        self.aliases
            .iter()
            .filter(|alias| !self.models.contains_key(&alias.model))
            .map(|alias| alias.model.as_str())
            .collect()
    }
}

/// `model` without its leading `provider/` segment, when it has one.
fn strip_prefix(model: &str) -> Option<&str> {
    model
        .split_once('/')
        .map(|(_, rest)| rest)
        .filter(|rest| !rest.is_empty())
}

/// `_above_{N}k_tokens` → `N·1000`.
fn tier_threshold(rest: &str) -> Option<u64> {
    let n = rest.strip_prefix("_above_")?.strip_suffix("k_tokens")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse::<u64>().ok()?.checked_mul(1000)
}

/// A decimal USD amount (`0.0000025`, `2.5e-06`, `3E-7`) in pico-USD, rounded to the nearest
/// (ties up), and whether that was exact. Computed on the digits, never through `f64`.
pub fn usd_to_pico(text: &str) -> Result<(u64, bool), String> {
    let bad = || format!("`{text}` is not a decimal number");
    if let Some(magnitude) = text.strip_prefix('-') {
        return match usd_to_pico(magnitude) {
            Ok((0, true)) => Ok((0, true)),
            Ok(_) => Err(format!("`{text}` is negative")),
            Err(_) => Err(bad()),
        };
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => {
            let e = &text[i + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            (&text[..i], e.parse::<i32>().map_err(|_| bad())?)
        }
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || mantissa.ends_with('.') {
        return Err(bad());
    }
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    // The value is 0.d₁d₂… · 10^point; in pico-USD the point moves 12 places right.
    let mut point = i64::try_from(int.len()).map_err(|_| bad())? + i64::from(exponent) + 12;
    let leading_zeros = digits.iter().take_while(|&&d| d == 0).count();
    if leading_zeros == digits.len() {
        return Ok((0, true));
    }
    digits.drain(..leading_zeros);
    point -= i64::try_from(leading_zeros).map_err(|_| bad())?;
    let too_large = || format!("`{text}` USD is more than u64::MAX pico-USD");
    if point > 20 {
        return Err(too_large());
    }
    let len = i64::try_from(digits.len()).map_err(|_| bad())?;
    let mut pico: u64 = 0;
    for i in 0..point.max(0) {
        let d = if i < len { digits[i as usize] } else { 0 };
        pico = pico
            .checked_mul(10)
            .and_then(|p| p.checked_add(u64::from(d)))
            .ok_or_else(too_large)?;
    }
    let rest_start = point.clamp(0, len) as usize;
    let rest = &digits[rest_start..];
    let exact = rest.iter().all(|&d| d == 0);
    let round_up = point >= 0 && rest.first().is_some_and(|&d| d >= 5);
    if round_up {
        pico = pico.checked_add(1).ok_or_else(too_large)?;
    }
    Ok((pico, exact))
}

/// A decimal USD string of the overlay, which must be exact in pico-USD.
fn overlay_price(model: &str, field: &str, text: &str) -> Result<u64, CostError> {
    let error = |reason: String| CostError::Field {
        model: model.into(),
        field: field.into(),
        reason,
    };
    match usd_to_pico(text.trim()).map_err(error)? {
        (pico, true) => Ok(pico),
        (_, false) => Err(error(format!(
            "`{text}` USD has more than 12 decimal places (pico-USD)"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverlayFile {
    #[serde(default)]
    model: Vec<OverlayModel>,
    #[serde(default)]
    alias: Vec<OverlayAlias>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverlayModel {
    name: String,
    provider: Option<String>,
    input: Option<String>,
    output: Option<String>,
    cache_read: Option<String>,
    cache_write: Option<String>,
    reasoning: Option<String>,
    #[serde(default)]
    tier: Vec<OverlayTier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverlayTier {
    above_tokens: u64,
    input: Option<String>,
    output: Option<String>,
    cache_read: Option<String>,
    cache_write: Option<String>,
    reasoning: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverlayAlias {
    pattern: String,
    model: String,
}

impl OverlayModel {
    fn into_price(self) -> Result<(String, Price), CostError> {
        let name = self.name;
        let opt = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|text| overlay_price(&name, field, text))
                .transpose()
        };
        let required = |field: &str, v: &Option<String>| {
            opt(field, v)?.ok_or_else(|| CostError::Field {
                model: name.clone(),
                field: field.into(),
                reason: "missing".into(),
            })
        };
        let mut tiers = Vec::with_capacity(self.tier.len());
        for t in &self.tier {
            let tier_field = |f: &str| format!("tier.{}.{f}", t.above_tokens);
            tiers.push(PriceTier {
                above_tokens: t.above_tokens,
                input: opt(&tier_field("input"), &t.input)?,
                output: opt(&tier_field("output"), &t.output)?,
                cache_read: opt(&tier_field("cache_read"), &t.cache_read)?,
                cache_write: opt(&tier_field("cache_write"), &t.cache_write)?,
                reasoning: opt(&tier_field("reasoning"), &t.reasoning)?,
            });
        }
        tiers.sort_by_key(|t| t.above_tokens);
        if tiers
            .windows(2)
            .any(|w| w[0].above_tokens == w[1].above_tokens)
        {
            return Err(CostError::Model {
                model: name,
                reason: "two tiers with the same above_tokens".into(),
            });
        }
        let price = Price {
            provider: self.provider.clone(),
            input: required("input", &self.input)?,
            output: required("output", &self.output)?,
            cache_read: opt("cache_read", &self.cache_read)?,
            cache_write: opt("cache_write", &self.cache_write)?,
            reasoning: opt("reasoning", &self.reasoning)?,
            tiers,
        };
        Ok((name, price))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_to_pico() {
        let ok = |text: &str, pico: u64| assert_eq!(usd_to_pico(text), Ok((pico, true)), "{text}");
        ok("0", 0);
        ok("0.0", 0);
        ok("-0.0", 0);
        ok("1", 1_000_000_000_000);
        ok("0.0000025", 2_500_000);
        ok("2.5e-06", 2_500_000);
        ok("2.5E-6", 2_500_000);
        ok("1.875e-05", 18_750_000);
        ok("6e-09", 6_000);
        ok("1e-12", 1);
        ok("1.5e+1", 15_000_000_000_000);
        ok("0.000000000001000", 1);
        // Float artefacts round to the nearest pico-USD.
        assert_eq!(usd_to_pico("2.0000000000000002E-7"), Ok((200_000, false)));
        assert_eq!(usd_to_pico("9.499999999999999E-7"), Ok((950_000, false)));
        assert_eq!(usd_to_pico("1.5e-12"), Ok((2, false)));
        assert_eq!(usd_to_pico("4e-13"), Ok((0, false)));
        assert_eq!(usd_to_pico("1e-40"), Ok((0, false)));
        for bad in [
            "", ".5", "5.", "1e", "1e+", "abc", "1.2.3", "0x10", "1e-5x", "-1e-6",
        ] {
            assert!(usd_to_pico(bad).is_err(), "{bad}");
        }
        assert_eq!(
            usd_to_pico("18446744"),
            Ok((18_446_744_000_000_000_000, true))
        );
        assert!(usd_to_pico("18446745").is_err());
        assert!(usd_to_pico("0e2000000000").is_ok());
        assert!(usd_to_pico("1e400").is_err());
    }

    #[test]
    fn tiers_are_parsed_from_key_suffixes() {
        assert_eq!(tier_threshold("_above_200k_tokens"), Some(200_000));
        assert_eq!(tier_threshold("_above_272k_tokens"), Some(272_000));
        assert_eq!(tier_threshold("_above_1hr"), None);
        assert_eq!(tier_threshold("_above_1hr_above_200k_tokens"), None);
        assert_eq!(tier_threshold("_above_200k_tokens_priority"), None);
        assert_eq!(tier_threshold("_batches"), None);
    }

    #[test]
    fn rates_fall_back() {
        let price = Price {
            tiers: vec![
                PriceTier {
                    above_tokens: 100,
                    input: Some(20),
                    cache_read: Some(3),
                    ..PriceTier::default()
                },
                PriceTier {
                    above_tokens: 200,
                    input: Some(40),
                    ..PriceTier::default()
                },
            ],
            ..Price::new(10, 50)
        };
        let base = Rates {
            input: 10,
            cache_read: 10,
            cache_write: 10,
            output: 50,
            reasoning: 50,
        };
        assert_eq!(price.rates(100), base);
        assert_eq!(
            price.rates(101),
            Rates {
                input: 20,
                cache_read: 3,
                cache_write: 20,
                ..base
            }
        );
        assert_eq!(
            price.rates(201),
            Rates {
                input: 40,
                cache_read: 3,
                cache_write: 40,
                ..base
            }
        );
    }
}
