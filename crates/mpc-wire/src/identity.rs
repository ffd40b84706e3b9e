//! Long-term identity keys of the parties.

use core::fmt;
use core::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;
use x25519_dalek::{PublicKey as DhPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::WireError;

/// Length of an identity seed in bytes.
pub const SEED_LEN: usize = 32;
/// Length of the binary form of a [`PublicIdentity`] (ed25519 key ‖ x25519 key).
pub const PUBLIC_IDENTITY_LEN: usize = 64;

const IDENTITY_SALT: &[u8] = b"wallet-mpc/identity/v1";
const INFO_SIGN: &[u8] = b"wallet-mpc/identity/v1/ed25519-signing-key";
const INFO_DH: &[u8] = b"wallet-mpc/identity/v1/x25519-static-key";

/// HKDF-SHA256 with an output length that is a compile-time constant well below the
/// 255·32-byte limit of HKDF-SHA256, so `expand` cannot fail.
pub(crate) fn hkdf_sha256<const N: usize>(
    salt: &[u8],
    ikm: &[u8],
    info: &[&[u8]],
) -> Zeroizing<[u8; N]> {
    const { assert!(N <= 255 * 32) };
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut out = Zeroizing::new([0u8; N]);
    #[allow(clippy::expect_used)]
    hk.expand_multi_info(info, out.as_mut())
        .expect("HKDF-SHA256 output length is a small constant");
    out
}

/// Fills `buf` from the operating system's RNG without panicking.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<(), WireError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|e| WireError::Randomness {
            reason: e.to_string(),
        })
}

/// A party's secret identity: a 32-byte seed from which an ed25519 signing key (to
/// sign envelopes) and an x25519 static secret (to receive encrypted p2p payloads) are
/// derived with HKDF-SHA256 under distinct labels.
///
/// Only the seed needs storing (e.g. inside the encrypted key-share file, see
/// [`IdentityKey::to_seed_hex`]). All secret material is zeroized on drop and
/// `Debug` prints only the public identity.
#[derive(Clone)]
pub struct IdentityKey {
    seed: Zeroizing<[u8; SEED_LEN]>,
    signing: SigningKey,
    dh: StaticSecret,
    public: PublicIdentity,
}

impl IdentityKey {
    /// Generates a fresh identity from the operating system's RNG.
    pub fn generate() -> Result<Self, WireError> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        os_random(seed.as_mut())?;
        Ok(Self::from_seed(&seed))
    }

    /// Derives the identity from a 32-byte seed (deterministic).
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Self {
        let sign_bytes = hkdf_sha256::<32>(IDENTITY_SALT, seed, &[INFO_SIGN]);
        let dh_bytes = hkdf_sha256::<32>(IDENTITY_SALT, seed, &[INFO_DH]);
        let signing = SigningKey::from_bytes(&sign_bytes);
        let dh = StaticSecret::from(*dh_bytes);
        let public = PublicIdentity {
            sign: signing.verifying_key(),
            dh: DhPublic::from(&dh),
        };
        Self {
            seed: Zeroizing::new(*seed),
            signing,
            dh,
            public,
        }
    }

    /// Parses a seed written by [`IdentityKey::to_seed_hex`] (64 hex digits).
    pub fn from_seed_hex(hex_seed: &str) -> Result<Self, WireError> {
        if hex_seed.len() != 2 * SEED_LEN {
            return Err(WireError::InvalidKey {
                reason: format!(
                    "seed must be {} hex digits, got {} characters",
                    2 * SEED_LEN,
                    hex_seed.len()
                ),
            });
        }
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        hex::decode_to_slice(hex_seed, seed.as_mut()).map_err(|e| WireError::InvalidKey {
            reason: format!("seed is not hex: {e}"),
        })?;
        Ok(Self::from_seed(&seed))
    }

    /// The seed as 64 lowercase hex digits, for storage inside an encrypted file.
    /// The returned string is zeroized on drop.
    pub fn to_seed_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.seed.as_ref()))
    }

    /// The public half, to be put in the session roster of the other parties.
    pub fn public(&self) -> PublicIdentity {
        self.public
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub(crate) fn dh_secret(&self) -> &StaticSecret {
        &self.dh
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A party's public identity: ed25519 verifying key and x25519 public key.
///
/// Its string form (also its serde form) is 128 lowercase hex digits: the 32-byte
/// ed25519 key followed by the 32-byte x25519 key. Parsing rejects invalid or weak
/// (small-order) ed25519 keys and small-order x25519 keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicIdentity {
    sign: VerifyingKey,
    dh: DhPublic,
}

impl PublicIdentity {
    /// The ed25519 key envelopes of this party are verified with.
    pub fn sign_key(&self) -> &VerifyingKey {
        &self.sign
    }

    /// The x25519 key p2p payloads to this party are encrypted to.
    pub fn dh_key(&self) -> &DhPublic {
        &self.dh
    }

    /// Binary form: ed25519 key ‖ x25519 key.
    pub fn to_bytes(&self) -> [u8; PUBLIC_IDENTITY_LEN] {
        let mut out = [0u8; PUBLIC_IDENTITY_LEN];
        out[..32].copy_from_slice(self.sign.as_bytes());
        out[32..].copy_from_slice(self.dh.as_bytes());
        out
    }

    /// Parses and validates the binary form.
    pub fn from_bytes(bytes: &[u8; PUBLIC_IDENTITY_LEN]) -> Result<Self, WireError> {
        let mut sign_bytes = [0u8; 32];
        sign_bytes.copy_from_slice(&bytes[..32]);
        let mut dh_bytes = [0u8; 32];
        dh_bytes.copy_from_slice(&bytes[32..]);
        let sign = VerifyingKey::from_bytes(&sign_bytes).map_err(|_| WireError::InvalidKey {
            reason: "ed25519 key is not a valid curve point".into(),
        })?;
        if sign.is_weak() {
            return Err(WireError::InvalidKey {
                reason: "ed25519 key has small order".into(),
            });
        }
        let dh = DhPublic::from(dh_bytes);
        if !is_contributory(&dh) {
            return Err(WireError::InvalidKey {
                reason: "x25519 key has small order".into(),
            });
        }
        Ok(Self { sign, dh })
    }
}

/// `false` for x25519 public keys of small order (their Diffie-Hellman output is
/// fixed, whatever the secret). Clamped scalars are multiples of the cofactor, so any
/// scalar maps a small-order point to the identity.
pub(crate) fn is_contributory(key: &DhPublic) -> bool {
    StaticSecret::from([0x5a; 32])
        .diffie_hellman(key)
        .was_contributory()
}

impl fmt::Display for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicIdentity({self})")
    }
}

impl FromStr for PublicIdentity {
    type Err = WireError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 2 * PUBLIC_IDENTITY_LEN {
            return Err(WireError::InvalidKey {
                reason: format!(
                    "public identity must be {} hex digits, got {} characters",
                    2 * PUBLIC_IDENTITY_LEN,
                    s.len()
                ),
            });
        }
        let mut bytes = [0u8; PUBLIC_IDENTITY_LEN];
        hex::decode_to_slice(s, &mut bytes).map_err(|e| WireError::InvalidKey {
            reason: format!("public identity is not hex: {e}"),
        })?;
        Self::from_bytes(&bytes)
    }
}

impl Serialize for PublicIdentity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicIdentity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
