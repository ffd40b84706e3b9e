/**
 * Parallel, resumable safe-prime search for the device's aux info (4 × 1536-bit safe
 * primes), over the wasm `PrimeSearch` (crates/mpc-wasm, `safe-primes` crate).
 *
 * - **Parallel.** {@link PrimeCoordinator} starts `min(navigator.hardwareConcurrency, 4)`
 *   dedicated Workers (`prime-worker.ts`; configurable), each running its own search from
 *   its own random seed in chunks, and collects the four primes; then it stops them.
 *   The coordinator runs wherever the wallet core runs: in the package's protocol Worker
 *   by default (the prime workers are then *nested* dedicated workers, which Chromium and
 *   Firefox support), or in the page in `inline` mode. Where `Worker` does not exist
 *   (extension service worker) the same chunks run in the calling context, yielding to
 *   the event loop between chunks.
 * - **Resumable.** After every find and at most every {@link SAVE_EVERY_MS} the search
 *   checkpoints and the primes found so far are written to IndexedDB, encrypted under a
 *   non-extractable AES-GCM key (`prime-store.ts`). A reload resumes from there: the
 *   searches continue where they stopped and the counters continue.
 * - **One search per wallet name and browser**: a Web Lock (`navigator.locks`, where
 *   available) keeps two tabs from running the same preparation twice; the second waits.
 */

import { StorageError, WalletError } from "./errors.js";
import { withWebLock } from "./locks.js";
import * as store from "./prime-store.js";
import { loadWasm, type Mpc } from "./wasm.js";

/** Primes a device needs for its aux info. */
export const PRIMES_NEEDED = 4;
/** Size of the aux-info primes. */
export const PRIME_BITS = 1536;
/** Checkpoints are written at least this often while searching (and after each find). */
export const SAVE_EVERY_MS = 2000;
/** Target wall time of one chunk (the budget adapts to it). */
const CHUNK_TARGET_MS = 400;
const MIN_BUDGET = 64;
const MAX_BUDGET = 1 << 16;
/** Twin-prime constant C2 (Hardy–Littlewood), for the expected search length. */
const C2 = 0.6601618158;

/** Cumulative counters of one wasm search (`PrimeSearch.progress()`). */
export interface SearchCounters {
  candidates: number;
  survivors: number;
  fermatQ: number;
  fermatP: number;
  millerRabin: number;
  seeds: number;
  found: number;
}

/** Progress of a preparation. */
export interface PrimeProgress {
  /** Safe primes found (0..=needed). */
  found: number;
  /** 4. */
  needed: number;
  /** Candidates looked at so far, over all workers and all sessions (continues after a reload). */
  candidates: number;
  /** Candidates already looked at when this session started (from the stored checkpoints). */
  resumedCandidates: number;
  /** Searches of this session that continue from a stored checkpoint (accepted by the wasm). */
  resumedSearches: number;
  /** Searches running in parallel now. */
  workers: number;
  /** `workers`: dedicated Web Workers; `inline`: chunks in the calling context. */
  mode: "workers" | "inline";
  /** Candidates per second over this session. */
  ratePerSec: number;
  /**
   * Expected remaining time, ms (from the rate and the expected number of candidates per
   * safe prime, ≈ 4.3·10^5 at 1536 bits; the real time varies a lot: each prime is a
   * geometric draw). Absent until a rate is known.
   */
  etaMs?: number;
  /** Wall time of this session, ms. */
  elapsedMs: number;
  /** Whether the set is complete. */
  done: boolean;
}

/** Where the search runs and how. */
export interface PrimeSearchOptions {
  /** Parallel searches (default `min(navigator.hardwareConcurrency, 4)`; 1..=16). */
  workers?: number;
  /** Progress listener (called a few times a second; exceptions are ignored). */
  onProgress?: (p: PrimeProgress) => void;
}

/** What the coordinator needs from the environment. */
export interface CoordinatorConfig {
  /** URL of `mpc_wasm_bg.wasm` (default next to the package). */
  wasmUrl?: string | URL | undefined;
  /** URL of the prime worker script (default `./prime-worker.js` next to this module). */
  primeWorkerUrl?: string | URL | undefined;
  /** Run chunks in the calling context even where `Worker` exists. */
  inline?: boolean | undefined;
  /** Prime size (tests only; aux info needs 1536). */
  bits?: number | undefined;
}

/** Expected number of odd candidates `q` per safe prime of `bits` bits (Hardy–Littlewood). */
export function expectedCandidatesPerPrime(bits: number): number {
  const lnq = (bits - 1) * Math.LN2;
  const lnp = bits * Math.LN2;
  return (lnq * lnp) / (4 * C2);
}

/** Default number of prime workers here. */
export function defaultWorkers(): number {
  const hc = typeof navigator !== "undefined" && Number.isInteger(navigator.hardwareConcurrency) ? navigator.hardwareConcurrency : 1;
  return Math.max(1, Math.min(hc, 4));
}

function candidatesOf(checkpoint: string): number {
  try {
    const c = (JSON.parse(checkpoint) as { progress?: { candidates?: unknown } }).progress?.candidates;
    return typeof c === "number" && Number.isFinite(c) ? c : 0;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------
// The chunk loop, shared by the prime worker and the inline mode

/** Messages coordinator → prime worker. */
export type PrimeWorkerRequest =
  | { type: "start"; wasmUrl?: string; bits: number; checkpoint?: string }
  | { type: "stop" };

/** Messages prime worker → coordinator. */
export type PrimeWorkerReply =
  | { type: "chunk"; progress: SearchCounters; checkpoint: string; found?: string; resumed: boolean; restarted?: string }
  | { type: "error"; code: string; message: string };

/**
 * Runs one search in chunks until `stopped()`: resumes from `checkpoint` (a bad
 * checkpoint restarts the search and says so in `restarted`), posts counters, a fresh
 * checkpoint and any find after every chunk, and yields to the event loop in between.
 */
export async function runSearchLoop(
  mpc: Mpc,
  start: { bits: number; checkpoint?: string | undefined },
  post: (m: PrimeWorkerReply) => void,
  stopped: () => boolean,
): Promise<void> {
  let search: InstanceType<Mpc["PrimeSearch"]>;
  let resumed = false;
  let restarted: string | undefined;
  if (start.checkpoint) {
    try {
      search = mpc.PrimeSearch.resume(new TextEncoder().encode(start.checkpoint), start.bits);
      resumed = true;
    } catch (e) {
      restarted = `stored checkpoint rejected (${(e as { code?: string }).code ?? "error"}: ${(e as Error).message}); searching from a fresh seed`;
      search = new mpc.PrimeSearch(start.bits);
    }
  } else {
    search = new mpc.PrimeSearch(start.bits);
  }
  try {
    let budget = 1024;
    while (!stopped()) {
      const t0 = Date.now();
      const found = search.run(budget) as string | undefined;
      const dt = Date.now() - t0;
      const cp = search.checkpoint();
      const m: PrimeWorkerReply = {
        type: "chunk",
        progress: search.progress() as SearchCounters,
        checkpoint: new TextDecoder().decode(cp),
        resumed,
      };
      cp.fill(0);
      if (found) m.found = found;
      if (restarted) {
        m.restarted = restarted;
        restarted = undefined;
      }
      post(m);
      budget = Math.round(Math.max(MIN_BUDGET, Math.min(MAX_BUDGET, (budget * CHUNK_TARGET_MS) / Math.max(dt, 1))));
      // Let messages (stop) and other tasks in.
      await new Promise((r) => setTimeout(r, 0));
    }
  } finally {
    search.free();
  }
}

// ---------------------------------------------------------------------------------
// Executors: a dedicated Worker, or the calling context

interface Executor {
  start(checkpoint: string | undefined): void;
  stop(): void;
}

class WorkerExecutor implements Executor {
  private readonly worker: Worker;
  constructor(
    url: string | URL | undefined,
    private readonly wasmUrl: string | undefined,
    private readonly bits: number,
    onReply: (m: PrimeWorkerReply) => void,
    onFail: (e: WalletError) => void,
  ) {
    this.worker = url
      ? new Worker(url, { type: "module", name: "wallet-mpc-primes" })
      : new Worker(new URL("./prime-worker.js", import.meta.url), { type: "module", name: "wallet-mpc-primes" });
    this.worker.addEventListener("message", (e: MessageEvent<PrimeWorkerReply>) => onReply(e.data));
    this.worker.addEventListener("error", (e: ErrorEvent) => {
      e.preventDefault?.();
      onFail(new WalletError("wasm", `a prime worker failed to start or crashed: ${e.message || "unknown error"} (${String(url ?? "prime-worker.js")})`));
    });
  }
  start(checkpoint: string | undefined) {
    const m: PrimeWorkerRequest = { type: "start", bits: this.bits };
    if (checkpoint) m.checkpoint = checkpoint;
    if (this.wasmUrl) m.wasmUrl = this.wasmUrl;
    this.worker.postMessage(m);
  }
  stop() {
    this.worker.terminate();
  }
}

class InlineExecutor implements Executor {
  private stopped = false;
  constructor(
    private readonly mpc: Mpc,
    private readonly bits: number,
    private readonly onReply: (m: PrimeWorkerReply) => void,
    private readonly onFail: (e: WalletError) => void,
  ) {}
  start(checkpoint: string | undefined) {
    runSearchLoop(this.mpc, { bits: this.bits, checkpoint }, (m) => this.onReply(m), () => this.stopped).catch((e: unknown) =>
      this.onFail(new WalletError("wasm", `the safe-prime search failed: ${(e as Error)?.message ?? String(e)}`)),
    );
  }
  stop() {
    this.stopped = true;
  }
}

// ---------------------------------------------------------------------------------
// The coordinator

interface Slot {
  exec: Executor;
  checkpoint: string | undefined;
  candidates: number;
  resumed: boolean;
}

type Listener = (p: PrimeProgress) => void;

/**
 * Runs (or resumes) the preparation of the four safe primes of wallet `name`. One
 * instance per run; {@link prepareOnce} shares a running one.
 */
export class PrimeCoordinator {
  private readonly listeners = new Set<Listener>();
  private slots: Slot[] = [];
  private parked: string[] = [];
  private found: string[] = [];
  private retired = 0;
  private generation: string | undefined;
  private counters!: store.PrimeStateCounters;
  private startedAt = 0;
  private sessionStartCandidates = 0;
  private searchMsBefore = 0;
  private lastSave = 0;
  private lastEmit = 0;
  private saving: Promise<void> = Promise.resolve();
  private finished = false;
  private settle: { resolve: (v: string[]) => void; reject: (e: unknown) => void } | undefined;
  private mpc!: Mpc;
  private mode: "workers" | "inline" = "workers";
  readonly bits: number;

  constructor(
    readonly name: string,
    private readonly config: CoordinatorConfig = {},
  ) {
    this.bits = config.bits ?? PRIME_BITS;
  }

  /** Adds a progress listener (e.g. a second caller joining a running preparation). */
  listen(l: Listener | undefined): void {
    if (l) this.listeners.add(l);
  }

  /** Whether the search is running now. */
  get running(): boolean {
    return this.settle !== undefined && !this.finished;
  }

  /** Runs until the four primes are found and stored; resolves with them (hex). */
  async run(opts: PrimeSearchOptions = {}): Promise<string[]> {
    const workers = opts.workers ?? defaultWorkers();
    if (!Number.isInteger(workers) || workers < 1 || workers > 16) {
      throw new WalletError("invalid_input", `workers must be an integer between 1 and 16, got ${String(workers)}`);
    }
    this.listen(opts.onProgress);
    this.mpc = await loadWasm(this.config.wasmUrl);
    const state = await store.loadState(this.name);
    const now = Date.now();
    if (state) {
      if (state.counters.bits !== this.bits) {
        throw new StorageError("storage", `the stored prime search of "${this.name}" is for ${state.counters.bits}-bit primes, not ${this.bits}; discard it first`);
      }
      this.generation = state.generation;
      this.counters = { ...state.counters };
      this.found = [...state.secrets.found];
      this.parked = [...state.secrets.checkpoints];
      this.retired = state.secrets.retiredCandidates;
      this.searchMsBefore = state.counters.searchMs;
      if (this.found.length >= PRIMES_NEEDED) {
        this.finished = true;
        this.emit(true);
        return this.found.slice(0, PRIMES_NEEDED);
      }
    } else {
      this.counters = { found: 0, needed: PRIMES_NEEDED, candidates: 0, bits: this.bits, startedAtMs: now, updatedAtMs: now, searchMs: 0 };
    }
    this.startedAt = now;
    this.sessionStartCandidates = this.total();

    const canWorker = typeof Worker !== "undefined" && !this.config.inline;
    this.mode = canWorker ? "workers" : "inline";
    const n = canWorker ? workers : 1;
    const result = new Promise<string[]>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    const wasmUrl = this.config.wasmUrl === undefined ? undefined : String(this.config.wasmUrl);
    for (let i = 0; i < n; i++) {
      const onReply = (m: PrimeWorkerReply) => this.onReply(i, m);
      const onFail = (e: WalletError) => this.fail(e);
      const exec = canWorker
        ? new WorkerExecutor(this.config.primeWorkerUrl, wasmUrl, this.bits, onReply, onFail)
        : new InlineExecutor(this.mpc, this.bits, onReply, onFail);
      const checkpoint = this.parked.shift();
      this.slots.push({ exec, checkpoint, candidates: checkpoint ? candidatesOf(checkpoint) : 0, resumed: false });
    }
    for (const s of this.slots) s.exec.start(s.checkpoint);
    // Persist right away so that even a reload before the first chunk keeps the state.
    this.save();
    this.emit(true);
    return result;
  }

  /** Stops the search (state kept for a later resume); the run rejects with `aborted`. */
  async stop(): Promise<void> {
    if (this.finished || !this.settle) return;
    this.fail(new WalletError("aborted", "the safe-prime search was stopped (its progress is kept)"));
    await this.saving;
  }

  private total(): number {
    return this.retired + this.slots.reduce((a, s) => a + s.candidates, 0) + this.parked.reduce((a, c) => a + candidatesOf(c), 0);
  }

  private onReply(i: number, m: PrimeWorkerReply) {
    if (this.finished) return;
    const slot = this.slots[i];
    if (!slot) return;
    if (m.type === "error") {
      this.fail(new WalletError("wasm", `prime worker ${i}: ${m.message}`, { wasmCode: m.code }));
      return;
    }
    if (m.restarted) {
      // The old checkpoint was unusable: its candidates count no more.
      slot.candidates = 0;
    }
    slot.checkpoint = m.checkpoint;
    slot.candidates = m.progress.candidates;
    slot.resumed = m.resumed;
    let foundNow = false;
    if (m.found && this.found.length < PRIMES_NEEDED) {
      const p = m.found;
      const conflict = this.found.some((o) => this.mpc.primesConflict(o, p));
      if (!conflict) {
        this.found.push(p);
        foundNow = true;
      }
    }
    const done = this.found.length >= PRIMES_NEEDED;
    if (done) {
      this.complete();
      return;
    }
    const now = Date.now();
    if (foundNow || now - this.lastSave >= SAVE_EVERY_MS) this.save();
    if (foundNow || now - this.lastEmit >= 250) this.emit(false);
  }

  private snapshot(final: boolean): { counters: store.PrimeStateCounters; secrets: store.PrimeSecrets } {
    const now = Date.now();
    const total = this.total();
    const counters: store.PrimeStateCounters = {
      ...this.counters,
      found: Math.min(this.found.length, PRIMES_NEEDED),
      candidates: total,
      updatedAtMs: now,
      searchMs: this.searchMsBefore + (this.startedAt ? now - this.startedAt : 0),
    };
    const secrets: store.PrimeSecrets = final
      ? { found: this.found.slice(0, PRIMES_NEEDED), checkpoints: [], retiredCandidates: total }
      : {
          found: [...this.found],
          checkpoints: [...this.slots.map((s) => s.checkpoint).filter((c): c is string => !!c), ...this.parked],
          retiredCandidates: this.retired,
        };
    return { counters, secrets };
  }

  /** Queues an encrypted write of the current state (writes never overlap). */
  private save(final = false): Promise<void> {
    this.lastSave = Date.now();
    const { counters, secrets } = this.snapshot(final);
    this.counters = counters;
    this.saving = this.saving
      .catch(() => undefined)
      .then(async () => {
        this.generation = await store.saveState(this.name, this.generation, counters, secrets);
      });
    return this.saving;
  }

  private emit(force: boolean) {
    const now = Date.now();
    if (!force && now - this.lastEmit < 250) return;
    this.lastEmit = now;
    const total = this.total();
    const elapsedMs = this.startedAt ? now - this.startedAt : 0;
    const doneSession = total - this.sessionStartCandidates;
    const ratePerSec = elapsedMs > 0 ? (doneSession * 1000) / elapsedMs : 0;
    const found = Math.min(this.found.length, PRIMES_NEEDED);
    const p: PrimeProgress = {
      found,
      needed: PRIMES_NEEDED,
      candidates: total,
      resumedCandidates: this.sessionStartCandidates,
      resumedSearches: this.slots.filter((s) => s.resumed).length,
      workers: this.finished ? 0 : this.slots.length,
      mode: this.mode,
      ratePerSec: Math.round(ratePerSec),
      elapsedMs,
      done: found >= PRIMES_NEEDED,
    };
    if (ratePerSec > 0 && found < PRIMES_NEEDED && doneSession > 0) {
      p.etaMs = Math.round((((PRIMES_NEEDED - found) * expectedCandidatesPerPrime(this.bits)) / ratePerSec) * 1000);
    }
    for (const l of this.listeners) {
      try {
        l(p);
      } catch {
        // a listener's exception never stops the search
      }
    }
  }

  private stopExecutors() {
    for (const s of this.slots) s.exec.stop();
  }

  private complete() {
    this.stopExecutors();
    const primes = this.found.slice(0, PRIMES_NEEDED);
    this.save(true).then(
      () => {
        this.finished = true;
        this.emit(true);
        this.settle?.resolve(primes);
      },
      (e: unknown) => this.fail(e instanceof WalletError ? e : new StorageError("storage", `storing the prepared primes failed: ${String(e)}`)),
    );
    this.finished = true;
  }

  private fail(e: WalletError) {
    if (!this.settle) return;
    const wasFinished = this.finished;
    this.finished = true;
    this.stopExecutors();
    if (!wasFinished) {
      // keep what was found and where the searches were
      this.save().catch(() => undefined);
    }
    this.settle.reject(e);
  }
}

// ---------------------------------------------------------------------------------
// One preparation per wallet name in this thread (joined by concurrent callers), and
// one per browser through a Web Lock.

const running = new Map<string, { coordinator: PrimeCoordinator; promise: Promise<string[]> }>();

/**
 * Prepares (or resumes, or joins the running preparation of) the four safe primes of
 * wallet `name`; resolves with them once stored. Idempotent: returns the stored set
 * at once when it is complete.
 */
export function prepareOnce(name: string, config: CoordinatorConfig, opts: PrimeSearchOptions = {}): Promise<string[]> {
  const cur = running.get(name);
  if (cur) {
    cur.coordinator.listen(opts.onProgress);
    return cur.promise;
  }
  const coordinator = new PrimeCoordinator(name, config);
  const go = () => coordinator.run(opts);
  const promise = withWebLock(`wallet-mpc-web/primes/${name}`, go).finally(() => {
    if (running.get(name)?.coordinator === coordinator) running.delete(name);
  });
  running.set(name, { coordinator, promise });
  return promise;
}

/** Stops the running preparation of `name` in this thread (its progress stays stored). */
export async function stopPreparation(name: string): Promise<boolean> {
  const cur = running.get(name);
  if (!cur) return false;
  await cur.coordinator.stop();
  return true;
}

/** Whether a preparation of `name` runs in this thread. */
export function isPreparing(name: string): boolean {
  return running.get(name)?.coordinator.running ?? false;
}
