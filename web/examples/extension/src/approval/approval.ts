// The approval window of one dapp request (?id=...): approve (unlocking first if
// needed: a locked wallet refuses the approval and the request stays pending) or reject;
// closing the window rejects too. Its request lives in chrome.storage.session, so the
// window keeps working when the service worker is stopped and restarted.
import { toSw } from "../shared/messages";

const $ = (id: string) => document.getElementById(id) as HTMLElement;
const id = new URLSearchParams(location.search).get("id") ?? "";

interface Got {
  request: { origin: string; method: string; summary: string } | null;
  locked: boolean;
}

async function load(): Promise<void> {
  const g = await toSw<Got>("approval:get", { id });
  if (!g.request) {
    $("summary").textContent = "This request is no longer pending.";
    $("approve").hidden = true;
    return;
  }
  $("origin").textContent = g.request.origin;
  $("method").textContent = g.request.method;
  $("summary").textContent = g.request.summary;
  $("unlock-box").hidden = !g.locked || g.request.method === "eth_requestAccounts";
  document.body.dataset.ready = "1";
}

async function send(approved: boolean): Promise<void> {
  $("error").textContent = "";
  try {
    const passphrase = (document.getElementById("passphrase") as HTMLInputElement).value;
    await toSw("approval:answer", { id, approved, passphrase: approved ? passphrase : "" });
    window.close();
  } catch (e) {
    const code = (e as { code?: string }).code ?? "error";
    $("error").textContent = `${code}: ${(e as Error).message}`;
    // Locked meanwhile (auto-lock): the request stays pending; approve with the passphrase.
    if (code === "locked") $("unlock-box").hidden = false;
  }
}

$("approve").addEventListener("click", () => void send(true));
$("reject").addEventListener("click", () => void send(false));
// Each message restarts the service worker's idle timer while the user decides.
setInterval(() => void toSw("ping").catch(() => undefined), 20_000);
load().catch((e) => ($("error").textContent = String((e as Error).message)));
