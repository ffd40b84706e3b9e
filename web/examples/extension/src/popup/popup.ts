// The popup: create, unlock / lock, the address, the presignature pool and the jobs
// running in the offscreen document. All state comes from the service worker.
import { toSw, type Job } from "../shared/messages";

const $ = (id: string) => document.getElementById(id) as HTMLElement;
const input = (id: string) => document.getElementById(id) as HTMLInputElement;

interface Status {
  hasWallet: boolean;
  enrollment: { state: "none" } | { state: "ready"; enrollmentId: string; expiresAtMs: number };
  address: string | null;
  locked: boolean;
  insecureDev: boolean;
  jobs: Job[];
}

function showError(e: unknown): void {
  const x = e as { code?: string; message?: string };
  $("error").textContent = e ? `${x.code ?? "error"}: ${x.message ?? String(e)}` : "";
}

function jobText(j: Job): string {
  const p = j.state === "running" ? ` ${Math.round(j.percent ?? 0)}% ${j.phase ?? ""}` : "";
  const err = j.error ? ` (${j.error.code}: ${j.error.message})` : "";
  return `${j.kind}:${j.state}${p}${err}`;
}

async function refresh(): Promise<void> {
  let s: Status;
  try {
    s = await toSw<Status>("status");
  } catch (e) {
    showError(e);
    return;
  }
  const state = !s.hasWallet ? "No wallet" : s.locked ? "Locked" : "Unlocked";
  $("state").textContent = state + (s.insecureDev ? " (INSECURE DEV MODE)" : "");
  $("state").dataset.state = state.toLowerCase().replace(" ", "-");
  $("create-box").hidden = s.hasWallet || s.jobs.some((j) => j.kind === "create" && j.state === "running");
  // First run: set passphrase → "Preparing your wallet… N%" (the enrollment job) →
  // "Create wallet" (the DKG only, seconds).
  const enrolling = s.jobs.find((j) => j.kind === "enroll" && j.state === "running");
  const ready = s.enrollment?.state === "ready";
  const es = $("enroll-status");
  es.dataset.state = enrolling ? "running" : ready ? "ready" : "none";
  es.textContent = enrolling
    ? `Preparing your wallet… ${Math.round(enrolling.percent ?? 0)}%`
    : ready
      ? s.locked
        ? "Your wallet is prepared: enter the passphrase to create it."
        : "Your wallet is prepared."
      : "";
  // Once prepared and unlocked, the passphrase is known: only "Create wallet" remains.
  $("setup-fields").hidden = !!enrolling || (ready && !s.locked);
  $("enroll").hidden = ready;
  ($("create") as HTMLButtonElement).disabled = !!enrolling;
  $("unlock-box").hidden = !s.hasWallet || !s.locked;
  $("wallet-box").hidden = !s.hasWallet || s.locked;
  $("address").textContent = s.address ?? "";
  $("jobs").textContent = s.jobs.length ? s.jobs.map(jobText).join(", ") : "none";
  if (s.hasWallet && !s.locked) {
    try {
      const p = await toSw<{ derivationPath: string; device: number; cosigner: number | null; usable: number | null; target: number; running: boolean }>("pool");
      $("pool").textContent = `device ${p.device}, cosigner ${p.cosigner ?? "?"}, usable ${p.usable ?? "?"} / target ${p.target}${p.running ? " (refilling)" : ""}`;
      $("pool").dataset.usable = String(p.usable ?? -1);
      $("pool").dataset.path = p.derivationPath;
    } catch (e) {
      $("pool").textContent = `unavailable (${(e as Error).message})`;
    }
  }
}

function act(id: string, f: () => Promise<unknown>): void {
  $(id).addEventListener("click", () => {
    showError(null);
    f().then(refresh, showError);
  });
}

act("enroll", () => toSw("enroll", { passphrase: input("new-passphrase").value, registrationCredential: input("credential").value }));
act("create", () => toSw("create", { passphrase: input("new-passphrase").value, registrationCredential: input("credential").value }));
act("unlock", () => toSw("unlock", { passphrase: input("passphrase").value }));
act("lock", () => toSw("lock"));
act("refill", () => toSw("refill"));
chrome.runtime.onMessage.addListener((msg: any) => {
  if (msg?.to === "ui" && msg.type === "job") void refresh();
  return false;
});
void refresh();
setInterval(() => void refresh(), 2000);
