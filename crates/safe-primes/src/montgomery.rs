//! Allocation-free Montgomery arithmetic for the base-2 Fermat test in pure Rust.
//!
//! `2^(n-1) mod n` needs no general multiplications: left to right over the exponent's
//! bits, each step is one Montgomery squaring (dedicated squaring: the cross products are
//! computed once and doubled) and, for a one bit, a doubling (`x + x`, one conditional
//! subtraction). The value 1 is represented by `R mod n`, so no conversion into or out of
//! Montgomery form is needed. This replaces num-bigint's general windowed `modpow` (which
//! allocates per multiplication) on the hot path; Miller–Rabin still uses `modpow`.
//!
//! Limbs are `u64` (products in `u128`) on 64-bit targets and `u32` (products in `u64`)
//! elsewhere, notably `wasm32`, whose native multiply is 64-bit.

macro_rules! monty_impl {
    ($name:ident, $limb:ty, $wide:ty) => {
        /// Montgomery arithmetic over this limb width.
        #[allow(dead_code)]
        pub mod $name {
            /// A limb.
            pub type Limb = $limb;
            type Wide = $wide;
            const BITS: u32 = <$limb>::BITS;

            /// `-n[0]^{-1} mod 2^BITS` (Newton iteration; `n0` odd).
            fn neg_inv(n0: Limb) -> Limb {
                let mut inv: Limb = 1;
                for _ in 0..7 {
                    inv = inv.wrapping_mul((2 as Limb).wrapping_sub(n0.wrapping_mul(inv)));
                }
                inv.wrapping_neg()
            }

            fn geq(a: &[Limb], top: Limb, n: &[Limb]) -> bool {
                if top != 0 {
                    return true;
                }
                for (x, y) in a.iter().rev().zip(n.iter().rev()) {
                    if x != y {
                        return x > y;
                    }
                }
                true
            }

            fn sub_in_place(a: &mut [Limb], n: &[Limb]) {
                let mut borrow = false;
                for (x, &y) in a.iter_mut().zip(n) {
                    let (d1, b1) = x.overflowing_sub(y);
                    let (d2, b2) = d1.overflowing_sub(borrow as Limb);
                    *x = d2;
                    borrow = b1 || b2;
                }
            }

            /// `x = x^2 / R mod n`; `t` is scratch of length `2L + 1`.
            fn mont_sqr(x: &mut [Limb], n: &[Limb], n0: Limb, t: &mut [Limb]) {
                let l = n.len();
                t.iter_mut().for_each(|v| *v = 0);
                // cross products x[i] * x[j], i < j
                for i in 0..l {
                    let xi = x[i] as Wide;
                    let mut c: Wide = 0;
                    for (tv, &xj) in t[2 * i + 1..i + l].iter_mut().zip(&x[i + 1..]) {
                        let v = *tv as Wide + xi * xj as Wide + c;
                        *tv = v as Limb;
                        c = v >> BITS;
                    }
                    t[i + l] = c as Limb;
                }
                // double them
                let mut carry: Limb = 0;
                for v in t[..2 * l].iter_mut() {
                    let nv = (*v << 1) | carry;
                    carry = *v >> (BITS - 1);
                    *v = nv;
                }
                t[2 * l] = carry;
                // add the squares x[i]^2
                let mut c: Wide = 0;
                for (pair, &xi) in t[..2 * l].chunks_exact_mut(2).zip(x.iter()) {
                    let sq = xi as Wide * xi as Wide;
                    let v = pair[0] as Wide + (sq as Limb) as Wide + c;
                    pair[0] = v as Limb;
                    c = v >> BITS;
                    let v = pair[1] as Wide + (sq >> BITS) + c;
                    pair[1] = v as Limb;
                    c = v >> BITS;
                }
                t[2 * l] = t[2 * l].wrapping_add(c as Limb);
                // Montgomery reduction, one limb at a time
                for i in 0..l {
                    let m = t[i].wrapping_mul(n0) as Wide;
                    let mut c: Wide = 0;
                    for (tv, &nj) in t[i..i + l].iter_mut().zip(n) {
                        let v = *tv as Wide + m * nj as Wide + c;
                        *tv = v as Limb;
                        c = v >> BITS;
                    }
                    for tv in t[i + l..].iter_mut() {
                        if c == 0 {
                            break;
                        }
                        let v = *tv as Wide + c;
                        *tv = v as Limb;
                        c = v >> BITS;
                    }
                }
                // result t[l..2l] (+ t[2l] * R) < 2n
                let top = t[2 * l];
                x.copy_from_slice(&t[l..2 * l]);
                if geq(x, top, n) {
                    sub_in_place(x, n);
                }
            }

            /// `x = 2x mod n` (`x < n`).
            fn double(x: &mut [Limb], n: &[Limb]) {
                let mut carry: Limb = 0;
                for v in x.iter_mut() {
                    let nv = (*v << 1) | carry;
                    carry = *v >> (BITS - 1);
                    *v = nv;
                }
                if geq(x, carry, n) {
                    sub_in_place(x, n);
                }
            }

            /// Whether `2^(n-1) ≡ 1 (mod n)`. `n`: little-endian limbs of an odd `n > 2`
            /// without high zero limbs; `one`: `R mod n` with `R = 2^(BITS * n.len())`,
            /// `one.len() == n.len()`.
            pub fn fermat2(n: &[Limb], one: &[Limb]) -> bool {
                let l = n.len();
                if l == 0 || n[0] & 1 == 0 || one.len() != l {
                    return false;
                }
                let n0 = neg_inv(n[0]);
                let mut t = vec![0 as Limb; 2 * l + 1];
                let mut x = one.to_vec();
                // exponent e = n - 1 (n odd: just clear bit 0)
                let bit = |i: usize| -> bool {
                    let w = n[i / BITS as usize];
                    let w = if i / (BITS as usize) == 0 { w & !1 } else { w };
                    (w >> (i % BITS as usize)) & 1 == 1
                };
                let top_bits = l * BITS as usize - n[l - 1].leading_zeros() as usize;
                for i in (0..top_bits).rev() {
                    mont_sqr(&mut x, n, n0, &mut t);
                    if bit(i) {
                        double(&mut x, n);
                    }
                }
                x == one
            }
        }
    };
}

monty_impl!(m64, u64, u128);
monty_impl!(m32, u32, u64);

use num_bigint::BigUint;

/// Base-2 Fermat test on a num-bigint number with the target's best limb width.
pub fn fermat2_biguint(n: &BigUint) -> bool {
    if n.bits() < 2 || !n.bit(0) {
        return false;
    }
    #[cfg(target_pointer_width = "64")]
    {
        let limbs = n.to_u64_digits();
        let r = BigUint::from(1u32) << (64 * limbs.len());
        let mut one = (r % n).to_u64_digits();
        one.resize(limbs.len(), 0);
        m64::fermat2(&limbs, &one)
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        let limbs = n.to_u32_digits();
        let r = BigUint::from(1u32) << (32 * limbs.len());
        let mut one = (r % n).to_u32_digits();
        one.resize(limbs.len(), 0);
        m32::fermat2(&limbs, &one)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngCore, SeedableRng};

    fn reference(n: &BigUint) -> bool {
        BigUint::from(2u32).modpow(&(n - 1u32), n) == BigUint::from(1u32)
    }

    fn fermat32(n: &BigUint) -> bool {
        let limbs = n.to_u32_digits();
        let r = BigUint::from(1u32) << (32 * limbs.len());
        let mut one = (r % n).to_u32_digits();
        one.resize(limbs.len(), 0);
        m32::fermat2(&limbs, &one)
    }

    #[test]
    fn matches_modpow_on_random_and_special_numbers() {
        let mut special: Vec<BigUint> = [3u64, 5, 7, 341, 561, 645, 1105, 65537, 4_294_967_291]
            .iter()
            .map(|&v| BigUint::from(v))
            .collect();
        // 2^127 - 1 (prime), 2^521 - 1 (prime), 2^64 + 1 (composite)
        special.push((BigUint::from(1u32) << 127u32) - 1u32);
        special.push((BigUint::from(1u32) << 521u32) - 1u32);
        special.push((BigUint::from(1u32) << 64u32) + 1u32);
        // all-ones limbs: worst case for carries
        special.push((BigUint::from(1u32) << 1536u32) - 1u32);
        for n in &special {
            assert_eq!(fermat2_biguint(n), reference(n), "64-bit limbs, n = {n}");
            assert_eq!(fermat32(n), reference(n), "32-bit limbs, n = {n}");
        }
        // Seeded: every run checks the same "random" numbers.
        let mut rng = StdRng::seed_from_u64(0x6d6f_6e74);
        let mut buf = [0u8; 192];
        for bits in [64usize, 65, 200, 512, 1535, 1536] {
            for _ in 0..6 {
                rng.fill_bytes(&mut buf);
                let mut n = BigUint::from_bytes_be(&buf[..bits.div_ceil(8)]);
                n.set_bit(bits as u64 - 1, true);
                n.set_bit(0, true);
                assert_eq!(fermat2_biguint(&n), reference(&n), "{bits} bits");
                assert_eq!(fermat32(&n), reference(&n), "{bits} bits, 32");
            }
        }
        // a known 1536-bit safe prime's p and q pass
        let p = BigUint::parse_bytes(
            b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
            16,
        )
        .unwrap();
        assert!(fermat2_biguint(&p));
        assert!(fermat2_biguint(&(&p >> 1u32)));
        assert!(fermat32(&p));
        let p2 = &p + 2u32;
        assert_eq!(fermat2_biguint(&p2), reference(&p2));
        assert!(!fermat2_biguint(&BigUint::from(4u32)));
        assert!(!fermat2_biguint(&BigUint::from(1u32)));
    }
}
