//! PSBT (BIP-174, version 0) analysis before signing, and finalization after.
//!
//! [`analyze_psbt`] refuses anything it cannot fully account for and otherwise returns
//! a [`PsbtPlan`]: per input the path, key, amount, BIP-143 preimage and sighash to
//! sign; per output the destination, amount and whether it is the wallet's own change;
//! totals, fee and size for policy. [`finalize_psbt`] re-runs the same analysis, checks
//! each threshold signature against its sighash and key, and produces the final
//! witnesses and the broadcastable transaction.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bitcoin::bip32::DerivationPath;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash as _;
use bitcoin::psbt::{Input, Psbt};
use bitcoin::secp256k1::{self, ecdsa, Message};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::{predict_weight, InputWeightPrediction};
use bitcoin::{Address, Amount, Script, Transaction, TxOut, Witness};

use crate::keys::{p2wpkh_script, path_string};
use crate::{BtcError, Network, ScriptKind, WalletKeys};

/// The largest PSBT accepted (binary bytes, or base64 text), 4 MiB: more than any
/// standard transaction with its previous transactions needs.
pub const MAX_PSBT_BYTES: usize = 4 << 20;

const PSBT_MAGIC: &[u8] = b"psbt\xff";

/// One input to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputPlan {
    /// Input index in the transaction.
    pub index: usize,
    /// The wallet path of the key that signs it (non-hardened).
    pub path: DerivationPath,
    /// That key (compressed).
    pub public_key: secp256k1::PublicKey,
    /// The spent output's amount.
    pub amount_sats: u64,
    /// The BIP-143 signing data (preimage): what the threshold protocol signs with
    /// double SHA-256 when it must be given the message rather than its digest.
    pub preimage: Vec<u8>,
    /// The BIP-143 sighash (SIGHASH_ALL): double SHA-256 of `preimage`.
    pub sighash: [u8; 32],
}

impl InputPlan {
    /// The path written `m/84/0/0/0/5`.
    pub fn path_string(&self) -> String {
        path_string(&self.path)
    }
}

/// One output, as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPlan {
    /// Output index in the transaction.
    pub index: usize,
    /// The destination address on the analysis network, if the script has one.
    pub address: Option<String>,
    /// The output script, hex.
    pub script_hex: String,
    /// The amount.
    pub amount_sats: u64,
    /// Whether it pays back to the wallet: its `bip32_derivation` names a key of ours
    /// (root fingerprint, non-hardened path deriving to that key) whose P2WPKH script is
    /// exactly this output's script.
    pub is_change: bool,
    /// The wallet path of the change key, when `is_change`.
    pub change_path: Option<DerivationPath>,
}

/// Everything a signer and its policy need to know about a PSBT, computed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsbtPlan {
    /// The PSBT's version: 0 (BIP-174) or 2 (BIP-370).
    pub psbt_version: u32,
    /// The network the addresses are written for.
    pub network: Network,
    /// Txid of the (unsigned, so final) transaction, hex as block explorers show it.
    pub txid: String,
    /// Every input, in order; all of them are the wallet's.
    pub inputs: Vec<InputPlan>,
    /// Every output, in order.
    pub outputs: Vec<OutputPlan>,
    /// Sum of the inputs.
    pub total_in_sats: u64,
    /// Sum of the outputs.
    pub total_out_sats: u64,
    /// Sum of the outputs that are not change.
    pub external_out_sats: u64,
    /// `total_in - total_out`.
    pub fee_sats: u64,
    /// Virtual size of the finalized transaction, an upper bound: the `bitcoin` crate's
    /// weight prediction with every input a P2WPKH spend with a maximal (72-byte DER)
    /// signature.
    pub vsize: u64,
}

impl PsbtPlan {
    /// `fee_sats / vsize`, in sat/vB.
    pub fn fee_rate_sat_per_vb(&self) -> f64 {
        if self.vsize == 0 {
            return 0.0;
        }
        self.fee_sats as f64 / self.vsize as f64
    }
}

/// A decoded PSBT: always in the version 0 model (what is analyzed), plus the version 2
/// original when it was one (what is finalized and returned).
pub(crate) struct Decoded {
    pub v0: Psbt,
    pub v2: Option<psbt_v2::v2::Psbt>,
}

pub(crate) fn decode(input: &[u8]) -> Result<Decoded, BtcError> {
    if input.len() > MAX_PSBT_BYTES {
        return Err(BtcError::TooLarge(input.len()));
    }
    let decoded;
    let bytes = if input.starts_with(PSBT_MAGIC) {
        input
    } else {
        let text = input.trim_ascii();
        decoded = BASE64.decode(text).map_err(|_| BtcError::InvalidBase64)?;
        &decoded[..]
    };
    match crate::v2::scan_global(bytes) {
        Some(header) if header.version == 2 => {
            let (v2, v0) = crate::v2::decode(bytes, &header)?;
            Ok(Decoded { v0, v2: Some(v2) })
        }
        Some(header) if header.version != 0 => Err(BtcError::UnsupportedPsbtVersion {
            version: header.version,
        }),
        // Version 0, or not even a well-formed global map: the full parser says why.
        _ => Psbt::deserialize(bytes)
            .map(|v0| Decoded { v0, v2: None })
            .map_err(|e| BtcError::InvalidPsbt(e.to_string())),
    }
}

/// Decodes a PSBT given as binary (starting with the magic `psbt\xff`) or as base64
/// text (surrounding whitespace ignored), version 0 or 2. A version 2 PSBT is returned
/// in the version 0 model (the same unsigned transaction and the input and output fields
/// this crate reads).
pub fn decode_psbt(input: &[u8]) -> Result<Psbt, BtcError> {
    Ok(decode(input)?.v0)
}

/// The binary serialization of a PSBT given as binary (starting with the magic
/// `psbt\xff`, returned as is) or as base64 text (surrounding whitespace ignored),
/// without parsing it: the bytes a client sends on (e.g. to the cosigner). Refuses what
/// [`decode_psbt`] refuses before parsing ([`BtcError::TooLarge`],
/// [`BtcError::InvalidBase64`]).
pub fn psbt_binary(input: &[u8]) -> Result<Vec<u8>, BtcError> {
    if input.len() > MAX_PSBT_BYTES {
        return Err(BtcError::TooLarge(input.len()));
    }
    if input.starts_with(PSBT_MAGIC) {
        return Ok(input.to_vec());
    }
    BASE64
        .decode(input.trim_ascii())
        .map_err(|_| BtcError::InvalidBase64)
}

/// The PSBT as base64 (the form bitcoinjs-lib, Core and Sparrow exchange).
pub fn encode_psbt(psbt: &Psbt) -> String {
    BASE64.encode(psbt.serialize())
}

/// The BIP-143 sighash (SIGHASH_ALL) of input `input` of `tx` spending a P2WPKH output
/// with `spent_script` and `amount`, computed by the `bitcoin` crate.
pub fn segwit_v0_sighash(
    tx: &Transaction,
    input: usize,
    spent_script: &Script,
    amount: Amount,
) -> Result<[u8; 32], BtcError> {
    let mut cache = SighashCache::new(tx);
    cache
        .p2wpkh_signature_hash(input, spent_script, amount, EcdsaSighashType::All)
        .map(|h| h.to_byte_array())
        .map_err(|e| BtcError::Sighash {
            input,
            reason: e.to_string(),
        })
}

fn script_kind(script: &Script) -> Option<ScriptKind> {
    if script.is_p2wpkh() {
        None
    } else if script.is_p2tr() {
        Some(ScriptKind::P2tr)
    } else if script.is_p2pkh() {
        Some(ScriptKind::P2pkh)
    } else if script.is_p2sh() {
        Some(ScriptKind::P2sh)
    } else if script.is_p2wsh() {
        Some(ScriptKind::P2wsh)
    } else {
        Some(ScriptKind::Other)
    }
}

fn checked_amount(a: Amount) -> Result<u64, BtcError> {
    if a > Amount::MAX_MONEY {
        return Err(BtcError::AmountOverflow);
    }
    Ok(a.to_sat())
}

fn add_sats(total: u64, a: u64) -> Result<u64, BtcError> {
    total
        .checked_add(a)
        .filter(|t| *t <= Amount::MAX_MONEY.to_sat())
        .ok_or(BtcError::AmountOverflow)
}

/// The output an input spends, from `non_witness_utxo` (checked against the prevout) or
/// `witness_utxo` (both, when both are present, must agree).
fn spent_output(tx: &Transaction, index: usize, input: &Input) -> Result<TxOut, BtcError> {
    let prevout = tx.input[index].previous_output;
    let from_prev = match &input.non_witness_utxo {
        Some(prev) => {
            if prev.compute_txid() != prevout.txid {
                return Err(BtcError::UtxoMismatch {
                    input: index,
                    reason: "previous transaction's txid differs from the outpoint's",
                });
            }
            let out = usize::try_from(prevout.vout)
                .ok()
                .and_then(|v| prev.output.get(v))
                .ok_or(BtcError::UtxoMismatch {
                    input: index,
                    reason: "previous transaction has no such output",
                })?;
            Some(out.clone())
        }
        None => None,
    };
    match (&input.witness_utxo, from_prev) {
        (Some(w), Some(p)) => {
            if w.value != p.value {
                return Err(BtcError::AmountMismatch {
                    input: index,
                    witness_sats: w.value.to_sat(),
                    previous_sats: p.value.to_sat(),
                });
            }
            if w.script_pubkey != p.script_pubkey {
                return Err(BtcError::UtxoMismatch {
                    input: index,
                    reason: "witness UTXO script differs from the previous transaction's",
                });
            }
            Ok(p)
        }
        (Some(w), None) => Ok(w.clone()),
        (None, Some(p)) => Ok(p),
        (None, None) => Err(BtcError::MissingUtxo { input: index }),
    }
}

/// Decodes and checks a PSBT, and computes what to sign. See the crate docs for the
/// exact rules; any failure is returned before anything could be signed, and every
/// input must be the wallet's (nothing is signed partially).
pub fn analyze_psbt(
    psbt: impl AsRef<[u8]>,
    keys: &WalletKeys,
    network: Network,
) -> Result<PsbtPlan, BtcError> {
    let decoded = decode(psbt.as_ref())?;
    plan(&decoded, keys, network)
}

fn plan(decoded: &Decoded, keys: &WalletKeys, network: Network) -> Result<PsbtPlan, BtcError> {
    let psbt = &decoded.v0;
    let tx = &psbt.unsigned_tx;
    if tx.input.is_empty() {
        return Err(BtcError::NoInputs);
    }
    if tx.output.is_empty() {
        return Err(BtcError::NoOutputs);
    }
    let mut seen = BTreeSet::new();
    for (i, txin) in tx.input.iter().enumerate() {
        if !seen.insert(txin.previous_output) {
            return Err(BtcError::DuplicateInput { input: i });
        }
    }

    let mut cache = SighashCache::new(tx);
    let mut inputs = Vec::with_capacity(tx.input.len());
    let mut total_in = 0u64;
    for (i, input) in psbt.inputs.iter().enumerate() {
        if input.final_script_sig.is_some() || input.final_script_witness.is_some() {
            return Err(BtcError::AlreadyFinalized { input: i });
        }
        let spent = spent_output(tx, i, input)?;
        if let Some(kind) = script_kind(&spent.script_pubkey) {
            return Err(BtcError::UnsupportedScript { input: i, kind });
        }
        if let Some(t) = input.sighash_type {
            if t.to_u32() != EcdsaSighashType::All.to_u32() {
                return Err(BtcError::UnsupportedSighash {
                    input: i,
                    sighash: t.to_u32(),
                });
            }
        }
        let (public_key, path) = input
            .bip32_derivation
            .iter()
            .find(|(key, (fingerprint, path))| {
                keys.owns(key, *fingerprint, path) && p2wpkh_script(key) == spent.script_pubkey
            })
            .map(|(key, (_, path))| (*key, path.clone()))
            .ok_or(BtcError::NotOurInput { input: i })?;
        let amount_sats = checked_amount(spent.value)?;
        total_in = add_sats(total_in, amount_sats)?;

        let sighash = cache
            .p2wpkh_signature_hash(i, &spent.script_pubkey, spent.value, EcdsaSighashType::All)
            .map_err(|e| BtcError::Sighash {
                input: i,
                reason: e.to_string(),
            })?
            .to_byte_array();
        let script_code =
            spent
                .script_pubkey
                .p2wpkh_script_code()
                .ok_or(BtcError::UnsupportedScript {
                    input: i,
                    kind: ScriptKind::Other,
                })?;
        let mut preimage = Vec::new();
        cache
            .segwit_v0_encode_signing_data_to(
                &mut preimage,
                i,
                &script_code,
                spent.value,
                EcdsaSighashType::All,
            )
            .map_err(|e| BtcError::Sighash {
                input: i,
                reason: e.to_string(),
            })?;
        inputs.push(InputPlan {
            index: i,
            path,
            public_key,
            amount_sats,
            preimage,
            sighash,
        });
    }

    let mut outputs = Vec::with_capacity(tx.output.len());
    let mut total_out = 0u64;
    let mut external_out = 0u64;
    for (j, (txout, out)) in tx.output.iter().zip(&psbt.outputs).enumerate() {
        let amount_sats = checked_amount(txout.value)?;
        total_out = add_sats(total_out, amount_sats)?;
        let change_path = out
            .bip32_derivation
            .iter()
            .find(|(key, (fingerprint, path))| {
                keys.owns(key, *fingerprint, path) && p2wpkh_script(key) == txout.script_pubkey
            })
            .map(|(_, (_, path))| path.clone());
        if change_path.is_none() {
            external_out = add_sats(external_out, amount_sats)?;
        }
        outputs.push(OutputPlan {
            index: j,
            address: Address::from_script(&txout.script_pubkey, network.to_bitcoin())
                .ok()
                .map(|a| a.to_string()),
            script_hex: txout.script_pubkey.to_hex_string(),
            amount_sats,
            is_change: change_path.is_some(),
            change_path,
        });
    }

    let fee_sats = total_in
        .checked_sub(total_out)
        .ok_or(BtcError::NegativeFee {
            total_in_sats: total_in,
            total_out_sats: total_out,
        })?;
    let weight = predict_weight(
        std::iter::repeat_n(InputWeightPrediction::P2WPKH_MAX, tx.input.len()),
        tx.output.iter().map(|o| o.script_pubkey.len()),
    );
    Ok(PsbtPlan {
        psbt_version: if decoded.v2.is_some() { 2 } else { 0 },
        network,
        txid: tx.compute_txid().to_string(),
        inputs,
        outputs,
        total_in_sats: total_in,
        total_out_sats: total_out,
        external_out_sats: external_out,
        fee_sats,
        vsize: weight.to_vbytes_ceil(),
    })
}

/// A threshold signature over one input's sighash, as the protocol returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSignature {
    /// Strict DER, without a trailing sighash byte.
    Der(Vec<u8>),
    /// `r ‖ s`, 32 bytes each, big-endian.
    RawRs([u8; 64]),
}

/// The finalized PSBT and the transaction it gives.
#[derive(Debug, Clone)]
pub struct SignedPsbt {
    /// The version of the finalized PSBT: the version it was given in (0 or 2).
    pub psbt_version: u32,
    /// The finalized PSBT, base64.
    pub psbt_base64: String,
    /// The network transaction (`extract_tx`).
    pub tx: Transaction,
    /// Its consensus serialization, hex (what `sendrawtransaction` takes).
    pub tx_hex: String,
    /// Its txid.
    pub txid: String,
}

fn parse_signature(input: usize, sig: &InputSignature) -> Result<ecdsa::Signature, BtcError> {
    let parsed = match sig {
        InputSignature::Der(der) => ecdsa::Signature::from_der(der),
        InputSignature::RawRs(rs) => ecdsa::Signature::from_compact(rs),
    };
    parsed.map_err(|_| BtcError::InvalidSignature { input })
}

/// Adds one signature per input and finalizes the PSBT.
///
/// The PSBT is analyzed again exactly as [`analyze_psbt`] does (same refusals). There
/// must be exactly one signature per input. Each signature is normalized to low S (the
/// threshold protocol may produce high S, which Bitcoin's standardness rules refuse;
/// `(r, n - s)` is the same signature mathematically), verified against the input's
/// sighash and key, stored in `partial_sigs` with SIGHASH_ALL, then turned into the final
/// witness `[signature, public key]`; the input fields BIP-174 says a finalizer clears
/// are cleared (everything but the UTXOs, unknown and proprietary fields). The fee is not
/// limited here: that is the policy's decision, on [`PsbtPlan::fee_sats`] and
/// [`PsbtPlan::fee_rate_sat_per_vb`].
pub fn finalize_psbt(
    psbt: impl AsRef<[u8]>,
    keys: &WalletKeys,
    network: Network,
    signatures: &[(usize, InputSignature)],
) -> Result<SignedPsbt, BtcError> {
    let mut decoded = decode(psbt.as_ref())?;
    let plan = plan(&decoded, keys, network)?;
    let n = plan.inputs.len();
    let mut given: Vec<Option<&InputSignature>> = vec![None; n];
    for (index, sig) in signatures {
        let slot = given
            .get_mut(*index)
            .ok_or(BtcError::UnknownInput { input: *index })?;
        if slot.is_some() {
            return Err(BtcError::DuplicateSignature { input: *index });
        }
        *slot = Some(sig);
    }

    let mut final_sigs = Vec::with_capacity(n);
    for (input, sig) in plan.inputs.iter().zip(&given) {
        let sig = sig.ok_or(BtcError::MissingSignature { input: input.index })?;
        let mut signature = parse_signature(input.index, sig)?;
        signature.normalize_s();
        keys.secp()
            .verify_ecdsa(
                &Message::from_digest(input.sighash),
                &signature,
                &input.public_key,
            )
            .map_err(|_| BtcError::SignatureMismatch { input: input.index })?;
        final_sigs.push(bitcoin::ecdsa::Signature {
            signature,
            sighash_type: EcdsaSighashType::All,
        });
    }

    let psbt = &mut decoded.v0;
    for (input, sig) in plan.inputs.iter().zip(final_sigs) {
        let psbt_input = &mut psbt.inputs[input.index];
        psbt_input
            .partial_sigs
            .insert(bitcoin::PublicKey::new(input.public_key), sig);
        finalize_input(psbt_input, &sig, &input.public_key);
    }

    let psbt_base64 = match &mut decoded.v2 {
        None => encode_psbt(psbt),
        Some(v2) => {
            for (v2_input, v0_input) in v2.inputs.iter_mut().zip(&psbt.inputs) {
                let witness = v0_input.final_script_witness.clone().unwrap_or_default();
                crate::v2::finalize_input(v2_input, witness);
            }
            crate::v2::seal(v2);
            BASE64.encode(v2.serialize())
        }
    };
    // Fee limits are policy (the plan reports fee and rate); `extract_tx`'s built-in
    // "absurd fee rate" refusal would be a second, hidden policy, so it is not applied.
    let tx = psbt.clone().extract_tx_unchecked_fee_rate();
    Ok(SignedPsbt {
        psbt_version: plan.psbt_version,
        psbt_base64,
        tx_hex: serialize_hex(&tx),
        txid: tx.compute_txid().to_string(),
        tx,
    })
}

/// BIP-174 finalizer for one P2WPKH input: final witness set, every other field but the
/// UTXOs and unknown/proprietary entries cleared.
fn finalize_input(input: &mut Input, sig: &bitcoin::ecdsa::Signature, key: &secp256k1::PublicKey) {
    input.final_script_witness = Some(Witness::p2wpkh(sig, key));
    input.final_script_sig = None;
    input.partial_sigs.clear();
    input.sighash_type = None;
    input.redeem_script = None;
    input.witness_script = None;
    input.bip32_derivation.clear();
    input.ripemd160_preimages.clear();
    input.sha256_preimages.clear();
    input.hash160_preimages.clear();
    input.hash256_preimages.clear();
    input.tap_key_sig = None;
    input.tap_script_sigs.clear();
    input.tap_scripts.clear();
    input.tap_key_origins.clear();
    input.tap_internal_key = None;
    input.tap_merkle_root = None;
}
