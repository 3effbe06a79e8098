//! `mcpctl infer` (an Llm asked through mcpd's OpenAI-compatible endpoint, streamed) and
//! `mcpctl usage`.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tabwriter::TabWriter;

use crate::args::{InferArgs, UsageArgs};
use crate::client::Client;

/// The prompt: the argument, else the file (`-`: stdin), else stdin when it is not a terminal.
fn prompt(args: &InferArgs) -> anyhow::Result<String> {
    if let Some(prompt) = &args.prompt {
        return Ok(prompt.clone());
    }
    let read_stdin = || {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the prompt from standard input")?;
        anyhow::Ok(text)
    };
    let text = match &args.file {
        Some(path) if path.as_os_str() == "-" => read_stdin()?,
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        None if std::io::stdin().is_terminal() => {
            bail!("give a prompt: as an argument, with -f FILE, or on standard input")
        }
        None => read_stdin()?,
    };
    if text.trim().is_empty() {
        bail!("the prompt is empty");
    }
    Ok(text)
}

pub fn run(client: &Client, args: InferArgs) -> anyhow::Result<u8> {
    let prompt = prompt(&args)?;
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": prompt}));
    let whole = args.output == "json";
    let mut body = json!({"model": args.llm, "messages": messages, "stream": !whole});
    if let Some(max) = args.max_tokens {
        body["max_tokens"] = json!(max);
    }
    let response = client.stream("/openai/v1/chat/completions", &body)?;
    if whole {
        let text = response.text().context("reading mcpd's answer")?;
        let answer: Value = serde_json::from_str(&text).context("mcpd's answer is not JSON")?;
        out!("{}", crate::output::inert_json(serde_json::to_string_pretty(&answer)?));
        return Ok(0);
    }
    let mut stdout = std::io::stdout().lock();
    let mut ended_with_newline = true;
    for line in BufReader::new(response).lines() {
        let line = line.context("reading the streamed answer")?;
        let Some(data) = line.strip_prefix("data:").map(str::trim_start) else { continue };
        if data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(data).context("a streamed chunk is not JSON")?;
        if let Some(message) = chunk["error"]["message"].as_str() {
            writeln!(stdout)?;
            bail!("the answer was cut off: {}", crate::output::inert(message));
        }
        if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
            // The model's answer is as untrusted as any stored field: shown, never obeyed.
            write!(stdout, "{}", crate::output::inert_prose(text))?;
            stdout.flush()?;
            ended_with_newline = text.ends_with('\n');
        }
    }
    if !ended_with_newline {
        writeln!(stdout)?;
    }
    Ok(0)
}

pub fn usage(client: &Client, args: UsageArgs) -> anyhow::Result<u8> {
    let mut query = Vec::new();
    for (field, value) in [("llm", &args.llm), ("user", &args.user), ("since", &args.since)] {
        if let Some(value) = value {
            query.push((field, value.as_str()));
        }
    }
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish();
    let answer = client.get(&format!("/api/v1/usage?{encoded}"))?.into_success()?;
    let items = answer["items"].as_array().cloned().unwrap_or_default();
    match args.output.as_str() {
        "json" => out!("{}", crate::output::inert_json(serde_json::to_string_pretty(&answer)?)),
        "yaml" => out_raw!("{}", crate::output::yaml(&answer)?),
        _ if items.is_empty() => eprintln!("No usage found."),
        _ => {
            let mut table = TabWriter::new(std::io::stdout().lock()).padding(3);
            writeln!(table, "USER\tLLM\tREQUESTS\tERRORS\tINPUT TOKENS\tOUTPUT TOKENS")?;
            for row in &items {
                let text = |f: &str| crate::output::inert(row[f].as_str().unwrap_or(""));
                let number = |f: &str| row[f].as_i64().unwrap_or(0);
                writeln!(
                    table,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    text("user"),
                    text("llm"),
                    number("requests"),
                    number("errors"),
                    number("inputTokens"),
                    number("outputTokens")
                )?;
            }
            table.flush()?;
        }
    }
    Ok(0)
}
