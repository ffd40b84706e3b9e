//! A small incremental parser of `text/event-stream` (the WHATWG SSE format).
//!
//! No dependencies and no I/O, so it builds for native targets and for
//! `wasm32-unknown-unknown`: the native `gateway-client` feeds it from reqwest streams,
//! the browser participant (`mpc-wasm`) from `fetch` body streams. Callers bound their
//! memory with [`SseParser::buffered`].

/// One parsed item of an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event: its `id` field (if any) and its data lines joined with `\n`.
    Event {
        /// The `id:` field of this event, if present.
        id: Option<String>,
        /// The `event:` field, if present.
        event: Option<String>,
        /// The data.
        data: String,
    },
    /// A comment line (`: text`), e.g. a keep-alive.
    Comment(String),
}

/// Incremental SSE parser: feed it bytes as they arrive, get complete items back.
///
/// Lines end with `\n`, `\r\n` or `\r`; a blank line dispatches the event. As in the
/// spec, an event with no `data:` line is not dispatched. Bytes are buffered until a
/// line is complete; [`SseParser::buffered`] tells how many, so callers can bound it.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    last_was_cr: bool,
}

impl SseParser {
    /// A new parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held while waiting for the end of a line (plus the pending event's data).
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.data.as_ref().map_or(0, String::len)
    }

    /// Feeds bytes; returns the items completed by them.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.last_was_cr {
                self.last_was_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.line(&mut out),
                b'\r' => {
                    self.last_was_cr = true;
                    self.line(&mut out)
                }
                _ => self.buf.push(b),
            }
        }
        out
    }

    fn line(&mut self, out: &mut Vec<SseItem>) {
        let line = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseItem::Event {
                    id: self.id.clone(),
                    event: self.event.take(),
                    data,
                });
            } else {
                self.event = None;
            }
            return;
        }
        if let Some(c) = line.strip_prefix(':') {
            out.push(SseItem::Comment(
                c.strip_prefix(' ').unwrap_or(c).to_owned(),
            ));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_comments_and_split_chunks() {
        let mut p = SseParser::new();
        let mut items = p.feed(b": open\n\nid: 1\ndata: a\nda");
        items.extend(p.feed(b"ta: b\n\nid: 2\r\ndata:c\r\rdata\n\n"));
        assert_eq!(
            items,
            vec![
                SseItem::Comment("open".into()),
                SseItem::Event {
                    id: Some("1".into()),
                    event: None,
                    data: "a\nb".into()
                },
                SseItem::Event {
                    id: Some("2".into()),
                    event: None,
                    data: "c".into()
                },
                SseItem::Event {
                    id: Some("2".into()),
                    event: None,
                    data: "".into()
                },
            ]
        );
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn garbage_never_panics_and_is_bounded() {
        let mut p = SseParser::new();
        let _ = p.feed(&[0xff, 0xfe, b'\n', b':', b'\r', 0, b'\n', b'\n']);
        let items = p.feed(b"id\nid:\0\ndata:\xff\n\n");
        // An id containing NUL is ignored; invalid UTF-8 is replaced, never a panic.
        assert_eq!(
            items,
            vec![SseItem::Event {
                id: Some(String::new()),
                event: None,
                data: "\u{fffd}".into()
            }]
        );
        p.feed(b"data: partial");
        assert_eq!(p.buffered(), 13);
    }

    #[test]
    fn event_field_resets_after_dispatch() {
        let mut p = SseParser::new();
        let items = p.feed(b"event: x\ndata: 1\n\ndata: 2\n\nevent: y\n\ndata: 3\n\n");
        let events: Vec<Option<String>> = items
            .into_iter()
            .map(|i| match i {
                SseItem::Event { event, .. } => event,
                SseItem::Comment(_) => panic!("no comment expected"),
            })
            .collect();
        assert_eq!(events, vec![Some("x".into()), None, None]);
    }
}
