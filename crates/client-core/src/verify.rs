//! Every signature is verified before it is returned, then encoded every way.

use mpc_core::hd::DerivationPath;
use mpc_core::signature::{
    bitcoin_der, ethereum_signature, recover_ethereum_address, verify_digest,
};
use mpc_core::{address, Point, Signature};

use crate::error::ClientError;
use crate::types::{ChainStyle, SignedResult};

/// What a signature was made for.
pub(crate) struct Signing<'a> {
    pub account_id: &'a str,
    pub path: &'a DerivationPath,
    pub public_key: &'a Point,
    pub digest: &'a [u8; 32],
    pub chain: ChainStyle,
}

/// What a signing by the device and the recovery party must produce (both shares in
/// one process, [`crate::OfflineSign`], or one on each machine, [`crate::PairSign`]):
/// kept while the session runs, then checked by [`PairExpectation::finish`].
pub(crate) struct PairExpectation {
    pub account_id: String,
    pub path: DerivationPath,
    pub public_key: Point,
    pub digest: [u8; 32],
    pub chain: ChainStyle,
    pub session_id: String,
}

impl std::fmt::Debug for PairExpectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairExpectation")
            .field("account_id", &self.account_id)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl PairExpectation {
    /// Verifies the session's signature and encodes it (signers: the device and the
    /// recovery party; no cosigner request).
    pub(crate) fn finish(&self, sig: &Signature) -> Result<SignedResult, ClientError> {
        let signing = Signing {
            account_id: &self.account_id,
            path: &self.path,
            public_key: &self.public_key,
            digest: &self.digest,
            chain: self.chain,
        };
        finish(
            &signing,
            sig,
            vec![wallet_types::DEVICE, wallet_types::RECOVERY],
            self.session_id.clone(),
            String::new(),
            false,
        )
    }
}

/// Verifies `sig` against the (derived) public key and the digest, checks that the
/// Ethereum form recovers to the key's address, and encodes it.
pub(crate) fn finish(
    s: &Signing<'_>,
    sig: &Signature,
    signers: Vec<u16>,
    session_id: String,
    request_id: String,
    presigned: bool,
) -> Result<SignedResult, ClientError> {
    verify_digest(s.public_key, s.digest, sig).map_err(|e| ClientError::VerificationFailed {
        reason: format!("the signature does not verify against the account key: {e}"),
    })?;
    let eth = ethereum_signature(s.public_key, s.digest, sig, s.chain.into())?;
    let addr = address::ethereum_address(s.public_key);
    let recovered = recover_ethereum_address(s.digest, &eth)?;
    if recovered != addr {
        return Err(ClientError::VerificationFailed {
            reason: format!("recovers to {recovered}, not {addr}"),
        });
    }
    Ok(SignedResult {
        account_id: s.account_id.to_string(),
        derivation_path: s.path.to_string(),
        r: hex::encode(eth.r),
        s: hex::encode(eth.s),
        y_parity: eth.y_parity,
        v: eth.v,
        rsv: hex::encode(eth.to_rsv_bytes()),
        der: hex::encode(bitcoin_der(sig)?),
        digest: hex::encode(s.digest),
        public_key: hex::encode(s.public_key.to_bytes(true)),
        ethereum_address: addr,
        signers,
        session_id,
        request_id,
        elapsed_ms: 0,
        presigned,
    })
}

/// Verifies an Ethereum signature (`r || s || v`, 65 bytes hex, v = 27/28, 0/1 or
/// EIP-155) over the keccak-256 of `preimage` against an address; returns the
/// recovered EIP-55 address.
pub fn verify_ethereum(
    preimage: &[u8],
    rsv_hex: &str,
    expected_address: &str,
) -> Result<String, ClientError> {
    let bytes = hex::decode(rsv_hex.trim().trim_start_matches("0x"))
        .map_err(|e| ClientError::input(format!("signature is not hex: {e}")))?;
    if bytes.len() != 65 {
        return Err(ClientError::input(format!(
            "signature must be 65 bytes (r, s, v), got {}",
            bytes.len()
        )));
    }
    let v = u64::from(bytes[64]);
    let y_parity = match v {
        0 | 1 => v as u8,
        27 | 28 => (v - 27) as u8,
        v if v >= 35 => ((v - 35) % 2) as u8,
        other => return Err(ClientError::input(format!("invalid v {other}"))),
    };
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&bytes[..32]);
    s.copy_from_slice(&bytes[32..64]);
    let sig = mpc_core::signature::EthereumSignature { r, s, y_parity, v };
    let digest = mpc_core::digest::digest(wallet_types::DigestKind::Keccak256, preimage);
    let recovered =
        recover_ethereum_address(&digest, &sig).map_err(|e| ClientError::VerificationFailed {
            reason: e.to_string(),
        })?;
    if !recovered.eq_ignore_ascii_case(expected_address.trim()) {
        return Err(ClientError::VerificationFailed {
            reason: format!("signed by {recovered}, not {expected_address}"),
        });
    }
    Ok(recovered)
}

/// Checks a preimage's size (1 byte to [`wallet_types::MAX_PREIMAGE_LEN`]).
pub(crate) fn check_preimage(preimage: &[u8]) -> Result<(), ClientError> {
    if preimage.is_empty() {
        return Err(ClientError::input("the preimage is empty"));
    }
    if preimage.len() > wallet_types::MAX_PREIMAGE_LEN {
        return Err(ClientError::input(format!(
            "the preimage has {} bytes; at most {} are accepted",
            preimage.len(),
            wallet_types::MAX_PREIMAGE_LEN
        )));
    }
    Ok(())
}
