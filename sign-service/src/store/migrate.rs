//! Moving a store from its redb file to PostgreSQL (`sign-service store
//! migrate-to-postgres`): every table copied as it is (records stay sealed under the
//! same store key: the target opens with the same key settings), in ONE write
//! transaction of the target, then checked record by record.
//!
//! - The target must be empty (a fresh database: the schema is created on connect).
//!   A target that already holds exactly this store (same store id, the same records)
//!   is a migration done before: nothing is copied, the run succeeds again (so a run
//!   that failed anywhere can simply be run again; a failed copy commits nothing).
//! - Afterwards the redb file is marked (`meta/moved_to`, plain): [`super::Store::open`]
//!   refuses it from then on, so no presignature can be used once from each copy.

use sha2::{Digest, Sha256};

use super::backend::{Kind, Outcome, StoreBackend, Table, Tx};
use super::{KeySource, Store, StoreError, META_STORE_ID};

/// `meta` key of the mark a migrated redb store gets: where it went, and when.
pub const META_MOVED_TO: &str = "moved_to";

/// One table of a store: its records and a digest of them (keys and sealed values,
/// in bytewise key order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    /// The table.
    pub table: Table,
    /// Its records.
    pub records: u64,
    digest: [u8; 32],
}

/// What [`migrate`] did.
#[derive(Debug, Clone)]
pub struct Migrated {
    /// Every table, as in the source and now in the target.
    pub tables: Vec<TableSummary>,
    /// Records in all.
    pub records: u64,
    /// `true` when the target held this store already (nothing copied).
    pub already: bool,
    /// The target, described.
    pub target: String,
}

/// Where a migrated store went, if it was migrated.
pub fn moved_to(b: &dyn StoreBackend) -> Result<Option<String>, StoreError> {
    let mut out = None;
    b.read(&mut |tx| {
        out = tx
            .get(Table::Meta, META_MOVED_TO)?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        Ok(())
    })?;
    Ok(out)
}

/// A record as bytes: its key and its value (numbers big-endian).
type Row = (Vec<u8>, Vec<u8>);

/// Every record of table `t`, in bytewise key order. The migration mark is left out
/// (it is the source's alone).
fn rows(tx: &mut dyn Tx, t: Table) -> Result<Vec<Row>, StoreError> {
    let mut rows: Vec<Row> = match t.kind() {
        Kind::Bytes => tx
            .entries(t, "")?
            .into_iter()
            .filter(|(k, _)| !(t == Table::Meta && k == META_MOVED_TO))
            .map(|(k, v)| (k.into_bytes(), v))
            .collect(),
        Kind::Ms => tx
            .entries_ms(t)?
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v.to_be_bytes().to_vec()))
            .collect(),
        Kind::Text => tx
            .entries_text(t)?
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
            .collect(),
        Kind::Sequence => tx
            .seq_entries()?
            .into_iter()
            .map(|(k, v)| (k.to_be_bytes().to_vec(), v))
            .collect(),
    };
    rows.sort();
    Ok(rows)
}

/// Writes `rows` (from [`rows`]) into table `t`.
fn put_rows(tx: &mut dyn Tx, t: Table, rows: &[Row]) -> Result<(), StoreError> {
    let bad = |what: &str| StoreError::Malformed(t.name().to_string(), what.to_string());
    for (k, v) in rows {
        match t.kind() {
            Kind::Sequence => {
                let n = <[u8; 8]>::try_from(k.as_slice()).map_err(|_| bad("a key of 8 bytes"))?;
                tx.seq_put(u64::from_be_bytes(n), v)?;
            }
            kind => {
                let key = std::str::from_utf8(k).map_err(|_| bad("a UTF-8 key"))?;
                match kind {
                    Kind::Bytes => tx.put(t, key, v)?,
                    Kind::Ms => {
                        let ms = <[u8; 8]>::try_from(v.as_slice())
                            .map_err(|_| bad("a value of 8 bytes"))?;
                        tx.put_ms(t, key, u64::from_be_bytes(ms))?
                    }
                    _ => {
                        let text = std::str::from_utf8(v).map_err(|_| bad("a UTF-8 value"))?;
                        tx.put_text(t, key, text)?
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every table's records and digest, in one read transaction.
pub fn summarize(b: &dyn StoreBackend) -> Result<Vec<TableSummary>, StoreError> {
    let mut out = Vec::new();
    b.read(&mut |tx| {
        out.clear();
        for t in Table::ALL {
            let rows = rows(tx, t)?;
            let mut h = Sha256::new();
            for (k, v) in &rows {
                h.update((k.len() as u64).to_be_bytes());
                h.update(k);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v);
            }
            out.push(TableSummary {
                table: t,
                records: rows.len() as u64,
                digest: h.finalize().into(),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// The first table that differs, named.
fn same(want: &[TableSummary], got: &[TableSummary]) -> Result<(), String> {
    for (w, g) in want.iter().zip(got) {
        if w.records != g.records {
            return Err(format!(
                "table {}: {} records in the source, {} in the target",
                w.table.name(),
                w.records,
                g.records
            ));
        }
        if w.digest != g.digest {
            return Err(format!(
                "table {}: the records differ from the source's",
                w.table.name()
            ));
        }
    }
    Ok(())
}

fn store_id(b: &dyn StoreBackend) -> Result<Option<Vec<u8>>, StoreError> {
    let mut out = None;
    b.read(&mut |tx| {
        out = tx.get(Table::Meta, META_STORE_ID)?;
        Ok(())
    })?;
    Ok(out)
}

/// Copies the store `from` (open, so its key is known to be `source`) into the empty
/// `to`, checks the copy (every table's records and digest), opens it with `source`
/// (the key check) and marks `from` as moved. `progress` gets one line per step. See
/// the module's documentation for a target that is not empty.
pub fn migrate(
    from: &Store,
    to: Box<dyn StoreBackend>,
    source: &KeySource,
    now_ms: u64,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Migrated, StoreError> {
    let src = from.backend();
    let target = to.describe();
    progress(format!("source: {}", src.describe()));
    progress(format!("target: {target}"));
    let want = summarize(src)?;
    let records: u64 = want.iter().map(|t| t.records).sum();
    let have = summarize(to.as_ref())?;
    let held: u64 = have.iter().map(|t| t.records).sum();
    let already = if held == 0 {
        progress(format!(
            "copying {records} records in one transaction (nothing is kept if it fails)"
        ));
        to.write(&mut |tx| {
            for t in Table::ALL {
                let mut rows = Vec::new();
                src.read(&mut |stx| {
                    rows = self::rows(stx, t)?;
                    Ok(())
                })?;
                put_rows(tx, t, &rows)?;
                progress(format!("  {:<22} {:>8} records", t.name(), rows.len()));
            }
            progress("committing".into());
            Ok(Outcome::Commit)
        })?;
        progress("verifying every table against the source".into());
        let got = summarize(to.as_ref())?;
        same(&want, &got).map_err(|why| {
            StoreError::Db(format!(
                "the copy in {target} differs from the source after the commit ({why}): \
                 drop that database's tables and run the migration again"
            ))
        })?;
        false
    } else {
        if store_id(to.as_ref())? != store_id(src)? {
            return Err(StoreError::TargetNotEmpty(format!(
                "{target} holds {held} records of another store: migrate into an empty \
                 database"
            )));
        }
        same(&want, &have).map_err(|why| {
            StoreError::TargetNotEmpty(format!(
                "{target} holds this store already but differs from the source ({why}): has \
                 a cosigner run on it since? Then it is the store now; else drop its tables \
                 and run the migration again"
            ))
        })?;
        progress(
            "the target holds this store already, identical to the source: nothing to copy".into(),
        );
        true
    };
    progress("opening the target with the store key".into());
    let opened = Store::with_backend(to, source)?;
    drop(opened);
    let mark = format!("{target} at {now_ms} ms since the epoch");
    src.write(&mut |tx| {
        tx.put(Table::Meta, META_MOVED_TO, mark.as_bytes())?;
        Ok(Outcome::Commit)
    })?;
    progress(format!(
        "marked {} as migrated: the service refuses it from now on",
        src.describe()
    ));
    Ok(Migrated {
        tables: want,
        records,
        already,
        target,
    })
}
