// Interop checks against a running wsloop echo server, with Node `ws` as an independent
// client offering permessage-deflate (perMessageDeflate: true, threshold 0 so every
// message is compressed). Usage: node scripts/node/interop.js ws://127.0.0.1:PORT
// Prints one line per check; exits non-zero if any failed.
import WebSocket from "ws";

const url = process.argv[2];
if (!url) {
  console.error("usage: node interop.js ws://HOST:PORT");
  process.exit(2);
}
const TIMEOUT_MS = 10_000;

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: { threshold: 0 }, maxPayload: 64 << 20 });
    const timer = setTimeout(() => reject(new Error("open timed out")), TIMEOUT_MS);
    ws.once("open", () => {
      clearTimeout(timer);
      if (!ws.extensions.includes("permessage-deflate")) {
        reject(new Error(`permessage-deflate not negotiated: "${ws.extensions}"`));
      } else {
        resolve(ws);
      }
    });
    ws.once("error", reject);
  });
}

// Sends every message, then expects each back in order, with its type.
async function roundTrip(messages) {
  const ws = await open();
  const got = [];
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${got.length} replies`)), TIMEOUT_MS * 3);
    ws.on("message", (data, isBinary) => {
      got.push(isBinary ? Buffer.from(data) : data.toString("utf8"));
      if (got.length === messages.length) {
        clearTimeout(timer);
        resolve();
      }
    });
    ws.once("close", (code) => reject(new Error(`closed with ${code} after ${got.length} replies`)));
  });
  for (const m of messages) ws.send(m, { binary: Buffer.isBuffer(m) });
  await done;
  ws.removeAllListeners("close");
  ws.close(1000);
  messages.forEach((m, i) => {
    const same = Buffer.isBuffer(m) ? Buffer.isBuffer(got[i]) && m.equals(got[i]) : m === got[i];
    if (!same) throw new Error(`reply ${i} differs (${String(got[i]).slice(0, 40)}...)`);
  });
}

const json = (n) => JSON.stringify({ seq: n, user: `user${n % 50}`, text: "hello ".repeat(30) });
const bigText = Array.from({ length: 60_000 }, (_, i) => `{"n":${i}}`).join(",").slice(0, 1 << 20);
const bigBinary = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7) % 251));

const checks = [
  ["text, small", () => roundTrip(["hello"])],
  ["binary, small", () => roundTrip([Buffer.from([1, 2, 3, 0, 255])])],
  ["text, 1 MiB", () => roundTrip([bigText])],
  ["binary, 1 MiB", () => roundTrip([bigBinary])],
  ["1,000 messages in a row", () => roundTrip(Array.from({ length: 1000 }, (_, i) => json(i)))],
];

let failed = 0;
for (const [name, check] of checks) {
  try {
    await check();
    console.log(`ok    ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL  ${name}: ${e.message}`);
  }
}
console.log(`node ws interop (permessage-deflate): ${checks.length - failed} of ${checks.length} checks ok`);
process.exit(failed ? 1 : 0);
