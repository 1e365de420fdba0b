//! Model loading shared by the integration tests. A missing model fails the test: CI runs
//! `integration/scripts/fetch-models.sh` first, and a test that skipped would hide that.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use glassbox_quality::{Embedder, EmbedderConfig, models_dir};

pub fn load(config: EmbedderConfig) -> Arc<Embedder> {
    for path in [&config.model, &config.tokenizer] {
        assert!(
            path.is_file(),
            "{} is missing: run integration/scripts/fetch-models.sh \
             (models go to $GLASSBOX_MODELS_DIR or ~/.cache/glassbox/models)",
            path.display()
        );
    }
    Arc::new(Embedder::new(config).expect("load embedding model"))
}

/// all-MiniLM-L6-v2 int8, loaded once per test binary.
pub fn minilm() -> Arc<Embedder> {
    static M: OnceLock<Arc<Embedder>> = OnceLock::new();
    M.get_or_init(|| load(EmbedderConfig::minilm(models_dir())))
        .clone()
}

/// multilingual-e5-small, loaded once per test binary.
pub fn e5() -> Arc<Embedder> {
    static M: OnceLock<Arc<Embedder>> = OnceLock::new();
    M.get_or_init(|| load(EmbedderConfig::e5_small(models_dir())))
        .clone()
}
