// The offscreen document: hosts the package's protocol Worker (worker mode) for the long
// jobs the service worker hands over — the device enrollment (aux info, started as soon
// as the passphrase is set), wallet creation and presignature refills — and
// broadcasts their progress. It has no chrome.storage: the service worker passes the
// settings and the passphrase with each job; "lock" drops the client.
import { WalletClient } from "@wallet-mpc/web";
import { ACCOUNT_PATH, type ExtConfig } from "../shared/config";
import { answer, errorInfo, type Job } from "../shared/messages";
import { walletConfig } from "../shared/wallet-config";

let current: { key: string; client: WalletClient } | undefined;
const jobs = new Map<string, Job>();
let lockWhenIdle = false;

async function client(config: ExtConfig, passphrase: string): Promise<WalletClient> {
  const key = JSON.stringify([config, passphrase]);
  if (!current || current.key !== key) {
    current?.client.terminate();
    current = { key, client: await WalletClient.open(walletConfig(config, passphrase), { mode: "worker" }) };
  }
  return current.client;
}

function plain(v: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x)));
  } catch {
    return null;
  }
}

function running(): Job[] {
  return [...jobs.values()].filter((j) => j.state === "running");
}

function broadcast(job: Job): void {
  chrome.runtime.sendMessage({ to: "ui", type: "job", job }).catch(() => undefined);
}

function maybeLock(): void {
  if (lockWhenIdle && running().length === 0) {
    current?.client.terminate();
    current = undefined;
    lockWhenIdle = false;
  }
}

async function start(msg: { kind: Job["kind"]; config: ExtConfig; passphrase: string; registrationCredential?: string }): Promise<Job> {
  const same = running().find((j) => j.kind === msg.kind);
  if (same) return same; // one enrollment, one creation, one refill at a time
  if (msg.kind === "create") {
    // A creation right after "set passphrase" waits for the enrollment to end (then uses it).
    const enrolling = running().find((j) => j.kind === "enroll");
    if (enrolling) throw Object.assign(new Error("the wallet is still being prepared: wait for the enrollment to finish"), { code: "wallet_not_ready" });
  }
  const c = await client(msg.config, msg.passphrase);
  lockWhenIdle = false;
  const job: Job = { id: crypto.randomUUID(), kind: msg.kind, state: "running", startedAt: Date.now(), percent: 0 };
  jobs.set(job.id, job);
  let last = 0;
  const onProgress = (p: { phase: string; overallPercent: number }) => {
    job.phase = p.phase;
    job.percent = p.overallPercent;
    if (Date.now() - last > 500) {
      last = Date.now();
      broadcast(job);
    }
  };
  const credential = msg.registrationCredential ? { registrationCredential: msg.registrationCredential } : {};
  const work: Promise<unknown> =
    msg.kind === "enroll"
      ? c.enrollDevice({ onProgress, ...credential })
      : msg.kind === "create"
      ? c.createWallet({
          accounts: 1,
          kind: "hd",
          label: "extension",
          onProgress,
          ...(msg.registrationCredential ? { registrationCredential: msg.registrationCredential } : {}),
        })
      : c.refillPresignatures({ derivationPath: ACCOUNT_PATH, onProgress });
  work.then(
    (result) => {
      Object.assign(job, { state: "done", endedAt: Date.now(), percent: 100, result: plain(result) });
      broadcast(job);
      maybeLock();
    },
    (e) => {
      Object.assign(job, { state: "failed", endedAt: Date.now(), error: errorInfo(e) });
      broadcast(job);
      maybeLock();
    },
  );
  broadcast(job);
  return job;
}

chrome.runtime.onMessage.addListener((msg: any, _sender: unknown, sendResponse: (r: unknown) => void) => {
  if (msg?.to !== "offscreen") return false;
  switch (msg.type) {
    case "start":
      return answer(start(msg), sendResponse);
    case "jobs":
      return answer(Promise.resolve([...jobs.values()]), sendResponse);
    case "lock":
      lockWhenIdle = true;
      maybeLock();
      return answer(Promise.resolve(null), sendResponse);
  }
  return false;
});
