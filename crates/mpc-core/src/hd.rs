//! Non-hardened BIP-32 derivation paths.
//!
//! The threshold protocol can derive *non-hardened* children only (hardened derivation
//! needs the private key, which no party holds). Paths are written `m/44/60/0/0/7`;
//! hardened segments (`44'`, `44h`, or indices ≥ 2³¹) are rejected with a clear error.

use crate::error::CoreError;
use crate::{Curve, Point};

/// First hardened index (2³¹).
pub const HARDENED_OFFSET: u32 = 1 << 31;

/// A parsed non-hardened derivation path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DerivationPath(Vec<u32>);

impl DerivationPath {
    /// The root (`m`): no derivation.
    pub fn root() -> Self {
        DerivationPath(Vec::new())
    }

    /// Parses `m/44/60/0/0/7` (the leading `m/` is optional; `m` alone is the root).
    pub fn parse(path: &str) -> Result<Self, CoreError> {
        let err = |reason: String| CoreError::InvalidPath {
            path: path.to_string(),
            reason,
        };
        let trimmed = path.trim();
        let rest = match trimmed {
            "" | "m" | "M" => return Ok(Self::root()),
            s => s
                .strip_prefix("m/")
                .or_else(|| s.strip_prefix("M/"))
                .unwrap_or(s),
        };
        let mut out = Vec::new();
        for seg in rest.split('/') {
            if seg.is_empty() {
                return Err(err("empty segment".into()));
            }
            if seg.ends_with('\'') || seg.ends_with('h') || seg.ends_with('H') {
                return Err(err(format!(
                    "segment {seg:?} is hardened; threshold keys can only derive non-hardened children"
                )));
            }
            if !seg.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("segment {seg:?} is not a number")));
            }
            let idx: u32 = seg
                .parse()
                .map_err(|_| err(format!("segment {seg:?} does not fit in 32 bits")))?;
            if idx >= HARDENED_OFFSET {
                return Err(err(format!(
                    "segment {idx} is a hardened index (≥ 2^31); threshold keys can only derive non-hardened children"
                )));
            }
            out.push(idx);
        }
        if out.len() > 255 {
            return Err(err("more than 255 levels".into()));
        }
        Ok(DerivationPath(out))
    }

    /// The child indices.
    pub fn indices(&self) -> &[u32] {
        &self.0
    }

    /// Whether this is the root path (no derivation).
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for DerivationPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("m")?;
        for i in &self.0 {
            write!(f, "/{i}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for DerivationPath {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DerivationPath {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DerivationPath> for String {
    fn from(p: DerivationPath) -> String {
        p.to_string()
    }
}

/// Derives the child public key at `path` from a master public key and chain code
/// (BIP-32 public derivation, identical to SLIP-10 on secp256k1).
pub fn derive_public_key(
    public_key: &Point,
    chain_code: &[u8; 32],
    path: &DerivationPath,
) -> Result<Point, CoreError> {
    let epub = hd_wallet::ExtendedPublicKey::<Curve> {
        public_key: *public_key,
        chain_code: *chain_code,
    };
    let indices = path.indices().iter().map(|&i| {
        hd_wallet::NonHardenedIndex::try_from(i).map_err(|_| CoreError::InvalidPath {
            path: path.to_string(),
            reason: format!("{i} is hardened"),
        })
    });
    let child = hd_wallet::slip10::try_derive_child_public_key_with_path(&epub, indices)?;
    Ok(child.public_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(
            DerivationPath::parse("m/44/60/0/0/7").unwrap().indices(),
            &[44, 60, 0, 0, 7]
        );
        assert_eq!(DerivationPath::parse("1/2").unwrap().indices(), &[1, 2]);
        assert!(DerivationPath::parse("m").unwrap().is_root());
        assert_eq!(DerivationPath::parse("m/1/2").unwrap().to_string(), "m/1/2");
    }

    #[test]
    fn rejects_hardened_and_garbage() {
        for bad in [
            "m/44'/60",
            "m/44h",
            "m/2147483648",
            "m//1",
            "m/x",
            "m/-1",
            "m/99999999999",
        ] {
            let e = DerivationPath::parse(bad).unwrap_err();
            assert!(matches!(e, CoreError::InvalidPath { .. }), "{bad}: {e}");
        }
        let e = DerivationPath::parse("m/44'/60").unwrap_err().to_string();
        assert!(e.contains("hardened"), "{e}");
    }
}
