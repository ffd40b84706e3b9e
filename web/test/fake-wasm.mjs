// A stand-in for the wasm core (web/wasm/mpc_wasm.js) at its JS boundary, for node tests
// of the platform code around the wasm flows (src/core.ts: locks, IndexedDB records,
// error mapping). test/fake-wasm-loader.mjs resolves the package's
// `../wasm/mpc_wasm.js` imports here; a test sets `fake.enrollDevice` / `fake.createWallet`
// to the flow's behaviour (calling the host object as the real flow would) and reads
// `fake.calls`. Nothing here is a protocol: the real flows are tested in Rust and in
// Chromium.

/** What the tests control and observe. */
export const fake = {
  /** @type {((host: any, params: any) => Promise<unknown>) | undefined} */
  enrollDevice: undefined,
  /** @type {((host: any, params: any) => Promise<unknown>) | undefined} */
  createWallet: undefined,
  /** Every flow call: [name, params]. */
  calls: [],
  reset() {
    this.enrollDevice = undefined;
    this.createWallet = undefined;
    this.calls.length = 0;
  },
};

function flow(name) {
  return (host, params) => {
    fake.calls.push([name, params]);
    const f = fake[name];
    if (!f) return Promise.reject(new Error(`fake wasm: no ${name} behaviour set by the test`));
    return f(host, params);
  };
}

export default async function init() {}
export const enrollDevice = flow("enrollDevice");
export const createWallet = flow("createWallet");
export function checkPassphrase() {}
export function isPublicFixturePrimes() {
  return true;
}
export function devFixturePrimes() {
  return { parties: [{ primes: ["0x1", "0x2", "0x3", "0x4"] }] };
}
export function decodeCosignerError() {
  return undefined;
}

// Backup and restore (src/core.ts exportBackup / importBackup): `fake.openBackup` is the
// behaviour of `BackupRestore.open` (return a restore object or throw like wasm);
// stored parties open through `WalletParty.fromBytes` as objects holding their bytes.
export const BackupRestore = {
  open(bytes, passphrase) {
    fake.calls.push(["openBackup", passphrase]);
    if (!fake.openBackup) throw new Error("fake wasm: no openBackup behaviour set by the test");
    return fake.openBackup(bytes, passphrase);
  },
};

export const WalletParty = {
  fromBytes(walletId, bytes) {
    const mine = Uint8Array.from(bytes);
    return {
      walletId,
      partyIndex: 0,
      bytes: mine,
      exportBackup(passphrase, cosignerUrl, createdAtMs, allowWeak, fastKdf) {
        fake.calls.push(["exportBackup", { passphrase, cosignerUrl, createdAtMs, allowWeak, fastKdf }]);
        return new TextEncoder().encode(JSON.stringify({ format: "wallet-mpc/key-shares", wallet: { wallet_id: walletId } }));
      },
      free() {},
    };
  },
};
