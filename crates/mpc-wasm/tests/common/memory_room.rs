//! An in-memory room for the browser tests and measurements: the gateway's contract
//! (a log with sequence numbers, every subscriber gets the whole log) without a
//! network, so that forged and malformed envelopes can be injected.

use std::cell::RefCell;
use std::rc::Rc;

use futures_channel::mpsc;
use futures_util::future::LocalBoxFuture;
use mpc_wasm::transport::{Inbox, Post};
use mpc_wasm::ApiResult;

type InboxTx = mpsc::UnboundedSender<ApiResult<(u64, String)>>;

/// An in-memory room (tests and benchmarks: several parties in one page, no network).
#[derive(Clone, Default)]
pub struct MemoryRoom {
    inner: Rc<RefCell<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    log: Vec<String>,
    subscribers: Vec<InboxTx>,
}

impl MemoryRoom {
    /// A new empty room.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes from the first message.
    pub fn subscribe(&self) -> Inbox {
        let (tx, rx) = mpsc::unbounded();
        let mut inner = self.inner.borrow_mut();
        for (i, body) in inner.log.iter().enumerate() {
            let _ = tx.unbounded_send(Ok((i as u64 + 1, body.clone())));
        }
        inner.subscribers.push(tx);
        rx
    }

    /// Appends a message (also usable to inject forged or malformed envelopes).
    pub fn append(&self, body: String) {
        let mut inner = self.inner.borrow_mut();
        inner.log.push(body.clone());
        let seq = inner.log.len() as u64;
        inner
            .subscribers
            .retain(|s| s.unbounded_send(Ok((seq, body.clone()))).is_ok());
    }
}

impl Post for MemoryRoom {
    fn post(&self, body: String) -> LocalBoxFuture<'_, ApiResult<()>> {
        self.append(body);
        Box::pin(async { Ok(()) })
    }
}
