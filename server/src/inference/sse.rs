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

/// Splits a byte stream into events. Each byte is looked at once however the stream is cut
/// (an event arriving a byte at a time is not scanned again from its start at every byte), and
/// what the events took is dropped from the buffer once per push.
#[derive(Debug, Default)]
pub struct Splitter {
    buffer: Vec<u8>,
    /// How much of `buffer` has been scanned without finding an event's end.
    scanned: usize,
    /// Where the line being scanned starts in `buffer`.
    line_start: usize,
}

impl Splitter {
    /// Takes the next bytes; answers the events they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        // Where the event being scanned starts.
        let mut start = 0;
        for i in self.scanned..self.buffer.len() {
            if self.buffer[i] != b'\n' {
                continue;
            }
            let line = &self.buffer[self.line_start..i];
            // A blank line ends the event, unless the event has no line before it.
            if (line.is_empty() || line == b"\r") && self.line_start > start {
                events.push(parse(Bytes::copy_from_slice(&self.buffer[start..=i])));
                start = i + 1;
            }
            self.line_start = i + 1;
        }
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        self.line_start -= start;
        if self.buffer.len() > MAX_EVENT {
            return Err(format!("the provider sent an event longer than {MAX_EVENT} bytes"));
        }
        Ok(events)
    }

    /// What is left when the stream ends: an event whose blank line never came.
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buffer);
        (self.scanned, self.line_start) = (0, 0);
        (!rest.iter().all(u8::is_ascii_whitespace)).then(|| parse(Bytes::from(rest)))
    }
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

    /// The splitter as it was first written (rescanning from the start of the buffer): the
    /// reference the faster one is checked against.
    fn reference(stream: &[u8]) -> (Vec<Event>, Option<Event>) {
        let mut buffer = stream.to_vec();
        let mut events = Vec::new();
        loop {
            let mut line_start = 0;
            let mut end = None;
            for (i, b) in buffer.iter().enumerate() {
                if *b == b'\n' {
                    let line = &buffer[line_start..i];
                    if (line.is_empty() || line == b"\r") && line_start > 0 {
                        end = Some(i + 1);
                        break;
                    }
                    line_start = i + 1;
                }
            }
            let Some(end) = end else { break };
            let raw: Vec<u8> = buffer.drain(..end).collect();
            events.push(parse(Bytes::from(raw)));
        }
        let rest = (!buffer.iter().all(u8::is_ascii_whitespace)).then(|| parse(Bytes::from(buffer)));
        (events, rest)
    }

    /// Fuzzed: streams of SSE-ish lines (and arbitrary bytes), cut at arbitrary points, split
    /// exactly as the reference splits them whole, passed on byte for byte, never a panic.
    #[test]
    fn any_stream_cut_anywhere_splits_as_the_reference_does() {
        use proptest::prelude::*;
        let line = prop_oneof![
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b": ping\n".to_vec()),
            "[a-z]{0,6}".prop_map(|e| format!("event: {e}\n").into_bytes()),
            "[ -~]{0,20}".prop_map(|d| format!("data: {d}\n").into_bytes()),
            "[ -~]{0,20}".prop_map(|d| format!("data:{d}\r\n").into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ];
        let stream = proptest::collection::vec(line, 0..40).prop_map(|lines| lines.concat());
        let cuts = proptest::collection::vec(0usize..1000, 0..8);
        let config = testkit::fuzz_config("sse splitter");
        proptest::test_runner::TestRunner::new(config)
            .run(&(stream, cuts), |(stream, mut cuts)| {
                cuts.iter_mut().for_each(|c| *c %= stream.len() + 1);
                cuts.sort_unstable();
                let mut splitter = Splitter::default();
                let (mut events, mut at) = (Vec::new(), 0);
                for cut in cuts.into_iter().chain(std::iter::once(stream.len())) {
                    events.extend(splitter.push(&stream[at..cut]).unwrap());
                    at = cut;
                }
                let rest = splitter.finish();
                let (expected, expected_rest) = reference(&stream);
                prop_assert_eq!(&events, &expected);
                prop_assert_eq!(&rest, &expected_rest);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn an_unterminated_event_is_kept_for_the_end() {
        let mut splitter = Splitter::default();
        assert!(splitter.push(b"data: tail").unwrap().is_empty());
        assert_eq!(splitter.finish().map(|e| e.data), Some("tail".to_owned()));
        assert_eq!(&encode(Some("e"), "a\nb")[..], b"event: e\ndata: a\ndata: b\n\n");
    }
}
