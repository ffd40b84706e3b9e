//! The effects every flow asks for: call the cosigner, run a protocol session, wait.
//!
//! Each is a value that owns the flow it belongs to; its methods consume it and hand
//! back the flow's next step, so a driver cannot answer the wrong question or answer
//! twice:
//!
//! - [`Call`] → [`Call::send`] (sign with the driver's clock) → [`Awaiting`] →
//!   [`Awaiting::reply`] / [`Awaiting::reply_bytes`] → the flow's next step;
//! - [`RunSession`] → [`RunSession::start`] → a [`SessionSpec`] to run and a
//!   [`Running`] → [`Running::finished`] → the flow's next step;
//! - [`Wait`] → sleep [`Wait::millis`] → [`Wait::done`] → the flow's next step.

use mpc_core::SessionOutput;
use mpc_party::PartyError;

use crate::cosigner::{check_reply, CosignerMethod, CosignerRequest, CosignerResponse, Unsigned};
use crate::error::{ClientError, RemoteError};
use crate::session::SessionSpec;

pub(crate) mod sealed {
    use super::*;

    /// What a flow does with the answers to its effects (implemented by the flows of
    /// this crate only).
    pub trait Flow: Sized {
        /// The flow's step type.
        type Step;

        /// The cosigner answered the call sent at `sent_at_ms`.
        fn on_reply(
            self: Box<Self>,
            method: CosignerMethod,
            sent_at_ms: u64,
            reply: Result<CosignerResponse, RemoteError>,
        ) -> Result<Self::Step, ClientError>;

        /// The session the flow asked for ended.
        fn on_session(
            self: Box<Self>,
            _out: Result<SessionOutput, PartyError>,
        ) -> Result<Self::Step, ClientError> {
            Err(ClientError::internal("this flow runs no session"))
        }

        /// The wait the flow asked for is over.
        fn on_wait(self: Box<Self>) -> Result<Self::Step, ClientError> {
            Err(ClientError::internal("this flow never waits"))
        }
    }
}

use sealed::Flow;

/// Call the cosigner: [`send`](Call::send) gives the signed request to send unchanged.
pub struct Call<F> {
    flow: Box<F>,
    request: Box<Unsigned>,
}

impl<F> std::fmt::Debug for Call<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.request.request.method())
            .finish_non_exhaustive()
    }
}

impl<F: Flow> Call<F> {
    pub(crate) fn new(flow: Box<F>, request: Unsigned) -> Self {
        Call {
            flow,
            request: Box::new(request),
        }
    }

    /// The RPC to call.
    pub fn method(&self) -> CosignerMethod {
        self.request.request.method()
    }

    /// The request, authenticated with the driver's clock `now_ms` (milliseconds since
    /// the Unix epoch) and a fresh nonce, and the state that takes the answer.
    pub fn send(self, now_ms: u64) -> Result<(CosignerRequest, Awaiting<F>), ClientError> {
        let req = self.request.sign(now_ms)?;
        let method = req.method();
        Ok((
            req,
            Awaiting {
                flow: self.flow,
                method,
                sent_at_ms: now_ms,
            },
        ))
    }
}

/// A request is out: give the cosigner's answer.
pub struct Awaiting<F> {
    flow: Box<F>,
    method: CosignerMethod,
    sent_at_ms: u64,
}

impl<F> std::fmt::Debug for Awaiting<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Awaiting")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl<F: Flow> Awaiting<F> {
    /// The RPC awaited.
    pub fn method(&self) -> CosignerMethod {
        self.method
    }

    /// The answer: the response (of this RPC), or the decoded error of the call.
    pub fn reply(
        self,
        reply: Result<CosignerResponse, RemoteError>,
    ) -> Result<F::Step, ClientError> {
        check_reply(self.method, &reply)?;
        self.flow.on_reply(self.method, self.sent_at_ms, reply)
    }

    /// The answer as the response's protobuf bytes (decoded here), or the decoded error.
    pub fn reply_bytes(self, reply: Result<Vec<u8>, RemoteError>) -> Result<F::Step, ClientError> {
        let reply = match reply {
            Ok(bytes) => Ok(CosignerResponse::decode(self.method, &bytes)?),
            Err(e) => Err(e),
        };
        self.reply(reply)
    }
}

/// Run one protocol session of this party: [`start`](RunSession::start) gives the
/// [`SessionSpec`] to run (over the gateway, with the generic session driver) and the
/// state that takes its result.
pub struct RunSession<F> {
    flow: Box<F>,
    spec: Box<SessionSpec>,
}

impl<F> std::fmt::Debug for RunSession<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSession")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl<F: Flow> RunSession<F> {
    pub(crate) fn new(flow: Box<F>, spec: SessionSpec) -> Self {
        RunSession {
            flow,
            spec: Box::new(spec),
        }
    }

    /// The session to run.
    pub fn spec(&self) -> &SessionSpec {
        &self.spec
    }

    /// Takes the session to run and the state that takes its result.
    pub fn start(self) -> (SessionSpec, Running<F>) {
        let (stage, session_id) = (self.spec.stage(), self.spec.session_id().to_string());
        (
            *self.spec,
            Running {
                flow: self.flow,
                stage,
                session_id,
            },
        )
    }
}

/// A session is running: give its result.
pub struct Running<F> {
    flow: Box<F>,
    stage: &'static str,
    session_id: String,
}

impl<F> std::fmt::Debug for Running<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("stage", &self.stage)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl<F: Flow> Running<F> {
    /// `aux-info`, `keygen`, `sign` or `presign`.
    pub fn stage(&self) -> &'static str {
        self.stage
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The session's output, or why it failed.
    pub fn finished(self, out: Result<SessionOutput, PartyError>) -> Result<F::Step, ClientError> {
        self.flow.on_session(out)
    }
}

/// Wait [`millis`](Wait::millis) milliseconds (the driver owns the clock), then
/// [`done`](Wait::done).
pub struct Wait<F> {
    flow: Box<F>,
    millis: u64,
}

impl<F> std::fmt::Debug for Wait<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wait")
            .field("millis", &self.millis)
            .finish_non_exhaustive()
    }
}

impl<F: Flow> Wait<F> {
    pub(crate) fn new(flow: Box<F>, millis: u64) -> Self {
        Wait { flow, millis }
    }

    /// How long to wait.
    pub fn millis(&self) -> u64 {
        self.millis
    }

    /// The wait is over.
    pub fn done(self) -> Result<F::Step, ClientError> {
        self.flow.on_wait()
    }
}
