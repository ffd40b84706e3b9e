//! The embedded backend: one redb file (the default). redb takes an exclusive lock on
//! the file, so one cosigner process uses it at a time; its write transactions run one
//! at a time, which makes every store operation serializable.

use std::path::{Path, PathBuf};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};

use super::backend::{Kind, Outcome, StoreBackend, Table, Tx};
use super::StoreError;

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

fn bytes(t: Table) -> Result<TableDefinition<'static, &'static str, &'static [u8]>, StoreError> {
    t.typed(Kind::Bytes).map(TableDefinition::new)
}

fn ms(t: Table) -> Result<TableDefinition<'static, &'static str, u64>, StoreError> {
    t.typed(Kind::Ms).map(TableDefinition::new)
}

fn text(t: Table) -> Result<TableDefinition<'static, &'static str, &'static str>, StoreError> {
    t.typed(Kind::Text).map(TableDefinition::new)
}

const SEQ: TableDefinition<u64, &[u8]> = TableDefinition::new("prime_pool");

/// The store in a redb file.
pub struct RedbBackend {
    db: Database,
    path: PathBuf,
}

impl RedbBackend {
    /// Opens (or creates) the database at `path` (its folder too), with every table.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
            }
        }
        let db = Database::create(path)
            .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(db_err)?;
        for t in Table::ALL {
            match t.kind() {
                Kind::Bytes => drop(tx.open_table(bytes(t)?).map_err(db_err)?),
                Kind::Ms => drop(tx.open_table(ms(t)?).map_err(db_err)?),
                Kind::Text => drop(tx.open_table(text(t)?).map_err(db_err)?),
                Kind::Sequence => drop(tx.open_table(SEQ).map_err(db_err)?),
            }
        }
        tx.commit().map_err(db_err)?;
        Ok(RedbBackend {
            db,
            path: path.to_path_buf(),
        })
    }
}

impl StoreBackend for RedbBackend {
    fn read(
        &self,
        body: &mut (dyn FnMut(&mut dyn Tx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        body(&mut Read(&tx))
    }

    fn write(
        &self,
        body: &mut (dyn FnMut(&mut dyn Tx) -> Result<Outcome, StoreError> + Send),
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        match body(&mut Write(&tx))? {
            Outcome::Commit => tx.commit().map_err(db_err),
            Outcome::Abort => tx.abort().map_err(db_err),
        }
    }

    fn describe(&self) -> String {
        format!("redb file {}", self.path.display())
    }
}

struct Read<'a>(&'a ReadTransaction);
struct Write<'a>(&'a WriteTransaction);

fn read_only() -> StoreError {
    StoreError::Db("a change in a read-only transaction".into())
}

fn get_b(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(t.get(key).map_err(db_err)?.map(|v| v.value().to_vec()))
}

fn get_m(t: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<Option<u64>, StoreError> {
    Ok(t.get(key).map_err(db_err)?.map(|v| v.value()))
}

fn get_t(
    t: &impl ReadableTable<&'static str, &'static str>,
    key: &str,
) -> Result<Option<String>, StoreError> {
    Ok(t.get(key).map_err(db_err)?.map(|v| v.value().to_string()))
}

fn entries_b(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for item in t.range::<&str>(prefix..).map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        if !k.value().starts_with(prefix) {
            break;
        }
        out.push((k.value().to_string(), v.value().to_vec()));
    }
    Ok(out)
}

fn entries_m(t: &impl ReadableTable<&'static str, u64>) -> Result<Vec<(String, u64)>, StoreError> {
    let mut out = Vec::new();
    for item in t.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        out.push((k.value().to_string(), v.value()));
    }
    Ok(out)
}

fn entries_t(
    t: &impl ReadableTable<&'static str, &'static str>,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    for item in t.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        out.push((k.value().to_string(), v.value().to_string()));
    }
    Ok(out)
}

fn entries_s(
    t: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for item in t.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

fn last_s(t: &impl ReadableTable<u64, &'static [u8]>) -> Result<Option<u64>, StoreError> {
    Ok(t.last().map_err(db_err)?.map(|(k, _)| k.value()))
}

/// The read operations, the same for both transaction kinds (`open_table` differs).
macro_rules! reads {
    () => {
        fn get(&mut self, t: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            get_b(&self.0.open_table(bytes(t)?).map_err(db_err)?, key)
        }
        fn get_ms(&mut self, t: Table, key: &str) -> Result<Option<u64>, StoreError> {
            get_m(&self.0.open_table(ms(t)?).map_err(db_err)?, key)
        }
        fn get_text(&mut self, t: Table, key: &str) -> Result<Option<String>, StoreError> {
            get_t(&self.0.open_table(text(t)?).map_err(db_err)?, key)
        }
        fn entries(
            &mut self,
            t: Table,
            prefix: &str,
        ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            entries_b(&self.0.open_table(bytes(t)?).map_err(db_err)?, prefix)
        }
        fn entries_ms(&mut self, t: Table) -> Result<Vec<(String, u64)>, StoreError> {
            entries_m(&self.0.open_table(ms(t)?).map_err(db_err)?)
        }
        fn entries_text(&mut self, t: Table) -> Result<Vec<(String, String)>, StoreError> {
            entries_t(&self.0.open_table(text(t)?).map_err(db_err)?)
        }
        fn count(&mut self, t: Table) -> Result<u64, StoreError> {
            match t.kind() {
                Kind::Bytes => self.0.open_table(bytes(t)?).map_err(db_err)?.len(),
                Kind::Ms => self.0.open_table(ms(t)?).map_err(db_err)?.len(),
                Kind::Text => self.0.open_table(text(t)?).map_err(db_err)?.len(),
                Kind::Sequence => self.0.open_table(SEQ).map_err(db_err)?.len(),
            }
            .map_err(db_err)
        }
        fn seq_last(&mut self) -> Result<Option<u64>, StoreError> {
            last_s(&self.0.open_table(SEQ).map_err(db_err)?)
        }
        fn seq_entries(&mut self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
            entries_s(&self.0.open_table(SEQ).map_err(db_err)?)
        }
    };
}

impl Tx for Read<'_> {
    reads!();
    fn put(&mut self, _: Table, _: &str, _: &[u8]) -> Result<(), StoreError> {
        Err(read_only())
    }
    fn put_ms(&mut self, _: Table, _: &str, _: u64) -> Result<(), StoreError> {
        Err(read_only())
    }
    fn put_text(&mut self, _: Table, _: &str, _: &str) -> Result<(), StoreError> {
        Err(read_only())
    }
    fn remove(&mut self, _: Table, _: &str) -> Result<bool, StoreError> {
        Err(read_only())
    }
    fn seq_put(&mut self, _: u64, _: &[u8]) -> Result<(), StoreError> {
        Err(read_only())
    }
    fn seq_pop_first(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Err(read_only())
    }
    fn seq_remove(&mut self, _: u64) -> Result<bool, StoreError> {
        Err(read_only())
    }
}

impl Tx for Write<'_> {
    reads!();
    fn put(&mut self, t: Table, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0
            .open_table(bytes(t)?)
            .map_err(db_err)?
            .insert(key, value)
            .map_err(db_err)?;
        Ok(())
    }
    fn put_ms(&mut self, t: Table, key: &str, value: u64) -> Result<(), StoreError> {
        self.0
            .open_table(ms(t)?)
            .map_err(db_err)?
            .insert(key, value)
            .map_err(db_err)?;
        Ok(())
    }
    fn put_text(&mut self, t: Table, key: &str, value: &str) -> Result<(), StoreError> {
        self.0
            .open_table(text(t)?)
            .map_err(db_err)?
            .insert(key, value)
            .map_err(db_err)?;
        Ok(())
    }
    fn remove(&mut self, t: Table, key: &str) -> Result<bool, StoreError> {
        let found = match t.kind() {
            Kind::Bytes => self
                .0
                .open_table(bytes(t)?)
                .map_err(db_err)?
                .remove(key)
                .map_err(db_err)?
                .is_some(),
            Kind::Ms => self
                .0
                .open_table(ms(t)?)
                .map_err(db_err)?
                .remove(key)
                .map_err(db_err)?
                .is_some(),
            Kind::Text => self
                .0
                .open_table(text(t)?)
                .map_err(db_err)?
                .remove(key)
                .map_err(db_err)?
                .is_some(),
            Kind::Sequence => {
                return Err(StoreError::Db(format!(
                    "table {} is keyed by numbers",
                    t.name()
                )))
            }
        };
        Ok(found)
    }
    fn seq_put(&mut self, n: u64, value: &[u8]) -> Result<(), StoreError> {
        self.0
            .open_table(SEQ)
            .map_err(db_err)?
            .insert(n, value)
            .map_err(db_err)?;
        Ok(())
    }
    fn seq_pop_first(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let mut t = self.0.open_table(SEQ).map_err(db_err)?;
        let popped = t
            .pop_first()
            .map_err(db_err)?
            .map(|(k, v)| (k.value(), v.value().to_vec()));
        Ok(popped)
    }
    fn seq_remove(&mut self, n: u64) -> Result<bool, StoreError> {
        let mut t = self.0.open_table(SEQ).map_err(db_err)?;
        let found = t.remove(n).map_err(db_err)?.is_some();
        Ok(found)
    }
}
