#!/usr/bin/env node
// Tiny static server for the demo wallet (no dependencies). Serves the package
// directory (web/) so that /demo/, /browser/ and /wasm/ resolve, with the right MIME
// type for .wasm, on 127.0.0.1.
//
//   node web/demo/serve.mjs [--port 8090] [--host 127.0.0.1]
//        [--cosigner URL] [--gateway URL] [--agent URL] [--token TOKEN] [--dev-primes]
//
// Prints the demo URL with the configuration as query parameters (the page prefills its
// fields from them). Env equivalents: DEMO_PORT, DEMO_HOST, WALLET_COSIGNER_URL,
// WALLET_GATEWAY_URL, RECOVERY_AGENT_URL, RECOVERY_AGENT_TOKEN.
import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".wasm": "application/wasm",
  ".ts": "text/plain; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** Default root: the package directory (parent of demo/). */
export const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Starts the server; resolves to `{ url, close }` once listening. `port` 0 picks a free
 * port.
 */
export function startServer({ root = PACKAGE_DIR, host = "127.0.0.1", port = 0, quiet = true } = {}) {
  const base = normalize(root + sep);
  const server = createServer((req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400).end("bad request");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/" || path === "/demo") {
      res.writeHead(302, { location: `/demo/${new URL(req.url ?? "/", "http://x").search}` }).end();
      return;
    }
    if (path.endsWith("/")) path += "index.html";
    const file = normalize(join(base, path));
    if (!file.startsWith(base) || file.includes(`${sep}node_modules${sep}`)) {
      res.writeHead(403).end("forbidden");
      return;
    }
    let st;
    try {
      st = statSync(file);
    } catch {
      st = undefined;
    }
    if (!st?.isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, {
      "content-type": MIME[extname(file)] ?? "application/octet-stream",
      "content-length": st.size,
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    createReadStream(file).pipe(res);
    if (!quiet) console.log(`${req.method} ${path}`);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const addr = server.address();
      const url = `http://${host}:${addr.port}`;
      resolve({ url, server, close: () =>
          new Promise((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const port = Number(arg("port") ?? process.env.DEMO_PORT ?? 8090);
  const host = arg("host") ?? process.env.DEMO_HOST ?? "127.0.0.1";
  for (const f of ["browser/wallet-mpc.js", "wasm/mpc_wasm_bg.wasm", "demo/vendor/verify.js"]) {
    try {
      statSync(join(PACKAGE_DIR, f));
    } catch {
      console.error(`missing web/${f}: run crates/mpc-wasm/build.sh and (cd web && npm ci && npm run build) first`);
      process.exit(1);
    }
  }
  const { url } = await startServer({ host, port, quiet: !process.argv.includes("--verbose") });
  const q = new URLSearchParams();
  const set = (k, v) => v && q.set(k, v);
  set("cosigner", arg("cosigner") ?? process.env.WALLET_COSIGNER_URL);
  set("gateway", arg("gateway") ?? process.env.WALLET_GATEWAY_URL);
  set("agent", arg("agent") ?? process.env.RECOVERY_AGENT_URL);
  set("token", arg("token") ?? process.env.RECOVERY_AGENT_TOKEN);
  if (process.argv.includes("--dev-primes")) q.set("devPrimes", "1");
  const qs = q.toString();
  console.log(`demo wallet: ${url}/demo/${qs ? `?${qs}` : ""}`);
  console.log(`(the servers must allow the origin ${url} in their CORS settings)`);
}
