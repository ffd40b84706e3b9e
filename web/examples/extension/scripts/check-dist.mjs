// Checks the built extension: the files the manifest names exist; the service worker
// and the content scripts contain no dynamic import() (forbidden in service workers;
// content scripts are classic scripts: no import at all).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "dist");
const manifest = JSON.parse(readFileSync(join(dist, "manifest.json"), "utf8"));
const files = [
  manifest.background.service_worker,
  manifest.action.default_popup,
  manifest.options_page,
  "src/offscreen/offscreen.html",
  "src/approval/approval.html",
  ...manifest.content_scripts.flatMap((c) => c.js),
];
const problems = [];
for (const f of files) if (!existsSync(join(dist, f))) problems.push(`missing dist/${f}`);
const sw = readFileSync(join(dist, manifest.background.service_worker), "utf8");
if (/\bimport\s*\(/.test(sw.replace(/\/\/.*$/gm, ""))) problems.push("sw.js contains a dynamic import() (forbidden in service workers)");
for (const f of manifest.content_scripts.flatMap((c) => c.js)) {
  const s = readFileSync(join(dist, f), "utf8");
  if (/^\s*(import|export)\b/m.test(s) || /\bimport\s*\(/.test(s)) problems.push(`${f} imports modules (content scripts are classic scripts)`);
}
if (problems.length) {
  console.error(`extension dist/ check failed:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`extension dist/ ok (${files.length} files checked)`);
