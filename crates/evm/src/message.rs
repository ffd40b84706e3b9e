//! EIP-191 personal messages (`personal_sign`): the preimage
//! `"\x19Ethereum Signed Message:\n" ‖ len(message) ‖ message` (alloy-primitives), and
//! the strict reading the cosigner's policy applies to one.

/// The EIP-191 prefix, before the decimal length.
pub const PREFIX: &[u8] = b"\x19Ethereum Signed Message:\n";

/// The preimage of `message` (text is signed as its UTF-8 bytes).
pub fn preimage(message: &[u8]) -> Vec<u8> {
    alloy_primitives::utils::eip191_message(message)
}

/// Why a preimage is not an EIP-191 personal message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// It does not start with the prefix.
    #[error("not an EIP-191 personal message preimage (it must start with \"\\x19Ethereum Signed Message:\\n\")")]
    Prefix,
    /// The decimal length after the prefix is not the number of bytes that follow.
    #[error("the EIP-191 length does not match the message")]
    Length,
}

/// The message inside an EIP-191 preimage: the prefix, then a decimal length (no
/// leading zero) equal to the number of bytes after it.
pub fn decode(preimage: &[u8]) -> Result<&[u8], MessageError> {
    let rest = preimage.strip_prefix(PREFIX).ok_or(MessageError::Prefix)?;
    // The length has at most 7 digits (the preimage limit is 1 MiB); a message may
    // itself start with digits, so every split is tried, shortest first.
    for digits in 1..=rest.len().min(7) {
        let (len, message) = rest.split_at(digits);
        if !len.iter().all(u8::is_ascii_digit) {
            break;
        }
        if len[0] == b'0' && digits > 1 {
            break;
        }
        let n: usize = std::str::from_utf8(len)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(MessageError::Length)?;
        if n == message.len() {
            return Ok(message);
        }
    }
    Err(MessageError::Length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_lies() {
        for m in [&b""[..], b"hi", b"12345", &[0u8; 100][..], b"0x1234"] {
            let p = preimage(m);
            assert_eq!(decode(&p), Ok(m));
        }
        assert_eq!(
            preimage(b"hi"),
            b"\x19Ethereum Signed Message:\n2hi".to_vec()
        );
        assert_eq!(decode(b"hello"), Err(MessageError::Prefix));
        assert_eq!(
            decode(b"\x19Ethereum Signed Message:\n5hi"),
            Err(MessageError::Length)
        );
        assert_eq!(
            decode(b"\x19Ethereum Signed Message:\nhi"),
            Err(MessageError::Length)
        );
        assert_eq!(
            decode(b"\x19Ethereum Signed Message:\n02hi"),
            Err(MessageError::Length)
        );
        // A message that starts with digits: "1" + "2hi" is not 1 byte, "12" + "hi"...
        // "3" + "12x" is 3 bytes.
        assert!(decode(b"\x19Ethereum Signed Message:\n312x").is_ok());
    }
}
