//! Cosigner requests as values: built and signed here, sent unchanged by the driver.
//!
//! A [`CosignerRequest`] is the typed prost message of one RPC of
//! `wallet.cosigner.v1.Cosigner`, already authenticated (the identity key never leaves
//! this crate). The driver sends it as it is: natively with the tonic client (the typed
//! message), in the browser as gRPC-web bytes ([`CosignerRequest::encode_to_vec`] to
//! [`CosignerRequest::path`]). The answer comes back as a [`CosignerResponse`] (typed, or
//! decoded from bytes with [`CosignerResponse::decode`]) or as a [`RemoteError`].

use cosigner_api::auth;
use cosigner_api::pb;
use mpc_wire::{IdentityKey, PublicIdentity};
use prost::Message;

use crate::error::{ClientError, RemoteError};

/// The RPCs of `wallet.cosigner.v1.Cosigner` the client calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CosignerMethod {
    /// `Health` (no authentication).
    Health,
    /// `EnrollDevice` (signed by the new device identity).
    EnrollDevice,
    /// `CreateWallet` (signed by the new device identity).
    CreateWallet,
    /// `ConfirmWallet`.
    ConfirmWallet,
    /// `StartSign`.
    StartSign,
    /// `StartPresign`.
    StartPresign,
    /// `PresignPoolStatus`.
    PresignPoolStatus,
    /// `SignWithPresignature`.
    SignWithPresignature,
    /// `ListAccounts` (the wallet's accounts and controls).
    ListAccounts,
    /// `RevokeDevice`.
    RevokeDevice,
    /// `FreezeWallet`.
    FreezeWallet,
    /// `UnfreezeWallet`.
    UnfreezeWallet,
    /// `StartRefresh` (a proactive refresh of every share).
    StartRefresh,
    /// `ReplaceDevice` (signed by the recovery identity, with the new device's proof).
    ReplaceDevice,
    /// `ConfirmLifecycle` (a user party's new shares are stored as pending).
    ConfirmLifecycle,
}

impl CosignerMethod {
    /// The RPC name, e.g. `StartSign`.
    pub const fn name(self) -> &'static str {
        match self {
            CosignerMethod::Health => "Health",
            CosignerMethod::EnrollDevice => "EnrollDevice",
            CosignerMethod::CreateWallet => "CreateWallet",
            CosignerMethod::ConfirmWallet => "ConfirmWallet",
            CosignerMethod::StartSign => "StartSign",
            CosignerMethod::StartPresign => "StartPresign",
            CosignerMethod::PresignPoolStatus => "PresignPoolStatus",
            CosignerMethod::SignWithPresignature => "SignWithPresignature",
            CosignerMethod::ListAccounts => "ListAccounts",
            CosignerMethod::RevokeDevice => "RevokeDevice",
            CosignerMethod::FreezeWallet => "FreezeWallet",
            CosignerMethod::UnfreezeWallet => "UnfreezeWallet",
            CosignerMethod::StartRefresh => "StartRefresh",
            CosignerMethod::ReplaceDevice => "ReplaceDevice",
            CosignerMethod::ConfirmLifecycle => "ConfirmLifecycle",
        }
    }

    /// The HTTP path of the RPC (gRPC and gRPC-web), e.g.
    /// `/wallet.cosigner.v1.Cosigner/StartSign`.
    pub fn path(self) -> &'static str {
        match self {
            CosignerMethod::Health => "/wallet.cosigner.v1.Cosigner/Health",
            CosignerMethod::EnrollDevice => "/wallet.cosigner.v1.Cosigner/EnrollDevice",
            CosignerMethod::CreateWallet => "/wallet.cosigner.v1.Cosigner/CreateWallet",
            CosignerMethod::ConfirmWallet => "/wallet.cosigner.v1.Cosigner/ConfirmWallet",
            CosignerMethod::StartSign => "/wallet.cosigner.v1.Cosigner/StartSign",
            CosignerMethod::StartPresign => "/wallet.cosigner.v1.Cosigner/StartPresign",
            CosignerMethod::PresignPoolStatus => "/wallet.cosigner.v1.Cosigner/PresignPoolStatus",
            CosignerMethod::SignWithPresignature => {
                "/wallet.cosigner.v1.Cosigner/SignWithPresignature"
            }
            CosignerMethod::ListAccounts => "/wallet.cosigner.v1.Cosigner/ListAccounts",
            CosignerMethod::RevokeDevice => "/wallet.cosigner.v1.Cosigner/RevokeDevice",
            CosignerMethod::FreezeWallet => "/wallet.cosigner.v1.Cosigner/FreezeWallet",
            CosignerMethod::UnfreezeWallet => "/wallet.cosigner.v1.Cosigner/UnfreezeWallet",
            CosignerMethod::StartRefresh => "/wallet.cosigner.v1.Cosigner/StartRefresh",
            CosignerMethod::ReplaceDevice => "/wallet.cosigner.v1.Cosigner/ReplaceDevice",
            CosignerMethod::ConfirmLifecycle => "/wallet.cosigner.v1.Cosigner/ConfirmLifecycle",
        }
    }
}

/// One request to the cosigner, signed, ready to send unchanged.
#[derive(Debug, Clone, PartialEq)]
pub enum CosignerRequest {
    /// `Health`.
    Health(pb::HealthRequest),
    /// `EnrollDevice`.
    EnrollDevice(pb::EnrollDeviceRequest),
    /// `CreateWallet`.
    CreateWallet(pb::CreateWalletRequest),
    /// `ConfirmWallet`.
    ConfirmWallet(pb::ConfirmWalletRequest),
    /// `StartSign`.
    StartSign(pb::StartSignRequest),
    /// `StartPresign`.
    StartPresign(pb::StartPresignRequest),
    /// `PresignPoolStatus`.
    PresignPoolStatus(pb::PresignPoolStatusRequest),
    /// `SignWithPresignature`.
    SignWithPresignature(pb::SignWithPresignatureRequest),
    /// `ListAccounts`.
    ListAccounts(pb::ListAccountsRequest),
    /// `RevokeDevice`.
    RevokeDevice(pb::RevokeDeviceRequest),
    /// `FreezeWallet`.
    FreezeWallet(pb::FreezeWalletRequest),
    /// `UnfreezeWallet`.
    UnfreezeWallet(pb::UnfreezeWalletRequest),
    /// `StartRefresh`.
    StartRefresh(pb::StartRefreshRequest),
    /// `ReplaceDevice`.
    ReplaceDevice(pb::ReplaceDeviceRequest),
    /// `ConfirmLifecycle`.
    ConfirmLifecycle(pb::ConfirmLifecycleRequest),
}

impl CosignerRequest {
    /// The RPC.
    pub fn method(&self) -> CosignerMethod {
        match self {
            CosignerRequest::Health(_) => CosignerMethod::Health,
            CosignerRequest::EnrollDevice(_) => CosignerMethod::EnrollDevice,
            CosignerRequest::CreateWallet(_) => CosignerMethod::CreateWallet,
            CosignerRequest::ConfirmWallet(_) => CosignerMethod::ConfirmWallet,
            CosignerRequest::StartSign(_) => CosignerMethod::StartSign,
            CosignerRequest::StartPresign(_) => CosignerMethod::StartPresign,
            CosignerRequest::PresignPoolStatus(_) => CosignerMethod::PresignPoolStatus,
            CosignerRequest::SignWithPresignature(_) => CosignerMethod::SignWithPresignature,
            CosignerRequest::ListAccounts(_) => CosignerMethod::ListAccounts,
            CosignerRequest::RevokeDevice(_) => CosignerMethod::RevokeDevice,
            CosignerRequest::FreezeWallet(_) => CosignerMethod::FreezeWallet,
            CosignerRequest::UnfreezeWallet(_) => CosignerMethod::UnfreezeWallet,
            CosignerRequest::StartRefresh(_) => CosignerMethod::StartRefresh,
            CosignerRequest::ReplaceDevice(_) => CosignerMethod::ReplaceDevice,
            CosignerRequest::ConfirmLifecycle(_) => CosignerMethod::ConfirmLifecycle,
        }
    }

    /// The HTTP path of the RPC ([`CosignerMethod::path`]).
    pub fn path(&self) -> &'static str {
        self.method().path()
    }

    /// The protobuf encoding of the message (the gRPC-web body without its frame).
    pub fn encode_to_vec(&self) -> Vec<u8> {
        match self {
            CosignerRequest::Health(r) => r.encode_to_vec(),
            CosignerRequest::EnrollDevice(r) => r.encode_to_vec(),
            CosignerRequest::CreateWallet(r) => r.encode_to_vec(),
            CosignerRequest::ConfirmWallet(r) => r.encode_to_vec(),
            CosignerRequest::StartSign(r) => r.encode_to_vec(),
            CosignerRequest::StartPresign(r) => r.encode_to_vec(),
            CosignerRequest::PresignPoolStatus(r) => r.encode_to_vec(),
            CosignerRequest::SignWithPresignature(r) => r.encode_to_vec(),
            CosignerRequest::ListAccounts(r) => r.encode_to_vec(),
            CosignerRequest::RevokeDevice(r) => r.encode_to_vec(),
            CosignerRequest::FreezeWallet(r) => r.encode_to_vec(),
            CosignerRequest::UnfreezeWallet(r) => r.encode_to_vec(),
            CosignerRequest::StartRefresh(r) => r.encode_to_vec(),
            CosignerRequest::ReplaceDevice(r) => r.encode_to_vec(),
            CosignerRequest::ConfirmLifecycle(r) => r.encode_to_vec(),
        }
    }
}

/// The cosigner's answer to a [`CosignerRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum CosignerResponse {
    /// `Health`.
    Health(pb::HealthResponse),
    /// `EnrollDevice`.
    EnrollDevice(pb::EnrollDeviceResponse),
    /// `CreateWallet`.
    CreateWallet(pb::CreateWalletResponse),
    /// `ConfirmWallet`.
    ConfirmWallet(pb::ConfirmWalletResponse),
    /// `StartSign`.
    StartSign(pb::StartSignResponse),
    /// `StartPresign`.
    StartPresign(pb::StartPresignResponse),
    /// `PresignPoolStatus`.
    PresignPoolStatus(pb::PresignPoolStatusResponse),
    /// `SignWithPresignature`.
    SignWithPresignature(pb::SignWithPresignatureResponse),
    /// `ListAccounts`.
    ListAccounts(pb::ListAccountsResponse),
    /// `RevokeDevice`, `FreezeWallet` or `UnfreezeWallet` (the method says which).
    WalletControls(CosignerMethod, pb::WalletControlsResponse),
    /// `StartRefresh` or `ReplaceDevice` (the method says which).
    Lifecycle(CosignerMethod, pb::LifecycleResponse),
    /// `ConfirmLifecycle`.
    ConfirmLifecycle(pb::ConfirmLifecycleResponse),
}

impl CosignerResponse {
    /// The RPC this answers.
    pub fn method(&self) -> CosignerMethod {
        match self {
            CosignerResponse::Health(_) => CosignerMethod::Health,
            CosignerResponse::EnrollDevice(_) => CosignerMethod::EnrollDevice,
            CosignerResponse::CreateWallet(_) => CosignerMethod::CreateWallet,
            CosignerResponse::ConfirmWallet(_) => CosignerMethod::ConfirmWallet,
            CosignerResponse::StartSign(_) => CosignerMethod::StartSign,
            CosignerResponse::StartPresign(_) => CosignerMethod::StartPresign,
            CosignerResponse::PresignPoolStatus(_) => CosignerMethod::PresignPoolStatus,
            CosignerResponse::SignWithPresignature(_) => CosignerMethod::SignWithPresignature,
            CosignerResponse::ListAccounts(_) => CosignerMethod::ListAccounts,
            CosignerResponse::WalletControls(m, _) => *m,
            CosignerResponse::Lifecycle(m, _) => *m,
            CosignerResponse::ConfirmLifecycle(_) => CosignerMethod::ConfirmLifecycle,
        }
    }

    /// The protobuf encoding of the message (what a gRPC-web driver receives).
    pub fn encode_to_vec(&self) -> Vec<u8> {
        match self {
            CosignerResponse::Health(m) => m.encode_to_vec(),
            CosignerResponse::EnrollDevice(m) => m.encode_to_vec(),
            CosignerResponse::CreateWallet(m) => m.encode_to_vec(),
            CosignerResponse::ConfirmWallet(m) => m.encode_to_vec(),
            CosignerResponse::StartSign(m) => m.encode_to_vec(),
            CosignerResponse::StartPresign(m) => m.encode_to_vec(),
            CosignerResponse::PresignPoolStatus(m) => m.encode_to_vec(),
            CosignerResponse::SignWithPresignature(m) => m.encode_to_vec(),
            CosignerResponse::ListAccounts(m) => m.encode_to_vec(),
            CosignerResponse::WalletControls(_, m) => m.encode_to_vec(),
            CosignerResponse::Lifecycle(_, m) => m.encode_to_vec(),
            CosignerResponse::ConfirmLifecycle(m) => m.encode_to_vec(),
        }
    }

    /// Decodes the protobuf body of `method`'s response.
    pub fn decode(method: CosignerMethod, bytes: &[u8]) -> Result<Self, ClientError> {
        let bad = |e: prost::DecodeError| {
            ClientError::invalid_response(format!("{} response: {e}", method.name()))
        };
        Ok(match method {
            CosignerMethod::Health => {
                CosignerResponse::Health(pb::HealthResponse::decode(bytes).map_err(bad)?)
            }
            CosignerMethod::EnrollDevice => CosignerResponse::EnrollDevice(
                pb::EnrollDeviceResponse::decode(bytes).map_err(bad)?,
            ),
            CosignerMethod::CreateWallet => CosignerResponse::CreateWallet(
                pb::CreateWalletResponse::decode(bytes).map_err(bad)?,
            ),
            CosignerMethod::ConfirmWallet => CosignerResponse::ConfirmWallet(
                pb::ConfirmWalletResponse::decode(bytes).map_err(bad)?,
            ),
            CosignerMethod::StartSign => {
                CosignerResponse::StartSign(pb::StartSignResponse::decode(bytes).map_err(bad)?)
            }
            CosignerMethod::StartPresign => CosignerResponse::StartPresign(
                pb::StartPresignResponse::decode(bytes).map_err(bad)?,
            ),
            CosignerMethod::PresignPoolStatus => CosignerResponse::PresignPoolStatus(
                pb::PresignPoolStatusResponse::decode(bytes).map_err(bad)?,
            ),
            CosignerMethod::SignWithPresignature => CosignerResponse::SignWithPresignature(
                pb::SignWithPresignatureResponse::decode(bytes).map_err(bad)?,
            ),
            CosignerMethod::ListAccounts => CosignerResponse::ListAccounts(
                pb::ListAccountsResponse::decode(bytes).map_err(bad)?,
            ),
            m @ (CosignerMethod::RevokeDevice
            | CosignerMethod::FreezeWallet
            | CosignerMethod::UnfreezeWallet) => CosignerResponse::WalletControls(
                m,
                pb::WalletControlsResponse::decode(bytes).map_err(bad)?,
            ),
            m @ (CosignerMethod::StartRefresh | CosignerMethod::ReplaceDevice) => {
                CosignerResponse::Lifecycle(m, pb::LifecycleResponse::decode(bytes).map_err(bad)?)
            }
            CosignerMethod::ConfirmLifecycle => CosignerResponse::ConfirmLifecycle(
                pb::ConfirmLifecycleResponse::decode(bytes).map_err(bad)?,
            ),
        })
    }
}

/// Who signs a request.
#[derive(Clone)]
pub(crate) enum Signer {
    /// Nobody (`Health`).
    None,
    /// The new device identity (`EnrollDevice`, `CreateWallet`), for the cosigner `audience` (its
    /// identity from `Health`).
    Device {
        key: IdentityKey,
        audience: PublicIdentity,
    },
    /// A registered party of a wallet, for the cosigner `audience` (the wallet's
    /// party 1; `None` when the key-share bundle holds no valid identity of it, an error
    /// at signing time).
    Party {
        key: IdentityKey,
        wallet_id: String,
        party: u16,
        audience: Option<PublicIdentity>,
    },
    /// The recovery party (`party`, a [`Signer::Party`]) asking to replace the device
    /// with `new_device`, whose proof of possession
    /// (`auth::replace_device_possession_message`) binds the request's auth.
    Replacing {
        party: Box<Signer>,
        new_device: IdentityKey,
    },
    /// The recovery party (`party`, a [`Signer::Party`]) asking to replace the device,
    /// with the new device's proof of possession made elsewhere (the browser page) over
    /// the auth at `timestamp_ms` and `nonce`: the request is signed at exactly those.
    WithPossession {
        party: Box<Signer>,
        timestamp_ms: u64,
        nonce: [u8; auth::NONCE_LEN],
        signature: [u8; 64],
    },
}

/// An unsigned request and who signs it: signed at [`Unsigned::sign`] time with the
/// driver's clock and a fresh nonce.
#[derive(Clone)]
pub(crate) struct Unsigned {
    pub request: CosignerRequest,
    pub signer: Signer,
}

impl Unsigned {
    pub fn new(request: CosignerRequest, signer: Signer) -> Self {
        Unsigned { request, signer }
    }

    /// The request signed at `now_ms` (milliseconds since the Unix epoch).
    pub fn sign(&self, now_ms: u64) -> Result<CosignerRequest, ClientError> {
        let nonce = auth::random_nonce().map_err(|e| ClientError::internal(e.to_string()))?;
        self.sign_with(now_ms, nonce)
    }

    /// The request signed at `now_ms` with `nonce`.
    fn sign_with(
        &self,
        now_ms: u64,
        nonce: [u8; auth::NONCE_LEN],
    ) -> Result<CosignerRequest, ClientError> {
        let mut req = self.request.clone();
        if let Signer::WithPossession {
            party,
            timestamp_ms,
            nonce,
            signature,
        } = &self.signer
        {
            if !matches!(**party, Signer::Party { .. }) {
                return Err(ClientError::internal(
                    "a proof of possession without a party",
                ));
            }
            let signed = Unsigned::new(req, (**party).clone()).sign_with(*timestamp_ms, *nonce)?;
            let CosignerRequest::ReplaceDevice(mut r) = signed else {
                return Err(ClientError::internal(
                    "only a ReplaceDevice request carries a proof of possession",
                ));
            };
            r.new_device_signature = signature.to_vec();
            return Ok(CosignerRequest::ReplaceDevice(r));
        }
        let err =
            |e: auth::AuthError| ClientError::internal(format!("cannot sign the request: {e}"));
        if let Signer::Replacing { party, new_device } = &self.signer {
            return sign_replacement(&self.request, party, new_device, now_ms);
        }
        match (&self.signer, &mut req) {
            (Signer::None, CosignerRequest::Health(_)) => {}
            (Signer::Device { key, audience }, CosignerRequest::CreateWallet(r)) => {
                auth::sign_device_request_at(r, key, audience, now_ms, nonce).map_err(err)?
            }
            (Signer::Device { key, audience }, CosignerRequest::EnrollDevice(r)) => {
                auth::sign_device_request_at(r, key, audience, now_ms, nonce).map_err(err)?
            }
            (
                Signer::Party {
                    key,
                    wallet_id,
                    party,
                    audience,
                },
                r,
            ) => {
                let a = audience.as_ref().ok_or_else(|| {
                    ClientError::internal(
                        "the key-share bundle holds no valid identity of the cosigner (party 1)",
                    )
                })?;
                let (k, w, p) = (key, wallet_id.as_str(), *party);
                match r {
                    CosignerRequest::ConfirmWallet(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::StartSign(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::StartPresign(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::PresignPoolStatus(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::SignWithPresignature(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::ListAccounts(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::RevokeDevice(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::FreezeWallet(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::UnfreezeWallet(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::StartRefresh(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::ReplaceDevice(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::ConfirmLifecycle(r) => {
                        auth::sign_request_at(r, k, a, w, p, now_ms, nonce).map_err(err)?
                    }
                    CosignerRequest::Health(_)
                    | CosignerRequest::CreateWallet(_)
                    | CosignerRequest::EnrollDevice(_) => {
                        return Err(ClientError::internal(
                            "a party-signed request of an unauthenticated method",
                        ))
                    }
                }
            }
            _ => return Err(ClientError::internal("request and signer do not match")),
        }
        Ok(req)
    }
}

/// A `ReplaceDevice` request signed by the recovery party, then the new device's proof
/// of possession over the auth it carries (audience, wallet, timestamp, nonce).
fn sign_replacement(
    request: &CosignerRequest,
    party: &Signer,
    new_device: &IdentityKey,
    now_ms: u64,
) -> Result<CosignerRequest, ClientError> {
    if !matches!(party, Signer::Party { .. })
        || !matches!(request, CosignerRequest::ReplaceDevice(_))
    {
        return Err(ClientError::internal(
            "only a party's ReplaceDevice request carries a new device's proof",
        ));
    }
    let signed = Unsigned::new(request.clone(), party.clone()).sign(now_ms)?;
    let CosignerRequest::ReplaceDevice(mut r) = signed else {
        return Err(ClientError::internal("signing changed the request"));
    };
    let a = r
        .auth
        .as_ref()
        .ok_or_else(|| ClientError::internal("the signed request has no auth"))?;
    let msg = auth::replace_device_possession_message(
        &a.audience,
        &a.wallet_id,
        &r.new_device_identity,
        a.timestamp_ms,
        &a.nonce,
    );
    let sig = auth::sign_bytes(new_device, &msg)
        .map_err(|e| ClientError::internal(format!("cannot sign the proof of possession: {e}")))?;
    r.new_device_signature = sig.to_vec();
    Ok(CosignerRequest::ReplaceDevice(r))
}

/// A reply for `method`: the response must be of that method.
pub(crate) fn check_reply(
    method: CosignerMethod,
    reply: &Result<CosignerResponse, RemoteError>,
) -> Result<(), ClientError> {
    match reply {
        Ok(r) if r.method() != method => Err(ClientError::internal(format!(
            "a {} response was given for a {} request",
            r.method().name(),
            method.name()
        ))),
        _ => Ok(()),
    }
}

/// Signer indices of a response (`u32` on the wire), sorted.
pub(crate) fn signer_list(v: &[u32]) -> Result<Vec<u16>, ClientError> {
    let mut out = v
        .iter()
        .map(|&s| {
            u16::try_from(s).map_err(|_| ClientError::invalid_response(format!("signer index {s}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    Ok(out)
}
