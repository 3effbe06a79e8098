//! OpenAI's Chat Completions to Anthropic's Messages and back, so that an OpenAI client can use
//! an `anthropic` Llm: system prompts, text and image content, tool definitions, tool calls and
//! their results, stop reasons and usage; whole answers and streams.

use axum::body::Bytes;
use serde_json::{Map, Value, json};

use super::sse::{self, Event};

/// Anthropic needs `max_tokens`; OpenAI clients often send none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// An OpenAI chat request as an Anthropic Messages request to `model`.
pub fn request(body: &Value, model: &str) -> Result<Value, String> {
    let (system, messages) = messages(body)?;
    let mut request = Map::new();
    request.insert("model".into(), json!(model));
    request.insert("messages".into(), Value::Array(messages));
    let max_tokens = body.get("max_completion_tokens").or_else(|| body.get("max_tokens")).and_then(Value::as_u64);
    request.insert("max_tokens".into(), json!(max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    if !system.is_empty() {
        request.insert("system".into(), json!(system.join("\n\n")));
    }
    for field in ["temperature", "top_p"] {
        if let Some(v) = body.get(field).filter(|v| v.is_number()) {
            request.insert(field.into(), v.clone());
        }
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            request.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(list)) => {
            request.insert("stop_sequences".into(), Value::Array(list.clone()));
        }
        _ => {}
    }
    tools(body, &mut request);
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        request.insert("metadata".into(), json!({"user_id": user}));
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        request.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(request))
}

/// The system prompt (every system and developer message) and the conversation as Anthropic
/// takes it: consecutive messages of one role made one, tool calls and results as blocks.
fn messages(body: &Value) -> Result<(Vec<String>, Vec<Value>), String> {
    let messages = body.get("messages").and_then(Value::as_array).ok_or("`messages` must be an array")?;
    let mut system: Vec<String> = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).ok_or(format!("messages[{i}].role is missing"))?;
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.push(text_of(message.get("content")).ok_or(format!("messages[{i}].content must be text"))?);
                continue;
            }
            "user" => ("user", content_blocks(message.get("content"), i)?),
            "assistant" => {
                let mut blocks = match message.get("content") {
                    None | Some(Value::Null) => Vec::new(),
                    content => content_blocks(content, i)?,
                };
                for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let function = call.get("function").ok_or(format!("messages[{i}].tool_calls: no function"))?;
                    let arguments = function.get("arguments").and_then(Value::as_str).unwrap_or("{}");
                    let input: Value = serde_json::from_str(if arguments.trim().is_empty() { "{}" } else { arguments })
                        .map_err(|e| format!("messages[{i}].tool_calls: arguments are not JSON: {e}"))?;
                    blocks.push(json!({"type": "tool_use", "id": call.get("id").cloned().unwrap_or(Value::Null),
                                       "name": function.get("name").cloned().unwrap_or(Value::Null), "input": input}));
                }
                ("assistant", blocks)
            }
            "tool" => {
                let id =
                    message.get("tool_call_id").cloned().ok_or(format!("messages[{i}].tool_call_id is missing"))?;
                let content = text_of(message.get("content")).unwrap_or_default();
                ("user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": content})])
            }
            other => return Err(format!("messages[{i}].role {other:?} is not one of system, user, assistant, tool")),
        };
        // Anthropic alternates roles: consecutive messages of one role become one.
        match out.last_mut() {
            Some(last) if last["role"] == role => {
                last["content"].as_array_mut().expect("built as an array").extend(blocks);
            }
            _ => out.push(json!({"role": role, "content": blocks})),
        }
    }
    Ok((system, out))
}

/// The client's tools and tool choice, as Anthropic names them.
fn tools(body: &Value, request: &mut Map<String, Value>) {
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                json!({"name": f.get("name").cloned().unwrap_or(Value::Null),
                       "description": f.get("description").cloned().unwrap_or(json!("")),
                       "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object"}))})
            })
            .collect();
        request.insert("tools".into(), Value::Array(tools));
    }
    match body.get("tool_choice") {
        Some(Value::String(choice)) => {
            let choice = match choice.as_str() {
                "required" => json!({"type": "any"}),
                "none" => json!({"type": "none"}),
                _ => json!({"type": "auto"}),
            };
            request.insert("tool_choice".into(), choice);
        }
        Some(Value::Object(choice)) => {
            let name = choice.get("function").and_then(|f| f.get("name")).cloned().unwrap_or(Value::Null);
            request.insert("tool_choice".into(), json!({"type": "tool", "name": name}));
        }
        _ => {}
    }
}

/// A message's content as plain text (a string, or the text of its parts).
fn text_of(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            Some(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"))
        }
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// A user or assistant message's content as Anthropic content blocks.
fn content_blocks(content: Option<&Value>, i: usize) -> Result<Vec<Value>, String> {
    match content {
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => Ok(json!({"type": "text", "text": part.get("text").cloned().unwrap_or(json!(""))})),
                Some("image_url") => {
                    let url = part.get("image_url").and_then(|u| u.get("url")).and_then(Value::as_str).unwrap_or("");
                    Ok(image(url))
                }
                other => Err(format!("messages[{i}].content: part type {other:?} is not supported for anthropic")),
            })
            .collect(),
        _ => Err(format!("messages[{i}].content must be a string or an array of parts")),
    }
}

/// An image part: a `data:` URL as base64, anything else by URL.
fn image(url: &str) -> Value {
    if let Some((media_type, data)) = url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
        return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

/// Anthropic's stop reason as OpenAI's finish reason.
fn finish_reason(stop: Option<&str>) -> Value {
    match stop {
        None => Value::Null,
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        Some(_) => json!("stop"),
    }
}

/// Input and output tokens of an Anthropic `usage` object (cache reads and writes are input).
pub fn anthropic_usage(usage: Option<&Value>) -> (u64, u64) {
    let Some(usage) = usage else { return (0, 0) };
    let field = |f: &str| usage.get(f).and_then(Value::as_u64).unwrap_or(0);
    let input = field("input_tokens") + field("cache_creation_input_tokens") + field("cache_read_input_tokens");
    (input, field("output_tokens"))
}

/// Input and output tokens of an OpenAI `usage` object.
pub fn openai_usage(usage: Option<&Value>) -> Option<(u64, u64)> {
    let usage = usage.filter(|u| u.is_object())?;
    let field = |f: &str| usage.get(f).and_then(Value::as_u64).unwrap_or(0);
    Some((field("prompt_tokens"), field("completion_tokens")))
}

fn openai_usage_object(input: u64, output: u64) -> Value {
    json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output})
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// An Anthropic Messages answer as an OpenAI chat completion.
pub fn response(body: &Value) -> Value {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in body.get("content").and_then(Value::as_array).into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(json!({
                "id": block.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {"name": block.get("name").cloned().unwrap_or(Value::Null),
                             "arguments": block.get("input").map_or_else(|| "{}".to_owned(), Value::to_string)},
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let (input, output) = anthropic_usage(body.get("usage"));
    json!({
        "id": format!("chatcmpl-{}", body.get("id").and_then(Value::as_str).unwrap_or("")),
        "object": "chat.completion",
        "created": now(),
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": finish_reason(body.get("stop_reason").and_then(Value::as_str))}],
        "usage": openai_usage_object(input, output),
    })
}

/// An Anthropic error answer (`{"type": "error", "error": {"type", "message"}}`) as OpenAI's
/// error shape, keeping the provider's message.
pub fn error(body: &[u8]) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|b| b.get("error"));
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map_or_else(|| String::from_utf8_lossy(body).chars().take(2000).collect(), str::to_owned);
    let kind = error.and_then(|e| e.get("type")).cloned().unwrap_or(json!("api_error"));
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

/// Turns an Anthropic event stream into OpenAI chat-completion chunks, event by event.
pub struct Stream {
    id: String,
    model: Value,
    created: i64,
    /// Whether the client asked for a final usage chunk (`stream_options.include_usage`).
    include_usage: bool,
    /// Anthropic content block index → OpenAI tool call index.
    tools: Vec<(u64, usize)>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    finished: bool,
}

impl Stream {
    pub fn new(include_usage: bool) -> Stream {
        Stream {
            id: String::new(),
            model: Value::Null,
            created: now(),
            include_usage,
            tools: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
            finished: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Bytes {
        let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model, "choices": [{"index": 0, "delta": delta, "logprobs": null,
                           "finish_reason": finish}]});
        sse::encode(None, &chunk.to_string())
    }

    /// The chunks one Anthropic event becomes (often none).
    pub fn event(&mut self, event: &Event) -> Vec<Bytes> {
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else { return Vec::new() };
        let kind = data.get("type").and_then(Value::as_str).or(event.event.as_deref()).unwrap_or("");
        match kind {
            "message_start" => {
                let message = data.get("message").cloned().unwrap_or_default();
                self.id = format!("chatcmpl-{}", message.get("id").and_then(Value::as_str).unwrap_or(""));
                self.model = message.get("model").cloned().unwrap_or(Value::Null);
                let (input, output) = anthropic_usage(message.get("usage"));
                self.input_tokens = input;
                self.output_tokens = output;
                vec![self.chunk(json!({"role": "assistant", "content": ""}), Value::Null)]
            }
            "content_block_start" => {
                let block = data.get("content_block").cloned().unwrap_or_default();
                if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                    return Vec::new();
                }
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let call = self.tools.len();
                self.tools.push((index, call));
                let delta = json!({"tool_calls": [{"index": call, "id": block.get("id"), "type": "function",
                                   "function": {"name": block.get("name"), "arguments": ""}}]});
                vec![self.chunk(delta, Value::Null)]
            }
            "content_block_delta" => {
                let delta = data.get("delta").cloned().unwrap_or_default();
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        vec![
                            self.chunk(
                                json!({"content": delta.get("text").cloned().unwrap_or(json!(""))}),
                                Value::Null,
                            ),
                        ]
                    }
                    Some("input_json_delta") => {
                        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let Some((_, call)) = self.tools.iter().find(|(i, _)| *i == index) else { return Vec::new() };
                        let partial = delta.get("partial_json").cloned().unwrap_or(json!(""));
                        vec![self.chunk(
                            json!({"tool_calls": [{"index": call, "function": {"arguments": partial}}]}),
                            Value::Null,
                        )]
                    }
                    _ => Vec::new(),
                }
            }
            "message_delta" => {
                if let Some(output) = data.get("usage").and_then(|u| u.get("output_tokens")).and_then(Value::as_u64) {
                    self.output_tokens = output;
                }
                let stop = data.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str);
                vec![self.chunk(json!({}), finish_reason(stop))]
            }
            "message_stop" => self.finish(),
            "error" => {
                self.finished = true;
                let message = data.get("error").and_then(|e| e.get("message")).cloned().unwrap_or(json!("error"));
                let kind = data.get("error").and_then(|e| e.get("type")).cloned().unwrap_or(json!("api_error"));
                vec![sse::encode(None, &json!({"error": {"message": message, "type": kind}}).to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// The end of the stream: the usage chunk when asked for, then `[DONE]`; once.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if std::mem::replace(&mut self.finished, true) {
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.include_usage {
            let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                               "model": self.model, "choices": [],
                               "usage": openai_usage_object(self.input_tokens, self.output_tokens)});
            out.push(sse::encode(None, &chunk.to_string()));
        }
        out.push(sse::encode(None, "[DONE]"));
        out
    }
}

#[cfg(test)]
mod tests {

    /// JSON values shaped like chat requests and answers, and anything else.
    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            prop_oneof![Just("user"), Just("assistant"), Just("system"), Just("tool"), Just("text"), Just("image_url")]
                .prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let key = prop_oneof![
                Just("messages"),
                Just("role"),
                Just("content"),
                Just("type"),
                Just("text"),
                Just("model"),
                Just("max_tokens"),
                Just("stream"),
                Just("stop"),
                Just("tools"),
                Just("tool_calls"),
                Just("choices"),
                Just("usage"),
                Just("image_url"),
                Just("url"),
                Just("system"),
                Just("stop_reason"),
                Just("id"),
            ]
            .prop_map(str::to_owned);
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(key, inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Fuzzed: any JSON a client or a provider sends is translated or refused with a message;
    /// never a panic.
    #[test]
    fn any_request_or_answer_translates_or_is_refused() {
        proptest::test_runner::TestRunner::new(testkit::fuzz_config("openai/anthropic translation"))
            .run(&(json(), json()), |(request_body, answer)| {
                if let Err(message) = request(&request_body, "m") {
                    proptest::prop_assert!(!message.is_empty());
                }
                let _ = response(&answer);
                let _ = anthropic_usage(Some(&answer));
                let _ = openai_usage(Some(&answer));
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }
    use super::*;

    #[test]
    fn a_chat_request_becomes_a_messages_request() {
        let body = json!({
            "model": "claude-fast", "max_tokens": 50, "temperature": 0.2, "stop": "END", "stream": true,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "user", "content": "Thanks"},
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
        });
        let out = request(&body, "claude-haiku-4-5").unwrap();
        assert_eq!(out["model"], "claude-haiku-4-5");
        assert_eq!(out["system"], "Be brief.");
        assert_eq!(out["max_tokens"], 50);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["stream"], true);
        assert_eq!(out["tool_choice"], json!({"type": "any"}));
        assert_eq!(out["tools"][0]["input_schema"], json!({"type": "object"}));
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3, "the tool result and the next user turn are one user message");
        assert_eq!(
            messages[0]["content"][1]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "AAA"})
        );
        assert_eq!(messages[1]["content"][0]["input"], json!({"city": "Paris"}));
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "call_1");
        assert_eq!(messages[2]["content"][1]["text"], "Thanks");
        assert!(request(&json!({"messages": [{"role": "robot", "content": "x"}]}), "m").is_err());
    }

    #[test]
    fn an_answer_becomes_a_chat_completion() {
        let answer = json!({"id": "msg_1", "model": "claude-haiku-4-5", "stop_reason": "tool_use",
            "content": [{"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}});
        let out = response(&answer);
        assert_eq!(out["choices"][0]["message"]["content"], "Let me check.");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(out["usage"], json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}));
        let e = error(br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#);
        assert_eq!(e["error"]["message"], "bad");
    }

    #[test]
    fn a_stream_becomes_chunks() {
        let events = [
            r#"{"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":7,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"f"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        let mut stream = Stream::new(true);
        let mut out = Vec::new();
        for data in events {
            let event = Event { event: None, data: data.to_owned(), raw: Bytes::new() };
            out.extend(stream.event(&event));
        }
        assert!(stream.finish().is_empty(), "finished once");
        let chunks: Vec<String> = out.iter().map(|b| String::from_utf8(b.to_vec()).unwrap()).collect();
        assert_eq!(chunks.len(), 7);
        assert!(chunks[1].contains(r#""content":"Hi""#));
        assert!(chunks[2].contains(r#""name":"f""#) && chunks[3].contains(r#""arguments":"{}""#));
        assert!(chunks[4].contains(r#""finish_reason":"stop""#));
        assert!(chunks[5].contains(r#""completion_tokens":3"#) && chunks[5].contains(r#""prompt_tokens":7"#));
        assert_eq!(chunks[6], "data: [DONE]\n\n");
    }
}
