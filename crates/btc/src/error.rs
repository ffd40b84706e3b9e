//! The crate's one error type.

use std::fmt;

/// The kind of a spent output script that this wallet does not sign for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    /// Pay-to-public-key-hash (legacy, `1…` / `m…`).
    P2pkh,
    /// Pay-to-script-hash (including nested SegWit).
    P2sh,
    /// Pay-to-witness-script-hash.
    P2wsh,
    /// Taproot (SegWit v1); the threshold ECDSA key cannot make Schnorr signatures.
    P2tr,
    /// Anything else (bare multisig, P2PK, future witness versions, non-standard).
    Other,
}

impl fmt::Display for ScriptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScriptKind::P2pkh => "p2pkh",
            ScriptKind::P2sh => "p2sh",
            ScriptKind::P2wsh => "p2wsh",
            ScriptKind::P2tr => "p2tr",
            ScriptKind::Other => "other",
        })
    }
}

/// Every way a key, path, PSBT or signature can be refused.
///
/// Variants carry the input or output index they concern, so a caller can point at it;
/// [`BtcError::code`] gives a stable machine-readable name for crossing process and
/// language boundaries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BtcError {
    /// The root public key is not a valid compressed SEC1 secp256k1 point.
    #[error("invalid root public key: {0}")]
    InvalidPublicKey(String),
    /// A derivation path could not be parsed.
    #[error("invalid derivation path {path:?}: {reason}")]
    InvalidPath {
        /// The text given.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A derivation path has a hardened step, which the threshold key cannot derive.
    #[error("derivation path {path} has a hardened step; the threshold key derives non-hardened children only")]
    HardenedPath {
        /// The path, as written by `bitcoin`.
        path: String,
    },
    /// The network name is not one of mainnet/bitcoin, testnet, signet, regtest.
    #[error("unknown network {0:?} (expected mainnet, testnet, signet or regtest)")]
    UnknownNetwork(String),
    /// The text is neither a binary PSBT nor valid base64.
    #[error("PSBT is neither binary (magic `psbt\\xff`) nor valid base64")]
    InvalidBase64,
    /// The PSBT is larger than [`crate::MAX_PSBT_BYTES`].
    #[error("PSBT of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// The bytes are not a well-formed BIP-174 (version 0) or BIP-370 (version 2) PSBT.
    #[error("malformed PSBT: {0}")]
    InvalidPsbt(String),
    /// The PSBT declares a version other than 0 or 2.
    #[error("PSBT version {version} is not supported (versions 0 and 2 are)")]
    UnsupportedPsbtVersion {
        /// The declared version.
        version: u32,
    },
    /// The transaction has no inputs.
    #[error("the transaction has no inputs")]
    NoInputs,
    /// The transaction has no outputs.
    #[error("the transaction has no outputs")]
    NoOutputs,
    /// Two inputs spend the same outpoint.
    #[error("input {input} spends the same outpoint as an earlier input")]
    DuplicateInput {
        /// Input index.
        input: usize,
    },
    /// The input is already finalized (has a final scriptSig or witness).
    #[error("input {input} is already finalized")]
    AlreadyFinalized {
        /// Input index.
        input: usize,
    },
    /// The input has neither `witness_utxo` nor `non_witness_utxo`.
    #[error("input {input} has no witness UTXO (nor a previous transaction)")]
    MissingUtxo {
        /// Input index.
        input: usize,
    },
    /// The `non_witness_utxo` is not the transaction the input spends, or has no such output,
    /// or its output's script differs from the `witness_utxo`.
    #[error("input {input}: {reason}")]
    UtxoMismatch {
        /// Input index.
        input: usize,
        /// What does not match.
        reason: &'static str,
    },
    /// `witness_utxo` and `non_witness_utxo` disagree on the spent amount.
    #[error("input {input}: witness UTXO amount {witness_sats} differs from the previous transaction's {previous_sats}")]
    AmountMismatch {
        /// Input index.
        input: usize,
        /// Amount in `witness_utxo`.
        witness_sats: u64,
        /// Amount in `non_witness_utxo`.
        previous_sats: u64,
    },
    /// The spent script is not P2WPKH.
    #[error("input {input} spends a {kind} output; only P2WPKH is supported")]
    UnsupportedScript {
        /// Input index.
        input: usize,
        /// What it spends.
        kind: ScriptKind,
    },
    /// The input's sighash type is not `SIGHASH_ALL`.
    #[error("input {input} asks for sighash type {sighash:#x}; only SIGHASH_ALL is signed")]
    UnsupportedSighash {
        /// Input index.
        input: usize,
        /// The requested type.
        sighash: u32,
    },
    /// No `bip32_derivation` entry of the input proves it is the wallet's: none has the
    /// root fingerprint and a non-hardened path deriving to the listed key whose P2WPKH
    /// script is the spent one.
    #[error("input {input} does not belong to this wallet")]
    NotOurInput {
        /// Input index.
        input: usize,
    },
    /// An amount exceeds 21 million BTC, or a sum overflows.
    #[error("amount out of range (above 21 million BTC)")]
    AmountOverflow,
    /// The outputs spend more than the inputs bring.
    #[error("outputs ({total_out_sats} sat) exceed inputs ({total_in_sats} sat)")]
    NegativeFee {
        /// Sum of the inputs.
        total_in_sats: u64,
        /// Sum of the outputs.
        total_out_sats: u64,
    },
    /// The `bitcoin` crate refused to compute a sighash.
    #[error("sighash of input {input}: {reason}")]
    Sighash {
        /// Input index.
        input: usize,
        /// The library's reason.
        reason: String,
    },
    /// A signature was given for an input the transaction does not have.
    #[error("signature for input {input}, which does not exist")]
    UnknownInput {
        /// Input index.
        input: usize,
    },
    /// Two signatures were given for one input.
    #[error("two signatures for input {input}")]
    DuplicateSignature {
        /// Input index.
        input: usize,
    },
    /// No signature was given for an input (nothing is ever finalized partially).
    #[error("no signature for input {input}")]
    MissingSignature {
        /// Input index.
        input: usize,
    },
    /// The signature bytes are not a strict DER (or 64-byte r‖s) ECDSA signature.
    #[error("signature for input {input} is not a valid DER or r||s ECDSA signature")]
    InvalidSignature {
        /// Input index.
        input: usize,
    },
    /// The signature does not verify against the input's sighash and public key.
    #[error("signature for input {input} does not verify against its sighash and key")]
    SignatureMismatch {
        /// Input index.
        input: usize,
    },
    /// The descriptor could not be built.
    #[error("descriptor: {0}")]
    Descriptor(String),
}

impl BtcError {
    /// A stable code naming the variant (`snake_case`), for errors that cross a process
    /// or language boundary.
    pub fn code(&self) -> &'static str {
        match self {
            BtcError::InvalidPublicKey(_) => "invalid_public_key",
            BtcError::InvalidPath { .. } => "invalid_path",
            BtcError::HardenedPath { .. } => "hardened_path",
            BtcError::UnknownNetwork(_) => "unknown_network",
            BtcError::InvalidBase64 => "invalid_base64",
            BtcError::TooLarge(_) => "too_large",
            BtcError::InvalidPsbt(_) => "invalid_psbt",
            BtcError::UnsupportedPsbtVersion { .. } => "unsupported_psbt_version",
            BtcError::NoInputs => "no_inputs",
            BtcError::NoOutputs => "no_outputs",
            BtcError::DuplicateInput { .. } => "duplicate_input",
            BtcError::AlreadyFinalized { .. } => "already_finalized",
            BtcError::MissingUtxo { .. } => "missing_utxo",
            BtcError::UtxoMismatch { .. } => "utxo_mismatch",
            BtcError::AmountMismatch { .. } => "amount_mismatch",
            BtcError::UnsupportedScript { .. } => "unsupported_script",
            BtcError::UnsupportedSighash { .. } => "unsupported_sighash",
            BtcError::NotOurInput { .. } => "not_our_input",
            BtcError::AmountOverflow => "amount_overflow",
            BtcError::NegativeFee { .. } => "negative_fee",
            BtcError::Sighash { .. } => "sighash",
            BtcError::UnknownInput { .. } => "unknown_input",
            BtcError::DuplicateSignature { .. } => "duplicate_signature",
            BtcError::MissingSignature { .. } => "missing_signature",
            BtcError::InvalidSignature { .. } => "invalid_signature",
            BtcError::SignatureMismatch { .. } => "signature_mismatch",
            BtcError::Descriptor(_) => "descriptor",
        }
    }
}
