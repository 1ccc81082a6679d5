// Pushes bursts of notifications to an APNs server with node's built-in http2 client, the way
// a Node.js provider would: its own ES256 provider token from the .p8 key, and every request of
// a burst fired at once on a new connection, before the server's SETTINGS are read.
//
// usage: node node_burst.mjs URL CA_FILE KEY_FILE KEY_ID TEAM_ID BURSTS SIZE TIMEOUT_SECONDS
// Prints one JSON line: {"requests", "statuses": {status: count}, "failures": [...],
// "goaways": [...], "sessionErrors": [...]}, plus "timedOut": true if the run did not finish.
import crypto from "node:crypto";
import fs from "node:fs";
import http2 from "node:http2";

const [url, caFile, keyFile, keyId, teamId, burstsText, sizeText, timeoutText] =
  process.argv.slice(2);
const bursts = Number(burstsText);
const size = Number(sizeText);
const ca = fs.readFileSync(caFile);
const signingKey = crypto.createPrivateKey(fs.readFileSync(keyFile));

function b64url(data) {
  return Buffer.from(data).toString("base64url");
}

function providerToken() {
  const header = b64url(JSON.stringify({ alg: "ES256", kid: keyId }));
  const claims = b64url(JSON.stringify({ iss: teamId, iat: Math.floor(Date.now() / 1000) }));
  // JWS ES256 wants the raw r||s signature, not DER (RFC 7518 section 3.4).
  const signature = crypto.sign("sha256", Buffer.from(`${header}.${claims}`), {
    key: signingKey,
    dsaEncoding: "ieee-p1363",
  });
  return `${header}.${claims}.${b64url(signature)}`;
}

const token = providerToken();
const result = { requests: 0, statuses: {}, failures: [], goaways: [], sessionErrors: [] };

function push(session, index) {
  result.requests += 1;
  return new Promise((resolve) => {
    const deviceToken = crypto.randomBytes(32).toString("hex");
    let request;
    try {
      request = session.request({
        ":method": "POST",
        ":path": `/3/device/${deviceToken}`,
        authorization: `bearer ${token}`,
        "apns-topic": "com.example.app",
        "apns-push-type": "alert",
      });
    } catch (err) {
      // The server killed the connection (e.g. GOAWAY): nothing more can be sent on it.
      result.failures.push({ index, status: null, error: err.code || String(err) });
      resolve();
      return;
    }
    let status = null;
    let error = null;
    request.on("response", (headers) => {
      status = headers[":status"];
    });
    request.on("error", (err) => {
      error = err.code || String(err);
    });
    request.on("data", () => {});
    request.on("close", () => {
      if (status === null || error !== null) {
        result.failures.push({ index, status, error, rstCode: request.rstCode });
      } else {
        result.statuses[status] = (result.statuses[status] || 0) + 1;
      }
      resolve();
    });
    request.end(JSON.stringify({ aps: { alert: `burst ${index}` } }));
  });
}

async function burst(number) {
  const session = http2.connect(url, { ca });
  session.on("error", (err) => result.sessionErrors.push(err.code || String(err)));
  session.on("goaway", (code, lastStreamId) => result.goaways.push({ code, lastStreamId }));
  // First burst at once, before the connection is even up; a second one on the same
  // connection right after, once the limit has been raised.
  for (let round = 0; round < 2; round += 1) {
    const pending = [];
    for (let i = 0; i < size; i += 1) pending.push(push(session, number * 2 * size + round * size + i));
    await Promise.all(pending);
  }
  if (!session.destroyed) await new Promise((resolve) => session.close(resolve));
}

function report() {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// A request that never ends shows in the report as missing from statuses and failures.
const watchdog = setTimeout(() => {
  result.timedOut = true;
  report();
  process.exit(0);
}, 1000 * Number(timeoutText));
for (let number = 0; number < bursts; number += 1) {
  await burst(number);
}
clearTimeout(watchdog);
report();
