//! Incremental `text/event-stream` parser for the fetch-stream transport (service
//! workers have no `EventSource`). Same rules as the WHATWG parser for what the gateway
//! sends: `id:` and `data:` fields, comments, `\n` / `\r\n` / `\r` line ends, a blank
//! line dispatches. (The native `gateway-client` has its own parser; it depends on
//! reqwest/tokio and does not build for wasm32.)

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The last `id:` seen (ids persist across events, as in the spec).
    pub id: Option<String>,
    /// The data lines joined with `\n`.
    pub data: String,
}

/// Incremental parser; bounded by the caller through [`SseParser::buffered`].
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    id: Option<String>,
    data: Option<String>,
    after_cr: bool,
}

impl SseParser {
    /// A new parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held for an incomplete line or event.
    pub fn buffered(&self) -> usize {
        self.line.len() + self.data.as_ref().map_or(0, String::len)
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent {
                    id: self.id.clone(),
                    data,
                });
            }
            return;
        }
        if line.starts_with(':') {
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
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_chunks_comments_and_line_ends() {
        let mut p = SseParser::new();
        let mut ev = p.feed(b": keep-alive\n\nid: 1\ndata: a\nda");
        assert!(ev.is_empty());
        ev.extend(p.feed(b"ta: b\n\nid: 2\r\ndata:c\r\r"));
        ev.extend(p.feed(b"event: x\ndata\n\n"));
        assert_eq!(
            ev,
            vec![
                SseEvent {
                    id: Some("1".into()),
                    data: "a\nb".into()
                },
                SseEvent {
                    id: Some("2".into()),
                    data: "c".into()
                },
                SseEvent {
                    id: Some("2".into()),
                    data: "".into()
                },
            ]
        );
        assert_eq!(p.buffered(), 0);
        p.feed(b"data: partial");
        assert_eq!(p.buffered(), 13);
    }

    #[test]
    fn garbage_never_panics() {
        let mut p = SseParser::new();
        let _ = p.feed(&[0xff, 0xfe, b'\n', b':', b'\r', 0, b'\n', b'\n']);
        let _ = p.feed(b"id\nid:\0\ndata:\xff\n\n");
    }
}
