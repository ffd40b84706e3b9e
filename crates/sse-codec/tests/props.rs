//! Property tests of the SSE parser: the gateway's stream (or whoever sits on the path)
//! controls these bytes. Parsing never panics, does not depend on how the bytes are
//! chunked, and round-trips every event a gateway writes. Long run:
//! `PROPTEST_CASES=100000 cargo test -p sse-codec --test props` (docs/SECURITY.md).

use proptest::prelude::*;
use sse_codec::{SseItem, SseParser};

fn parse_in_chunks(bytes: &[u8], cuts: &[usize]) -> Vec<SseItem> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for c in cuts {
        out.extend(p.feed(&bytes[at..c.max(at)]));
        at = c.max(at);
    }
    out.extend(p.feed(&bytes[at..]));
    out
}

/// Bytes that look like an event stream often enough to reach every branch.
fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"id: ".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b": ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\0".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
        "[a-z0-9 :]{0,12}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn chunking_does_not_change_the_items(
        bytes in stream_bytes(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = SseParser::new().feed(&bytes);
        prop_assert_eq!(parse_in_chunks(&bytes, &cuts), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..8192)) {
        let mut p = SseParser::new();
        let _ = p.feed(&bytes);
        // What is held back is bounded by what was fed (an invalid UTF-8 byte held as
        // U+FFFD takes three).
        prop_assert!(p.buffered() <= 3 * bytes.len());
    }

    #[test]
    fn gateway_events_round_trip(
        events in proptest::collection::vec((1u64..u64::MAX, "[ -~]{0,200}", proptest::bool::ANY), 0..16),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        // What a gateway writes: `id: N`, one `data:` line (envelopes are JSON without
        // raw newlines), a blank line; keep-alive comments in between.
        let mut text = Vec::new();
        for (id, data, keepalive) in &events {
            if *keepalive {
                text.extend_from_slice(b": keep-alive\n\n");
            }
            text.extend_from_slice(format!("id: {id}\ndata: {data}\n\n").as_bytes());
        }
        let got: Vec<(String, String)> = parse_in_chunks(&text, &cuts)
            .into_iter()
            .filter_map(|i| match i {
                SseItem::Event { id, data, .. } => Some((id.unwrap_or_default(), data)),
                SseItem::Comment(_) => None,
            })
            .collect();
        let want: Vec<(String, String)> = events.iter().map(|(id, d, _)| (id.to_string(), d.clone())).collect();
        prop_assert_eq!(got, want);
    }
}
