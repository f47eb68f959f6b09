// An upstream's event publisher for the KuCoin ND provisioner's HTTP API, in Node (>= 20), using only npm's
// `standardwebhooks` (request signatures) and Node's own fetch. See docs/integration.md.
//
//   API_URL=https://provisioner.example     where `provisioner api` answers (a path prefix is kept; no /v1)
//   API_SECRET=whsec_...                    the secret we share with you (one of PROVISIONER_API_SECRETS)
//   MAX_ATTEMPTS=10                         attempts per request before giving up on it (default 10)
//   TIMEOUT_SECONDS=30                      per attempt (default 30)
//
//   node publisher.mjs events.jsonl           one request per event
//   node publisher.mjs --batch events.jsonl   {"events": [...]} requests of up to 500 events and 1 MiB
//   (no file, or -, reads standard input)
//
// Input is JSON Lines: one event per line, sent as the exact bytes of its line (never re-serialized, so amounts
// stay the decimal strings you wrote). Prints one JSON line per event:
//   {"id":"evt-1","http":202,"status":"accepted","attempts":1}
//   {"id":"evt-1","http":200,"status":"duplicate","attempts":2}
//   {"id":"evt-2","http":422,"status":"refused","field":"data.funding.0.amount","reason":"...","attempts":1}
// and one {"retrying": ...} line per attempt that will be repeated. Exit status: 0 when every event is accepted or
// a duplicate; 1 when any was refused or rejected (a 4xx: do not send it again unchanged); 2 for a usage error;
// 3 when a request got no answer within MAX_ATTEMPTS (running the same file again is safe).
//
// Retries: a network error, a time-out, a 5xx or a 429 is retried with the same body and the same webhook-id,
// signed afresh (a new timestamp: we refuse one more than 5 minutes old), after the Retry-After the answer asked
// for, else after an exponential back-off with jitter. This is safe because the event id is the idempotency key:
// an event the first attempt did store is answered "duplicate" by the retry, and is queued once.

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

import { Webhook } from "standardwebhooks";

const MAX_BATCH_EVENTS = 500;
const MAX_BATCH_BYTES = 1024 * 1024;
const MAX_WAIT_MS = 5 * 60 * 1000; // the longest Retry-After obeyed as asked; a longer one is cut to this

const out = (record) => process.stdout.write(JSON.stringify(record) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function usage(message) {
  process.stderr.write(`${message}\nusage: API_URL=... API_SECRET=whsec_... node publisher.mjs [--batch] [FILE|-]\n`);
  process.exit(2);
}

function positiveInt(name, fallback) {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) usage(`${name} must be a positive integer, not ${JSON.stringify(text)}`);
  return value;
}

// The wait a 503 or 429 asked for: Retry-After in seconds or as an HTTP date; null when absent or unreadable.
function retryAfterMs(response) {
  const value = response?.headers.get("retry-after");
  if (!value) return null;
  const ms = /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : Date.parse(value) - Date.now();
  return Number.isNaN(ms) ? null : Math.min(Math.max(ms, 0), MAX_WAIT_MS);
}

// A problem body of a proxy in between may not be JSON: the status still says what happened.
function parseOrNull(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// 0.5 s, 1 s, 2 s, ... up to 30 s, drawn in the upper half of each step so that many publishers spread out.
function backoffMs(attempt) {
  const step = Math.min(500 * 2 ** (attempt - 1), 30_000);
  return Math.round(step / 2 + (Math.random() * step) / 2);
}

class Publisher {
  constructor({ url, secret, maxAttempts, timeoutMs }) {
    this.endpoint = new URL("v1/events", url.endsWith("/") ? url : `${url}/`); // keeps a path prefix
    this.webhook = new Webhook(secret); // throws on a secret that is not whsec_<base64>
    this.maxAttempts = maxAttempts;
    this.timeoutMs = timeoutMs;
  }

  // POST one body until it gets a 2xx or a 4xx other than 429. Returns {http, body, attempts}, or
  // {error, attempts} when every attempt failed.
  async post(body) {
    const msgId = `msg_${randomUUID()}`; // one id for every attempt of this request
    for (let attempt = 1; ; attempt++) {
      const now = new Date();
      const headers = {
        "content-type": "application/json",
        "webhook-id": msgId,
        "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
        "webhook-signature": this.webhook.sign(msgId, now, body),
      };
      let response = null;
      let cause;
      try {
        response = await fetch(this.endpoint, {
          method: "POST",
          headers,
          body,
          redirect: "manual",
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        if (response.status < 500 && response.status !== 429) {
          const text = await response.text(); // inside the try: an answer cut short is retried like no answer
          return { http: response.status, body: parseOrNull(text), attempts: attempt };
        }
        cause = `HTTP ${response.status}`;
        await response.body?.cancel();
      } catch (error) {
        cause = error.cause?.code ?? error.cause?.message ?? error.name ?? String(error);
      }
      if (attempt >= this.maxAttempts) return { error: cause, attempts: attempt };
      const waitMs = retryAfterMs(response) ?? backoffMs(attempt);
      out({ retrying: msgId, attempt, cause, wait_ms: waitMs });
      await sleep(waitMs);
    }
  }
}

// What one event's line says about it, from the request's answer (a single event's own answer).
function singleResult(id, answer) {
  if (answer.error !== undefined) return { id, status: "unsent", error: answer.error, attempts: answer.attempts };
  const { http, body, attempts } = answer;
  if (http >= 200 && http < 300) return { id: body?.id ?? id, http, status: body?.status, attempts };
  if (http === 422 || http === 409) {
    const status = http === 422 ? "refused" : "conflict";
    return { id: body?.event_id ?? id, http, status, field: body?.field, reason: body?.reason, attempts };
  }
  // 400, 401, 413, 415: the request itself was wrong (a 401: check API_SECRET and this host's clock)
  return { id, http, status: "rejected", detail: body?.detail ?? body?.title ?? null, attempts };
}

// Every event's line from a batch's answer: 200 carries one result per event, in input order.
function batchResults(ids, answer) {
  if (answer.error !== undefined || answer.http !== 200) return ids.map((id) => singleResult(id, answer));
  return answer.body.results.map((result) => ({ ...result, http: 200, attempts: answer.attempts }));
}

// {events: [{id, text}], unreadable} from JSON Lines; a line that is not JSON is reported and counted, not sent.
function readEvents(text) {
  const events = [];
  let unreadable = 0;
  text.split("\n").forEach((line, index) => {
    const raw = line.trim();
    if (!raw) return;
    try {
      const parsed = JSON.parse(raw);
      events.push({ id: typeof parsed?.id === "string" ? parsed.id : null, text: raw });
    } catch (error) {
      out({ line: index + 1, status: "unreadable", reason: `not JSON: ${error.message}` });
      unreadable += 1;
    }
  });
  return { events, unreadable };
}

// Groups of events for one batch request each: at most 500 events and 1 MiB of body. An event too big to share a
// batch (one carrying KYC documents) goes alone, as a single-event request.
function batches(events) {
  const groups = [];
  let current = [];
  let bytes = 0;
  for (const event of events) {
    const size = Buffer.byteLength(event.text) + 1;
    if (size + 12 > MAX_BATCH_BYTES) {
      groups.push({ single: event });
      continue;
    }
    if (current.length === MAX_BATCH_EVENTS || bytes + size + 12 > MAX_BATCH_BYTES) {
      groups.push({ events: current });
      current = [];
      bytes = 0;
    }
    current.push(event);
    bytes += size;
  }
  if (current.length) groups.push({ events: current });
  return groups;
}

async function main() {
  const args = process.argv.slice(2);
  const batch = args[0] === "--batch";
  const files = batch ? args.slice(1) : args;
  if (files.length > 1 || files.some((f) => f.startsWith("--"))) usage(`unexpected arguments: ${files.join(" ")}`);
  if (!process.env.API_URL) usage("API_URL is not set");
  if (!process.env.API_SECRET?.startsWith("whsec_")) usage("API_SECRET must be set to the whsec_... secret");
  const publisher = new Publisher({
    url: process.env.API_URL,
    secret: process.env.API_SECRET,
    maxAttempts: positiveInt("MAX_ATTEMPTS", 10),
    timeoutMs: positiveInt("TIMEOUT_SECONDS", 30) * 1000,
  });
  const source = files[0] && files[0] !== "-" ? files[0] : 0; // 0: standard input
  const { events, unreadable } = readEvents(readFileSync(source, "utf8"));

  const results = [];
  const report = (result) => {
    results.push(result);
    out(result);
  };
  if (batch) {
    for (const group of batches(events)) {
      if (group.single) {
        report(singleResult(group.single.id, await publisher.post(group.single.text)));
      } else {
        const body = `{"events":[${group.events.map((e) => e.text).join(",")}]}`;
        batchResults(group.events.map((e) => e.id), await publisher.post(body)).forEach(report);
      }
    }
  } else {
    for (const event of events) report(singleResult(event.id, await publisher.post(event.text)));
  }

  if (results.some((r) => r.status === "unsent")) process.exit(3);
  const final = unreadable > 0 || results.some((r) => r.status !== "accepted" && r.status !== "duplicate");
  process.exit(final ? 1 : 0);
}

await main();
