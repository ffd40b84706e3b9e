//! # client-core — the wallet's client flows, with no I/O
//!
//! (see docs/client.md)

#![forbid(unsafe_code)]
#![forbid(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod convert;
pub mod cosigner;
pub mod create;
pub mod error;
pub mod offline;
pub mod party;
pub mod refill;
pub mod session;
pub mod sign;
pub mod step;
pub mod types;
mod verify;

pub use cosigner::{CosignerMethod, CosignerRequest, CosignerResponse};
pub use create::{
    bundle_public_keys, Create, CreateParams, CreateStep, CreatedWallet, Join, JoinParams,
    JoinStep, Joined, RecoveryJob,
};
pub use error::{ClientError, PresignatureState, RemoteError};
pub use offline::{OfflineParams, OfflineSign, OfflineStep};
pub use party::{parse_path, Party};
pub use refill::{Refill, RefillStep};
pub use session::{AccountRoom, Room, SessionSpec};
pub use sign::{Sign, SignParams, SignStep, Signed, TakenPresignature};
pub use step::{Awaiting, Call, RunSession, Running, Wait};
pub use types::{
    AccountInfo, ChainStyle, CosignerHealth, PresignMode, PresignPoolStatus, PublicKeyInfo,
    SignedResult,
};
pub use verify::verify_ethereum;
pub use wallet_types::{AccountKind, DigestKind, ErrorCode, PartyRole, PayloadKind};
