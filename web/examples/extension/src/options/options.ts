// Settings: one input per field of ExtConfig (id = field name), saved to
// chrome.storage.local "config".
import { DEFAULT_CONFIG, loadConfig, saveConfig, type ExtConfig } from "../shared/config";

const form = document.getElementById("form") as HTMLFormElement;
const keys = Object.keys(DEFAULT_CONFIG) as (keyof ExtConfig)[];

async function render(): Promise<void> {
  const c = await loadConfig();
  form.replaceChildren();
  for (const k of keys) {
    const label = document.createElement("label");
    label.textContent = k;
    const i = document.createElement("input");
    i.id = k;
    if (typeof DEFAULT_CONFIG[k] === "boolean") {
      i.type = "checkbox";
      i.checked = c[k] as boolean;
      i.style.width = "auto";
    } else {
      i.value = String(c[k]);
    }
    label.append(i);
    form.append(label);
  }
  document.body.dataset.ready = "1";
}

document.getElementById("save")!.addEventListener("click", async () => {
  const next: Record<string, unknown> = {};
  for (const k of keys) {
    const i = document.getElementById(k) as HTMLInputElement;
    const d = DEFAULT_CONFIG[k];
    next[k] = typeof d === "boolean" ? i.checked : typeof d === "number" ? Number(i.value) : i.value.trim();
  }
  try {
    await saveConfig(next as Partial<ExtConfig>);
    document.getElementById("saved")!.textContent = "saved";
  } catch (e) {
    document.getElementById("error")!.textContent = String((e as Error).message);
  }
});
void render();
