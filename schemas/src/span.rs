//! The span model: one operation of an LLM application, reduced to typed facts.
//!
//! A [`Span`] holds no prompt or answer text unless its decoder was asked to keep it
//! ([`Span::text`]). Everything the metrics need is a typed field; other scalar attributes are
//! kept in [`Span::extra`] so that a deployment can add its own series dimensions.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::text::SpanText;

/// What a span does. Serialised in lowercase (`"llm"`, `"retrieval"`, …).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    /// A model call: chat, text completion, content generation.
    Llm,
    /// A retriever or vector-store query.
    Retrieval,
    /// An embeddings call.
    Embedding,
    /// A tool execution.
    Tool,
    /// A chain, workflow or task step.
    Chain,
    /// An agent invocation.
    Agent,
    /// User or evaluator feedback on an earlier span.
    Feedback,
    /// Anything else (rerankers, guardrails, evaluators, unknown kinds).
    #[default]
    Other,
}

impl SpanKind {
    /// Every kind, in declaration order.
    pub const ALL: [SpanKind; 8] = [
        SpanKind::Llm,
        SpanKind::Retrieval,
        SpanKind::Embedding,
        SpanKind::Tool,
        SpanKind::Chain,
        SpanKind::Agent,
        SpanKind::Feedback,
        SpanKind::Other,
    ];

    /// The lowercase name, as in the native record and in series keys.
    pub fn as_str(&self) -> &'static str {
        match self {
            SpanKind::Llm => "llm",
            SpanKind::Retrieval => "retrieval",
            SpanKind::Embedding => "embedding",
            SpanKind::Tool => "tool",
            SpanKind::Chain => "chain",
            SpanKind::Agent => "agent",
            SpanKind::Feedback => "feedback",
            SpanKind::Other => "other",
        }
    }

    /// The kind named `name`, compared case-insensitively; `None` for an unknown name.
    pub fn parse(name: &str) -> Option<SpanKind> {
        SpanKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for SpanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OTel span status. Serialised in lowercase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusCode {
    /// No status was set (OTel code 0).
    #[default]
    Unset,
    /// Explicitly successful (OTel code 1).
    Ok,
    /// Failed (OTel code 2).
    Error,
}

impl StatusCode {
    /// The lowercase name: `unset`, `ok` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// Token counts as reported by the span; `None` when the span does not report that count.
///
/// Under OTel semantics `input` includes the cached tokens (`cache_read`, `cache_write`) and
/// `output` includes `reasoning`; see DESIGN.md §6 before adding them up.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenUsage {
    /// Input (prompt) tokens, cached ones included.
    pub input: Option<u64>,
    /// Output (completion) tokens, reasoning ones included.
    pub output: Option<u64>,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read: Option<u64>,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write: Option<u64>,
    /// Reasoning tokens.
    pub reasoning: Option<u64>,
}

/// One decoded span. Built by [`crate::JsonDecoder`]; see the crate README for where each field
/// comes from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Span {
    /// Lowercase hex, 2–64 digits (32 for W3C trace ids).
    pub trace_id: String,
    /// Lowercase hex, 2–64 digits (16 for W3C span ids).
    pub span_id: String,
    /// Lowercase hex; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Given, or inferred from the conventions' operation and kind attributes.
    pub kind: SpanKind,
    /// The span name; empty when the record has none.
    pub name: String,
    /// Start, nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// End, nanoseconds since the Unix epoch; never before the start.
    pub end_unix_nano: u64,
    /// The OTel status code.
    pub status: StatusCode,
    /// The OTel status message, if any.
    pub status_message: Option<String>,
    /// The model provider (`openai`, `anthropic`, `aws.bedrock`, …).
    pub provider: Option<String>,
    /// The model asked for.
    pub request_model: Option<String>,
    /// The model that answered.
    pub response_model: Option<String>,
    /// The GenAI operation (`chat`, `embeddings`, `execute_tool`, …), as given.
    pub operation: Option<String>,
    /// Token counts.
    pub usage: TokenUsage,
    /// Why the model stopped, one entry per choice (`stop`, `length`, …).
    pub finish_reasons: Vec<String>,
    /// Time to first chunk, nanoseconds.
    pub ttft_ns: Option<u64>,
    /// The error class (`error.type`), if any.
    pub error_type: Option<String>,
    /// The tenant the call was made for.
    pub tenant: Option<String>,
    /// The application feature that made the call.
    pub feature: Option<String>,
    /// The end user.
    pub user_id: Option<String>,
    /// The session or conversation.
    pub session_id: Option<String>,
    /// Feedback score in `0..=1` (feedback spans).
    pub feedback_score: Option<f64>,
    /// Feedback label (feedback spans).
    pub feedback_label: Option<String>,
    /// Other scalar attributes (string/number/bool rendered as string), for configurable series
    /// dimensions. Keys as given, in record order. Never holds prompt or answer text: content
    /// keys ([`crate::CONTENT_ATTRIBUTE_PREFIXES`]) and strings longer than
    /// [`crate::MAX_EXTRA_VALUE_LEN`] bytes are left out.
    pub extra: Vec<(String, String)>,
    /// Query, answer and retrieved chunks; `None` unless the decoder keeps text
    /// ([`crate::TextOptions::keep_text`]) and the span carries some. Boxed so that a span
    /// without text stays small. Its `Debug` shows sizes only.
    pub text: Option<Box<SpanText>>,
}

impl Span {
    /// `end − start`, in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    /// The start in milliseconds since the Unix epoch: the span's event time.
    pub fn start_ms(&self) -> u64 {
        self.start_unix_nano / 1_000_000
    }

    /// The model that answered, else the model asked for.
    pub fn model(&self) -> Option<&str> {
        self.response_model
            .as_deref()
            .or(self.request_model.as_deref())
    }

    /// Whether the span failed: an error status or an `error.type`.
    pub fn is_error(&self) -> bool {
        self.status == StatusCode::Error || self.error_type.is_some()
    }

    /// The error class: `error_type`, else `"_OTHER"` for an error status; `None` when the span
    /// did not fail.
    pub fn error_kind(&self) -> Option<&str> {
        match (&self.error_type, self.status) {
            (Some(error_type), _) => Some(error_type),
            (None, StatusCode::Error) => Some("_OTHER"),
            (None, _) => None,
        }
    }

    /// Whether the answer was cut off by the token limit: a finish reason `length` (OpenAI),
    /// `max_tokens` (Anthropic) or `MAX_TOKENS` (Gemini), compared case-insensitively.
    pub fn is_truncated(&self) -> bool {
        self.finish_reasons.iter().any(|reason| {
            reason.eq_ignore_ascii_case("length") || reason.eq_ignore_ascii_case("max_tokens")
        })
    }

    /// The value of a series dimension.
    ///
    /// Well-known names: `provider`, `model` ([`Span::model`]), `tenant`, `feature`,
    /// `operation`, `kind`, `user`, `session`, `name`, `error_type` ([`Span::error_kind`]).
    /// Any other name is an attribute key looked up in [`Span::extra`] (first match). Keys that
    /// feed a typed field (see [`crate::ATTRIBUTE_ALIASES`]) are not in `extra`: use the
    /// well-known name instead.
    pub fn dimension(&self, name: &str) -> Option<&str> {
        match name {
            "provider" => self.provider.as_deref(),
            "model" => self.model(),
            "tenant" => self.tenant.as_deref(),
            "feature" => self.feature.as_deref(),
            "operation" => self.operation.as_deref(),
            "kind" => Some(self.kind.as_str()),
            "user" => self.user_id.as_deref(),
            "session" => self.session_id.as_deref(),
            "name" => Some(&self.name),
            "error_type" => self.error_kind(),
            key => self
                .extra
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            name: "chat".into(),
            start_unix_nano: 1_764_316_800_123_456_789,
            end_unix_nano: 1_764_316_801_250_000_000,
            ..Span::default()
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in SpanKind::ALL {
            assert_eq!(SpanKind::parse(kind.as_str()), Some(kind));
            assert_eq!(SpanKind::parse(&kind.as_str().to_uppercase()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<SpanKind>(&json).unwrap(), kind);
        }
        assert_eq!(SpanKind::parse("reranker"), None);
        assert!(SpanKind::Llm < SpanKind::Other);
        assert_eq!(
            serde_json::to_string(&StatusCode::Error).unwrap(),
            "\"error\""
        );
    }

    #[test]
    fn times() {
        let s = span();
        assert_eq!(s.duration_ns(), 1_126_543_211);
        assert_eq!(s.start_ms(), 1_764_316_800_123);
        let backwards = Span {
            end_unix_nano: 0,
            ..span()
        };
        assert_eq!(backwards.duration_ns(), 0);
    }

    #[test]
    fn model_prefers_the_response_model() {
        let mut s = span();
        assert_eq!(s.model(), None);
        s.request_model = Some("gpt-4o".into());
        assert_eq!(s.model(), Some("gpt-4o"));
        s.response_model = Some("gpt-4o-2024-08-06".into());
        assert_eq!(s.model(), Some("gpt-4o-2024-08-06"));
        assert_eq!(s.dimension("model"), Some("gpt-4o-2024-08-06"));
    }

    #[test]
    fn errors() {
        let mut s = span();
        assert!(!s.is_error());
        assert_eq!(s.error_kind(), None);
        s.status = StatusCode::Ok;
        assert!(!s.is_error());
        s.status = StatusCode::Error;
        assert!(s.is_error());
        assert_eq!(s.error_kind(), Some("_OTHER"));
        s.error_type = Some("timeout".into());
        assert_eq!(s.error_kind(), Some("timeout"));
        s.status = StatusCode::Unset;
        assert!(s.is_error());
        assert_eq!(s.error_kind(), Some("timeout"));
        assert_eq!(s.dimension("error_type"), Some("timeout"));
    }

    #[test]
    fn truncation() {
        let mut s = span();
        assert!(!s.is_truncated());
        s.finish_reasons = vec!["stop".into()];
        assert!(!s.is_truncated());
        for reason in ["length", "LENGTH", "max_tokens", "MAX_TOKENS"] {
            s.finish_reasons = vec!["stop".into(), reason.into()];
            assert!(s.is_truncated(), "{reason}");
        }
    }

    #[test]
    fn dimensions() {
        let s = Span {
            kind: SpanKind::Llm,
            provider: Some("openai".into()),
            tenant: Some("acme".into()),
            feature: Some("support-chat".into()),
            operation: Some("chat".into()),
            user_id: Some("u1".into()),
            session_id: Some("s1".into()),
            extra: vec![
                ("server.address".into(), "api.openai.com".into()),
                ("server.address".into(), "second".into()),
            ],
            ..span()
        };
        assert_eq!(s.dimension("provider"), Some("openai"));
        assert_eq!(s.dimension("tenant"), Some("acme"));
        assert_eq!(s.dimension("feature"), Some("support-chat"));
        assert_eq!(s.dimension("operation"), Some("chat"));
        assert_eq!(s.dimension("kind"), Some("llm"));
        assert_eq!(s.dimension("user"), Some("u1"));
        assert_eq!(s.dimension("session"), Some("s1"));
        assert_eq!(s.dimension("name"), Some("chat"));
        assert_eq!(s.dimension("model"), None);
        assert_eq!(s.dimension("error_type"), None);
        assert_eq!(s.dimension("server.address"), Some("api.openai.com"));
        assert_eq!(s.dimension("nope"), None);
    }
}
