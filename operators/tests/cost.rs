//! Cost of a span: a matrix of hand-computed costs, the price table's lookup and formats, the
//! shipped default table, and an oracle on random usages × random prices.
//!
//! Prices are pico-USD per token (1 pico-USD = 10⁻¹² USD); `$2/M` means 2 USD per million
//! tokens = 2·10⁻⁶ USD per token = 2,000,000 pico-USD per token.

use glassbox_operators::cost::{
    CostError, DEFAULT_PRICES_JSON, MAX_COMPONENT, Price, PriceTable, PriceTier, SpanCost,
    TokenSemantics, span_cost,
};
use glassbox_schemas::TokenUsage;
use proptest::prelude::*;
use regex::Regex;

use TokenSemantics::{Inclusive, Separate};

/// $2/M input, $8/M output, $0.50/M cache read, $2.50/M cache write, no reasoning price.
fn price() -> Price {
    Price {
        cache_read: Some(500_000),
        cache_write: Some(2_500_000),
        ..Price::new(2_000_000, 8_000_000)
    }
}

fn usage(input: u64, output: Option<u64>, read: u64, write: u64, reasoning: u64) -> TokenUsage {
    let some = |v: u64| (v > 0).then_some(v);
    TokenUsage {
        input: Some(input),
        output,
        cache_read: some(read),
        cache_write: some(write),
        reasoning: some(reasoning),
    }
}

fn cost(input: i64, read: i64, write: i64, output: i64, reasoning: i64) -> SpanCost {
    SpanCost {
        input,
        cache_read: read,
        cache_write: write,
        output,
        reasoning,
        total: input + read + write + output + reasoning,
        inconsistent: false,
        saturated: false,
    }
}

#[test]
fn no_cache() {
    // 1000 input × 2,000,000 = 2,000,000,000; 500 output × 8,000,000 = 4,000,000,000;
    // total 6,000,000,000 pico-USD = $0.006.
    let c = span_cost(&usage(1000, Some(500), 0, 0, 0), Inclusive, &price());
    assert_eq!(c, cost(2_000_000_000, 0, 0, 4_000_000_000, 0));
    assert_eq!(c.total, 6_000_000_000);
}

#[test]
fn cache_read() {
    // input 1000 includes 600 read: uncached 400 × 2,000,000 = 800,000,000;
    // read 600 × 500,000 = 300,000,000; output 500 × 8,000,000 = 4,000,000,000;
    // total 5,100,000,000.
    let c = span_cost(&usage(1000, Some(500), 600, 0, 0), Inclusive, &price());
    assert_eq!(c, cost(800_000_000, 300_000_000, 0, 4_000_000_000, 0));
    assert_eq!(c.total, 5_100_000_000);
}

#[test]
fn cache_write() {
    // input 1000 includes 300 written: uncached 700 × 2,000,000 = 1,400,000,000;
    // write 300 × 2,500,000 = 750,000,000; output 4,000,000,000; total 6,150,000,000.
    let c = span_cost(&usage(1000, Some(500), 0, 300, 0), Inclusive, &price());
    assert_eq!(c, cost(1_400_000_000, 0, 750_000_000, 4_000_000_000, 0));
    assert_eq!(c.total, 6_150_000_000);
}

#[test]
fn cache_read_and_write() {
    // input 1000 includes 600 read + 300 written: uncached 100 × 2,000,000 = 200,000,000;
    // read 300,000,000; write 750,000,000; output 4,000,000,000; total 5,250,000,000.
    let c = span_cost(&usage(1000, Some(500), 600, 300, 0), Inclusive, &price());
    assert_eq!(
        c,
        cost(200_000_000, 300_000_000, 750_000_000, 4_000_000_000, 0)
    );
    assert_eq!(c.total, 5_250_000_000);
}

#[test]
fn missing_cache_prices_are_the_input_price() {
    // read 600 and write 300 at the input price 2,000,000: 1,200,000,000 and 600,000,000;
    // uncached 100 × 2,000,000 = 200,000,000: the input side costs 1000 × 2,000,000.
    let c = span_cost(
        &usage(1000, Some(0), 600, 300, 0),
        Inclusive,
        &Price::new(2_000_000, 8_000_000),
    );
    assert_eq!(c, cost(200_000_000, 1_200_000_000, 600_000_000, 0, 0));
    assert_eq!(c.total, 2_000_000_000);
}

#[test]
fn reasoning_with_its_own_price() {
    // $12/M reasoning. output 500 includes 200 reasoning: 300 × 8,000,000 = 2,400,000,000;
    // reasoning 200 × 12,000,000 = 2,400,000,000; input 1000 × 2,000,000 = 2,000,000,000;
    // total 6,800,000,000.
    let p = Price {
        reasoning: Some(12_000_000),
        ..price()
    };
    let c = span_cost(&usage(1000, Some(500), 0, 0, 200), Inclusive, &p);
    assert_eq!(c, cost(2_000_000_000, 0, 0, 2_400_000_000, 2_400_000_000));
    assert_eq!(c.total, 6_800_000_000);
}

#[test]
fn reasoning_without_its_own_price_is_billed_as_output() {
    // output 300 × 8,000,000 = 2,400,000,000; reasoning 200 × 8,000,000 = 1,600,000,000;
    // total 6,000,000,000: exactly the no-reasoning cost of 500 output tokens.
    let c = span_cost(&usage(1000, Some(500), 0, 0, 200), Inclusive, &price());
    assert_eq!(c, cost(2_000_000_000, 0, 0, 2_400_000_000, 1_600_000_000));
    let plain = span_cost(&usage(1000, Some(500), 0, 0, 0), Inclusive, &price());
    assert_eq!(c.total, plain.total);
}

fn tiered(cache_tier: bool) -> Price {
    // Above 200k prompt tokens: $4/M input, $12/M output, and (optionally) $1/M cache read.
    Price {
        tiers: vec![PriceTier {
            above_tokens: 200_000,
            input: Some(4_000_000),
            output: Some(12_000_000),
            cache_read: cache_tier.then_some(1_000_000),
            ..PriceTier::default()
        }],
        ..price()
    }
}

#[test]
fn above_200k_tier() {
    // Prompt 250,000 (> 200,000) with 50,000 read: uncached 200,000 × 4,000,000 =
    // 800,000,000,000; read 50,000 × 1,000,000 = 50,000,000,000; output 1000 × 12,000,000 =
    // 12,000,000,000; total 862,000,000,000 ($0.862).
    let big = usage(250_000, Some(1000), 50_000, 0, 0);
    let c = span_cost(&big, Inclusive, &tiered(true));
    assert_eq!(
        c,
        cost(800_000_000_000, 50_000_000_000, 0, 12_000_000_000, 0)
    );
    assert_eq!(c.total, 862_000_000_000);
    // Without a tiered cache price the read stays at 500,000: 25,000,000,000;
    // total 800e9 + 25e9 + 12e9 = 837,000,000,000.
    let c = span_cost(&big, Inclusive, &tiered(false));
    assert_eq!(c.total, 837_000_000_000);
    // The same under Separate semantics: the prompt is 200,000 uncached + 50,000 read.
    let separate = usage(200_000, Some(1000), 50_000, 0, 0);
    assert_eq!(
        span_cost(&separate, Separate, &tiered(true)).total,
        862_000_000_000
    );
    // Exactly 200,000 prompt tokens is not above the threshold: base prices.
    // uncached 150,000 × 2,000,000 = 300,000,000,000; read 50,000 × 500,000 = 25,000,000,000;
    // output 1000 × 8,000,000 = 8,000,000,000; total 333,000,000,000.
    let edge = usage(200_000, Some(1000), 50_000, 0, 0);
    assert_eq!(
        span_cost(&edge, Inclusive, &tiered(true)).total,
        333_000_000_000
    );
}

#[test]
fn errored_call_with_input_only() {
    // 1200 input × 2,000,000 = 2,400,000,000; no output reported.
    let c = span_cost(&usage(1200, None, 0, 0, 0), Inclusive, &price());
    assert_eq!(c, cost(2_400_000_000, 0, 0, 0, 0));
    assert_eq!(
        span_cost(&TokenUsage::default(), Inclusive, &price()),
        SpanCost::default()
    );
}

#[test]
fn unpriced_model() {
    let table = PriceTable::default_table();
    assert_eq!(table.price(Some("openai"), "gpt-9000"), None);
    assert_eq!(table.price(None, ""), None);
    assert_eq!(PriceTable::new().price(Some("openai"), "gpt-4o"), None);
}

#[test]
fn separate_and_inclusive_agree_on_the_same_usage() {
    // Real usage: 400 uncached, 600 read, 300 written, 500 output of which 100 reasoning.
    // 400 × 2,000,000 + 600 × 500,000 + 300 × 2,500,000 + 400 × 8,000,000 + 100 × 8,000,000
    // = 800,000,000 + 300,000,000 + 750,000,000 + 3,200,000,000 + 800,000,000
    // = 5,850,000,000.
    let inclusive = span_cost(&usage(1300, Some(500), 600, 300, 100), Inclusive, &price());
    let separate = span_cost(&usage(400, Some(500), 600, 300, 100), Separate, &price());
    assert_eq!(inclusive, separate);
    assert_eq!(inclusive.total, 5_850_000_000);
    assert_eq!(TokenSemantics::default_for(Some("anthropic")), Separate);
    assert_eq!(TokenSemantics::default_for(Some("Anthropic")), Separate);
    assert_eq!(TokenSemantics::default_for(Some("openai")), Inclusive);
    assert_eq!(TokenSemantics::default_for(Some("aws.bedrock")), Inclusive);
    assert_eq!(TokenSemantics::default_for(None), Inclusive);
}

#[test]
fn inconsistent_counts_are_clamped_and_flagged() {
    // Inclusive input 100 but 600 read: uncached clamps to 0, the read is still charged.
    let c = span_cost(&usage(100, Some(0), 600, 0, 0), Inclusive, &price());
    assert!(c.inconsistent);
    assert_eq!(
        (c.input, c.cache_read, c.total),
        (0, 300_000_000, 300_000_000)
    );
    // Reasoning 50 above output 10: non-reasoning output clamps to 0.
    let c = span_cost(&usage(0, Some(10), 0, 0, 50), Inclusive, &price());
    assert!(c.inconsistent);
    assert_eq!((c.output, c.reasoning), (0, 400_000_000));
    // Separate never subtracts, so cache above input is fine.
    assert!(!span_cost(&usage(100, Some(0), 600, 0, 0), Separate, &price()).inconsistent);
    // Absurd counts saturate instead of overflowing.
    let huge = TokenUsage {
        input: Some(u64::MAX),
        output: Some(u64::MAX),
        ..TokenUsage::default()
    };
    let c = span_cost(&huge, Inclusive, &price());
    assert!(c.saturated);
    assert_eq!(c.total, 2 * MAX_COMPONENT);
}

fn lookup_table() -> PriceTable {
    let mut table = PriceTable::new();
    for (name, input) in [
        ("gpt-4o", 1),
        ("openai/gpt-4o", 2),
        ("gpt-4o-mini", 3),
        ("gemini/gemini-x", 4),
        ("bedrock/model-b", 5),
        ("target", 6),
        ("second", 7),
    ] {
        table.insert(name, Price::new(input, 0));
    }
    table.push_alias(Regex::new("^gpt-4o-.*$").unwrap(), "gpt-4o");
    table.push_alias(Regex::new("^fam-").unwrap(), "target");
    table.push_alias(Regex::new("^fam-x").unwrap(), "second");
    table.push_alias(Regex::new("^chain$").unwrap(), "fam-1");
    table
}

#[test]
fn lookup_order() {
    let t = lookup_table();
    let name = |provider: Option<&str>, model: &str| t.resolve(provider, model).map(|(n, _)| n);
    // Exact first, even with a provider-prefixed entry.
    assert_eq!(name(Some("openai"), "gpt-4o"), Some("gpt-4o"));
    // An exact entry beats a matching alias.
    assert_eq!(name(None, "gpt-4o-mini"), Some("gpt-4o-mini"));
    // Provider-prefixed, as given and with LiteLLM's prefix for an OTel provider name.
    assert_eq!(name(Some("gemini"), "gemini-x"), Some("gemini/gemini-x"));
    assert_eq!(
        name(Some("gcp.gemini"), "gemini-x"),
        Some("gemini/gemini-x")
    );
    assert_eq!(
        name(Some("aws.bedrock"), "model-b"),
        Some("bedrock/model-b")
    );
    assert_eq!(name(Some("openai"), "gemini-x"), None);
    // A leading provider segment is stripped.
    assert_eq!(name(None, "openai/gpt-4o-mini"), Some("gpt-4o-mini"));
    assert_eq!(
        name(Some("gemini"), "vertex/gemini-x"),
        Some("gemini/gemini-x")
    );
    // Aliases last, first match wins, on the name as given or stripped.
    assert_eq!(name(None, "gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(name(None, "openai/gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(name(None, "fam-x1"), Some("target"));
    // Aliases are not chained, and names are case-sensitive.
    assert_eq!(name(None, "chain"), None);
    assert_eq!(name(None, "GPT-4o"), None);
    assert_eq!(t.price(None, "gpt-4o").map(|p| p.input), Some(1));
    assert_eq!(t.unresolved_aliases(), vec!["fam-1"]);
}

#[test]
fn overlay_replaces_table_entries_and_its_aliases_come_first() {
    let mut table = PriceTable::default_table();
    assert_eq!(table.price(None, "gpt-4o").unwrap().input, 2_500_000);
    let before = table.len();
    table
        .overlay_toml(
            r#"
            [[model]]
            name = "gpt-4o"
            input = "0.000001"
            output = "0.000004"

            [[model]]
            name = "my-ft-model"
            provider = "openai"
            input = "0.000002"
            output = "0.000008"
            cache_read = "0.0000005"
            cache_write = "0.0000025"
            reasoning = "0.000012"
            [[model.tier]]
            above_tokens = 128000
            input = "0.000004"

            [[alias]]
            pattern = "^claude-haiku-4$"
            model = "my-ft-model"
            "#,
        )
        .unwrap();
    assert_eq!(table.len(), before + 1);
    assert_eq!(
        table.price(None, "gpt-4o"),
        Some(&Price::new(1_000_000, 4_000_000))
    );
    assert_eq!(
        table.get("my-ft-model"),
        Some(&Price {
            provider: Some("openai".into()),
            input: 2_000_000,
            output: 8_000_000,
            cache_read: Some(500_000),
            cache_write: Some(2_500_000),
            reasoning: Some(12_000_000),
            tiers: vec![PriceTier {
                above_tokens: 128_000,
                input: Some(4_000_000),
                ..PriceTier::default()
            }],
        })
    );
    // The new alias shadows the default overlay's alias for the same name.
    assert_eq!(
        table
            .resolve(Some("anthropic"), "claude-haiku-4")
            .unwrap()
            .0,
        "my-ft-model"
    );
}

#[test]
fn litellm_entries() {
    let table = PriceTable::from_litellm_json(
        r#"{
            "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
            "m": {
                "litellm_provider": "vertex_ai-language-models",
                "mode": "chat",
                "input_cost_per_token": 1.25e-06,
                "output_cost_per_token": 0.00001,
                "cache_read_input_token_cost": 1.25E-7,
                "cache_creation_input_token_cost": null,
                "output_cost_per_reasoning_token": 1e-05,
                "input_cost_per_token_above_200k_tokens": 2.5e-06,
                "output_cost_per_token_above_200k_tokens": 1.5e-05,
                "cache_read_input_token_cost_above_200k_tokens": 2.5e-07,
                "cache_creation_input_token_cost_above_1hr": "ignored",
                "input_cost_per_token_above_200k_tokens_priority": "ignored",
                "input_cost_per_token_batches": "ignored",
                "supported_regions": ["global"]
            },
            "embedder": {"input_cost_per_token": 1e-07, "mode": "embedding"},
            "image-model": {"output_cost_per_image": 0.04, "mode": "image_generation"},
            "float-artefact": {"input_cost_per_token": 2.0000000000000002E-7,
                               "output_cost_per_token": 8e-7}
        }"#,
    )
    .unwrap();
    assert_eq!(table.models(), vec!["embedder", "float-artefact", "m"]);
    assert_eq!(
        table.get("m"),
        Some(&Price {
            provider: Some("vertex_ai-language-models".into()),
            input: 1_250_000,
            output: 10_000_000,
            cache_read: Some(125_000),
            cache_write: None,
            reasoning: Some(10_000_000),
            tiers: vec![PriceTier {
                above_tokens: 200_000,
                input: Some(2_500_000),
                output: Some(15_000_000),
                cache_read: Some(250_000),
                ..PriceTier::default()
            }],
        })
    );
    assert_eq!(table.get("embedder"), Some(&Price::new(100_000, 0)));
    assert_eq!(table.get("float-artefact").unwrap().input, 200_000);
    assert_eq!(table.rounded_prices(), 1);
}

fn json_err(text: &str) -> CostError {
    PriceTable::from_litellm_json(text).unwrap_err()
}

fn toml_err(text: &str) -> CostError {
    PriceTable::new().overlay_toml(text).unwrap_err()
}

fn field_err(model: &str, field: &str) -> impl Fn(&CostError) -> bool {
    let (model, field) = (model.to_owned(), field.to_owned());
    move |e| matches!(e, CostError::Field { model: m, field: f, .. } if *m == model && *f == field)
}

#[test]
fn malformed_tables_name_the_model_and_field() {
    assert!(matches!(json_err("{\"m\": {"), CostError::Json(_)));
    assert!(matches!(json_err("[1, 2]"), CostError::Json(_)));
    let e = json_err(r#"{"ok": {"input_cost_per_token": 1e-6}, "m": 3}"#);
    assert!(
        matches!(&e, CostError::Model { model, .. } if model == "m"),
        "{e}"
    );
    for (value, why) in [
        ("\"0.000001\"", "expected a number"),
        ("-1e-6", "negative"),
        ("true", "expected a number"),
        ("1e30", "more than u64::MAX"),
    ] {
        let e = json_err(&format!(
            r#"{{"m": {{"input_cost_per_token": 1e-6, "output_cost_per_token": {value}}}}}"#
        ));
        assert!(field_err("m", "output_cost_per_token")(&e), "{e}");
        assert!(e.to_string().contains(why), "{e}");
        assert!(e.to_string().contains("`m`"), "{e}");
    }
    let e = json_err(r#"{"m": {"input_cost_per_token_above_200k_tokens": -2e-6}}"#);
    assert!(
        field_err("m", "input_cost_per_token_above_200k_tokens")(&e),
        "{e}"
    );
}

#[test]
fn malformed_overlays_name_the_model_and_field() {
    assert!(matches!(toml_err("[[model]\nname="), CostError::Toml(_)));
    let e = toml_err("[[model]]\nname = \"x\"\ninput = \"0.000001\"\n");
    assert!(field_err("x", "output")(&e), "{e}");
    let e = toml_err("[[model]]\nname = \"x\"\ninput = \"1e-13\"\noutput = \"0\"\n");
    assert!(field_err("x", "input")(&e), "{e}");
    assert!(e.to_string().contains("12 decimal places"), "{e}");
    let e = toml_err("[[model]]\nname = \"x\"\ninput = \"cheap\"\noutput = \"0\"\n");
    assert!(field_err("x", "input")(&e), "{e}");
    let e = toml_err(
        "[[model]]\nname = \"x\"\ninput = \"0\"\noutput = \"0\"\n\
         [[model.tier]]\nabove_tokens = 5\noutput = \"-1\"\n",
    );
    assert!(field_err("x", "tier.5.output")(&e), "{e}");
    // Numbers are refused (they would not be exact), and so are unknown keys.
    let e = toml_err("[[model]]\nname = \"x\"\ninput = 0.000002\noutput = \"0\"\n");
    assert!(
        matches!(&e, CostError::Toml(m) if m.contains("input")),
        "{e}"
    );
    let e = toml_err("[[model]]\nname = \"x\"\ninptu = \"0\"\noutput = \"0\"\n");
    assert!(
        matches!(&e, CostError::Toml(m) if m.contains("inptu")),
        "{e}"
    );
    let e = toml_err("[[alias]]\npattern = \"^gpt-(\"\nmodel = \"gpt-4o\"\n");
    assert!(
        matches!(&e, CostError::Alias { pattern, .. } if pattern == "^gpt-("),
        "{e}"
    );
    // All or nothing.
    let mut table = PriceTable::default_table();
    let before = (table.len(), table.aliases().len());
    let bad = "[[model]]\nname = \"new\"\ninput = \"0\"\noutput = \"0\"\n\
               [[alias]]\npattern = \"(\"\nmodel = \"new\"\n";
    assert!(table.overlay_toml(bad).is_err());
    assert_eq!((table.len(), table.aliases().len()), before);
    assert!(table.get("new").is_none());
}

/// Every `*cost_per*token*` number of the shipped JSON.
fn shipped_prices() -> Vec<(String, String, f64)> {
    let json: serde_json::Value = serde_json::from_str(DEFAULT_PRICES_JSON).unwrap();
    let mut out = Vec::new();
    for (model, entry) in json.as_object().unwrap() {
        for (key, value) in entry.as_object().unwrap() {
            if key.contains("token")
                && key.contains("cost")
                && let Some(v) = value.as_f64()
            {
                out.push((model.clone(), key.clone(), v));
            }
        }
    }
    out
}

#[test]
fn shipped_table_is_exact_and_prices_the_generator_models() {
    let table = PriceTable::default_table();
    assert_eq!(table.len(), 36);
    assert_eq!(table.rounded_prices(), 0);
    assert!(table.unresolved_aliases().is_empty());
    // Every price read converts exactly: pico / 10¹² is the JSON number, as f64.
    let prices = shipped_prices();
    assert!(prices.len() > 100);
    let mut checked = 0;
    for (model, key, usd) in &prices {
        let price = table.get(model).unwrap();
        let pico = match key.as_str() {
            "input_cost_per_token" => Some(price.input),
            "output_cost_per_token" => Some(price.output),
            "cache_read_input_token_cost" => price.cache_read,
            "cache_creation_input_token_cost" => price.cache_write,
            "output_cost_per_reasoning_token" => price.reasoning,
            "input_cost_per_token_above_200k_tokens" => price.tiers[0].input,
            "output_cost_per_token_above_200k_tokens" => price.tiers[0].output,
            "cache_read_input_token_cost_above_200k_tokens" => price.tiers[0].cache_read,
            "cache_creation_input_token_cost_above_200k_tokens" => price.tiers[0].cache_write,
            _ => continue,
        };
        let pico = pico.unwrap_or_else(|| panic!("{model} {key}"));
        assert_eq!(pico as f64 / 1e12, *usd, "{model} {key}");
        checked += 1;
    }
    assert!(checked > 100, "{checked}");

    // The load generator's models (pipeline/src/loadgen.rs).
    for (provider, model, entry) in [
        ("openai", "gpt-4o", "gpt-4o"),
        ("openai", "gpt-4o-mini", "gpt-4o-mini"),
        (
            "anthropic",
            "claude-sonnet-4",
            "anthropic.claude-sonnet-4-20250514-v1:0",
        ),
        ("anthropic", "claude-haiku-4", "claude-haiku-4-5"),
        ("google", "gemini-2.5-flash", "gemini-2.5-flash"),
        ("mistral", "mistral-large", "mistral/mistral-large-latest"),
    ] {
        let found = table.resolve(Some(provider), model).map(|(n, _)| n);
        assert_eq!(found, Some(entry), "{provider} {model}");
    }
    let gpt4o = table.price(Some("openai"), "gpt-4o").unwrap();
    assert_eq!(
        (gpt4o.input, gpt4o.output, gpt4o.cache_read),
        (2_500_000, 10_000_000, Some(1_250_000))
    );
    let sonnet = table
        .price(Some("anthropic"), "claude-sonnet-4-20250514")
        .unwrap();
    assert_eq!(
        (
            sonnet.input,
            sonnet.output,
            sonnet.cache_read,
            sonnet.cache_write
        ),
        (3_000_000, 15_000_000, Some(300_000), Some(3_750_000))
    );
    assert_eq!(
        sonnet.tiers,
        vec![PriceTier {
            above_tokens: 200_000,
            input: Some(6_000_000),
            output: Some(22_500_000),
            cache_read: Some(600_000),
            cache_write: Some(7_500_000),
            reasoning: None,
        }]
    );
    for (provider, model) in [
        ("gcp.gemini", "gemini-2.5-pro"),
        ("openai", "o4-mini-2025-04-16"),
        ("deepseek", "deepseek-chat"),
        ("mistral_ai", "mistral-small-latest"),
        ("anthropic", "claude-opus-4-5"),
    ] {
        assert!(table.price(Some(provider), model).is_some(), "{model}");
    }
}

/// Reads a full LiteLLM file named by `GLASSBOX_LITELLM_JSON`:
/// `GLASSBOX_LITELLM_JSON=… cargo test -p glassbox-operators --test cost -- --ignored`.
#[test]
#[ignore = "needs a full LiteLLM price file"]
fn full_litellm_table() {
    let path = std::env::var("GLASSBOX_LITELLM_JSON").expect("GLASSBOX_LITELLM_JSON");
    let text = std::fs::read_to_string(path).unwrap();
    let mut table = PriceTable::from_litellm_json(&text).unwrap();
    table
        .overlay_toml(glassbox_operators::cost::DEFAULT_OVERLAY_TOML)
        .unwrap();
    eprintln!(
        "{} models, {} rounded prices",
        table.len(),
        table.rounded_prices()
    );
    assert!(table.len() > 1000);
    assert!(table.unresolved_aliases().is_empty());
}

fn arb_price() -> impl Strategy<Value = Price> {
    let p = || 0..1_000_000_000u64;
    let tier = (
        1..400_000u64,
        prop::option::of(p()),
        prop::option::of(p()),
        prop::option::of(p()),
    )
        .prop_map(|(above_tokens, input, output, cache_read)| PriceTier {
            above_tokens,
            input,
            output,
            cache_read,
            ..PriceTier::default()
        });
    (
        p(),
        p(),
        prop::option::of(p()),
        prop::option::of(p()),
        prop::option::of(p()),
        prop::option::of(tier),
    )
        .prop_map(
            |(input, output, cache_read, cache_write, reasoning, tier)| Price {
                provider: None,
                input,
                output,
                cache_read,
                cache_write,
                reasoning,
                tiers: tier.into_iter().collect(),
            },
        )
}

fn arb_usage() -> impl Strategy<Value = TokenUsage> {
    let n = || prop::option::of(0..2_000_000u64);
    (n(), n(), n(), n(), n()).prop_map(|(input, output, cache_read, cache_write, reasoning)| {
        TokenUsage {
            input,
            output,
            cache_read,
            cache_write,
            reasoning,
        }
    })
}

fn arb_semantics() -> impl Strategy<Value = TokenSemantics> {
    prop_oneof![Just(Inclusive), Just(Separate)]
}

/// The formula of DESIGN.md §6, written out independently in `i128`.
fn oracle(u: &TokenUsage, semantics: TokenSemantics, p: &Price) -> i128 {
    let n = |v: Option<u64>| i128::from(v.unwrap_or(0));
    let (read, write, reasoning) = (n(u.cache_read), n(u.cache_write), n(u.reasoning));
    let uncached = match semantics {
        Inclusive => (n(u.input) - read - write).max(0),
        Separate => n(u.input),
    };
    let prompt = uncached + read + write;
    let tier = p
        .tiers
        .first()
        .filter(|t| prompt > i128::from(t.above_tokens));
    let pick = |t: Option<u64>, base: Option<u64>| t.or(base);
    let input = pick(tier.and_then(|t| t.input), Some(p.input)).unwrap();
    let output = pick(tier.and_then(|t| t.output), Some(p.output)).unwrap();
    let cache_read = pick(tier.and_then(|t| t.cache_read), p.cache_read).unwrap_or(input);
    let cache_write = p.cache_write.unwrap_or(input);
    let reasoning_price = p.reasoning.unwrap_or(output);
    let r = |v: u64| i128::from(v);
    uncached * r(input)
        + read * r(cache_read)
        + write * r(cache_write)
        + (n(u.output) - reasoning).max(0) * r(output)
        + reasoning * r(reasoning_price)
}

proptest! {
    #[test]
    fn cost_is_the_exact_sum_of_its_components(
        u in arb_usage(),
        semantics in arb_semantics(),
        p in arb_price(),
    ) {
        let c = span_cost(&u, semantics, &p);
        let parts = [c.input, c.cache_read, c.cache_write, c.output, c.reasoning];
        prop_assert!(parts.iter().all(|&v| (0..=MAX_COMPONENT).contains(&v)));
        prop_assert_eq!(c.total, parts.iter().sum::<i64>());
        prop_assert!(!c.saturated);
        prop_assert_eq!(i128::from(c.total), oracle(&u, semantics, &p));
    }

    #[test]
    fn semantics_agree_on_consistent_usage(
        (uncached, read, write, output, reasoning) in
            (0..2_000_000u64, 0..2_000_000u64, 0..2_000_000u64, 0..2_000_000u64, 0..1_000_000u64),
        p in arb_price(),
    ) {
        let output = output + reasoning;
        let usage = |input| TokenUsage {
            input: Some(input),
            output: Some(output),
            cache_read: Some(read),
            cache_write: Some(write),
            reasoning: Some(reasoning),
        };
        let inclusive = span_cost(&usage(uncached + read + write), Inclusive, &p);
        let separate = span_cost(&usage(uncached), Separate, &p);
        prop_assert_eq!(inclusive, separate);
        prop_assert!(!inclusive.inconsistent);
    }

    #[test]
    fn summing_span_costs_is_exact_in_any_order(
        spans in prop::collection::vec((arb_usage(), arb_semantics(), arb_price()), 1..40),
        seed in any::<u64>(),
    ) {
        let costs: Vec<SpanCost> =
            spans.iter().map(|(u, s, p)| span_cost(u, *s, p)).collect();
        let expected: i128 = spans.iter().map(|(u, s, p)| oracle(u, *s, p)).sum();
        let sum = |order: &[SpanCost]| order.iter().map(|c| c.total).sum::<i64>();
        let mut shuffled = costs.clone();
        // A deterministic permutation from the seed (Fisher–Yates with an LCG).
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let mut reversed = costs.clone();
        reversed.reverse();
        prop_assert_eq!(i128::from(sum(&costs)), expected);
        prop_assert_eq!(sum(&shuffled), sum(&costs));
        prop_assert_eq!(sum(&reversed), sum(&costs));
        // Components add up across spans as well as within one.
        let by_class: i64 = costs
            .iter()
            .map(|c| c.input + c.cache_read + c.cache_write + c.output + c.reasoning)
            .sum();
        prop_assert_eq!(by_class, sum(&costs));
    }
}
