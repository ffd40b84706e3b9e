//! The store key wrapped by a key that never leaves a PKCS#11 token (an HSM; Debian's
//! SoftHSM in the tests), through the `cryptoki` crate.
//!
//! The store's records are sealed under a random 32-byte data key; with this key
//! source the data key is kept in the store's metadata only encrypted by an AES key
//! on the token (AES-256-GCM computed by the token, a fresh 12-byte IV per wrap, the
//! store id as associated data), so a copy of the store file and of the host's disk is
//! useless without the token and its PIN. The token key is found by its label and must
//! be a secret AES key allowed to encrypt and decrypt; create it non-extractable, e.g.
//! `pkcs11-tool --module MODULE --login --keygen --key-type AES:32 --label LABEL` or
//! `softhsm2-util`-initialized tokens with the same command.

use std::path::PathBuf;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::store::StoreError;

/// Bytes of the AES-GCM IV of a wrapped key.
const IV_LEN: usize = 12;
/// The wrapped-key format's version byte.
const WRAP_VERSION: u8 = 1;

/// Where the wrapping key is: the module, the token, the key, and the user PIN.
pub struct Pkcs11Key {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The AES key's label on the token.
    pub key_label: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .finish_non_exhaustive()
    }
}

fn hsm(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::BadKey(format!("PKCS#11: {what}: {e}"))
}

/// A logged-in session on the token and its wrapping key. The module is finalized
/// when this is dropped (after the session).
struct Open {
    session: Session,
    key: ObjectHandle,
    _ctx: Pkcs11,
}

impl Pkcs11Key {
    fn open(&self) -> Result<Open, StoreError> {
        let ctx = Pkcs11::new(&self.module)
            .map_err(|e| hsm(&format!("cannot load {}", self.module.display()), e))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| hsm("C_Initialize", e))?;
        let mut slot = None;
        for s in ctx
            .get_slots_with_token()
            .map_err(|e| hsm("C_GetSlotList", e))?
        {
            let info = ctx
                .get_token_info(s)
                .map_err(|e| hsm("C_GetTokenInfo", e))?;
            if info.label().trim_end() == self.token_label {
                slot = Some(s);
                break;
            }
        }
        let slot = slot.ok_or_else(|| {
            hsm(
                "no token",
                format!(
                    "no token labelled {:?} in {}",
                    self.token_label,
                    self.module.display()
                ),
            )
        })?;
        let session = ctx
            .open_ro_session(slot)
            .map_err(|e| hsm("C_OpenSession", e))?;
        let pin = AuthPin::from(self.pin.as_str());
        session
            .login(UserType::User, Some(&pin))
            .map_err(|e| hsm("C_Login (wrong PIN?)", e))?;
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Label(self.key_label.as_bytes().to_vec()),
            ])
            .map_err(|e| hsm("C_FindObjects", e))?;
        let key = match found.as_slice() {
            [k] => *k,
            [] => {
                return Err(hsm(
                    "no key",
                    format!(
                        "no AES key labelled {:?} on token {:?}",
                        self.key_label, self.token_label
                    ),
                ))
            }
            _ => {
                return Err(hsm(
                    "ambiguous key",
                    format!(
                        "{} AES keys labelled {:?} on token {:?}",
                        found.len(),
                        self.key_label,
                        self.token_label
                    ),
                ))
            }
        };
        Ok(Open {
            session,
            key,
            _ctx: ctx,
        })
    }

    /// Encrypts the data key on the token: version, IV, ciphertext and tag, with
    /// `aad` (the store id) bound in.
    pub fn wrap(&self, data_key: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        let open = self.open()?;
        let mut iv = [0u8; IV_LEN];
        OsRng
            .try_fill_bytes(&mut iv)
            .map_err(|e| StoreError::Randomness(e.to_string()))?;
        let mut iv_param = iv;
        let params = GcmParams::new(&mut iv_param, aad, 128u64.into())
            .map_err(|e| hsm("GCM parameters", e))?;
        let ct = open
            .session
            .encrypt(&Mechanism::AesGcm(params), open.key, data_key)
            .map_err(|e| hsm("C_Encrypt (AES-GCM)", e))?;
        let mut out = Vec::with_capacity(1 + IV_LEN + ct.len());
        out.push(WRAP_VERSION);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts a data key [`Pkcs11Key::wrap`] made (the same `aad`).
    pub fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        if wrapped.len() != 1 + IV_LEN + 32 + 16 || wrapped[0] != WRAP_VERSION {
            return Err(StoreError::Malformed(
                "meta/pkcs11_wrapped_key".into(),
                "not a wrapped store key".into(),
            ));
        }
        let open = self.open()?;
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&wrapped[1..1 + IV_LEN]);
        let params =
            GcmParams::new(&mut iv, aad, 128u64.into()).map_err(|e| hsm("GCM parameters", e))?;
        let plain = Zeroizing::new(
            open.session
                .decrypt(&Mechanism::AesGcm(params), open.key, &wrapped[1 + IV_LEN..])
                .map_err(|_| StoreError::WrongKey)?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(StoreError::WrongKey);
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }
}
