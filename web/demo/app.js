// The demo wallet page: plain ESM, no build step for this file. It uses the package's
// self-contained browser build (../browser/wallet-mpc.js, which starts the protocol
// Worker) and an independent verifier (viem, ./vendor/verify.js).
//
// Query parameters prefill the configuration: cosigner, gateway, agent, token, name,
// devPrimes=1, fastKdf=1, passphrase (tests only), mode=inline; presign-web: kind=hd|independent,
// presignTarget=N, presignAuto=0|1, presign=auto|off|require.
import { WalletClient, WalletError } from "../browser/wallet-mpc.js";
import { recoverMessageSigner, recoverTxSigner, unsignedEip1559 } from "./vendor/verify.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["cosignerUrl", "gatewayUrl", "agentUrl", "agentToken", "walletName", "passphrase"];
const PARAMS = { cosignerUrl: "cosigner", gatewayUrl: "gateway", agentUrl: "agent", agentToken: "token", walletName: "name", passphrase: "passphrase" };
const STORE = "wallet-mpc-demo-config";

/** State readable by tests (window.demo). */
// presign-web: an HD account signs (and keeps its presignature pool) at its first
// address, m/44/60/0/0/0; an independent account at its root key.
const HD_PATH = "m/44/60/0/0/0";
const demo = { enrollment: null, path: undefined, prepare: null, primesSource: null, ready: false, mode: null, timings: {}, address: null, walletId: null, message: null, tx: null, error: null, pool: null, poolEvents: [] };
window.demo = demo;

let client = null;
let busy = false;

function loadConfig() {
  const q = new URLSearchParams(location.search);
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(STORE) ?? "{}");
  } catch {
    saved = {};
  }
  for (const f of FIELDS) {
    const v = q.get(PARAMS[f]) ?? (f === "passphrase" ? null : saved[f]);
    if (v != null && v !== "") $(f).value = v;
  }
  $("devPrimes").checked = q.has("devPrimes") ? q.get("devPrimes") === "1" : saved.devPrimes === true;
  $("fastKdf").checked = q.has("fastKdf") ? q.get("fastKdf") === "1" : saved.fastKdf === true;
  // presign-web
  if (q.get("kind") === "independent" || q.get("kind") === "hd") $("kind").value = q.get("kind");
  if (q.has("presignTarget")) $("presignTarget").value = q.get("presignTarget");
  if (q.has("presignAuto")) $("presignAuto").checked = q.get("presignAuto") === "1";
  if (["auto", "off", "require"].includes(q.get("presign") ?? "")) $("presign-mode").value = q.get("presign");
}

function readConfig() {
  const c = {};
  for (const f of FIELDS) {
    const v = $(f).value.trim();
    if (v) c[f] = v;
  }
  c.insecureDevPrimes = $("devPrimes").checked;
  c.insecureFastKdf = $("fastKdf").checked;
  // presign-web
  c.presignPool = { target: Number($("presignTarget").value || 2), auto: $("presignAuto").checked };
  const { passphrase: _omit, presignPool: _pool, ...persist } = { ...c, devPrimes: c.insecureDevPrimes, fastKdf: c.insecureFastKdf };
  localStorage.setItem(STORE, JSON.stringify(persist));
  return c;
}

function showError(e) {
  const el = $("error");
  if (!e) {
    el.hidden = true;
    el.textContent = "";
    el.removeAttribute("data-code");
    demo.error = null;
    return;
  }
  const code = e instanceof WalletError || e?.code ? e.code : "internal";
  el.hidden = false;
  el.dataset.code = code;
  el.textContent = `[${code}] ${e?.message ?? String(e)}`;
  demo.error = { code, message: e?.message ?? String(e) };
  console.error(e);
}

function setBusy(b) {
  busy = b;
  for (const id of ["create", "delete", "sign-msg", "sign-tx-btn", "apply", "backup-export", "backup-import"]) $(id).disabled = b;
}

function progress(ev) {
  // A log of phase/round changes (benchmarks read it: where the time goes).
  const log = (demo.progressLog ??= []);
  const last = log[log.length - 1];
  if (!last || last.phase !== ev.phase || last.round !== ev.round) log.push({ phase: ev.phase, round: ev.round, totalRounds: ev.totalRounds, elapsedMs: ev.elapsedMs, message: ev.message });
  $("progress").hidden = false;
  $("progress-bar").value = ev.overallPercent;
  $("progress-label").textContent = `${ev.phase}: ${ev.message} (${ev.overallPercent.toFixed(0)}%)`;
  $("progress").dataset.phase = ev.phase;
}

function fmtMs(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

function renderTimings() {
  const t = demo.timings;
  const parts = [];
  if (t.enrollMs) parts.push(`enroll ${fmtMs(t.enrollMs)}`);
  if (t.primesMs) parts.push(`primes ${fmtMs(t.primesMs)}`);
  if (t.auxInfoMs) parts.push(`aux info ${fmtMs(t.auxInfoMs)}`);
  if (t.keygenMs) parts.push(`DKG ${fmtMs(t.keygenMs)}`);
  if (t.createTotalMs) parts.push(`create total ${fmtMs(t.createTotalMs)}`);
  if (t.signMessageMs) parts.push(`sign message ${fmtMs(t.signMessageMs)}`);
  if (t.signTxMs) parts.push(`sign tx ${fmtMs(t.signTxMs)}`);
  $("timings").textContent = parts.join(" · ") || "—";
}

async function refresh() {
  const info = await client.walletInfo();
  if (!info) {
    $("status").textContent = "no wallet in this browser";
    $("status").dataset.state = "none";
    $("wallet-id").textContent = "—";
    $("address").textContent = "—";
    demo.address = null;
    demo.walletId = null;
    return;
  }
  demo.path = info.accounts?.[0]?.kind === "independent" ? undefined : HD_PATH;
  const address = await client.getAddress(undefined, demo.path);
  demo.address = address;
  demo.walletId = info.walletId;
  $("status").textContent = `wallet "${info.walletName}" stored (${info.protection}, protocol in ${demo.mode === "worker" ? "a Web Worker" : "the page thread"}${info.insecureDevPrimes ? ", PUBLIC TEST PRIMES: demo only" : ""})`;
  $("status").dataset.state = "ready";
  $("wallet-id").textContent = info.walletId;
  $("address").textContent = address;
}

async function open() {
  client?.terminate();
  // ?mode=inline runs the protocol in the page's thread (as in an extension service
  // worker); the default is a dedicated Worker.
  const mode = new URLSearchParams(location.search).get("mode") === "inline" ? "inline" : "auto";
  client = await WalletClient.open(readConfig(), { mode });
  demo.mode = client.mode;
  client.onPresignPool(onPoolEvent); // presign-web
  Object.defineProperty(demo, "client", { value: client, configurable: true, enumerable: false }); // tests and benchmarks
  await refresh();
  await refreshEnrollment().catch(() => undefined);
  await refreshPool().catch(() => undefined);
}

async function run(f) {
  if (busy) return;
  setBusy(true);
  showError(null);
  try {
    await f();
  } catch (e) {
    showError(e);
    if (!$("progress").hidden) $("progress-label").textContent = `failed: ${$("progress-label").textContent}`;
  } finally {
    setBusy(false);
  }
}

$("apply").addEventListener("click", () => run(open));

$("health").addEventListener("click", () =>
  run(async () => {
    $("health-out").textContent = "…";
    try {
      const h = await client.health();
      $("health-out").textContent = `${h.status} (${h.version}, ${h.backend})`;
    } catch (e) {
      $("health-out").textContent = "unreachable";
      throw e;
    }
  }),
);

/** Shows the stored device enrollment (enrollmentStatus). */
async function refreshEnrollment() {
  const s = await client.enrollmentStatus();
  demo.enrollment = s.state === "ready" ? s : null;
  $("enroll-status").dataset.state = s.state;
  $("enroll-status").textContent = s.state === "ready" ? `enrolled (${s.enrollmentId.slice(0, 12)}…, until ${new Date(s.expiresAtMs).toLocaleString()})` : "";
}

$("enroll").addEventListener("click", () =>
  run(async () => {
    $("progress").hidden = false;
    $("progress-bar").value = 0;
    const t0 = performance.now();
    const e = await client.enrollDevice({ onProgress: progress });
    demo.timings.enrollMs = Math.round(performance.now() - t0);
    demo.timings.enrollAuxInfoMs = e.timings.auxInfoMs;
    renderTimings();
    $("progress-label").textContent = e.reused ? "already enrolled" : "device enrolled: Create wallet now runs only the DKG";
    await refreshEnrollment();
  }),
);

$("create").addEventListener("click", () =>
  run(async () => {
    $("progress").hidden = false;
    $("progress-bar").value = 0;
    const w = await client.createWallet({ accounts: 1, kind: $("kind").value, label: "demo", onProgress: progress });
    demo.primesSource = w.primesSource ?? null;
    $("primes-source").textContent = w.primesSource === "prepared" ? "prepared primes used (consumed)" : (w.primesSource ?? "—");
    $("primes-source").dataset.source = w.primesSource ?? "";
    await refreshPrepared();
    await refreshEnrollment();
    Object.assign(demo.timings, {
      primesMs: w.timings.primesMs,
      auxInfoMs: w.timings.auxInfoMs,
      keygenMs: w.timings.keygenMs,
      createTotalMs: w.timings.totalMs,
    });
    renderTimings();
    $("progress-label").textContent = "wallet created";
    await refresh();
    await refreshPool().catch(() => undefined);
  }),
);

$("delete").addEventListener("click", () =>
  run(async () => {
    if (!confirm("Delete this browser's key share? Without it, only the recovery party + cosigner can sign.")) return;
    await client.deleteWallet();
    await refresh();
  }),
);

// Backup and restore: the Argon2id work runs in the protocol Worker.
$("backup-export").addEventListener("click", () =>
  run(async () => {
    const file = await client.exportBackup({ passphrase: $("backup-passphrase").value, onProgress: progress });
    demo.backup = { filename: file.filename, walletId: file.walletId, size: file.bytes.length };
    const a = document.createElement("a");
    a.href = URL.createObjectURL(file.blob ?? new Blob([file.bytes], { type: file.mimeType }));
    a.download = file.filename;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    $("backup-out").textContent = `exported ${file.filename} (${file.bytes.length} bytes)`;
  }),
);

$("backup-import").addEventListener("click", () =>
  run(async () => {
    const f = $("backup-file").files?.[0];
    if (!f) throw new WalletError("invalid_input", "choose a backup file first");
    const r = await client.importBackup(new Uint8Array(await f.arrayBuffer()), { passphrase: $("backup-passphrase").value, onProgress: progress });
    demo.imported = r;
    $("backup-out").textContent = r.alreadyPresent ? `wallet ${r.walletId} already holds this share` : `imported wallet ${r.walletId}`;
    await refresh();
  }),
);

function verifyLine(el, ok, text) {
  el.className = `verify ${ok ? "ok" : "bad"}`;
  el.dataset.ok = ok ? "true" : "false";
  el.textContent = text;
}

$("sign-msg").addEventListener("click", () =>
  run(async () => {
    const message = $("message").value;
    $("msg-sig").textContent = "signing…";
    $("msg-verify").textContent = "";
    delete $("msg-verify").dataset.ok; // presign-web: no stale result while signing
    $("msg-presigned").textContent = "";
    const t0 = performance.now();
    const sig = await client.signMessage(message, { derivationPath: demo.path, onProgress: progress, presign: $("presign-mode").value });
    demo.timings.signMessageMs = Math.round(performance.now() - t0);
    renderTimings();
    $("msg-sig").textContent = `r   ${sig.r}\ns   ${sig.s}\nv   ${sig.v}\nrsv ${sig.rsv}`;
    const signer = await recoverMessageSigner(message, sig.rsv);
    const ok = signer.toLowerCase() === demo.address.toLowerCase();
    demo.message = { message, rsv: sig.rsv, signer, address: demo.address, ok, presigned: sig.presigned, onlineMs: sig.onlineMs ?? null, presign: sig.presign ?? null };
    showPresigned($("msg-presigned"), sig);
    verifyLine($("msg-verify"), ok, ok ? `verified: viem recovers ${signer} = the wallet's address` : `MISMATCH: viem recovers ${signer}, wallet is ${demo.address}`);
  }),
);

$("sign-tx-btn").addEventListener("click", () =>
  run(async () => {
    $("tx-sig").textContent = "signing…";
    $("tx-verify").textContent = "";
    delete $("tx-verify").dataset.ok; // presign-web: no stale result while signing
    $("tx-presigned").textContent = "";
    const unsigned = unsignedEip1559({
      chainId: Number($("tx-chain").value),
      nonce: Number($("tx-nonce").value),
      to: $("tx-to").value.trim(),
      valueEth: $("tx-value").value.trim(),
      maxFeeGwei: $("tx-maxfee").value.trim(),
      maxPriorityFeeGwei: $("tx-prio").value.trim(),
      gas: $("tx-gas").value.trim(),
    });
    const t0 = performance.now();
    const res = await client.signTransaction(unsigned, { derivationPath: demo.path, onProgress: progress, presign: $("presign-mode").value });
    demo.timings.signTxMs = Math.round(performance.now() - t0);
    renderTimings();
    $("tx-sig").textContent = `type ${res.txType}\nr    ${res.r}\ns    ${res.s}\nv    ${res.v}\nhash ${res.transactionHash}\nraw  ${res.signedTransaction}`;
    const rec = await recoverTxSigner(res.signedTransaction);
    const ok = rec.signer.toLowerCase() === demo.address.toLowerCase() && rec.hash === res.transactionHash;
    demo.tx = { unsigned, signed: res.signedTransaction, hash: res.transactionHash, signer: rec.signer, address: demo.address, ok, presigned: res.presigned, onlineMs: res.onlineMs ?? null, presign: res.presign ?? null };
    showPresigned($("tx-presigned"), res);
    verifyLine($("tx-verify"), ok, ok ? `verified: viem recovers ${rec.signer} = the wallet's address; hash ${rec.hash}` : `MISMATCH: viem recovers ${rec.signer} (hash ${rec.hash})`);
  }),
);

// --- Prepare device: search the device's safe primes ahead of time -------------------

async function refreshPrepared() {
  const st = await client.preparedStatus();
  demo.prepare = { ...(demo.prepare ?? {}), status: st };
  const el = $("prepared-status");
  el.dataset.state = st.state;
  el.textContent =
    st.state === "none"
      ? "prepared primes: none"
      : st.state === "ready"
        ? `prepared primes: ready (${st.found}/${st.needed})`
        : `prepared primes: ${st.found}/${st.needed}, ${st.candidates.toLocaleString("en")} candidates${st.running ? " (searching)" : " (paused)"}`;
  return st;
}

function prepareProgress(ev) {
  const p = ev.primes;
  $("prepare-progress").hidden = false;
  $("prepare-bar").value = ev.percent;
  $("prepare-label").textContent = ev.message;
  if (p) {
    demo.prepare = { ...(demo.prepare ?? {}), last: p, events: (demo.prepare?.events ?? 0) + 1, first: demo.prepare?.first ?? p };
    $("prepared-status").dataset.state = p.done ? "ready" : "in_progress";
    $("prepared-status").textContent = `prepared primes: ${p.found}/${p.needed}, ${p.candidates.toLocaleString("en")} candidates`;
  }
}

$("prepare").addEventListener("click", () => {
  // Not through run(): the wallet stays usable while the search runs in its workers.
  showError(null);
  demo.prepare = { ...(demo.prepare ?? {}), first: null, events: 0, running: true };
  const workers = Number(new URLSearchParams(location.search).get("primeWorkers") ?? "") || undefined;
  const t0 = performance.now();
  client
    .prepareDevice({ workers, onProgress: prepareProgress })
    .then(async (st) => {
      demo.prepare.running = false;
      demo.prepare.wallMs = Math.round(performance.now() - t0);
      $("prepare-label").textContent = `safe primes ready (${(demo.prepare.wallMs / 1000).toFixed(1)} s)`;
      $("prepare-bar").value = 100;
      await refreshPrepared();
      return st;
    })
    .catch(async (e) => {
      demo.prepare.running = false;
      if (e?.code !== "aborted") showError(e);
      await refreshPrepared().catch(() => undefined);
    });
});

$("prepare-stop").addEventListener("click", () => {
  client.stopPrepare().then(refreshPrepared).catch(showError);
});

// ---------------------------------------------------------------------------------
// presign-web: presignature pool

function showPresigned(el, sig) {
  el.dataset.presigned = sig.presigned ? "true" : "false";
  if (sig.presigned) {
    const t = sig.presign?.timings ?? {};
    el.textContent = `from the presignature pool: online ${sig.onlineMs?.toFixed(1)} ms (take ${t.takeMs?.toFixed(1)} · cosigner round trip ${t.rpcMs?.toFixed(1)} · wasm partial+auth+combine+verify ${t.computeMs?.toFixed(1)} ms); presignature ${sig.presign?.presignatureId}`;
  } else {
    const why = sig.presign?.fallback ? ` (pool: ${sig.presign.fallback})` : "";
    el.textContent = `full signing${why}: ${fmtMs(sig.elapsedMs)}`;
  }
}

function renderPool(s) {
  demo.pool = s;
  const el = $("pool-status");
  el.dataset.device = String(s.device);
  el.dataset.cosigner = String(s.cosigner ?? "");
  el.dataset.running = s.running ? "true" : "false";
  el.textContent = `account ${s.accountId}${s.derivationPath ? ` at ${s.derivationPath}` : ""}: ${s.device} presignature(s) in this browser, ${s.cosigner ?? "?"} at the cosigner (${s.usable ?? "?"} usable, ${s.cosignerRunning} running there, cap ${s.cosignerCap || "?"}), target ${s.target}${s.running ? ", refill running" : ""}`;
}

async function refreshPool() {
  const info = await client.walletInfo();
  if (!info) {
    $("pool-status").textContent = "—";
    $("pool-status").dataset.device = "";
    demo.pool = null;
    return;
  }
  // The pool of the path the demo signs at (an HD account: its first address).
  renderPool(await client.presignPoolStatus(undefined, demo.path));
}

function onPoolEvent(e) {
  demo.poolEvents.push({ type: e.type, accountId: e.accountId, at: Date.now(), ...(e.type === "error" ? { error: e.error } : {}) });
  if (e.type === "progress") $("pool-progress").textContent = `refill: ${e.event.message} (${e.event.percent.toFixed(0)}%)`;
  else if (e.type === "status") {
    $("pool-progress").textContent = `refill done: +${e.status.generated ?? 0} in ${fmtMs(e.status.elapsedMs ?? 0)}`;
    renderPool(e.status);
  } else if (e.type === "error") $("pool-progress").textContent = `refill failed: [${e.error.code}] ${e.error.message}`;
}

$("pool-refresh").addEventListener("click", () => {
  showError(null);
  refreshPool().catch(showError);
});

$("pool-refill").addEventListener("click", () => {
  // Not through run(): the refill runs in its own Worker, signing stays available.
  showError(null);
  $("pool-refill").disabled = true;
  $("pool-status").dataset.running = "true";
  const t0 = performance.now();
  client
    .refillPresignatures(demo.path ? { derivationPath: demo.path } : {})
    .then((s) => {
      demo.timings.refillMs = Math.round(performance.now() - t0);
      renderPool(s);
    })
    .catch(showError)
    .finally(() => {
      $("pool-refill").disabled = false;
    });
});

loadConfig();
run(open).then(() => refreshPrepared()).catch(showError).then(() => {
  demo.ready = true;
  document.body.dataset.ready = "true";
});
