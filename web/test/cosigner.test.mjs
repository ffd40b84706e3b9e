// The cosigner transport (src/cosigner.ts) against a real local HTTP server speaking
// gRPC-web the way tonic-web does: the request bytes leave framed and unchanged, a
// response message comes back unframed, failures come back as the gRPC status (from a
// trailer frame or a trailers-only response), and no answer is `unavailable`.
// Run: npm test (after npm run build).
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { CosignerTransport } from "../dist/cosigner.js";

const frame = (flag, bytes) => {
  const out = Buffer.alloc(5 + bytes.length);
  out[0] = flag;
  out.writeUInt32BE(bytes.length, 1);
  Buffer.from(bytes).copy(out, 5);
  return out;
};
const trailer = (text) => frame(0x80, Buffer.from(text));

let server;
let base;
const seen = [];

before(async () => {
  server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      seen.push({ path: req.url, headers: req.headers, body });
      const grpc = { "content-type": "application/grpc-web+proto" };
      switch (req.url) {
        case "/ok":
          res.writeHead(200, grpc);
          res.end(Buffer.concat([frame(0, body.subarray(5)), trailer("grpc-status:0\r\ngrpc-message:\r\n")]));
          break;
        case "/trailer-error":
          res.writeHead(200, grpc);
          res.end(trailer("grpc-status: 9\r\ngrpc-message: presignature%20used\r\ngrpc-status-details-bin: AAEC\r\n"));
          break;
        case "/trailers-only":
          res.writeHead(200, { ...grpc, "grpc-status": "7", "grpc-message": "refused%20by%20policy", "grpc-status-details-bin": "CAc" });
          res.end();
          break;
        case "/slow":
          break; // never answers
        default:
          res.writeHead(404);
          res.end("not found");
      }
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
  server.closeAllConnections?.();
  server.close();
});

test("the request bytes leave framed and unchanged; the response message comes back", async () => {
  const t = new CosignerTransport(base);
  const body = Uint8Array.from([8, 1, 18, 3, 97, 98, 99]);
  const a = await t.call("/ok", body);
  assert.deepEqual(a, { body });
  const req = seen.find((s) => s.path === "/ok");
  assert.equal(req.headers["content-type"], "application/grpc-web+proto");
  assert.equal(req.headers["x-grpc-web"], "1");
  assert.deepEqual([...req.body], [0, 0, 0, 0, 7, ...body]);
});

test("a failed call is its gRPC status: trailer frame or trailers-only", async () => {
  const t = new CosignerTransport(base);
  assert.deepEqual(await t.call("/trailer-error", new Uint8Array(0)), {
    grpcCode: 9,
    message: "presignature used",
    details: "AAEC",
  });
  assert.deepEqual(await t.call("/trailers-only", new Uint8Array(0)), {
    grpcCode: 7,
    message: "refused by policy",
    details: "CAc",
  });
});

test("no answer is `unavailable`, never a throw: HTTP error, refused connection, deadline", async () => {
  const t = new CosignerTransport(base);
  const notGrpc = await t.call("/missing", new Uint8Array(0));
  assert.match(notGrpc.unavailable, /HTTP 404/);
  const slow = await t.call("/slow", new Uint8Array(0), 300);
  assert.match(slow.unavailable, /no answer within/);
  const closed = new CosignerTransport("http://127.0.0.1:9");
  const refused = await closed.call("/x", new Uint8Array(0));
  assert.match(refused.unavailable, /cosigner unreachable at http:\/\/127\.0\.0\.1:9/);
});

test("a bad URL is a configuration error", () => {
  assert.throws(() => new CosignerTransport("ftp://x"), { code: "config" });
  assert.throws(() => new CosignerTransport(""), { code: "config" });
});
