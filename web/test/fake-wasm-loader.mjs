// Module hooks (node:module register) that load test/fake-wasm.mjs in place of the wasm
// core for the package's own modules (dist/*.js import "../wasm/mpc_wasm.js").
// Usage, before importing dist/: register("./fake-wasm-loader.mjs", import.meta.url).
const FAKE = new URL("./fake-wasm.mjs", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === "../wasm/mpc_wasm.js" && /\/dist\/[^/]+\.js(\?.*)?$/.test(context.parentURL ?? "")) {
    return { url: FAKE, shortCircuit: true };
  }
  return next(specifier, context);
}
