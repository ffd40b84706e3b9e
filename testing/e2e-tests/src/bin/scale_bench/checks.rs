//! The checks after the run: the signatures, the store's presignature tables
//! (PostgreSQL, read with psql) and the devices' pools.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use e2e_tests::{eip191, verify_eth_signature};
use test_servers::postgres::PgServer;

use super::{Kind, Outcome, Wallet};

/// Every signature verifies against its wallet's account key (recovered address, DER
/// under the announced key, low s, the digest recomputed), has the kind asked for, and
/// no two signatures share an r.
pub(crate) fn check_signatures(
    outcomes: &[Outcome],
    wallets: &[Wallet],
    problems: &mut Vec<String>,
) {
    let mut rs: HashMap<&str, usize> = HashMap::new();
    for o in outcomes {
        let Some((s, _)) = &o.signed else { continue };
        let message = format!("scale-bench signing {}", o.job.id);
        let verified = serde_json::to_value(s)
            .map_err(anyhow::Error::from)
            .and_then(|v| verify_eth_signature(&eip191(&message), &v, &wallets[o.wallet].address));
        if let Err(e) = verified {
            problems.push(format!("signature {} does not verify: {e:#}", o.job.id));
        }
        if s.presigned != (o.job.kind == Kind::Pool) {
            problems.push(format!(
                "signing {} asked for {} but presigned = {}",
                o.job.id,
                o.job.kind.as_str(),
                s.presigned
            ));
        }
        if let Some(other) = rs.insert(s.r.as_str(), o.job.id) {
            problems.push(format!(
                "signatures {other} and {} share r {} (a presignature or nonce used twice)",
                o.job.id, s.r
            ));
        }
    }
}

/// The presignature tables of the store, read with psql.
pub(crate) struct StoreState {
    /// Keys (`wallet/account/party/id`) of the presignatures recorded used.
    pub(crate) used: HashSet<String>,
    /// Keys of the unused presignatures.
    pub(crate) unused: HashSet<String>,
    /// Keys present in both tables (must be none).
    pub(crate) both: usize,
    /// The store's take counter (`meta` `presign_takes`, 8 bytes big-endian).
    pub(crate) takes: u64,
}

impl StoreState {
    pub(crate) fn read(pg: &PgServer, db: &str) -> Result<Self> {
        let rows = |sql: &str| -> Result<Vec<String>> {
            Ok(pg
                .query(db, sql)
                .with_context(|| format!("query {sql:?}"))?
                .lines()
                .map(str::to_string)
                .collect())
        };
        let used = rows("SELECT key FROM presignatures_used")?
            .into_iter()
            .collect();
        let unused = rows("SELECT key FROM presignatures")?.into_iter().collect();
        let both = rows(
            "SELECT count(*) FROM presignatures p JOIN presignatures_used u ON u.key = p.key",
        )?
        .first()
        .context("no count")?
        .parse()
        .context("count")?;
        let takes = match rows("SELECT encode(value, 'hex') FROM meta WHERE key = 'presign_takes'")?
            .first()
        {
            Some(h) => {
                let b: [u8; 8] = hex::decode(h)
                    .context("take counter")?
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("take counter: not 8 bytes"))?;
                u64::from_be_bytes(b)
            }
            None => 0,
        };
        Ok(StoreState {
            used,
            unused,
            both,
            takes,
        })
    }
}

/// What the store says about the run's presignatures.
pub(crate) struct StoreFigures {
    pub(crate) taken: usize,
    pub(crate) signed: usize,
    pub(crate) lost: usize,
}

/// The store after the run: nothing both used and unused; every pool signature's
/// presignature taken exactly once, during the run; the take counter moved by exactly
/// the ids recorded used (no other path marked any used); the ids taken without a
/// signature are at most the pool attempts that failed.
pub(crate) fn check_store(
    before: &StoreState,
    after: &StoreState,
    outcomes: &[Outcome],
    problems: &mut Vec<String>,
) -> StoreFigures {
    if after.both != 0 {
        problems.push(format!(
            "store: {} presignatures are both unused and used",
            after.both
        ));
    }
    let new: HashSet<&String> = after.used.difference(&before.used).collect();
    if !before.used.is_subset(&after.used) {
        problems.push("store: ids recorded used before the run are gone".into());
    }
    let id_of = |key: &str| key.rsplit('/').next().unwrap_or("").to_string();
    let mut used_ids: HashMap<String, usize> = HashMap::new();
    for k in &after.used {
        *used_ids.entry(id_of(k.as_str())).or_default() += 1;
    }
    let new_ids: HashSet<String> = new.iter().map(|k| id_of(k.as_str())).collect();
    let unused_ids: HashSet<String> = after.unused.iter().map(|k| id_of(k.as_str())).collect();
    let mut signed = 0;
    for o in outcomes.iter().filter(|o| o.job.kind == Kind::Pool) {
        let Some((s, _)) = &o.signed else { continue };
        signed += 1;
        let id = &s.session_id;
        match used_ids.get(id) {
            Some(1) if new_ids.contains(id) => {}
            Some(1) => problems.push(format!("store: presignature {id} was used before the run")),
            n => problems.push(format!(
                "store: presignature {id} of signing {} is recorded used {} times",
                o.job.id,
                n.copied().unwrap_or(0)
            )),
        }
        if unused_ids.contains(id) {
            problems.push(format!(
                "store: presignature {id} signed and is still unused"
            ));
        }
    }
    let delta = after.takes.saturating_sub(before.takes) as usize;
    if delta != new.len() {
        problems.push(format!(
            "store: the take counter moved by {delta} but {} ids were recorded used",
            new.len()
        ));
    }
    let failed_pool_attempts: usize = outcomes
        .iter()
        .filter(|o| o.job.kind == Kind::Pool)
        .map(|o| o.failures.len())
        .sum();
    let lost = new.len().saturating_sub(signed);
    if new.len() < signed || lost > failed_pool_attempts {
        problems.push(format!(
            "store: {} presignatures taken during the run for {signed} pool signatures and {failed_pool_attempts} failed pool attempts",
            new.len()
        ));
    }
    StoreFigures {
        taken: new.len(),
        signed,
        lost,
    }
}

/// The devices' pools: pool signature ids all different, each taken from its wallet's
/// local pool (there before, gone after), and each pool shrank by at least its pool
/// signatures and at most its pool attempts (at most one take per attempt).
pub(crate) fn check_devices(
    before: &[HashSet<String>],
    after: &[HashSet<String>],
    outcomes: &[Outcome],
    problems: &mut Vec<String>,
) {
    let mut seen = HashSet::new();
    let (mut attempts, mut signed) = (vec![0usize; before.len()], vec![0usize; before.len()]);
    for o in outcomes.iter().filter(|o| o.job.kind == Kind::Pool) {
        attempts[o.wallet] += o.failures.len() + usize::from(o.signed.is_some());
        signed[o.wallet] += usize::from(o.signed.is_some());
        let Some((s, _)) = &o.signed else { continue };
        let id = &s.session_id;
        if !seen.insert(id.clone()) {
            problems.push(format!("device: presignature {id} signed twice"));
        }
        if !before[o.wallet].contains(id) || after[o.wallet].contains(id) {
            problems.push(format!(
                "device: presignature {id} was not taken from wallet {}'s pool",
                o.wallet
            ));
        }
    }
    // An attempt takes one presignature, or none when it fails before the take
    // (cosigner unreachable at connection time).
    for (w, (b, a)) in before.iter().zip(after).enumerate() {
        let taken = b.len().saturating_sub(a.len());
        if !a.is_subset(b) || taken < signed[w] || taken > attempts[w] {
            problems.push(format!(
                "device: wallet {w}'s pool went from {} to {} presignatures for {} pool signatures in {} attempts",
                b.len(),
                a.len(),
                signed[w],
                attempts[w]
            ));
        }
    }
}
