//! Issue 17 items 4 and 5 at the system level, with real processes (gateway +
//! cosigner; the device and recovery parties in-process): a proactive refresh
//! (StartRefresh → every party's `Session::refresh` → ConfirmLifecycle by both user
//! parties) and the replacement of a device keeping every address (ReplaceDevice → aux
//! info of the new group, repair of index 0 for the new device, refresh → both
//! confirm), and the attacks on them: a device-signed or badly proven ReplaceDevice, a
//! second session, early, foreign, replayed and mismatching confirmations.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use cosigner_api::auth::{self, AuthenticatedRequest};
use cosigner_api::pb::{self, DigestKind, PayloadKind};
use cosigner_api::{RemoteError, WalletRefusal};
use mpc_core::{Account, AccountKind, AuxInfo, IncompleteKeyShare, Session, SessionOutput};
use mpc_party::run_session;
use mpc_wire::{IdentityKey, PublicIdentity, Roster};
use tonic::transport::Channel;
use wallet_types::ErrorCode;

type Client = cosigner_api::pb::cosigner_client::CosignerClient<Channel>;

fn signed<R: AuthenticatedRequest>(mut req: R, w: &Wallet, key: &IdentityKey, party: u16) -> R {
    auth::sign_request(&mut req, key, &w.cosigner, &w.id, party).expect("sign");
    req
}

fn list(w: &Wallet, key: &IdentityKey, party: u16) -> pb::ListAccountsRequest {
    signed(pb::ListAccountsRequest { auth: None }, w, key, party)
}

async fn accounts(
    client: &mut Client,
    w: &Wallet,
    key: &IdentityKey,
    party: u16,
) -> Vec<pb::AccountInfo> {
    client
        .list_accounts(list(w, key, party))
        .await
        .expect("ListAccounts")
        .into_inner()
        .accounts
}

fn refresh_req(w: &Wallet, key: &IdentityKey, party: u16) -> pb::StartRefreshRequest {
    signed(pb::StartRefreshRequest { auth: None }, w, key, party)
}

/// A ReplaceDevice signed by `key` as `party`, naming `new` with its proof of
/// possession signed by `prover`.
fn replace_req(
    w: &Wallet,
    key: &IdentityKey,
    party: u16,
    new: &str,
    prover: &IdentityKey,
) -> pb::ReplaceDeviceRequest {
    let mut req = signed(
        pb::ReplaceDeviceRequest {
            auth: None,
            new_device_identity: new.to_string(),
            new_device_signature: Vec::new(),
            reason: "phone fell in the lake".into(),
        },
        w,
        key,
        party,
    );
    let a = req.auth.clone().expect("auth");
    let m = auth::replace_device_possession_message(
        &a.audience,
        &a.wallet_id,
        new,
        a.timestamp_ms,
        &a.nonce,
    );
    req.new_device_signature = auth::sign_bytes(prover, &m).expect("sign").to_vec();
    req
}

fn confirm_req(
    w: &Wallet,
    key: &IdentityKey,
    party: u16,
    lifecycle_id: &str,
    digests: HashMap<String, String>,
) -> pb::ConfirmLifecycleRequest {
    signed(
        pb::ConfirmLifecycleRequest {
            auth: None,
            lifecycle_id: lifecycle_id.into(),
            share_digests: digests,
        },
        w,
        key,
        party,
    )
}

/// The digests a party reports: every account's new share at `epoch`.
fn digests(shares: &[(String, IncompleteKeyShare)], epoch: u64) -> HashMap<String, String> {
    shares
        .iter()
        .map(|(id, s)| {
            let d = mpc_core::lifecycle::public_data_digest(s, epoch).expect("digest");
            (id.clone(), hex::encode(d))
        })
        .collect()
}

fn roster(device: PublicIdentity, w: &Wallet) -> Roster {
    Roster::new([(0, device), (1, w.cosigner), (2, w.recovery.public())]).expect("roster")
}

/// One party's refresh of `share` (epoch `epoch`) in `room`.
async fn refresh_party(
    w: &Wallet,
    room: &pb::SessionRoom,
    me: u16,
    id: &IdentityKey,
    roster: &Roster,
    share: IncompleteKeyShare,
    epoch: u64,
) -> IncompleteKeyShare {
    let sid = room.session_id.clone().into_bytes();
    let out = run_session(
        ctx(&w.gw, room, me, id, roster),
        move || Session::refresh(&sid, &share, epoch),
        |_| {},
    )
    .await
    .expect("refresh session");
    let SessionOutput::Refreshed(new) = out else {
        panic!("refresh output")
    };
    assert_eq!(new.epoch, epoch + 1);
    new.share
}

/// The device and the recovery party refresh every account of `started` (a
/// StartRefresh answer): their new shares.
async fn run_refresh(
    w: &Wallet,
    started: &pb::LifecycleResponse,
) -> (
    Vec<(String, IncompleteKeyShare)>,
    Vec<(String, IncompleteKeyShare)>,
) {
    let r = roster(w.device.public(), w);
    let mut dev = Vec::new();
    let mut rec = Vec::new();
    for a in &started.accounts {
        let room = a.refresh.clone().expect("refresh room");
        let d_share = account_of(&w.device_accounts, &a.account_id).share.clone();
        let r_share = account_of(&w.recovery_accounts, &a.account_id)
            .share
            .clone();
        let (d, rr) = tokio::join!(
            refresh_party(w, &room, 0, &w.device, &r, d_share, started.epoch),
            refresh_party(w, &room, 2, &w.recovery, &r, r_share, started.epoch),
        );
        dev.push((a.account_id.clone(), d));
        rec.push((a.account_id.clone(), rr));
    }
    (dev, rec)
}

fn account_of<'a>(accounts: &'a [Account], id: &str) -> &'a Account {
    accounts.iter().find(|a| a.id == id).expect("account")
}

fn with_share(a: &Account, share: &IncompleteKeyShare) -> Account {
    let mut a = a.clone();
    a.share = share.clone();
    a
}

fn refusal(s: &tonic::Status) -> RemoteError {
    RemoteError::from(s)
}

/// A StartSign of the wallet's device (identity `w.device`) run with `share` + `aux` on
/// the device's side: whether a valid signature came out within a minute.
async fn signs_with(client: &mut Client, w: &Wallet, share: &Account, aux: &AuxInfo) -> bool {
    let req = message_sign_request(w, b"mixed shares");
    let preimage = req.preimage.clone();
    let started = match client.start_sign(req).await {
        Ok(s) => s.into_inner(),
        Err(_) => return false,
    };
    let room = started.session.expect("room");
    let key = share.complete(aux).expect("complete");
    let sid = room.session_id.clone().into_bytes();
    let roster = Roster::new([(0, w.device.public()), (1, w.cosigner)]).expect("roster");
    let data = mpc_core::DigestKind::Keccak256.data_to_sign(&preimage);
    let run = run_session(
        ctx(&w.gw, &room, 0, &w.device, &roster),
        move || Session::sign(&sid, vec![0, 1], key, None, data),
        |_| {},
    );
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(Ok(SessionOutput::Signature(sig))) => mpc_core::signature::verify_digest(
            &share.master_public_key(),
            &mpc_core::DigestKind::Keccak256.digest(&preimage),
            &sig,
        )
        .is_ok(),
        _ => false,
    }
}

/// Where the tests' HD accounts presign (HD pools live at BIP-44-style paths).
const PRESIGN_PATH: &str = "m/44/60/0/0/0";

fn presig_sign(w: &Wallet, id: &str) -> pb::SignWithPresignatureRequest {
    signed(
        pb::SignWithPresignatureRequest {
            auth: None,
            account_id: "account-0".into(),
            presignature_id: id.into(),
            preimage: mpc_core::digest::eip191_preimage(b"with an old presignature"),
            digest: DigestKind::Keccak256 as i32,
            payload_kind: PayloadKind::EthereumMessage as i32,
            derivation_path: PRESIGN_PATH.into(),
            ..Default::default()
        },
        w,
        &w.device,
        0,
    )
}

/// The two flows end to end.
mod flows;

/// The attacks and the failures that must change nothing.
mod attacks;
