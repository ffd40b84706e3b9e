//! Admission: who may start work on this cosigner, and how often.
//!
//! - **Registration.** A wallet creation costs a session, a safe-prime set and minutes
//!   of CPU, so `CreateWallet` needs a registration credential its operator issued
//!   (`cosigner_api::registration`): signed by a trusted issuer, for this cosigner (or
//!   any), unexpired, and not used before. The id of an accepted credential is
//!   persisted in the store until it expires, so it creates one wallet, across
//!   restarts. Open registration (no credential) exists only as the explicit
//!   `dev_open_registration` switch.
//! - **Rate limits** (GCRA, `governor`): wallet creations per device identity and in
//!   total, and authenticated requests per wallet party. Checked after the request's
//!   signature verified, so nobody spends another identity's budget.
//!
//! What a creation may *hold* is bounded elsewhere: the pending entries
//! (`max_pending_creations`) and, only once every peer is live, one of the creation
//! slots (`max_concurrent_creations`), a budget apart from the signing sessions'.

use std::num::NonZeroU32;

use cosigner_api::registration::{self, Credential, RegistrationError};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use mpc_wire::PublicIdentity;

use crate::config::Config;
use crate::error::CosignerError;
use crate::store::Store;

/// The admission state of a running cosigner.
pub(crate) struct Admission {
    issuers: Vec<PublicIdentity>,
    open: bool,
    create_per_identity: DefaultKeyedRateLimiter<String>,
    create_global: DefaultDirectRateLimiter,
    requests_per_identity: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

/// A registration credential accepted for one creation (to give back if the creation
/// does not start).
pub(crate) enum Registration {
    /// A credential, consumed in the store.
    Credential(Box<Credential>),
    /// None needed (dev mode).
    Open,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Admission {
    /// From a validated configuration.
    pub(crate) fn new(cfg: &Config) -> Result<Self, crate::config::ConfigError> {
        let r = &cfg.rate_limits;
        Ok(Admission {
            issuers: cfg.registration_issuers()?,
            open: cfg.dev_open_registration,
            create_per_identity: RateLimiter::keyed(Quota::per_hour(nz(
                r.create_per_identity_per_hour
            ))),
            create_global: RateLimiter::direct(Quota::per_minute(nz(r.create_global_per_minute))),
            requests_per_identity: RateLimiter::keyed(
                Quota::per_second(nz(r.requests_per_identity_per_second))
                    .allow_burst(nz(r.requests_burst_per_identity)),
            ),
            clock: DefaultClock::default(),
        })
    }

    /// Whether wallets can be created at all (an issuer is trusted, or dev mode).
    pub(crate) fn registration_possible(&self) -> bool {
        self.open || !self.issuers.is_empty()
    }

    /// Whether anyone may create wallets without a credential (dev mode).
    pub(crate) fn open(&self) -> bool {
        self.open
    }

    fn limited(&self, what: &str, wait: std::time::Duration) -> CosignerError {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        CosignerError::RateLimited(format!("{what}; retry in {secs} s"))
    }

    /// The registration credential of a verified CreateWallet: its signature by a
    /// trusted issuer, audience and expiry (`None`: open registration, none given).
    /// Whether it was used is the store's ([`Admission::is_used`]), and it is consumed
    /// last ([`Admission::consume`]).
    pub(crate) fn verify_credential(
        &self,
        credential: &str,
        me: &PublicIdentity,
        now_ms: u64,
    ) -> Result<Option<Credential>, CosignerError> {
        if self.open && credential.trim().is_empty() {
            return Ok(None);
        }
        Ok(Some(registration::verify(
            credential,
            &self.issuers,
            me,
            now_ms,
        )?))
    }

    /// `registration_required` when `credential` was used before. Checked BEFORE the
    /// rate limits: requests carrying a used (e.g. captured or leaked) credential must
    /// not spend the global creation budget that real registrations need.
    pub(crate) fn is_used(store: &Store, credential: &Credential) -> Result<(), CosignerError> {
        if store.registration_used(&credential.id_hex())? {
            return Err(RegistrationError::Used.into());
        }
        Ok(())
    }

    /// Counts one creation by `device` against its own and the global creation rate
    /// (once everything cheaper passed: signature, fields, credential).
    pub(crate) fn check_create_rate(&self, device: &PublicIdentity) -> Result<(), CosignerError> {
        if let Err(e) = self.create_per_identity.check_key(&device.to_string()) {
            return Err(self.limited(
                "too many wallet creations by this device identity",
                e.wait_time_from(self.clock.now()),
            ));
        }
        if let Err(e) = self.create_global.check() {
            return Err(self.limited(
                "too many wallet creations on this cosigner",
                e.wait_time_from(self.clock.now()),
            ));
        }
        Ok(())
    }

    /// Marks `credential` used in the store (`registration_required` if it was used
    /// before, on this cosigner or before its last restart).
    pub(crate) fn consume(
        store: &Store,
        credential: Option<Credential>,
        now_ms: u64,
    ) -> Result<Registration, CosignerError> {
        let Some(c) = credential else {
            return Ok(Registration::Open);
        };
        if store.registration_consume(&c.id_hex(), c.expires_at_ms, now_ms)? {
            Ok(Registration::Credential(Box::new(c)))
        } else {
            Err(RegistrationError::Used.into())
        }
    }

    /// Gives a consumed credential back (its creation did not start).
    pub(crate) fn release(store: &Store, reg: &Registration) {
        if let Registration::Credential(c) = reg {
            if let Err(e) = store.registration_release(&c.id_hex()) {
                tracing::warn!(error = %e, "cannot give a registration credential back");
            }
        }
    }

    /// Counts one authenticated request of `scope` (a wallet party).
    pub(crate) fn check_request(&self, scope: &str) -> Result<(), CosignerError> {
        self.requests_per_identity
            .check_key(&scope.to_string())
            .map_err(|e| {
                self.limited(
                    "too many requests by this wallet party",
                    e.wait_time_from(self.clock.now()),
                )
            })
    }

    /// Drops the rate-limit state of identities idle long enough to be back at a full
    /// budget (memory stays bounded by the recently active identities).
    pub(crate) fn sweep(&self) {
        self.create_per_identity.retain_recent();
        self.create_per_identity.shrink_to_fit();
        self.requests_per_identity.retain_recent();
        self.requests_per_identity.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimits;
    use mpc_wire::IdentityKey;

    fn config(issuer: &PublicIdentity, open: bool, per_identity: u32, global: u32) -> Config {
        Config {
            registration_issuers: vec![issuer.to_string()],
            dev_open_registration: open,
            rate_limits: RateLimits {
                create_per_identity_per_hour: per_identity,
                create_global_per_minute: global,
                ..RateLimits::default()
            },
            ..Config::default()
        }
    }

    impl Admission {
        /// The credential, then the rates (as CreateWallet does, without the store).
        fn check_create(
            &self,
            credential: &str,
            device: &PublicIdentity,
            me: &PublicIdentity,
            now_ms: u64,
        ) -> Result<Option<Credential>, CosignerError> {
            let c = self.verify_credential(credential, me, now_ms)?;
            self.check_create_rate(device)?;
            Ok(c)
        }
    }

    #[test]
    fn creations_are_limited_per_identity_then_globally() {
        let issuer = IdentityKey::generate().unwrap();
        let me = IdentityKey::generate().unwrap().public();
        let a = Admission::new(&config(&issuer.public(), false, 2, 3)).unwrap();
        let (d1, d2) = (
            IdentityKey::generate().unwrap().public(),
            IdentityKey::generate().unwrap().public(),
        );
        let cred = || registration::issue(&issuer, 1_000, 60_000, Some(&me)).unwrap();
        assert!(a.check_create(&cred(), &d1, &me, 2_000).unwrap().is_some());
        assert!(a.check_create(&cred(), &d1, &me, 2_000).is_ok());
        let e = a.check_create(&cred(), &d1, &me, 2_000).unwrap_err();
        assert_eq!(e.code(), wallet_types::ErrorCode::RateLimited);
        assert!(e.to_string().contains("this device identity"), "{e}");
        // Another identity has its own budget, until the global one is spent.
        assert!(a.check_create(&cred(), &d2, &me, 2_000).is_ok());
        let e = a.check_create(&cred(), &d2, &me, 2_000).unwrap_err();
        assert!(e.to_string().contains("on this cosigner"), "{e}");
        // A refused credential spends no budget.
        let a = Admission::new(&config(&issuer.public(), false, 1, 10)).unwrap();
        let forged =
            registration::issue(&IdentityKey::generate().unwrap(), 1_000, 60_000, None).unwrap();
        for _ in 0..3 {
            let e = a.check_create(&forged, &d1, &me, 2_000).unwrap_err();
            assert_eq!(e.code(), wallet_types::ErrorCode::RegistrationRequired);
        }
        assert!(a.check_create(&cred(), &d1, &me, 2_000).is_ok());
    }

    #[test]
    fn open_registration_needs_no_credential_but_checks_a_given_one() {
        let issuer = IdentityKey::generate().unwrap();
        let me = IdentityKey::generate().unwrap().public();
        let d = IdentityKey::generate().unwrap().public();
        let closed = Admission::new(&config(&issuer.public(), false, 10, 10)).unwrap();
        assert_eq!(
            closed.check_create("", &d, &me, 0).unwrap_err().code(),
            wallet_types::ErrorCode::RegistrationRequired
        );
        let open = Admission::new(&config(&issuer.public(), true, 10, 10)).unwrap();
        assert!(open.check_create("", &d, &me, 0).unwrap().is_none());
        assert!(open.check_create("wmreg1.x.y", &d, &me, 0).is_err());
    }

    #[test]
    fn requests_are_limited_per_wallet_party() {
        let cfg = Config {
            rate_limits: RateLimits {
                requests_per_identity_per_second: 1,
                requests_burst_per_identity: 3,
                ..RateLimits::default()
            },
            ..Config::default()
        };
        let a = Admission::new(&cfg).unwrap();
        for _ in 0..3 {
            a.check_request("w/0").unwrap();
        }
        assert_eq!(
            a.check_request("w/0").unwrap_err().code(),
            wallet_types::ErrorCode::RateLimited
        );
        a.check_request("w/2").unwrap();
        a.sweep();
    }
}
