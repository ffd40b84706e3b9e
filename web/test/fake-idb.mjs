// A minimal in-memory IndexedDB (the subset src/idb.ts, src/storage.ts and
// src/prime-store.ts use: versioned open with onupgradeneeded, object stores with
// out-of-line keys, get/getKey/getAllKeys/put/add/delete, transactions that complete
// once their requests settled and roll back on abort). Node has no IndexedDB; values
// are kept by reference (CryptoKey objects included), as structured clone would keep
// them equal.

const later = (f) => setTimeout(f, 0);

class Request {
  constructor(tx, run) {
    this.result = undefined;
    this.error = null;
    this.onsuccess = null;
    this.onerror = null;
    tx._pending += 1;
    later(() => {
      tx._pending -= 1;
      if (tx._aborted) return;
      try {
        this.result = run();
        this.onsuccess?.({ target: this });
      } catch (e) {
        this.error = e;
        this.onerror?.({ target: this });
        tx.abort(e);
        return;
      }
      tx._maybeComplete();
    });
  }
}

class Store {
  constructor(tx, data) {
    this.tx = tx;
    this.data = data;
  }
  get(k) {
    return new Request(this.tx, () => this.data.get(k));
  }
  getKey(k) {
    return new Request(this.tx, () => (this.data.has(k) ? k : undefined));
  }
  getAllKeys() {
    return new Request(this.tx, () => [...this.data.keys()].sort());
  }
  getAll() {
    return new Request(this.tx, () => [...this.data.keys()].sort().map((k) => this.data.get(k)));
  }
  put(v, k) {
    this.tx._write();
    return new Request(this.tx, () => (this.data.set(k, v), k));
  }
  add(v, k) {
    this.tx._write();
    return new Request(this.tx, () => {
      if (this.data.has(k)) {
        const e = new Error("Key already exists in the object store.");
        e.name = "ConstraintError";
        throw e;
      }
      this.data.set(k, v);
      return k;
    });
  }
  delete(k) {
    this.tx._write();
    return new Request(this.tx, () => (this.data.delete(k), undefined));
  }
  clear() {
    this.tx._write();
    return new Request(this.tx, () => (this.data.clear(), undefined));
  }
}

class Transaction {
  constructor(db, names, mode) {
    this.db = db;
    this.names = Array.isArray(names) ? names : [names];
    for (const n of this.names) if (!db._stores.has(n)) throw Object.assign(new Error(`no object store ${n}`), { name: "NotFoundError" });
    this.mode = mode ?? "readonly";
    this._pending = 0;
    this._aborted = false;
    this._done = false;
    this.error = null;
    this.oncomplete = null;
    this.onabort = null;
    this.onerror = null;
    this._snapshot = new Map(this.names.map((n) => [n, new Map(db._stores.get(n))]));
    // A transaction with no request completes too.
    later(() => this._maybeComplete());
  }
  _write() {
    if (this.mode !== "readwrite") throw Object.assign(new Error("read-only transaction"), { name: "ReadOnlyError" });
  }
  objectStore(n) {
    if (!this.names.includes(n)) throw Object.assign(new Error(`${n} not in this transaction`), { name: "NotFoundError" });
    return new Store(this, this.db._stores.get(n));
  }
  _maybeComplete() {
    later(() => {
      if (this._pending > 0 || this._aborted || this._done) return;
      this._done = true;
      this.oncomplete?.({ target: this });
    });
  }
  abort(e) {
    if (this._aborted || this._done) return;
    this._aborted = true;
    this.error = e ?? Object.assign(new Error("aborted"), { name: "AbortError" });
    for (const [n, m] of this._snapshot) this.db._stores.set(n, m);
    later(() => this.onabort?.({ target: this }));
  }
}

class Database {
  constructor(entry) {
    this._entry = entry;
    this._stores = entry.stores;
    this.onversionchange = null;
  }
  get objectStoreNames() {
    const names = [...this._stores.keys()];
    return { contains: (n) => this._stores.has(n), length: names.length, item: (i) => names[i] };
  }
  get version() {
    return this._entry.version;
  }
  createObjectStore(n) {
    this._stores.set(n, new Map());
    return new Store(null, this._stores.get(n));
  }
  transaction(names, mode) {
    return new Transaction(this, names, mode);
  }
  close() {}
}

/** A fresh fake `IDBFactory`; `dbs` (name → { version, stores: Map<name, Map> }) is exposed for tests. */
export function fakeIndexedDB() {
  const dbs = new Map();
  return {
    dbs,
    open(name, version) {
      const r = { result: undefined, error: null, onsuccess: null, onerror: null, onupgradeneeded: null, onblocked: null };
      later(() => {
        let entry = dbs.get(name);
        if (!entry) {
          entry = { version: 0, stores: new Map() };
          dbs.set(name, entry);
        }
        const want = version ?? Math.max(1, entry.version);
        if (want < entry.version) {
          r.error = Object.assign(new Error("VersionError"), { name: "VersionError" });
          r.onerror?.({ target: r });
          return;
        }
        r.result = new Database(entry);
        if (want > entry.version) {
          const oldVersion = entry.version;
          entry.version = want;
          r.onupgradeneeded?.({ target: r, oldVersion, newVersion: want });
        }
        r.onsuccess?.({ target: r });
      });
      return r;
    },
    deleteDatabase(name) {
      dbs.delete(name);
      const r = { onsuccess: null };
      later(() => r.onsuccess?.({ target: r }));
      return r;
    },
  };
}
