//! The big-integer operations the search needs, implemented for each backend.
//!
//! Only non-negative integers occur. The search itself ([`crate::Search`]) is generic over
//! [`Natural`]; the hot operation is [`Natural::pow_mod`] (one modular exponentiation per
//! Fermat or Miller–Rabin test), everything else is cheap bookkeeping.

use std::fmt;

/// A non-negative big integer from some backend.
pub trait Natural: Clone + Eq + Ord + Send + Sync + fmt::Debug + 'static {
    /// Name of the backend, for reports (`"num-bigint"`, `"rug"`).
    const BACKEND: &'static str;

    /// The integer `v`.
    fn from_u64(v: u64) -> Self;
    /// Big-endian bytes to an integer.
    fn from_be_bytes(bytes: &[u8]) -> Self;
    /// The minimal big-endian bytes (empty for zero is allowed).
    fn to_be_bytes(&self) -> Vec<u8>;
    /// Little-endian 32-bit digits (for residues modulo small primes).
    fn to_u32_digits_le(&self) -> Vec<u32>;
    /// Number of significant bits (0 for zero).
    fn bit_len(&self) -> u64;
    /// Whether bit `i` is set.
    fn bit(&self, i: u64) -> bool;
    /// `self + v`.
    fn add_u64(&self, v: u64) -> Self;
    /// `self - v`; callers guarantee `self >= v`.
    fn sub_u64(&self, v: u64) -> Self;
    /// `2 * self + 1`.
    fn double_plus_one(&self) -> Self;
    /// `self >> k`.
    fn shr(&self, k: u64) -> Self;
    /// `self mod m` (`m > 0`).
    fn rem(&self, m: &Self) -> Self;
    /// `self ^ exp mod m` (`m` odd, `m > 1`).
    fn pow_mod(&self, exp: &Self, m: &Self) -> Self;
    /// `self ^ 2 mod m`.
    fn square_mod(&self, m: &Self) -> Self;
    /// Lowercase hexadecimal without prefix.
    fn to_hex(&self) -> String;
    /// Parses hexadecimal (no prefix); `None` if malformed or empty.
    fn from_hex(s: &str) -> Option<Self>;

    /// Base-2 Fermat test, `2^(self-1) ≡ 1 (mod self)`, for odd `self > 2` (the hot
    /// operation of the search). The default uses [`Natural::pow_mod`].
    fn fermat2(&self) -> bool {
        Self::from_u64(2).pow_mod(&self.sub_u64(1), self) == Self::from_u64(1)
    }

    /// Number of trailing zero bits (0 for zero).
    fn trailing_zeros(&self) -> u64 {
        let mut i = 0;
        let n = self.bit_len();
        while i < n && !self.bit(i) {
            i += 1;
        }
        i
    }

    /// `self mod r` for a small `r > 0`.
    fn mod_u32(&self, r: u32) -> u32 {
        let r = u64::from(r);
        let mut acc: u64 = 0;
        for d in self.to_u32_digits_le().iter().rev() {
            acc = ((acc << 32) | u64::from(*d)) % r;
        }
        // acc < r <= u32::MAX
        acc as u32
    }
}

mod num_bigint_impl {
    use num_bigint::BigUint;

    use super::Natural;

    impl Natural for BigUint {
        const BACKEND: &'static str = "num-bigint";

        fn from_u64(v: u64) -> Self {
            BigUint::from(v)
        }
        fn from_be_bytes(bytes: &[u8]) -> Self {
            BigUint::from_bytes_be(bytes)
        }
        fn to_be_bytes(&self) -> Vec<u8> {
            BigUint::to_bytes_be(self)
        }
        fn to_u32_digits_le(&self) -> Vec<u32> {
            self.to_u32_digits()
        }
        fn bit_len(&self) -> u64 {
            self.bits()
        }
        fn bit(&self, i: u64) -> bool {
            BigUint::bit(self, i)
        }
        fn add_u64(&self, v: u64) -> Self {
            self + v
        }
        fn sub_u64(&self, v: u64) -> Self {
            self - v
        }
        fn double_plus_one(&self) -> Self {
            (self << 1u32) + 1u32
        }
        fn shr(&self, k: u64) -> Self {
            self >> k
        }
        fn rem(&self, m: &Self) -> Self {
            self % m
        }
        fn pow_mod(&self, exp: &Self, m: &Self) -> Self {
            self.modpow(exp, m)
        }
        fn square_mod(&self, m: &Self) -> Self {
            (self * self) % m
        }
        fn to_hex(&self) -> String {
            self.to_str_radix(16)
        }
        fn from_hex(s: &str) -> Option<Self> {
            if s.is_empty() {
                return None;
            }
            BigUint::parse_bytes(s.as_bytes(), 16)
        }
        fn trailing_zeros(&self) -> u64 {
            BigUint::trailing_zeros(self).unwrap_or(0)
        }
        fn fermat2(&self) -> bool {
            crate::montgomery::fermat2_biguint(self)
        }
        fn mod_u32(&self, r: u32) -> u32 {
            let mut acc: u64 = 0;
            let r = u64::from(r);
            for d in self.iter_u32_digits().rev() {
                acc = ((acc << 32) | u64::from(d)) % r;
            }
            acc as u32
        }
    }
}

#[cfg(feature = "rug")]
mod rug_impl {
    use rug::integer::Order;
    use rug::Integer;

    use super::Natural;

    impl Natural for Integer {
        const BACKEND: &'static str = "rug";

        fn from_u64(v: u64) -> Self {
            Integer::from(v)
        }
        fn from_be_bytes(bytes: &[u8]) -> Self {
            Integer::from_digits(bytes, Order::Msf)
        }
        fn to_be_bytes(&self) -> Vec<u8> {
            self.to_digits::<u8>(Order::Msf)
        }
        fn to_u32_digits_le(&self) -> Vec<u32> {
            self.to_digits::<u32>(Order::Lsf)
        }
        fn bit_len(&self) -> u64 {
            u64::from(self.significant_bits())
        }
        fn bit(&self, i: u64) -> bool {
            match u32::try_from(i) {
                Ok(i) => self.get_bit(i),
                Err(_) => false,
            }
        }
        fn add_u64(&self, v: u64) -> Self {
            Integer::from(self + v)
        }
        fn sub_u64(&self, v: u64) -> Self {
            Integer::from(self - v)
        }
        fn double_plus_one(&self) -> Self {
            let mut x = Integer::from(self << 1u32);
            x += 1u32;
            x
        }
        fn shr(&self, k: u64) -> Self {
            let k = u32::try_from(k).unwrap_or(u32::MAX);
            Integer::from(self >> k)
        }
        fn rem(&self, m: &Self) -> Self {
            Integer::from(self % m)
        }
        fn pow_mod(&self, exp: &Self, m: &Self) -> Self {
            // Non-negative exponent: GMP always has a result.
            match self.pow_mod_ref(exp, m) {
                Some(r) => Integer::from(r),
                None => Integer::new(),
            }
        }
        fn square_mod(&self, m: &Self) -> Self {
            let mut x = Integer::from(self.square_ref());
            x %= m;
            x
        }
        fn to_hex(&self) -> String {
            self.to_string_radix(16)
        }
        fn from_hex(s: &str) -> Option<Self> {
            if s.is_empty() || s.starts_with('-') || s.starts_with('+') {
                return None;
            }
            Integer::from_str_radix(s, 16).ok()
        }
        fn trailing_zeros(&self) -> u64 {
            self.find_one(0).map(u64::from).unwrap_or(0)
        }
        fn mod_u32(&self, r: u32) -> u32 {
            self.mod_u(r)
        }
    }
}
