// wsloop in a real browser: Debian's headless Chromium driven by playwright-core.
// Usage: node browser_test.js http://127.0.0.1:PORT ADMIN_TOKEN SCREENSHOT.png
// (https://... for a server on wss://; Node's own fetches then need NODE_EXTRA_CA_CERTS).
// The server must run with --admin-token ADMIN_TOKEN --subprotocols chat.v1 and a
// max message size of at least 1 MiB. Prints "ok: <check>" per check; exits 1 on failure.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, token, screenshot] = process.argv.slice(2);
if (!base || !token || !screenshot) {
  console.error("usage: node browser_test.js BASE_URL ADMIN_TOKEN SCREENSHOT");
  process.exit(2);
}
const wsBase = base.replace(/^http/, "ws");
// Over https the server's certificate is the test's own: Chromium is told to accept it.
const tls = base.startsWith("https:");
const profile = mkdtempSync(join(tmpdir(), "wsloop-chromium-"));
// A fresh profile directory (Chromium's --user-data-dir, which Playwright passes itself).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1200, height: 860 },
  ignoreHTTPSErrors: tls,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic",
    // Nothing but loopback: every host name fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ...(tls ? ["--ignore-certificate-errors"] : []),
  ],
});

let failed = false;
async function check(name, body) {
  try {
    await body();
    console.log(`ok: ${name}`);
  } catch (e) {
    failed = true;
    console.log(`FAILED: ${name}: ${e.stack || e}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}
async function metric(series) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

try {
  const admin = await context.newPage();
  const clients = await context.newPage();
  await clients.goto(`${base}/healthz`); // a same-origin page for the WebSocket clients

  await check("admin page shows the live connection count and it follows clients", async () => {
    await admin.goto(`${base}/admin`);
    const count = () => admin.locator("#connections").textContent();
    await admin.waitForFunction(() => /^\d+$/.test(document.getElementById("connections").textContent));
    const before = Number(await count());
    // Two fan-out clients (one topic, so the topics table shows it) and three echo ones.
    await clients.evaluate((base) => {
      const paths = ["/broadcast", "/broadcast", "/echo", "/echo", "/echo"];
      window.held = paths.map((path) => new WebSocket(base + path));
      return Promise.all(window.held.map((ws) => new Promise((ok, no) => { ws.onopen = ok; ws.onerror = no; })));
    }, wsBase);
    await admin.waitForFunction((n) => document.getElementById("connections").textContent === String(n),
      before + 5, { timeout: 5000 });
    // Some traffic, so the rates and the closes table show something.
    await clients.evaluate(() => Promise.all(window.held.map((ws) => new Promise((ok) => {
      ws.onmessage = ok; ws.send("x".repeat(2000));
    }))));
    await clients.evaluate(() => window.held.slice(3).forEach((ws) => ws.close(1000)));
    await admin.waitForFunction((n) => document.getElementById("connections").textContent === String(n),
      before + 3, { timeout: 5000 });
    // A trickle of messages while the screenshot is taken, so the rates show.
    await clients.evaluate(() => {
      window.trickle = setInterval(() => window.held.slice(0, 3).forEach((ws) => ws.send("tick")), 10);
    });
    await admin.waitForTimeout(1500);
    await admin.screenshot({ path: screenshot, fullPage: true });
    await clients.evaluate(() => clearInterval(window.trickle));
  });

  const echo = (page, args) => page.evaluate(async ({ url, protocols, payloads }) => {
    const ws = new WebSocket(url, protocols);
    ws.binaryType = "arraybuffer";
    await new Promise((ok, no) => { ws.onopen = ok; ws.onerror = () => no(new Error("no open")); });
    const results = [];
    for (const p of payloads) {
      const data = p.kind === "text" ? p.value : new Uint8Array(p.value.length).map((_, i) => (i * 7 + (i >> 9)) & 255);
      const back = await new Promise((ok) => { ws.onmessage = (e) => ok(e.data); ws.send(data); });
      const same = p.kind === "text" ? back === data
        : back instanceof ArrayBuffer && back.byteLength === data.length
          && new Uint8Array(back).every((b, i) => b === data[i]);
      results.push({ kind: p.kind, length: p.kind === "text" ? data.length : data.length, same });
    }
    const out = { extensions: ws.extensions, protocol: ws.protocol, results };
    ws.close(1000);
    return out;
  }, args);

  await check("Chromium's permessage-deflate offer is accepted and a compressed echo round-trips", async () => {
    const before = await metric("wsloop_sent_bytes_total");
    const text = JSON.stringify(Array.from({ length: 2000 }, (_, i) => ({ id: i, user: "user" + (i % 10) })));
    const r = await echo(clients, { url: `${wsBase}/echo`, protocols: [], payloads: [{ kind: "text", value: text }] });
    const sent = (await metric("wsloop_sent_bytes_total")) - before;
    assert(r.extensions.includes("permessage-deflate"), `extensions: "${r.extensions}"`);
    assert(r.results[0].same, "echo differs");
    // Other pages' traffic is included, so only a loose bound: far below the text.
    assert(sent < text.length / 2, `server sent ${sent} bytes for a ${text.length}-byte echo`);
    console.log(`   ${text.length}-byte JSON echoed with ${sent} bytes on the wire (${r.extensions})`);
  });

  await check("text, binary and a 1 MiB message round-trip", async () => {
    const r = await echo(clients, { url: `${wsBase}/echo`, protocols: [], payloads: [
      { kind: "text", value: "héllo wörld ✓" },
      { kind: "binary", value: { length: 256 } },
      { kind: "binary", value: { length: 1 << 20 } },
    ] });
    for (const x of r.results) assert(x.same, `${x.kind} ${x.length} differs`);
  });

  await check("a subprotocol is agreed", async () => {
    const r = await echo(clients, { url: `${wsBase}/echo`, protocols: ["nope.v0", "chat.v1"],
      payloads: [{ kind: "text", value: "p" }] });
    assert(r.protocol === "chat.v1", `protocol: "${r.protocol}"`);
  });

  await check("the page sees close code 1008 after a server-side policy close", async () => {
    const code = await clients.evaluate(async ({ url, token }) => {
      const ws = new WebSocket(url);
      const welcome = await new Promise((ok) => { ws.onmessage = (e) => ok(e.data); });
      const id = JSON.parse(welcome).message.match(/welcome ([0-9a-f]+)/)[1];
      const closed = new Promise((ok) => { ws.onclose = (e) => ok(e.code); });
      const r = await fetch(`/admin/api/close?id=${id}&code=1008`, { method: "POST",
        headers: { Authorization: `Bearer ${token}` } });
      if (r.status !== 200) return `admin answered ${r.status}`;
      return closed;
    }, { url: `${wsBase}/chat`, token });
    assert(code === 1008, `close code ${code}`);
  });

  await check("a cross-origin page is refused", async () => {
    const before = await metric('wsloop_connections_rejected_total{reason="origin"}');
    const other = await context.newPage();
    // A page of another origin: another loopback port, served by this script (a public
    // origin would be stopped by Chromium's local network checks before the server).
    const site = createServer((_, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end("<!doctype html><title>elsewhere</title>");
    });
    await new Promise((ok) => site.listen(0, "127.0.0.1", ok));
    await other.goto(`http://127.0.0.1:${site.address().port}/`);
    site.close();
    const r = await other.evaluate((url) => new Promise((ok) => {
      const ws = new WebSocket(url);
      let opened = false;
      ws.onopen = () => { opened = true; };
      ws.onclose = (e) => ok({ opened, code: e.code });
    }), `${wsBase}/echo`);
    const after = await metric('wsloop_connections_rejected_total{reason="origin"}');
    assert(!r.opened && r.code === 1006, JSON.stringify(r));
    assert(after === before + 1, `origin rejections ${before} -> ${after}`);
  });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
