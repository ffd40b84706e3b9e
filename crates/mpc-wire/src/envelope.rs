//! The envelope format, its canonical signed encoding and the p2p encryption.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey as DhPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::identity::{hkdf_sha256, is_contributory, os_random, IdentityKey};
use crate::{SessionId, WireError};

/// Envelope protocol version written and accepted by this build.
pub const VERSION: u16 = 1;
/// Largest envelope text accepted (checked before parsing) or produced.
pub const MAX_ENVELOPE_BYTES: usize = 8 * 1024 * 1024;
/// Domain separation tag at the start of every signed encoding.
pub const DOMAIN_TAG: &[u8] = b"wallet-mpc/envelope/v1";
/// HKDF salt of the p2p payload encryption.
const P2P_TAG: &[u8] = b"wallet-mpc/envelope/v1/p2p";
/// Bytes a p2p payload adds: ephemeral x25519 key and Poly1305 tag.
pub const P2P_OVERHEAD: usize = 32 + 16;

/// What goes over the gateway, as a JSON object (see [`Envelope::to_json`]).
///
/// ```json
/// {"v":1,"session":"3f1c…","sender":0,"recipient":2,"round":1,"seq":7,
///  "payload":"<base64>","sig":"<base64>"}
/// ```
///
/// * `recipient` is `null` for a broadcast.
/// * `seq` is the sender's counter within the session; it increases with every
///   envelope the sender emits (broadcast or p2p, whoever the recipient).
/// * `payload` is the protocol message in the clear for a broadcast; for p2p it is an
///   ephemeral x25519 public key (32 bytes) followed by the ChaCha20-Poly1305
///   ciphertext and tag, under a key and nonce derived with HKDF-SHA256 from the
///   Diffie-Hellman secret of the ephemeral key and the recipient's static key, with
///   the header, the ephemeral key and the recipient key as HKDF info and the header
///   as associated data.
/// * `sig` is the sender's ed25519 signature over [`Envelope::signing_input`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Protocol version, [`VERSION`].
    pub v: u16,
    /// Session id.
    pub session: SessionId,
    /// Sender's keygen index.
    pub sender: u16,
    /// Recipient's keygen index, `None` for broadcast.
    pub recipient: Option<u16>,
    /// Protocol round.
    pub round: u16,
    /// Sender's sequence number.
    pub seq: u64,
    /// Payload bytes (base64 in JSON).
    #[serde(with = "b64_bytes")]
    pub payload: Vec<u8>,
    /// ed25519 signature (base64 in JSON).
    #[serde(with = "b64_sig")]
    pub sig: [u8; 64],
}

impl core::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Envelope")
            .field("v", &self.v)
            .field("session", &self.session)
            .field("sender", &self.sender)
            .field("recipient", &self.recipient)
            .field("round", &self.round)
            .field("seq", &self.seq)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

fn put_u16(out: &mut Vec<u8>, x: u16) {
    out.extend_from_slice(&x.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_be_bytes());
}

/// Canonical header encoding: every field but payload and signature, each fixed-size or
/// length-prefixed, so distinct headers never encode to the same bytes.
fn header_bytes(
    v: u16,
    session: &SessionId,
    sender: u16,
    recipient: Option<u16>,
    round: u16,
    seq: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN_TAG.len() + session.as_str().len() + 32);
    // Both lengths are bounded (constant tag, session id ≤ 128 bytes).
    put_u16(&mut out, DOMAIN_TAG.len() as u16);
    out.extend_from_slice(DOMAIN_TAG);
    put_u16(&mut out, v);
    put_u16(&mut out, session.as_str().len() as u16);
    out.extend_from_slice(session.as_str().as_bytes());
    put_u16(&mut out, sender);
    match recipient {
        None => out.push(0),
        Some(r) => {
            out.push(1);
            put_u16(&mut out, r);
        }
    }
    put_u16(&mut out, round);
    put_u64(&mut out, seq);
    out
}

impl Envelope {
    fn header(&self) -> Vec<u8> {
        header_bytes(
            self.v,
            &self.session,
            self.sender,
            self.recipient,
            self.round,
            self.seq,
        )
    }

    /// The bytes the signature covers:
    ///
    /// ```text
    /// u16 len ‖ "wallet-mpc/envelope/v1" ‖ u16 v ‖ u16 len ‖ session ‖ u16 sender ‖
    /// (0x00 | 0x01 ‖ u16 recipient) ‖ u16 round ‖ u64 seq ‖ u64 len ‖ payload
    /// ```
    ///
    /// All integers big-endian; `payload` is the decoded payload bytes.
    pub fn signing_input(&self) -> Vec<u8> {
        let mut out = self.header();
        out.reserve(8 + self.payload.len());
        put_u64(&mut out, self.payload.len() as u64);
        out.extend_from_slice(&self.payload);
        out
    }

    /// `true` if this is a broadcast envelope.
    pub fn is_broadcast(&self) -> bool {
        self.recipient.is_none()
    }

    /// Serializes to compact JSON, the form sent to the gateway.
    pub fn to_json(&self) -> Result<String, WireError> {
        let text = serde_json::to_string(self).map_err(|e| WireError::Malformed {
            sender: Some(self.sender),
            reason: format!("cannot serialize envelope: {e}"),
        })?;
        if text.len() > MAX_ENVELOPE_BYTES {
            return Err(WireError::PayloadTooLarge {
                size: text.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        Ok(text)
    }

    /// Parses envelope text received from the gateway. Checks the size limit before
    /// parsing and the version before the other fields. Does **not** verify anything
    /// else; use [`crate::Channel::open`].
    pub fn from_json(text: &str) -> Result<Self, WireError> {
        if text.len() > MAX_ENVELOPE_BYTES {
            return Err(WireError::TooLarge {
                size: text.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| WireError::Malformed {
                sender: None,
                reason: format!("not JSON: {e}"),
            })?;
        let Some(obj) = value.as_object() else {
            return Err(WireError::Malformed {
                sender: None,
                reason: "not a JSON object".into(),
            });
        };
        let sender = obj
            .get("sender")
            .and_then(|s| s.as_u64())
            .and_then(|s| u16::try_from(s).ok());
        match obj.get("v") {
            None => {
                return Err(WireError::Malformed {
                    sender,
                    reason: "missing field `v`".into(),
                })
            }
            Some(v) => match v.as_u64() {
                Some(v) if v == u64::from(VERSION) => {}
                Some(v) => return Err(WireError::UnsupportedVersion { sender, version: v }),
                None => {
                    return Err(WireError::Malformed {
                        sender,
                        reason: "field `v` is not a non-negative integer".into(),
                    })
                }
            },
        }
        serde_json::from_value(value).map_err(|e| WireError::Malformed {
            sender,
            reason: e.to_string(),
        })
    }

    /// Builds and signs an envelope, encrypting `plaintext` to `recipient_dh` for p2p.
    pub(crate) fn seal(
        identity: &IdentityKey,
        session: &SessionId,
        sender: u16,
        recipient: Option<(u16, &DhPublic)>,
        round: u16,
        seq: u64,
        plaintext: &[u8],
    ) -> Result<Self, WireError> {
        let header = header_bytes(
            VERSION,
            session,
            sender,
            recipient.map(|(r, _)| r),
            round,
            seq,
        );
        let payload = match recipient {
            None => plaintext.to_vec(),
            Some((r, dh)) => encrypt(&header, dh, plaintext).map_err(|e| match e {
                WireError::InvalidKey { reason } => WireError::InvalidKey {
                    reason: format!("encryption key of party {r}: {reason}"),
                },
                other => other,
            })?,
        };
        let mut env = Envelope {
            v: VERSION,
            session: session.clone(),
            sender,
            recipient: recipient.map(|(r, _)| r),
            round,
            seq,
            payload,
            sig: [0u8; 64],
        };
        env.sig = identity.signing_key().sign(&env.signing_input()).to_bytes();
        Ok(env)
    }

    /// Verifies the signature with `key` (strict verification: no malleable or
    /// small-order signatures).
    pub(crate) fn verify(&self, key: &VerifyingKey) -> bool {
        let sig = Signature::from_bytes(&self.sig);
        key.verify_strict(&self.signing_input(), &sig).is_ok()
    }

    /// Decrypts a p2p payload with `identity`'s static key. The caller has checked that
    /// this is a p2p envelope.
    pub(crate) fn decrypt(&self, identity: &IdentityKey) -> Result<Vec<u8>, WireError> {
        let err = || WireError::Decryption {
            sender: self.sender,
        };
        if self.payload.len() < P2P_OVERHEAD {
            return Err(err());
        }
        let (eph, ct) = self.payload.split_at(32);
        let mut eph_bytes = [0u8; 32];
        eph_bytes.copy_from_slice(eph);
        let eph = DhPublic::from(eph_bytes);
        let shared = identity.dh_secret().diffie_hellman(&eph);
        if !shared.was_contributory() {
            return Err(err());
        }
        let own = identity.public();
        let header = self.header();
        let (cipher, nonce) = derive_aead(shared.as_bytes(), &header, &eph, own.dh_key());
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ct,
                    aad: &header,
                },
            )
            .map_err(|_| err())
    }
}

fn derive_aead(
    shared: &[u8; 32],
    header: &[u8],
    eph: &DhPublic,
    recipient: &DhPublic,
) -> (ChaCha20Poly1305, Nonce) {
    let okm = hkdf_sha256::<44>(
        P2P_TAG,
        shared,
        &[header, eph.as_bytes(), recipient.as_bytes()],
    );
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&okm[..32]));
    let nonce = *Nonce::from_slice(&okm[32..]);
    (cipher, nonce)
}

/// ECIES: fresh ephemeral x25519 key, DH with the recipient's static key, HKDF,
/// ChaCha20-Poly1305 with the header as associated data.
fn encrypt(header: &[u8], recipient: &DhPublic, plaintext: &[u8]) -> Result<Vec<u8>, WireError> {
    if !is_contributory(recipient) {
        return Err(WireError::InvalidKey {
            reason: "x25519 key has small order".into(),
        });
    }
    let mut eph_bytes = Zeroizing::new([0u8; 32]);
    os_random(eph_bytes.as_mut())?;
    let eph_secret = StaticSecret::from(*eph_bytes);
    let eph_public = DhPublic::from(&eph_secret);
    let shared = eph_secret.diffie_hellman(recipient);
    let (cipher, nonce) = derive_aead(shared.as_bytes(), header, &eph_public, recipient);
    let ct = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: header,
            },
        )
        .map_err(|_| WireError::PayloadTooLarge {
            size: plaintext.len(),
            max: MAX_ENVELOPE_BYTES,
        })?;
    let mut out = Vec::with_capacity(32 + ct.len());
    out.extend_from_slice(eph_public.as_bytes());
    out.extend_from_slice(&ct);
    Ok(out)
}

mod b64_bytes {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("payload is not base64: {e}")))
    }
}

mod b64_sig {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(sig))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = B64
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("sig is not base64: {e}")))?;
        <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| {
            serde::de::Error::custom(format!("sig must be 64 bytes, got {}", bytes.len()))
        })
    }
}
