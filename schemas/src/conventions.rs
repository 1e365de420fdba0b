//! The semantic conventions glassbox understands: which attribute keys feed which [`Span`]
//! field and in which priority, and which keys carry prompt or answer text.
//!
//! OTel GenAI (current and older names), OpenInference and OpenLLMetry (Traceloop) all describe
//! the same facts under different keys. Each span field has an ordered alias list; when a span
//! carries several aliases of one field, the one listed first wins, whatever the order of the
//! keys in the record.
//!
//! [`Span`]: crate::Span

/// Which typed span field an attribute key feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Provider,
    RequestModel,
    ResponseModel,
    Operation,
    InputTokens,
    OutputTokens,
    CacheReadTokens,
    CacheWriteTokens,
    ReasoningTokens,
    FinishReasons,
    /// Time to first token, in seconds.
    TtftSeconds,
    /// Time to first token, in milliseconds.
    TtftMillis,
    ErrorType,
    Tenant,
    Feature,
    User,
    Session,
    FeedbackScore,
    FeedbackLabel,
    /// `openinference.span.kind`, used only to infer [`crate::SpanKind`].
    OpenInferenceKind,
    /// `traceloop.span.kind`, used only to infer [`crate::SpanKind`].
    TraceloopKind,
}

impl Field {
    /// Whether the value may be an array worth collecting (all other arrays are skipped unread).
    pub(crate) fn takes_list(self) -> bool {
        matches!(self, Field::FinishReasons)
    }
}

/// A recognised attribute key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Known {
    pub field: Field,
    /// Position in the field's alias list: 0 wins over 1, and so on.
    pub prio: u8,
    /// The key itself, as a `'static` name for error messages.
    pub key: &'static str,
}

/// One source of the table: generates both the hot-path `match` and the public alias list, so
/// the two cannot drift apart.
macro_rules! conventions {
    ($( $field:ident => $span_field:literal [ $( $key:literal = $prio:literal ),+ $(,)? ] ),* $(,)?) => {
        /// Every attribute-fed span field with the keys that feed it, highest priority first.
        ///
        /// The first element names the field (`ttft_ns` is listed twice: once for the keys in
        /// seconds, once for the key in milliseconds; `kind` lists the keys it is inferred from).
        pub const ATTRIBUTE_ALIASES: &[(&str, &[&str])] = &[ $( ($span_field, &[ $( $key ),+ ]) ),* ];

        /// The field an attribute key feeds, if glassbox knows the key.
        pub(crate) fn classify(key: &str) -> Option<Known> {
            match key {
                $( $( $key => Some(Known { field: Field::$field, prio: $prio, key: $key }), )+ )*
                _ => None,
            }
        }
    };
}

conventions! {
    Provider => "provider" [
        "gen_ai.provider.name" = 0, "gen_ai.system" = 1, "llm.provider" = 2, "llm.system" = 3,
    ],
    RequestModel => "request_model" [
        "gen_ai.request.model" = 0, "llm.model_name" = 1, "llm.request.model" = 2,
    ],
    ResponseModel => "response_model" [
        "gen_ai.response.model" = 0, "llm.response.model" = 1,
    ],
    Operation => "operation" [
        "gen_ai.operation.name" = 0, "llm.request.type" = 1,
    ],
    InputTokens => "usage.input" [
        "gen_ai.usage.input_tokens" = 0, "gen_ai.usage.prompt_tokens" = 1,
        "llm.token_count.prompt" = 2, "llm.usage.prompt_tokens" = 3,
    ],
    OutputTokens => "usage.output" [
        "gen_ai.usage.output_tokens" = 0, "gen_ai.usage.completion_tokens" = 1,
        "llm.token_count.completion" = 2, "llm.usage.completion_tokens" = 3,
    ],
    CacheReadTokens => "usage.cache_read" [
        "gen_ai.usage.cache_read.input_tokens" = 0, "gen_ai.usage.cache_read_input_tokens" = 1,
        "llm.token_count.prompt_details.cache_read" = 2, "gen_ai.usage.cache_read_tokens" = 3,
    ],
    CacheWriteTokens => "usage.cache_write" [
        "gen_ai.usage.cache_creation.input_tokens" = 0, "gen_ai.usage.cache_write.input_tokens" = 1,
        "gen_ai.usage.cache_creation_input_tokens" = 2,
        "llm.token_count.prompt_details.cache_write" = 3,
    ],
    ReasoningTokens => "usage.reasoning" [
        "gen_ai.usage.reasoning.output_tokens" = 0, "gen_ai.usage.reasoning_tokens" = 1,
        "llm.token_count.completion_details.reasoning" = 2,
    ],
    FinishReasons => "finish_reasons" [
        "gen_ai.response.finish_reasons" = 0, "llm.finish_reason" = 1,
    ],
    TtftSeconds => "ttft_ns" [
        "gen_ai.response.time_to_first_chunk" = 0, "gen_ai.server.time_to_first_token" = 1,
    ],
    TtftMillis => "ttft_ns" [
        "glassbox.ttft_ms" = 2,
    ],
    ErrorType => "error_type" [
        "error.type" = 0,
    ],
    Tenant => "tenant" [
        "tenant.id" = 0, "gen_ai.tenant.id" = 1, "enduser.tenant" = 2, "tenant" = 3,
    ],
    Feature => "feature" [
        "app.feature" = 0, "feature" = 1, "gen_ai.agent.name" = 2,
    ],
    User => "user_id" [
        "user.id" = 0, "enduser.id" = 1,
    ],
    Session => "session_id" [
        "session.id" = 0, "gen_ai.conversation.id" = 1,
    ],
    FeedbackScore => "feedback_score" [
        "feedback.score" = 0,
    ],
    FeedbackLabel => "feedback_label" [
        "feedback.label" = 0,
    ],
    OpenInferenceKind => "kind" [
        "openinference.span.kind" = 0,
    ],
    TraceloopKind => "kind" [
        "traceloop.span.kind" = 0,
    ],
}

/// Prefixes of attribute keys that carry prompt, answer, message, document or tool-call text.
///
/// Values under these keys are skipped without being copied: they never reach
/// [`Span::extra`](crate::Span::extra), so never a series dimension, a log line or an error
/// message. Only a decoder that keeps text reads some of them, into
/// [`Span::text`](crate::Span::text) (see [`crate::TEXT_SOURCES`]).
pub const CONTENT_ATTRIBUTE_PREFIXES: &[&str] = &[
    // OTel GenAI, current and older
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.retrieval.",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.definitions",
    // OpenInference
    "input.value",
    "output.value",
    "retrieval.documents",
    "reranker.",
    "embedding.embeddings",
    "llm.input_messages",
    "llm.output_messages",
    "llm.prompts",
    "llm.prompt_template",
    "llm.tools",
    "tool.parameters",
    "tool_call.",
    // OpenLLMetry
    "traceloop.entity.input",
    "traceloop.entity.output",
    // exception messages and stack traces may quote the prompt
    "exception.",
];

/// Whether `key` carries prompt or answer text (see [`CONTENT_ATTRIBUTE_PREFIXES`]).
pub fn is_content_attribute(key: &str) -> bool {
    CONTENT_ATTRIBUTE_PREFIXES
        .iter()
        .any(|prefix| key.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_key_classifies_to_its_position() {
        let mut seen = std::collections::HashSet::new();
        for (field, keys) in ATTRIBUTE_ALIASES {
            for key in *keys {
                let known = classify(key).unwrap_or_else(|| panic!("{key} not classified"));
                assert_eq!(known.key, *key);
                assert!(seen.insert(*key), "{key} listed twice");
                if *field != "ttft_ns" {
                    let position = keys.iter().position(|k| k == key).unwrap();
                    assert_eq!(usize::from(known.prio), position, "{key}");
                }
            }
        }
        // ttft: the seconds keys first, then the milliseconds key.
        assert_eq!(classify("glassbox.ttft_ms").unwrap().prio, 2);
        assert_eq!(
            classify("gen_ai.server.time_to_first_token").unwrap().prio,
            1
        );
    }

    #[test]
    fn readme_and_schema_list_every_key() {
        let readme = include_str!("../README.md");
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../span.schema.json")).unwrap();
        let properties = schema["$defs"]["attributeObject"]["properties"]
            .as_object()
            .unwrap();
        let mut keys: Vec<&str> = ATTRIBUTE_ALIASES
            .iter()
            .flat_map(|(_, keys)| keys.iter().copied())
            .collect();
        for key in &keys {
            assert!(readme.contains(&format!("`{key}`")), "README lacks {key}");
            assert!(properties.contains_key(*key), "schema lacks {key}");
        }
        let mut listed: Vec<&str> = properties.keys().map(String::as_str).collect();
        keys.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, keys, "schema lists keys glassbox does not read");
        for prefix in CONTENT_ATTRIBUTE_PREFIXES {
            assert!(
                readme.contains(&format!("`{prefix}`")),
                "README lacks {prefix}"
            );
        }
        for reason in crate::DecodeError::REASONS {
            assert!(
                readme.contains(&format!("| `{reason}` |")),
                "README lacks {reason}"
            );
        }
    }

    #[test]
    fn unknown_and_content_keys() {
        assert_eq!(classify("server.address"), None);
        assert_eq!(classify("gen_ai.prompt"), None);
        for key in [
            "gen_ai.prompt",
            "gen_ai.prompt.0.content",
            "gen_ai.completion.0.content",
            "input.value",
            "output.value",
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.retrieval.query.text",
            "gen_ai.retrieval.documents",
            "retrieval.documents.0.document.content",
            "llm.input_messages.0.message.content",
        ] {
            assert!(is_content_attribute(key), "{key}");
        }
        for key in ["server.address", "gen_ai.request.temperature", "http.route"] {
            assert!(!is_content_attribute(key), "{key}");
        }
        // No recognised key is mistaken for content.
        for (_, keys) in ATTRIBUTE_ALIASES {
            for key in *keys {
                assert!(!is_content_attribute(key), "{key}");
            }
        }
    }
}
