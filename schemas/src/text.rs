//! Prompt, answer and retrieved-document text, extracted only when a decoder is asked to.
//!
//! The metrics path never needs text, and text must never reach a log line, a series key or an
//! error message; so by default the decoder skips every content attribute unread (see
//! [`crate::CONTENT_ATTRIBUTE_PREFIXES`]). A decoder built with
//! [`TextOptions::keep_text`] reads the few content keys listed in [`TEXT_SOURCES`] into a
//! [`SpanText`] on [`crate::Span::text`], for the quality path (trace join, faithfulness).
//!
//! Extraction never rejects a record: a content value of an unexpected shape is simply not
//! text, and a span without any text has `text: None`. Every string is cut to
//! [`TextOptions::max_text_bytes`] (on a character boundary) and at most
//! [`TextOptions::max_chunks`] chunks are kept; [`SpanText::truncated`] says whether anything
//! was cut.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// Whether and how much text a decoder extracts.
///
/// # Examples
///
/// ```
/// use glassbox_schemas::{DecodeLimits, JsonDecoder, TextOptions};
///
/// let decoder = JsonDecoder::new(DecodeLimits::default()).with_text(TextOptions {
///     keep_text: true,
///     ..TextOptions::default()
/// });
/// let record = br#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
///   "start_time_unix_nano":1764316800000000000,"end_time_unix_nano":1764316801250000000,
///   "attributes":{"gen_ai.operation.name":"retrieval","gen_ai.retrieval.query.text":"refund policy?",
///     "gen_ai.retrieval.documents":[{"id":"d1","content":"Refunds within 30 days."}]}}"#;
/// let span = decoder.decode(record, 1_764_316_800_000).unwrap();
/// let text = span.text.unwrap();
/// assert_eq!(text.query.as_deref(), Some("refund policy?"));
/// assert_eq!(text.chunks, vec!["Refunds within 30 days.".to_owned()]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextOptions {
    /// Extract query, answer and chunks into [`crate::Span::text`]. Default `false`: the
    /// metrics path does not pay for text it does not use.
    pub keep_text: bool,
    /// Longest kept string (query, answer, each chunk), in bytes; longer ones are cut on a
    /// character boundary. Default 16 KiB.
    pub max_text_bytes: usize,
    /// Most chunks kept per span; later ones are dropped. Default 32.
    pub max_chunks: usize,
}

impl Default for TextOptions {
    fn default() -> Self {
        Self {
            keep_text: false,
            max_text_bytes: 16 * 1024,
            max_chunks: 32,
        }
    }
}

/// The text of a span: what was asked, what was answered, what was retrieved.
///
/// `Debug` prints sizes, never the text, so a span can be logged safely.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanText {
    /// The user's query: the retrieval query, or the last user message of the prompt.
    pub query: Option<String>,
    /// The model's answer: the first output message (choice 0).
    pub answer: Option<String>,
    /// Retrieved document contents, in the order the span lists them.
    pub chunks: Vec<String>,
    /// Whether a string was cut to [`TextOptions::max_text_bytes`] or chunks were dropped.
    pub truncated: bool,
}

impl SpanText {
    /// Whether there is no text at all.
    pub fn is_empty(&self) -> bool {
        self.query.is_none() && self.answer.is_none() && self.chunks.is_empty()
    }
}

impl fmt::Debug for SpanText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sizes only: prompt and answer text must never reach a log line.
        let size = |s: &Option<String>| s.as_ref().map(String::len);
        f.debug_struct("SpanText")
            .field("query_bytes", &size(&self.query))
            .field("answer_bytes", &size(&self.answer))
            .field("chunks", &self.chunks.len())
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// Where each [`SpanText`] field comes from, highest priority first (`{i}` is an index).
///
/// - A plain string is taken as it is, except that a string holding a JSON message list (or an
///   OpenInference `input.value` / `output.value` holding a JSON request or response) is read
///   as messages.
/// - Messages are `{role, parts: [{type: "text", content}]}` (current OTel GenAI) or
///   `{role, content}` where `content` is a string or a list of `{type: "text", text}` parts.
///   The query is the text of the **last** `user` message; the answer the text of the
///   **first** `assistant` message (the first message when none has that role).
/// - Indexed keys (`gen_ai.prompt.{i}.content` with `gen_ai.prompt.{i}.role`, …) are read the
///   same way, in index order.
/// - Documents are a JSON list (or a string holding one) of `{content}`, `{id, content}` or
///   plain strings.
pub const TEXT_SOURCES: &[(&str, &[&str])] = &[
    (
        "query",
        &[
            "gen_ai.retrieval.query.text",
            "input.value",
            "gen_ai.input.messages",
            "gen_ai.prompt",
            "gen_ai.prompt.{i}.content",
            "llm.input_messages.{i}.message.content",
        ],
    ),
    (
        "answer",
        &[
            "gen_ai.output.messages",
            "output.value",
            "gen_ai.completion",
            "gen_ai.completion.{i}.content",
            "llm.output_messages.{i}.message.content",
        ],
    ),
    (
        "chunks",
        &[
            "gen_ai.retrieval.documents",
            "retrieval.documents.{i}.document.content",
        ],
    ),
];

/// Which part of an indexed message a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Role,
    Content,
}

/// A content key the text extractor reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextKey {
    RetrievalQuery,
    InputValue,
    InputMessages,
    Prompt,
    PromptItem(u32, Item),
    OiInputItem(u32, Item),
    OutputMessages,
    OutputValue,
    Completion,
    CompletionItem(u32, Item),
    OiOutputItem(u32, Item),
    Documents,
    DocumentItem(u32),
}

/// `{prefix}{i}{infix}role` or `{prefix}{i}{infix}content`.
fn item_of(key: &str, prefix: &str, infix: &str) -> Option<(u32, Item)> {
    let (rest, item) = match key.strip_suffix("content") {
        Some(rest) => (rest, Item::Content),
        None => (key.strip_suffix("role")?, Item::Role),
    };
    let digits = rest.strip_prefix(prefix)?.strip_suffix(infix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, item))
}

/// The text source a content key feeds, if any. Only called for content keys of a decoder
/// that keeps text.
pub(crate) fn text_key(key: &str) -> Option<TextKey> {
    Some(match key {
        "gen_ai.retrieval.query.text" => TextKey::RetrievalQuery,
        "input.value" => TextKey::InputValue,
        "gen_ai.input.messages" => TextKey::InputMessages,
        "gen_ai.prompt" => TextKey::Prompt,
        "gen_ai.output.messages" => TextKey::OutputMessages,
        "output.value" => TextKey::OutputValue,
        "gen_ai.completion" => TextKey::Completion,
        "gen_ai.retrieval.documents" => TextKey::Documents,
        _ => {
            if let Some((i, item)) = item_of(key, "gen_ai.prompt.", ".") {
                TextKey::PromptItem(i, item)
            } else if let Some((i, item)) = item_of(key, "gen_ai.completion.", ".") {
                TextKey::CompletionItem(i, item)
            } else if let Some((i, item)) = item_of(key, "llm.input_messages.", ".message.") {
                TextKey::OiInputItem(i, item)
            } else if let Some((i, item)) = item_of(key, "llm.output_messages.", ".message.") {
                TextKey::OiOutputItem(i, item)
            } else if let Some((i, Item::Content)) =
                item_of(key, "retrieval.documents.", ".document.")
            {
                TextKey::DocumentItem(i)
            } else {
                return None;
            }
        }
    })
}

/// Indexed messages: index → (role, content).
type Items = BTreeMap<u32, (Option<String>, Option<String>)>;

/// Text found so far in one record. A repeated key keeps its first value, as attributes do.
#[derive(Debug)]
pub(crate) struct TextDraft {
    options: TextOptions,
    /// The record was parsed before it reached the decoder (an Avro record converted to a
    /// `serde_json::Value`): content values come as values, not as raw JSON text.
    parsed: bool,
    retrieval_query: Option<String>,
    input_value: Option<String>,
    input_messages: Option<String>,
    prompt: Option<String>,
    prompt_items: Items,
    oi_input_items: Items,
    output_messages: Option<String>,
    output_value: Option<String>,
    completion: Option<String>,
    completion_items: Items,
    oi_output_items: Items,
    documents: Option<Vec<String>>,
    document_items: BTreeMap<u32, String>,
}

impl TextDraft {
    pub(crate) fn new(options: TextOptions) -> Self {
        Self {
            options,
            parsed: false,
            retrieval_query: None,
            input_value: None,
            input_messages: None,
            prompt: None,
            prompt_items: Items::new(),
            oi_input_items: Items::new(),
            output_messages: None,
            output_value: None,
            completion: None,
            completion_items: Items::new(),
            oi_output_items: Items::new(),
            documents: None,
            document_items: BTreeMap::new(),
        }
    }

    /// Reads one content value, given raw: it was skipped by the record's parser without
    /// recursion, so a value too deeply nested to parse here is simply not text and never
    /// turns an acceptable record into an invalid one. `otlp`: the value is an OTLP `AnyValue`
    /// (see [`from_any_value`]).
    pub(crate) fn offer_raw(&mut self, key: TextKey, raw: &RawValue, otlp: bool) {
        if let Ok(value) = serde_json::from_str::<Value>(raw.get()) {
            self.offer(key, if otlp { from_any_value(value) } else { value });
        }
    }

    /// A draft for a record that was parsed already (see `parsed`).
    pub(crate) fn new_parsed(options: TextOptions) -> Self {
        Self {
            parsed: true,
            ..Self::new(options)
        }
    }

    /// Reads the next value of `map` as the content value of `key`: raw when the record is
    /// being parsed from its bytes (see [`Self::offer_raw`]), as a value when it was parsed
    /// already (only serde_json's own parser can hand out a `RawValue`; a `serde_json::Value`
    /// cannot).
    pub(crate) fn offer_next<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        key: TextKey,
        map: &mut A,
        otlp: bool,
    ) -> Result<(), A::Error> {
        if self.parsed {
            let value: Value = map.next_value()?;
            self.offer(key, if otlp { from_any_value(value) } else { value });
        } else {
            self.offer_raw(key, map.next_value()?, otlp);
        }
        Ok(())
    }

    /// Reads one plain JSON content value.
    pub(crate) fn offer(&mut self, key: TextKey, value: Value) {
        fn first(slot: &mut Option<String>, value: Option<String>) {
            if slot.is_none() {
                *slot = value;
            }
        }
        fn item(items: &mut Items, i: u32, which: Item, value: &Value) {
            let entry = items.entry(i).or_default();
            let slot = match which {
                Item::Role => &mut entry.0,
                Item::Content => &mut entry.1,
            };
            if slot.is_none() {
                *slot = plain(value);
            }
        }
        match key {
            TextKey::RetrievalQuery => first(&mut self.retrieval_query, plain(&value)),
            TextKey::InputValue => first(&mut self.input_value, input_value(&value)),
            TextKey::InputMessages => first(&mut self.input_messages, last_user(&value)),
            TextKey::Prompt => first(&mut self.prompt, messages_or_text(&value, last_user)),
            TextKey::OutputMessages => first(&mut self.output_messages, first_answer(&value)),
            TextKey::OutputValue => first(&mut self.output_value, output_value(&value)),
            TextKey::Completion => {
                first(&mut self.completion, messages_or_text(&value, first_answer));
            }
            TextKey::PromptItem(i, which) => item(&mut self.prompt_items, i, which, &value),
            TextKey::OiInputItem(i, which) => item(&mut self.oi_input_items, i, which, &value),
            TextKey::CompletionItem(i, which) => {
                item(&mut self.completion_items, i, which, &value);
            }
            TextKey::OiOutputItem(i, which) => item(&mut self.oi_output_items, i, which, &value),
            TextKey::Documents => {
                if self.documents.is_none() {
                    self.documents = documents(&value);
                }
            }
            TextKey::DocumentItem(i) => {
                if let Some(content) = plain(&value) {
                    self.document_items.entry(i).or_insert(content);
                }
            }
        }
    }

    /// The span's text, aliases resolved and limits applied; `None` when there is none.
    pub(crate) fn finish(self) -> Option<SpanText> {
        let TextDraft {
            options,
            parsed: _,
            retrieval_query,
            input_value,
            input_messages,
            prompt,
            prompt_items,
            oi_input_items,
            output_messages,
            output_value,
            completion,
            completion_items,
            oi_output_items,
            documents,
            document_items,
        } = self;
        let query = retrieval_query
            .or(input_value)
            .or(input_messages)
            .or(prompt)
            .or_else(|| last_user_item(prompt_items))
            .or_else(|| last_user_item(oi_input_items));
        let answer = output_messages
            .or(output_value)
            .or(completion)
            .or_else(|| first_answer_item(completion_items))
            .or_else(|| first_answer_item(oi_output_items));
        let mut chunks = documents.unwrap_or_else(|| document_items.into_values().collect());
        let mut truncated = chunks.len() > options.max_chunks;
        chunks.truncate(options.max_chunks);
        let mut text = SpanText {
            query,
            answer,
            chunks,
            truncated: false,
        };
        for s in text
            .query
            .iter_mut()
            .chain(text.answer.iter_mut())
            .chain(text.chunks.iter_mut())
        {
            truncated |= cut(s, options.max_text_bytes);
        }
        text.truncated = truncated;
        (!text.is_empty()).then_some(text)
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary; whether it was cut.
fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    true
}

/// A non-empty string value.
fn plain(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A string that holds JSON, parsed; `None` for any other string or value.
fn embedded_json(s: &str) -> Option<Value> {
    let trimmed = s.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        serde_json::from_str(trimmed).ok()
    } else {
        None
    }
}

/// A value that is either a message list (possibly as a JSON string) read by `read`, or plain
/// text (`gen_ai.prompt`, `gen_ai.completion`).
fn messages_or_text(value: &Value, read: fn(&Value) -> Option<String>) -> Option<String> {
    match value {
        Value::String(s) => match embedded_json(s) {
            Some(json) => read(&json).or_else(|| plain(value)),
            None => plain(value),
        },
        other => read(other),
    }
}

/// A message list, given as a JSON array or as a string holding one.
fn message_list(value: &Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) => Some(items.clone()),
        Value::String(s) => match embedded_json(s)? {
            Value::Array(items) => Some(items),
            _ => None,
        },
        _ => None,
    }
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// The text of one message: `content` as a string, or its text parts (`parts` of the current
/// semconv, or a `content` list of OpenAI-style parts), joined by newlines.
fn message_text(message: &Value) -> Option<String> {
    let parts = match (message.get("content"), message.get("parts")) {
        (Some(Value::String(s)), _) => return (!s.is_empty()).then(|| s.clone()),
        (Some(Value::Array(parts)), _) | (_, Some(Value::Array(parts))) => parts,
        _ => return None,
    };
    let texts: Vec<&str> = parts
        .iter()
        .filter_map(|part| match part {
            Value::String(s) => Some(s.as_str()),
            Value::Object(_) => {
                let kind = part.get("type").and_then(Value::as_str);
                if kind.is_some_and(|k| k != "text") {
                    return None;
                }
                part.get("content")
                    .or_else(|| part.get("text"))
                    .and_then(Value::as_str)
            }
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

/// The text of the last `user` message of a message list.
fn last_user(value: &Value) -> Option<String> {
    message_list(value)?
        .iter()
        .rev()
        .filter(|m| role(m).is_some_and(|r| r.eq_ignore_ascii_case("user")))
        .find_map(message_text)
}

/// The text of the first `assistant` message of a message list, else of the first message.
fn first_answer(value: &Value) -> Option<String> {
    let messages = message_list(value)?;
    messages
        .iter()
        .filter(|m| role(m).is_some_and(|r| r.eq_ignore_ascii_case("assistant")))
        .find_map(message_text)
        .or_else(|| messages.iter().find_map(message_text))
}

/// OpenInference `input.value`: plain text (a retriever's query), or a JSON request whose
/// `messages` (or which, as a list, is messages) give the last user message. A JSON value with
/// no user message is kept as given.
fn input_value(value: &Value) -> Option<String> {
    let Value::String(s) = value else {
        return None;
    };
    let Some(json) = embedded_json(s) else {
        return plain(value);
    };
    let messages = match &json {
        Value::Object(request) => request.get("messages").cloned(),
        Value::Array(_) => Some(json.clone()),
        _ => None,
    };
    messages
        .and_then(|m| last_user(&m))
        .or_else(|| plain(value))
}

/// OpenInference `output.value`: plain text, or a JSON response (`choices[0].message`,
/// `choices[0].text`, or a message list). A JSON value with no answer is kept as given.
fn output_value(value: &Value) -> Option<String> {
    let Value::String(s) = value else {
        return None;
    };
    let Some(json) = embedded_json(s) else {
        return plain(value);
    };
    let choice = json.get("choices").and_then(|c| c.get(0));
    choice
        .and_then(|c| c.get("message"))
        .and_then(message_text)
        .or_else(|| choice.and_then(|c| c.get("text")).and_then(plain))
        .or_else(|| json.is_array().then(|| first_answer(&json)).flatten())
        .or_else(|| plain(value))
}

/// Document contents: `[{content}]`, `[{id, content}]` or `["…"]`, or a string holding one.
fn documents(value: &Value) -> Option<Vec<String>> {
    let list = message_list(value)?;
    let contents: Vec<String> = list
        .iter()
        .filter_map(|doc| match doc {
            Value::String(_) => plain(doc),
            Value::Object(_) => doc
                .get("content")
                .or_else(|| doc.get("document").and_then(|d| d.get("content")))
                .and_then(plain),
            _ => None,
        })
        .collect();
    (!contents.is_empty()).then_some(contents)
}

/// Indexed prompt messages: the last with role `user`; when no message has a role, the last.
fn last_user_item(items: Items) -> Option<String> {
    let any_role = items.values().any(|(role, _)| role.is_some());
    items.into_values().rev().find_map(|(role, content)| {
        let wanted = !any_role || role.is_some_and(|r| r.eq_ignore_ascii_case("user"));
        content.filter(|_| wanted)
    })
}

/// Indexed completion messages: the first with content (choice 0, normally).
fn first_answer_item(items: Items) -> Option<String> {
    items.into_values().find_map(|(_, content)| content)
}

/// Unwraps an OTLP `AnyValue` (`{"stringValue": …}`, `{"arrayValue": {"values": […]}}`,
/// `{"kvlistValue": {"values": [{key, value}]}}`, …) into a plain JSON value. Anything that is
/// not an `AnyValue` is returned as it is.
pub(crate) fn from_any_value(value: Value) -> Value {
    let Value::Object(mut map) = value else {
        return value;
    };
    if map.len() != 1 {
        return Value::Object(map);
    }
    let (key, inner) = map.iter_mut().next().expect("one entry");
    match key.as_str() {
        "stringValue" | "boolValue" | "doubleValue" => std::mem::take(inner),
        "intValue" => match std::mem::take(inner) {
            Value::String(s) => s.parse::<i64>().map_or(Value::String(s), Value::from),
            other => other,
        },
        "bytesValue" => Value::Null,
        "arrayValue" => match inner.get_mut("values").map(std::mem::take) {
            Some(Value::Array(values)) => {
                Value::Array(values.into_iter().map(from_any_value).collect())
            }
            _ => Value::Array(Vec::new()),
        },
        "kvlistValue" => match inner.get_mut("values").map(std::mem::take) {
            Some(Value::Array(pairs)) => Value::Object(
                pairs
                    .into_iter()
                    .filter_map(|mut pair| {
                        let key = pair.get("key")?.as_str()?.to_owned();
                        let value = pair.get_mut("value").map(std::mem::take)?;
                        Some((key, from_any_value(value)))
                    })
                    .collect(),
            ),
            _ => Value::Object(serde_json::Map::new()),
        },
        _ => Value::Object(map),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::is_content_attribute;
    use serde_json::json;

    #[test]
    fn every_text_key_is_a_content_key() {
        for (_, keys) in TEXT_SOURCES {
            for key in *keys {
                let concrete = key.replace("{i}", "3");
                assert!(is_content_attribute(&concrete), "{concrete}");
                assert!(text_key(&concrete).is_some(), "{concrete}");
            }
        }
        assert_eq!(
            text_key("gen_ai.prompt.12.role"),
            Some(TextKey::PromptItem(12, Item::Role))
        );
        assert_eq!(
            text_key("llm.output_messages.0.message.content"),
            Some(TextKey::OiOutputItem(0, Item::Content))
        );
        for key in [
            "gen_ai.prompt.x.content",
            "gen_ai.prompt..content",
            "gen_ai.prompt.0.name",
            "retrieval.documents.0.document.id",
            "gen_ai.retrieval.query",
            "input.mime_type",
        ] {
            assert_eq!(text_key(key), None, "{key}");
        }
    }

    #[test]
    fn message_shapes() {
        let semconv = json!([
            {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
            {"role": "user", "parts": [{"type": "text", "content": "first"}]},
            {"role": "assistant", "parts": [{"type": "text", "content": "ok"}]},
            {"role": "user", "parts": [{"type": "text", "content": "second"},
                {"type": "image", "uri": "x"}, {"type": "text", "content": "line"}]}
        ]);
        assert_eq!(last_user(&semconv).as_deref(), Some("second\nline"));
        let openai = json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]);
        assert_eq!(last_user(&openai).as_deref(), Some("hi"));
        let as_string = Value::String(semconv.to_string());
        assert_eq!(last_user(&as_string).as_deref(), Some("second\nline"));
        let no_user = json!([{"role": "system", "content": "x"}]);
        assert_eq!(last_user(&no_user), None);
        let output = json!([{"role": "assistant", "parts": [{"type": "text", "content": "a"}],
            "finish_reason": "stop"}, {"role": "assistant", "content": "b"}]);
        assert_eq!(first_answer(&output).as_deref(), Some("a"));
        assert_eq!(
            first_answer(&json!([{"content": "only"}])).as_deref(),
            Some("only")
        );
        assert_eq!(first_answer(&json!("not json")), None);
        assert_eq!(
            messages_or_text(&json!("plain prompt"), last_user).as_deref(),
            Some("plain prompt")
        );
        assert_eq!(messages_or_text(&json!(42), last_user), None);
    }

    #[test]
    fn openinference_values() {
        let request = json!(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"q?"}]}"#);
        assert_eq!(input_value(&request).as_deref(), Some("q?"));
        assert_eq!(
            input_value(&json!("raw query")).as_deref(),
            Some("raw query")
        );
        assert_eq!(
            input_value(&json!(r#"{"query":"x"}"#)).as_deref(),
            Some(r#"{"query":"x"}"#)
        );
        let response = json!(r#"{"choices":[{"message":{"role":"assistant","content":"A."}}]}"#);
        assert_eq!(output_value(&response).as_deref(), Some("A."));
        let completion = json!(r#"{"choices":[{"text":"T."}]}"#);
        assert_eq!(output_value(&completion).as_deref(), Some("T."));
        assert_eq!(output_value(&json!("plain")).as_deref(), Some("plain"));
        assert_eq!(output_value(&json!(1)), None);
    }

    #[test]
    fn any_values_unwrap() {
        let any = json!({"arrayValue": {"values": [
            {"kvlistValue": {"values": [
                {"key": "id", "value": {"stringValue": "d1"}},
                {"key": "content", "value": {"stringValue": "text"}},
                {"key": "n", "value": {"intValue": "7"}}
            ]}},
            {"bytesValue": "AAEC"}
        ]}});
        assert_eq!(
            from_any_value(any),
            json!([{"id": "d1", "content": "text", "n": 7}, null])
        );
        assert_eq!(
            from_any_value(json!({"content": "x"})),
            json!({"content": "x"})
        );
        assert_eq!(from_any_value(json!("s")), json!("s"));
    }

    #[test]
    fn limits_cut_on_char_boundaries() {
        let mut draft = TextDraft::new(TextOptions {
            keep_text: true,
            max_text_bytes: 4,
            max_chunks: 2,
        });
        draft.offer(TextKey::RetrievalQuery, json!("héllo"));
        draft.offer(TextKey::Documents, json!(["abc", "defgh", "ij"]));
        let text = draft.finish().unwrap();
        assert_eq!(text.query.as_deref(), Some("hél"));
        assert_eq!(text.chunks, vec!["abc".to_owned(), "defg".to_owned()]);
        assert!(text.truncated);
        let draft = TextDraft::new(TextOptions::default());
        assert_eq!(draft.finish(), None);
    }

    #[test]
    fn debug_shows_sizes_not_text() {
        let text = SpanText {
            query: Some("secret question".into()),
            answer: Some("secret answer".into()),
            chunks: vec!["secret doc".into()],
            truncated: false,
        };
        let shown = format!("{text:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("query_bytes: Some(15)"), "{shown}");
    }
}
