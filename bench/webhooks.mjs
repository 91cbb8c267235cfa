// Webhook delivery throughput and latency against a running rampay-server (bench/webhooks.sh starts one; issue 12's
// figures, docs/benchmarks.md "Webhook delivery: deliveries/s and acknowledgement-to-receipt latency").
//
//   node bench/webhooks.mjs --api http://127.0.0.1:PORT --admin-email E --admin-password P \
//        --phase baseline|drive [--endpoints 1] [--rate 2000] [--seconds 30] [--senders 32] [--in-flight 256] [--metrics URL]
//
// One process holds both ends, so one clock times them: a receiver (node:http, keep-alive, answers 200 at once) and
// the payment driver. "baseline" POSTs 600-byte bodies from here to the receiver, 64 in flight, for --seconds: the
// receiver's own ceiling on this machine. "drive" registers --endpoints webhook endpoints (admin: all events;
// enabled_events PaymentApproved, so one delivery per payment per endpoint), signs up --senders funded users, sends
// payments open-loop at --rate a second for --seconds (at most --in-flight unanswered), and records for each payment
// its acknowledgement time (the 201 arriving here) and for each delivery its receipt time. Prints one JSON line.
import http from "node:http";
import { performance } from "node:perf_hooks";
import { randomUUID, createHmac, timingSafeEqual } from "node:crypto";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const api = new URL(arg("api"));
const phase = arg("phase", "drive");
const endpoints = Number(arg("endpoints", "1"));
const rate = Number(arg("rate", "2000"));
const seconds = Number(arg("seconds", "30"));
const senders = Number(arg("senders", "32"));
const maxInFlight = Number(arg("in-flight", "256"));
const now = () => performance.now();

// ---- the receiver
let received = 0, signed = 0;
const receiptsPerSecond = new Map(); // whole second since start -> deliveries
const ackAt = new Map(); // payment id -> ms
const receiptLatency = []; // ms from the payment's acknowledgement to a delivery's receipt (this process's clock)
const pendingReceipts = new Map(); // payment id -> [receipt ms] that came before the 201 (never in practice; kept honest)
// Every receipt by endpoint path and RamPay-Event-Id: a second receipt of the same event at the same endpoint is a
// duplicate (at least once allows it; this counts them rather than inferring them from totals).
const receipts = new Map(); // "<path> <event id>" -> receipts
let duplicates = 0;
// Signatures checked for real (HMAC-SHA256 with the endpoint's secret) on every 32nd receipt: node's CPU is the
// receiver's ceiling, so not on every one.
const secrets = new Map(); // path -> secret
let sigChecked = 0, sigBad = 0;
function verify(path, header, body) {
  const secret = secrets.get(path);
  if (!secret || !header) return false;
  const parts = header.split(",").map((p) => p.split("="));
  const t = parts.find(([k]) => k === "t")?.[1];
  if (!t) return false;
  const expected = createHmac("sha256", secret).update(`${t}.`).update(body).digest();
  return parts.some(([k, v]) => k === "v1" && v.length === 64 && timingSafeEqual(Buffer.from(v, "hex"), expected));
}
const t0 = now();
const receiver = http.createServer({ keepAlive: true }, (req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const at = now();
    res.writeHead(200, { "content-length": "0" }).end();
    received++;
    if (req.headers["rampay-signature"]?.includes("v1=")) signed++;
    const key = `${req.url} ${req.headers["rampay-event-id"]}`;
    const seen = receipts.get(key) ?? 0;
    receipts.set(key, seen + 1);
    if (seen > 0) duplicates++;
    const body = Buffer.concat(chunks);
    if (received % 32 === 0 && secrets.size > 0) {
      sigChecked++;
      if (!verify(req.url, req.headers["rampay-signature"], body)) sigBad++;
    }
    const second = Math.floor((at - t0) / 1000);
    receiptsPerSecond.set(second, (receiptsPerSecond.get(second) ?? 0) + 1);
    if (phase !== "drive") return;
    const m = /"payment":\{"id":(\d+)/.exec(body.toString("utf8"));
    if (!m) return;
    const id = m[1], acked = ackAt.get(id);
    if (acked !== undefined) receiptLatency.push(at - acked);
    else (pendingReceipts.get(id) ?? pendingReceipts.set(id, []).get(id)).push(at);
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const receiverPort = receiver.address().port;

// ---- a small JSON client (keep-alive)
const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
function request(method, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
    const req = http.request(url, { method, agent, headers: { "content-type": "application/json", ...(data ? { "content-length": data.length } : {}), ...headers } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode, text, json: () => JSON.parse(text) });
      });
    });
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}
const apiUrl = (path) => new URL(path, api);
// Where the backlog gauges are: the server's /metrics, or a rampay-worker webhooks process's (--metrics, the Kafka mode).
const metricsUrl = arg("metrics") ? new URL(arg("metrics")) : apiUrl("/metrics");
async function expect(status, promise, what) {
  const r = await promise;
  if (r.status !== status) throw new Error(`${what}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.json();
}
const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null);
const round = (x) => (x === null ? null : Math.round(x * 10) / 10);

if (phase === "baseline") {
  // The receiver's ceiling: plain POSTs of the same size, no signing, no server in between.
  const body = JSON.stringify({ filler: "x".repeat(580) });
  const url = `http://127.0.0.1:${receiverPort}/baseline`;
  const end = now() + seconds * 1000;
  let done = 0;
  const start = now();
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (now() < end) { await request("POST", url, body); done++; }
  }));
  const cpu = process.cpuUsage();
  console.log(JSON.stringify({ phase, posts: done, posts_per_s: Math.round(done / ((now() - start) / 1000)), node_cpu_s: round((cpu.user + cpu.system) / 1e6) }));
  process.exit(0);
}

// ---- drive: endpoints, users, payments
const admin = await expect(200, request("POST", apiUrl("/v1/auth/token"), { email: arg("admin-email"), password: arg("admin-password") }), "admin login");
const adminAuth = { authorization: `Bearer ${admin.access_token}` };
for (let i = 0; i < endpoints; i++) {
  const e = await expect(201, request("POST", apiUrl("/v1/webhook_endpoints"), { url: `http://127.0.0.1:${receiverPort}/e${i}`, enabled_events: ["PaymentApproved"] }, adminAuth), "endpoint");
  secrets.set(`/e${i}`, e.secret);
}
const users = [];
for (let i = 0; i < senders + 1; i++) {
  const email = `wh-${randomUUID()}@bench.test`, password = "password-123";
  const u = await expect(201, request("POST", apiUrl("/v1/users"), { email, password, name: "Bench", currency: "USD" }), "sign-up");
  const t = await expect(200, request("POST", apiUrl("/v1/auth/token"), { email, password }), "login");
  users.push({ wallet: u.wallet_account_id, auth: { authorization: `Bearer ${t.access_token}` } });
}
const sink = users.pop(); // every payment goes to one payee
for (const u of users) {
  await expect(201, request("POST", apiUrl(`/v1/accounts/${u.wallet}/deposits`), { amount: 100_000_000, currency: "USD" }, { ...u.auth, "idempotency-key": randomUUID() }), "deposit");
}
// Let the deposits' own deliveries drain before timing starts.
await new Promise((r) => setTimeout(r, 3000));
const receivedBefore = received;
receiptLatency.length = 0;
// Receipts from here on that belong to no payment of the timed part (a late deposit's, say) stay in pendingReceipts.
pendingReceipts.clear();

// Where the backlog sits, sampled from the server's /metrics every second: events the webhooks consumer has not yet
// turned into deliveries (rampay_consumer_lag_events{consumer="webhooks"}) and deliveries stored but not yet sent
// (rampay_webhook_pending).
let maxConsumerLag = 0, maxPending = 0;
const sampler = setInterval(async () => {
  try {
    const m = (await request("GET", metricsUrl)).text;
    const lag = /^rampay_consumer_lag_events\{[^}]*consumer="webhooks"[^}]*\} (\S+)/m.exec(m);
    const pending = /^rampay_webhook_pending(?:\{[^}]*\})? (\S+)/m.exec(m);
    if (lag) maxConsumerLag = Math.max(maxConsumerLag, Number(lag[1]));
    if (pending) maxPending = Math.max(maxPending, Number(pending[1]));
  } catch { /* a missed sample */ }
}, 1000);
let sent = 0, acked = 0, failed = 0, inFlight = 0, skipped = 0;
const ackLatency = [];
const start = now();
const stopAt = start + seconds * 1000;
const runId = randomUUID().slice(0, 8);
function pay() {
  const u = users[sent % users.length];
  const key = `${runId}-${sent}`;
  sent++;
  inFlight++;
  const t = now();
  request("POST", apiUrl("/v1/payments"), { from_account: u.wallet, to_account: sink.wallet, amount: 1 + (sent % 1000), currency: "USD", capture: true },
    { ...u.auth, "idempotency-key": key }).then((r) => {
    inFlight--;
    const at = now();
    if (r.status !== 201 && r.status !== 200) { failed++; return; }
    acked++;
    ackLatency.push(at - t);
    const id = String(r.json().id);
    ackAt.set(id, at);
    const early = pendingReceipts.get(id);
    if (early) { for (const e of early) receiptLatency.push(e - at); pendingReceipts.delete(id); }
  }, () => { inFlight--; failed++; });
}
// Open loop: every 5 ms, the payments due by now (skipped when --in-flight are unanswered: counted).
await new Promise((resolve) => {
  const timer = setInterval(() => {
    const t = now();
    if (t >= stopAt) { clearInterval(timer); resolve(); return; }
    const due = Math.floor(((t - start) / 1000) * rate);
    while (sent + skipped < due) {
      if (inFlight >= maxInFlight) { skipped++; continue; }
      pay();
    }
  }, 5);
});
const driveMs = now() - start;
while (inFlight > 0) await new Promise((r) => setTimeout(r, 10));
// Wait for the deliveries (endpoints x acknowledged payments) or until nothing arrived for 15 s.
const expected = acked * endpoints;
let last = received, quietSince = now();
while (received - receivedBefore < expected && now() - quietSince < 15000) {
  await new Promise((r) => setTimeout(r, 100));
  if (received !== last) { last = received; quietSince = now(); }
}
const drainedMs = now() - start;
clearInterval(sampler);
// Deliveries a second: the busiest 10 s window of receipts during the run, and the whole run's average.
const firstSecond = Math.floor((start - t0) / 1000), lastSecond = Math.floor((now() - t0) / 1000);
let best = 0;
for (let s = firstSecond; s + 10 <= lastSecond + 1; s++) {
  let sum = 0;
  for (let k = s; k < s + 10; k++) sum += receiptsPerSecond.get(k) ?? 0;
  best = Math.max(best, sum / 10);
}
receiptLatency.sort((a, b) => a - b);
ackLatency.sort((a, b) => a - b);
const got = received - receivedBefore;
console.log(JSON.stringify({
  phase, endpoints, rate_asked: rate, seconds, payments_sent: sent, payments_acked: acked, payments_failed: failed, payments_skipped: skipped,
  payments_per_s: Math.round(acked / (driveMs / 1000)),
  deliveries_expected: expected, deliveries_received: got, signed_share: received ? round(signed / received) : null,
  duplicate_receipts: duplicates, timed_receipts: receiptLatency.length,
  other_receipts: [...pendingReceipts.values()].reduce((n, l) => n + l.length, 0),
  signatures_checked: sigChecked, signatures_bad: sigBad,
  deliveries_per_s_avg: Math.round(got / (drainedMs / 1000)), deliveries_per_s_best10s: Math.round(best),
  drain_s_after_drive: round((drainedMs - driveMs) / 1000), max_consumer_lag_events: maxConsumerLag, max_webhook_pending: maxPending,
  node_cpu_s: round((process.cpuUsage().user + process.cpuUsage().system) / 1e6),
  ack_ms: { p50: round(quantile(ackLatency, 0.5)), p99: round(quantile(ackLatency, 0.99)) },
  ack_to_receipt_ms: { samples: receiptLatency.length, p50: round(quantile(receiptLatency, 0.5)), p90: round(quantile(receiptLatency, 0.9)),
    p99: round(quantile(receiptLatency, 0.99)), max: round(receiptLatency.at(-1) ?? null) },
}));
process.exit(0);
