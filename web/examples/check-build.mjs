// Checks a bundler's output for a page using @wallet-mpc/web: the wasm core was emitted
// and the protocol Worker became a file of its own.
//   node check-build.mjs DIST_DIR
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2] ?? "dist";
const files = [];
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
};
walk(dir);
const problems = [];
const wasm = files.filter((f) => f.endsWith(".wasm"));
if (wasm.length === 0) problems.push("no .wasm emitted (the wasm core)");
else if (statSync(wasm[0]).size < 500_000) problems.push(`${wasm[0]} is too small to be the wasm core`);
const js = files.filter((f) => f.endsWith(".js"));
if (!js.some((f) => /serveCalls|wallet-mpc worker|mpc_wasm/.test(readFileSync(f, "utf8"))) || js.length < 2) {
  problems.push("no separate protocol Worker script in the output");
}
if (problems.length) {
  console.error(`${dir}: bundle check failed:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`${dir}: bundle ok (${js.length} scripts, wasm ${wasm.map((f) => statSync(f).size).join(", ")} bytes)`);
