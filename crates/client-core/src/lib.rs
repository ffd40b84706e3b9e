//! # client-core — the wallet's client flows, with no I/O
//!
//! Every client flow of the 2-of-3 wallet — wallet creation, full signing, the
//! presignature fast path, pool refills with reconciliation, offline signing — as a
//! value the driver feeds and drains, in the manner of `round-based`'s state machines
//! and rustls' unbuffered connections. No tokio, no fetch, no files, no clock, no
//! IndexedDB inside: each step is an enum variant that says exactly which effect the
//! driver performs next, and the only way on is to consume that step with the effect's
//! result. The native driver is `mpc-client` (tokio, tonic, files); the browser driver
//! is `mpc-wasm` (event loop, gRPC-web, IndexedDB). Both run the same code here.
//!
//! ## The driver's loop
//!
//! ```text
//! let mut step = Sign::start(&party, params)?;            // or Create / Refill / ...
//! loop {
//!     step = match step {
//!         SignStep::CallCosigner(call) => {
//!             let (request, awaiting) = call.send(now_ms)?;   // signed here, now
//!             // send `request` unchanged: tonic with the typed message, or gRPC-web
//!             // with request.encode_to_vec() to request.path()
//!             awaiting.reply(answer)?        // Ok(CosignerResponse) | Err(RemoteError)
//!             // (or awaiting.reply_bytes(Ok(body) | Err(remote_error)))
//!         }
//!         SignStep::RunSession(run) => {
//!             let (spec, running) = run.start();
//!             // spec.open() -> PartySession (on the thread / event loop that steps
//!             // it); run it over spec.room() with the generic session driver
//!             running.finished(result)?      // Ok(SessionOutput) | Err(PartyError)
//!         }
//!         SignStep::TakePresignature(take) => take.taken(pool_take_once(..))?,
//!         SignStep::Done(signed) => break signed,
//!     }
//! }
//! ```
//!
//! A failed effect the core does not need to hear about ends the flow: drop the step
//! and return your error (a flow value is cancelled by dropping it). Every `?` above
//! returns a [`ClientError`], whose [`ClientError::code`] is the wallet's one
//! vocabulary ([`ErrorCode`]).
//!
//! ## Effects common to every flow
//!
//! - **[`Call`]** (`CallCosigner`): [`Call::method`] names the RPC.
//!   [`Call::send`]`(now_ms)` authenticates the request with the party's identity key
//!   (which never leaves this crate), the driver's clock (milliseconds since the Unix
//!   epoch) and a fresh nonce, and returns the [`CosignerRequest`] (a typed prost
//!   message; [`CosignerRequest::encode_to_vec`] and [`CosignerRequest::path`] for
//!   gRPC-web) with the [`Awaiting`] state. Answer with [`Awaiting::reply`] (typed
//!   [`CosignerResponse`]) or [`Awaiting::reply_bytes`] (the response's protobuf body),
//!   or with the call's error as a [`RemoteError`] decoded from the gRPC status (code,
//!   message, `grpc-status-details-bin`): the core decides by its `code` (and `rule`,
//!   `presignature`), never by its text. A transport failure is
//!   `RemoteError::new(ErrorCode::CosignerUnavailable, ..)`.
//! - **[`RunSession`]**: [`RunSession::start`] gives the [`SessionSpec`] (room, session
//!   id, roster, and what to build: aux info, keygen, sign, presign) and the [`Running`]
//!   state. [`SessionSpec::open`] builds the `mpc_party::PartySession` (the session and
//!   its envelope relay) where it will be stepped; the driver subscribes to
//!   [`SessionSpec::room`] on the gateway (its own gateway URL if configured, else the
//!   room's), delivers every event, posts every sealed body, and reports the output or
//!   the `PartyError` with [`Running::finished`]. Sessions are CPU-heavy: step them off
//!   the async threads natively, and yield every ~15 ms on a browser event loop.
//! - **[`Wait`]**: sleep [`Wait::millis`] on the driver's clock, then [`Wait::done`].
//!
//! ## The flows
//!
//! - **[`Create`]** (the device creates a wallet; [`CreateStep`]):
//!   `CallCosigner(Health)` → `RecoveryIdentity` (give party 2's public identity:
//!   natively a fresh identity key, in the browser the recovery agent's) → `Primes` (the
//!   device's four safe primes) → `CallCosigner(CreateWallet)` → `StartRecovery` (start
//!   party 2 on [`RecoveryJob`]: natively a [`Join`] of its own with
//!   [`RecoveryJob::join_params`], in the browser the agent's job; it runs alongside)
//!   → `RunSession` (aux info) → `RunSession` (one keygen per account) →
//!   `AwaitRecovery` (party 2's public keys; they must equal the device's) → `Persist`
//!   (store [`create::Persist::bundle`] encrypted, durably) → `CallCosigner(ConfirmWallet)`,
//!   with `Wait` and a new call while the code is `wallet_not_ready` (or
//!   `cosigner_unavailable`), at most 30 times → `Done(`[`CreatedWallet`]`)`.
//! - **[`Enroll`]** (the device enrolls ahead of wallet creation; [`EnrollStep`]):
//!   `CallCosigner(Health)` → `RecoveryIdentity` → `Primes` (both shared with
//!   `Create`) → `CallCosigner(EnrollDevice)` → `StartRecovery` (party 2 joins the
//!   aux-info room: natively a [`Join`] with [`EnrollRecoveryJob::join_params`], in the
//!   browser the agent's enrollment job) → `RunSession` (aux info) → `AwaitRecovery`
//!   → `Persist` (store the [`Enrollment`] encrypted: [`Enrollment::encrypt`]) →
//!   `Done(`[`Enrollment`]`)`. [`Create::from_enrollment`] then creates a wallet with
//!   the keygens only: no `RecoveryIdentity` / `Primes`, `CreateWallet` names the
//!   enrollment (with `Wait` and a new call while the code is `wallet_not_ready`, at
//!   most 60 times), no aux-info session.
//! - **[`Join`]** (one party joins the rooms the cosigner opened; [`JoinStep`]):
//!   `RunSession` (aux info) → `RunSession` per keygen → `Done(`[`Joined`]`)`: the
//!   bundle to store and its public keys.
//! - **[`Sign`]** (device or recovery with the cosigner; [`SignStep`]): on an
//!   independent account at the root with mode `auto`/`require`: `TakePresignature`
//!   (take the oldest presignature of [`sign::TakePresignature::account_id`] and
//!   [`sign::TakePresignature::signers`] ONCE, durably committed, and give it as a
//!   [`TakenPresignature`], or `None`) → `CallCosigner(SignWithPresignature)` →
//!   `Done` (combined, verified). An unreadable record is dropped and the next one
//!   asked for; `presignature_unavailable` (unknown/used) drops it and, in `auto`
//!   mode, falls back to full signing: `CallCosigner(StartSign)` (the announced digest
//!   and signer set are checked) → `RunSession` (sign) → `Done`. [`Signed::fast_path`]
//!   tells what the pool did (for the driver's tombstones); `elapsed_ms` is the
//!   driver's to set.
//! - **[`Refill`]** (an independent account's pool; [`RefillStep`]):
//!   `CallCosigner(PresignPoolStatus)` → `ListPresignatures` (the local ids, oldest
//!   first, and the in-flight ids: taken less than [`refill::IN_FLIGHT_MS`] ago) →
//!   when the cosigner runs no session for the pool: `DiscardPresignatures` (local ids
//!   it lacks) and its ids this party lacks are released with the next StartPresign
//!   (never in-flight ones) → `CallCosigner(StartPresign)` for at most 16
//!   ([`wallet_types::PRESIGN_CHUNK`]) → `RunPresigns` (a [`refill::PresignBatch`]:
//!   run every job's session — in the order given, any number at once — then store
//!   each result with [`refill::StorePresignature::stored`] and
//!   [`refill::PresignBatch::report`] each outcome, then
//!   [`refill::PresignBatch::done`]) → more chunks until the target, `pool_full` or a
//!   failure → settle: `CallCosigner(PresignPoolStatus)` with `Wait(50 ms)` between
//!   while the cosigner still runs sessions, at most 5 s → `ListPresignatures` →
//!   `Done(`[`PresignPoolStatus`]`)`. [`Refill::status`] only asks and lists.
//! - **[`OfflineSign`]** (device + recovery, no cosigner; [`OfflineStep`]): `RunLocal`
//!   (run both sessions in-process: `mpc_core::local`) → `Done`.
//! - **Key lifecycle** ([`lifecycle`]): [`StartLifecycle`] (`CallCosigner(StartRefresh |
//!   ReplaceDevice)` → `Done(`[`LifecyclePlan`]`)`, checked against the party's shares),
//!   then one [`LifecycleRun`] per user party (`RunSession` aux info / repair / refresh
//!   → `Done(`[`PendingShares`]`)`: store them as pending), then [`ConfirmLifecycle`]
//!   (`CallCosigner(ConfirmLifecycle)` with `Wait` while `wallet_not_ready` →
//!   `Done(`[`Committed`]`)`: promote them). [`EpochCheck`] reads the cosigner's epoch
//!   to settle a pending file after a crash.

#![forbid(unsafe_code)]
#![forbid(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod controls;
mod convert;
pub mod cosigner;
pub mod create;
pub mod enroll;
pub mod enrollment;
pub mod error;
pub mod lifecycle;
pub mod offline;
pub mod pair;
pub mod party;
pub mod refill;
mod register;
pub mod session;
pub mod sign;
pub mod step;
pub mod types;
mod verify;

pub use controls::{Control, ControlAction, ControlStep, WalletControls};
pub use cosigner::{CosignerMethod, CosignerRequest, CosignerResponse};
pub use create::{
    bundle_public_keys, Create, CreateParams, CreateStep, CreatedWallet, Join, JoinAux, JoinParams,
    JoinStep, Joined, RecoveryJob,
};
pub use enroll::{Enroll, EnrollParams, EnrollRecoveryJob, EnrollStep};
pub use enrollment::{validate_enrollment_id, Enrollment, EnrollmentHeader};
pub use error::{ClientError, PresignatureState, RemoteError};
pub use lifecycle::{
    Committed, ConfirmLifecycle, ConfirmParams, ConfirmStep, EpochCheck, EpochStep, LifecycleKind,
    LifecyclePlan, LifecycleRun, LifecycleStep, NewDeviceParams, PendingShares, StartLifecycle,
    StartStep,
};
pub use offline::{OfflineParams, OfflineSign, OfflineStep};
pub use pair::{PairSign, PairSignParams, PairStep, PAIR_SIGNERS};
pub use party::{parse_path, Party};
pub use refill::{pool_key, Refill, RefillStep};
pub use session::{AccountRoom, Room, SessionSpec};
pub use sign::{
    BitcoinInput, Sign, SignParams, SignStep, Signed, TakenPresignature, BITCOIN_NETWORKS,
};
pub use step::{Awaiting, Call, RunSession, Running, Wait};
pub use types::{
    AccountInfo, ChainStyle, CosignerHealth, PresignMode, PresignPoolStatus, PublicKeyInfo,
    SignedResult,
};
pub use verify::verify_ethereum;
pub use wallet_types::{AccountKind, DigestKind, ErrorCode, PartyRole, PayloadKind};
