//! Server-sent events, split out of a byte stream as they arrive: the proxy passes each event
//! on whole (or translates it) as soon as its blank line is in.

use axum::body::Bytes;

/// The most an event may hold before its end arrives: a provider sending more is broken.
const MAX_EVENT: usize = 16 * 1024 * 1024;

/// One event: its `event:` name, its `data:` lines joined, and its text as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
    /// The event's lines and the blank line ending it, as the provider sent them.
    pub raw: Bytes,
}

/// Splits a byte stream into events.
#[derive(Debug, Default)]
pub struct Splitter {
    buffer: Vec<u8>,
}

impl Splitter {
    /// Takes the next bytes; answers the events they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = event_end(&self.buffer) {
            let raw: Vec<u8> = self.buffer.drain(..end).collect();
            events.push(parse(Bytes::from(raw)));
        }
        if self.buffer.len() > MAX_EVENT {
            return Err(format!("the provider sent an event longer than {MAX_EVENT} bytes"));
        }
        Ok(events)
    }

    /// What is left when the stream ends: an event whose blank line never came.
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buffer);
        (!rest.iter().all(u8::is_ascii_whitespace)).then(|| parse(Bytes::from(rest)))
    }
}

/// Where the first complete event ends (after its blank line), if one is complete.
fn event_end(buffer: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, b) in buffer.iter().enumerate() {
        if *b != b'\n' {
            continue;
        }
        let line = &buffer[line_start..i];
        if (line.is_empty() || line == b"\r") && line_start > 0 {
            return Some(i + 1);
        }
        line_start = i + 1;
    }
    None
}

fn parse(raw: Bytes) -> Event {
    let text = String::from_utf8_lossy(&raw);
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    let data = data.join("\n");
    Event { event, data, raw }
}

/// An event as bytes to send: `event:` (when named) and one `data:` line.
pub fn encode(event: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_wherever_the_bytes_break() {
        let stream = b"event: message_start\ndata: {\"a\":1}\n\n: ping\n\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut splitter = Splitter::default();
            let mut events = splitter.push(&stream[..cut]).unwrap();
            events.extend(splitter.push(&stream[cut..]).unwrap());
            assert!(splitter.finish().is_none());
            let seen: Vec<_> = events.iter().map(|e| (e.event.as_deref(), e.data.as_str())).collect();
            assert_eq!(seen, [(Some("message_start"), "{\"a\":1}"), (None, ""), (None, "x\ny"), (None, "[DONE]")]);
            let joined: Vec<u8> = events.iter().flat_map(|e| e.raw.to_vec()).collect();
            assert_eq!(joined, stream, "passed on byte for byte");
        }
    }

    #[test]
    fn an_unterminated_event_is_kept_for_the_end() {
        let mut splitter = Splitter::default();
        assert!(splitter.push(b"data: tail").unwrap().is_empty());
        assert_eq!(splitter.finish().map(|e| e.data), Some("tail".to_owned()));
        assert_eq!(&encode(Some("e"), "a\nb")[..], b"event: e\ndata: a\ndata: b\n\n");
    }
}
