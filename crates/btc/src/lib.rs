//! The wallet's one Bitcoin codec, on rust-bitcoin (`bitcoin` 0.32) and `miniscript` 12.
//!
//! Everything Bitcoin-specific that the device, the recovery party and the cosigner must
//! agree on: no transaction serialization or sighash is written here, the `bitcoin`
//! crate computes them.
//!
//! # Keys, addresses, descriptors
//! [`WalletKeys`] is built from the threshold wallet's root public key and chain code.
//! The threshold key has no private key anywhere, so only **non-hardened** BIP-32 steps
//! exist (the same public derivation as `mpc-core`'s `hd::derive_public_key`); hardened
//! paths are refused with [`BtcError::HardenedPath`]. Accounts therefore use BIP-84's
//! layout without the hardened marks: [`default_account_path`] is `m/84/0/0` on mainnet
//! and `m/84/1/0` on testnet, signet and regtest; receive addresses are `account/0/i`,
//! change `account/1/i`. [`WalletKeys::descriptors`] exports
//! `wpkh([root_fingerprint/84/0/0]xpub…/0/*)#checksum` (and `/1/*`): the key origin
//! carries the ROOT fingerprint and the full path, so a watch-only Bitcoin Core or
//! Sparrow wallet writes PSBT derivation entries this crate recognises. Only P2WPKH
//! (native SegWit v0) addresses are made.
//!
//! # PSBT
//! [`analyze_psbt`] accepts a PSBT, binary or base64, BIP-174 **version 0** (read by the
//! `bitcoin` crate) or BIP-370 **version 2** (read by rust-bitcoin's `psbt-v2` crate and
//! converted to the version 0 model, so both versions go through the same checks), and
//! checks, before anything is signed:
//! - it decodes (base64, then BIP-174), is at most [`MAX_PSBT_BYTES`], has inputs and
//!   outputs, and no outpoint is spent twice;
//! - every input has a `witness_utxo`, or a `non_witness_utxo` whose txid is the
//!   outpoint's (when both are given they must agree, amount and script);
//! - every spent script is P2WPKH (Taproot, P2PKH, P2SH, P2WSH and others are
//!   [`BtcError::UnsupportedScript`]);
//! - every input is the wallet's: a `bip32_derivation` entry carries the root fingerprint
//!   and a non-hardened path that derives exactly the listed key, whose P2WPKH script is
//!   the spent script. Any input that is not is [`BtcError::NotOurInput`]: a PSBT is
//!   signed whole or not at all;
//! - the sighash type is absent or SIGHASH_ALL;
//! - amounts are at most 21 million BTC and sums do not overflow; outputs do not exceed
//!   inputs.
//!
//! The [`PsbtPlan`] gives each input's path, key, amount, BIP-143 preimage and sighash,
//! and for policy each output's address, amount and whether it is change (it carries a
//! `bip32_derivation` of ours whose key's P2WPKH script is the output's), the totals, the
//! fee, the predicted virtual size of the signed transaction and the fee rate.
//!
//! [`finalize_psbt`] takes one threshold signature per input (DER or `r‖s`), normalizes
//! it to **low S** (the protocol may return high S; Bitcoin relays only low S), verifies
//! it against the sighash and key, finalizes each input (witness `[sig, key]`) and
//! extracts the transaction.
//!
//! A version 2 PSBT is returned finalized as version 2 (its modifiable flags cleared,
//! as BIP-370 asks of a SIGHASH_ALL signer; like version 0 and Bitcoin Core, no empty
//! final scriptSig is written for native SegWit inputs, although `psbt-v2` 0.3's own
//! `is_finalized` expects one); other versions are
//! [`BtcError::UnsupportedPsbtVersion`]. `psbt-v2` reserves memory for the map counts a
//! PSBT declares before reading the maps: counts larger than the PSBT are refused first.
//!
//! # Dependencies
//! `bitcoin` depends on `secp256k1` (libsecp256k1, vendored C, built with `cc`): building
//! this crate for wasm32 needs clang. libbitcoinconsensus (`bitcoinconsensus`, C++) is a
//! dev-dependency only: the tests verify every signed input with Bitcoin Core's script
//! interpreter.

#![forbid(unsafe_code, missing_docs)]

mod error;
mod keys;
mod network;
mod psbt;
#[cfg(feature = "testing")]
pub mod testing;
mod v2;

pub use error::{BtcError, ScriptKind};
pub use keys::{
    check_non_hardened, default_account_path, descriptor_checksum, p2wpkh_script, parse_path,
    path_string, AccountDescriptors, WalletKeys, BIP84_PURPOSE,
};
pub use network::Network;
pub use psbt::{
    analyze_psbt, decode_psbt, encode_psbt, finalize_psbt, psbt_binary, segwit_v0_sighash,
    InputPlan, InputSignature, OutputPlan, PsbtPlan, SignedPsbt, MAX_PSBT_BYTES,
};

/// The `bitcoin` crate this codec is built on (for callers' types: `Psbt`, `Address`, …).
pub use bitcoin;
