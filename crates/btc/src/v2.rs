//! PSBT version 2 (BIP-370), read with rust-bitcoin's `psbt-v2` crate and analyzed in the
//! version 0 model, so that both versions go through the same checks and sighashes.

use std::collections::BTreeMap;

use bitcoin::bip32::KeySource;
use bitcoin::psbt::{Psbt, PsbtSighashType};
use bitcoin::secp256k1;
use bitcoin::Witness;
use psbt_v2::v2;

use crate::BtcError;

const MAGIC: &[u8] = b"psbt\xff";
const GLOBAL_INPUT_COUNT: u8 = 0x04;
const GLOBAL_OUTPUT_COUNT: u8 = 0x05;
const GLOBAL_VERSION: u8 = 0xfb;

/// Bitcoin's CompactSize at `*pos`.
fn compact_size(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *buf.get(*pos)?;
    *pos += 1;
    let width = match first {
        0xfd => 2,
        0xfe => 4,
        0xff => 8,
        n => return Some(u64::from(n)),
    };
    let bytes = buf.get(*pos..*pos + width)?;
    *pos += width;
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(bytes);
    Some(u64::from_le_bytes(le))
}

/// What the global map says about the version and the map counts.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct GlobalHeader {
    pub version: u32,
    pub input_count: Option<u64>,
    pub output_count: Option<u64>,
}

/// Reads the global map's key-value pairs for the version and counts, or `None` if the
/// bytes are not a well-formed global map (the full parser then reports why).
pub(crate) fn scan_global(bytes: &[u8]) -> Option<GlobalHeader> {
    let mut pos = MAGIC.len();
    if !bytes.starts_with(MAGIC) {
        return None;
    }
    let mut header = GlobalHeader::default();
    loop {
        let key_len = usize::try_from(compact_size(bytes, &mut pos)?).ok()?;
        if key_len == 0 {
            return Some(header);
        }
        let key = bytes.get(pos..pos.checked_add(key_len)?)?;
        pos += key_len;
        let value_len = usize::try_from(compact_size(bytes, &mut pos)?).ok()?;
        let value = bytes.get(pos..pos.checked_add(value_len)?)?;
        pos += value_len;
        match key {
            [GLOBAL_VERSION] => {
                let v: [u8; 4] = value.try_into().ok()?;
                header.version = u32::from_le_bytes(v);
            }
            [GLOBAL_INPUT_COUNT] => header.input_count = compact_size(value, &mut 0),
            [GLOBAL_OUTPUT_COUNT] => header.output_count = compact_size(value, &mut 0),
            _ => {}
        }
    }
}

/// `psbt-v2` 0.3's `Display` of its deserialization errors is `todo!()` (it panics), so
/// its errors are only ever written with `Debug`.
fn invalid(what: impl std::fmt::Debug) -> BtcError {
    BtcError::InvalidPsbt(format!("version 2: {what:?}"))
}

/// `psbt-v2` keys derivations by `bitcoin::PublicKey` (compressed or not), version 0 by
/// the bare point; P2WPKH keys are compressed, so uncompressed entries are dropped.
fn compressed_only(
    map: &BTreeMap<bitcoin::PublicKey, KeySource>,
) -> BTreeMap<secp256k1::PublicKey, KeySource> {
    map.iter()
        .filter(|(k, _)| k.compressed)
        .map(|(k, v)| (k.inner, v.clone()))
        .collect()
}

/// Parses a version 2 PSBT and builds its version 0 equivalent (same unsigned
/// transaction; the UTXOs, derivations, sighash types, scripts, partial and final
/// signatures of every input and the derivations and scripts of every output).
pub(crate) fn decode(bytes: &[u8], header: &GlobalHeader) -> Result<(v2::Psbt, Psbt), BtcError> {
    // `psbt-v2` reserves memory for the declared number of maps before reading them: a
    // count larger than the PSBT itself (every map takes at least one byte) is refused
    // here, so a hostile count cannot make it allocate without bound.
    for count in [header.input_count, header.output_count]
        .into_iter()
        .flatten()
    {
        if count > bytes.len() as u64 {
            return Err(BtcError::InvalidPsbt(
                "version 2: map count larger than the PSBT".into(),
            ));
        }
    }
    let psbt = v2::Psbt::deserialize(bytes).map_err(invalid)?;
    let signer = v2::Signer::new(psbt.clone()).map_err(invalid)?;
    let mut v0 = Psbt::from_unsigned_tx(signer.unsigned_tx()).map_err(invalid)?;
    for (a, b) in v0.inputs.iter_mut().zip(&psbt.inputs) {
        a.non_witness_utxo = b.non_witness_utxo.clone();
        a.witness_utxo = b.witness_utxo.clone();
        a.partial_sigs = b.partial_sigs.clone();
        a.sighash_type = b
            .sighash_type
            .map(|t| PsbtSighashType::from_u32(t.to_u32()));
        a.redeem_script = b.redeem_script.clone();
        a.witness_script = b.witness_script.clone();
        a.bip32_derivation = compressed_only(&b.bip32_derivations);
        a.final_script_sig = b.final_script_sig.clone();
        a.final_script_witness = b.final_script_witness.clone();
    }
    for (a, b) in v0.outputs.iter_mut().zip(&psbt.outputs) {
        a.redeem_script = b.redeem_script.clone();
        a.witness_script = b.witness_script.clone();
        a.bip32_derivation = compressed_only(&b.bip32_derivations);
    }
    Ok((psbt, v0))
}

/// BIP-370 finalizer for one P2WPKH input: the final witness set; every field but the
/// outpoint, sequence, lock-time requirements, UTXOs and unknown/proprietary entries
/// cleared.
pub(crate) fn finalize_input(input: &mut v2::Input, witness: Witness) {
    input.final_script_witness = Some(witness);
    input.final_script_sig = None;
    input.partial_sigs.clear();
    input.sighash_type = None;
    input.redeem_script = None;
    input.witness_script = None;
    input.bip32_derivations.clear();
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

/// After SIGHASH_ALL signatures nothing may be added to the transaction (BIP-370: the
/// signer clears the modifiable flags).
pub(crate) fn seal(psbt: &mut v2::Psbt) {
    psbt.global.tx_modifiable_flags = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_sizes() {
        let mut p = 0;
        assert_eq!(compact_size(&[0xfc], &mut p), Some(0xfc));
        let mut p = 0;
        assert_eq!(compact_size(&[0xfd, 0x01, 0x02], &mut p), Some(0x0201));
        assert_eq!(p, 3);
        let mut p = 0;
        assert_eq!(
            compact_size(&[0xff, 1, 0, 0, 0, 0, 0, 0, 0x40], &mut p),
            Some(0x4000_0000_0000_0001)
        );
        let mut p = 0;
        assert_eq!(compact_size(&[0xfe, 1, 2], &mut p), None);
    }

    #[test]
    fn scans_the_global_map() {
        let mut b = MAGIC.to_vec();
        b.extend([0x01, 0xfb, 0x04, 0x02, 0x00, 0x00, 0x00]);
        b.extend([0x01, 0x04, 0x01, 0x03]);
        b.extend([0x01, 0x05, 0x03, 0xfd, 0x00, 0x01]);
        b.push(0x00);
        assert_eq!(
            scan_global(&b),
            Some(GlobalHeader {
                version: 2,
                input_count: Some(3),
                output_count: Some(256),
            })
        );
        assert_eq!(scan_global(&b[..b.len() - 1]), None);
        assert_eq!(scan_global(b"psbt"), None);
    }
}
