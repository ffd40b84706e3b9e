//! Addresses derived from a (child) public key.

use bech32::{hrp, segwit};
use ripemd::Ripemd160;
use sha2::{Digest, Sha256};
use sha3::Keccak256;

use crate::error::CoreError;
use crate::Point;

/// The Ethereum address of a public key, EIP-55 checksummed (`0xAbC…`).
pub fn ethereum_address(public_key: &Point) -> String {
    let raw = ethereum_address_bytes(public_key);
    eip55(&raw)
}

/// The 20 raw bytes of the Ethereum address of a public key.
pub fn ethereum_address_bytes(public_key: &Point) -> [u8; 20] {
    let uncompressed = public_key.to_bytes(false);
    let hash = Keccak256::digest(&uncompressed[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

/// EIP-55 mixed-case checksum encoding of a 20-byte address.
pub fn eip55(addr: &[u8; 20]) -> String {
    let lower = hex::encode(addr);
    let hash = Keccak256::digest(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        if c.is_ascii_alphabetic() && nibble >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Bitcoin network for address encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BitcoinNetwork {
    /// Mainnet (`bc1…`).
    Mainnet,
    /// Testnet and signet (`tb1…`).
    Testnet,
    /// Regtest (`bcrt1…`).
    Regtest,
}

/// HASH160 (RIPEMD-160 of SHA-256) of the compressed public key.
pub fn hash160(public_key: &Point) -> [u8; 20] {
    let compressed = public_key.to_bytes(true);
    let h = Ripemd160::digest(Sha256::digest(&compressed));
    let mut out = [0u8; 20];
    out.copy_from_slice(&h);
    out
}

/// The native SegWit v0 pay-to-witness-public-key-hash address (`bc1q…`).
pub fn bitcoin_p2wpkh_address(
    public_key: &Point,
    network: BitcoinNetwork,
) -> Result<String, CoreError> {
    let hrp = match network {
        BitcoinNetwork::Mainnet => hrp::BC,
        BitcoinNetwork::Testnet => hrp::TB,
        BitcoinNetwork::Regtest => hrp::BCRT,
    };
    segwit::encode(hrp, segwit::VERSION_0, &hash160(public_key))
        .map_err(|e| CoreError::invalid("bitcoin address", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use generic_ec::{Point as GPoint, Scalar};

    fn point_of(sk: u64) -> Point {
        GPoint::generator() * Scalar::from(sk)
    }

    #[test]
    fn eip55_known_vector() {
        // From EIP-55.
        let raw: [u8; 20] = hex::decode("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(eip55(&raw), "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
    }

    #[test]
    fn eth_address_of_key_one() {
        // Private key 1 → 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf
        assert_eq!(
            ethereum_address(&point_of(1)),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }

    #[test]
    fn p2wpkh_of_key_one() {
        // Private key 1, compressed → bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4
        assert_eq!(
            bitcoin_p2wpkh_address(&point_of(1), BitcoinNetwork::Mainnet).unwrap(),
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
        );
    }
}
