// An upstream's webhook receiver for the KuCoin ND provisioner, in Node (>= 20), using only npm's
// `standardwebhooks` (signature check) and `jose` (JWE decryption). See docs/integration.md.
//
//   WEBHOOK_SECRET=whsec_...              the secret the provisioner signs with (PROVISIONER_WEBHOOK_SECRET)
//   DELIVERY_PRIVATE_JWK='{"kty":"EC",...,"d":"..."}'   the private half of PROVISIONER_DELIVERY_JWK
//   PORT=8080                             0 picks a free port; the first line printed says which
//
// Prints one JSON line per request it handled. It never prints a secret: the decrypted credentials are shown as
// their api_key and SHA-256 digests only (a real receiver puts them straight into its secret store).
//
// What a production receiver must add: a durable store of handled webhook-ids (here a Set, lost on restart),
// and its own processing inside the same transaction that records the id.

import { createHash } from "node:crypto";
import http from "node:http";

import { compactDecrypt, importJWK } from "jose";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

const webhook = new Webhook(process.env.WEBHOOK_SECRET);
const privateJwk = JSON.parse(process.env.DELIVERY_PRIVATE_JWK);
// The algorithm follows from the key type: EC P-256 uses ECDH-ES+A256KW, RSA uses RSA-OAEP-256 (content A256GCM).
const alg = privateJwk.kty === "EC" ? "ECDH-ES+A256KW" : "RSA-OAEP-256";
const privateKey = await importJWK(privateJwk, alg);

const handled = new Set(); // webhook-ids already processed: a copy is acknowledged and dropped
const lastSequence = new Map(); // customer_ref -> highest sequence processed

const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");
const out = (record) => process.stdout.write(JSON.stringify(record) + "\n");

async function openCredentials(jwe) {
  // Refuse anything but the algorithms we expect (never let the token choose).
  const { plaintext, protectedHeader } = await compactDecrypt(jwe, privateKey, {
    keyManagementAlgorithms: [alg],
    contentEncryptionAlgorithms: ["A256GCM"],
  });
  const credentials = JSON.parse(new TextDecoder().decode(plaintext)); // {api_key, secret, passphrase}
  return {
    kid: protectedHeader.kid,
    api_key: credentials.api_key,
    secret_sha256: sha256(credentials.secret),
    passphrase_sha256: sha256(credentials.passphrase),
  };
}

async function handle(event, webhookId) {
  const record = { id: webhookId, type: event.type, sequence: event.sequence, customer_ref: event.customer_ref };
  if (handled.has(webhookId)) return { ...record, duplicate: true };
  if (event.customer_ref && event.sequence != null) {
    const last = lastSequence.get(event.customer_ref) ?? 0;
    // Sequence numbers have no gaps: a jump means an earlier event has not arrived (it will; it may have become a
    // delivery dead letter the provisioner's operator can replay). An older one is a replay: apply it if it is new.
    if (event.sequence > last + 1) record.gap = [last + 1, event.sequence - 1];
    lastSequence.set(event.customer_ref, Math.max(last, event.sequence));
  }
  if (event.type === "api_key.issued" && event.credentials?.jwe) {
    record.credentials = await openCredentials(event.credentials.jwe);
  }
  handled.add(webhookId);
  return record;
}

const server = http.createServer(async (req, res) => {
  if (req.method !== "POST") {
    res.writeHead(405).end();
    return;
  }
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks).toString("utf8"); // verify the raw body, never a re-serialized one
  let event;
  try {
    event = webhook.verify(body, req.headers); // checks webhook-id/-timestamp/-signature, 5 minutes' tolerance
  } catch (error) {
    out({ verified: false, error: error instanceof WebhookVerificationError ? error.message : String(error) });
    res.writeHead(400).end();
    return;
  }
  try {
    const record = await handle(event, req.headers["webhook-id"]);
    out({ verified: true, ...record });
    res.writeHead(204).end(); // 2xx = delivered; anything else is retried by the provisioner
  } catch (error) {
    out({ verified: true, id: req.headers["webhook-id"], error: String(error) });
    res.writeHead(500).end();
  }
});

server.listen(Number(process.env.PORT ?? 8080), "127.0.0.1", () => {
  out({ listening: server.address().port });
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
