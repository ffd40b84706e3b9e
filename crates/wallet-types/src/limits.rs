//! Limits every component applies the same way.

/// Most accounts one wallet creation may have.
pub const MAX_ACCOUNTS: u32 = 100;
/// Largest preimage accepted for signing (1 MiB).
pub const MAX_PREIMAGE_LEN: usize = 1 << 20;
/// Longest account id (ids are 1..=128 characters).
pub const MAX_ACCOUNT_ID_LEN: usize = 128;
/// Longest presignature id (ids are 1..=128 characters of `A-Z a-z 0-9 _ : -`).
pub const MAX_PRESIGNATURE_ID_LEN: usize = 128;
/// Most presignature sessions a client asks for in one `StartPresign`.
pub const PRESIGN_CHUNK: u32 = 16;

/// Whether `id` is a valid presignature id: 1..=128 characters of `A-Z a-z 0-9 _ : -`
/// (it names files and database keys, so nothing else is allowed).
pub fn valid_presignature_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PRESIGNATURE_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presignature_ids() {
        assert!(valid_presignature_id("presig_0:a-B"));
        for bad in ["", "a.b", "../x", "a b", "é"] {
            assert!(!valid_presignature_id(bad), "{bad:?}");
        }
        assert!(valid_presignature_id(&"a".repeat(128)));
        assert!(!valid_presignature_id(&"a".repeat(129)));
    }
}
