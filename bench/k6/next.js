// Nightly load test of Tally's hot path (.github/workflows/load.yml), run with k6:
//
//   TALLY_URL=https://staging.example.com TALLY_CLIENT_ID=... TALLY_CLIENT_SECRET=... \
//     k6 run bench/k6/next.js
//
// setup(): a token through POST /oauth/token (client credentials in the form body,
// never in the URL), then POST /v1/sequences (201, or 409 when it exists already).
// The scenario: steady POST /v1/sequences/{name}/next at a constant arrival rate.
// Thresholds (options.json) fail the run on p99 or error rate; bench/k6compare.py then
// compares the summary with the stored baseline (bench/k6/baseline.json).
import http from "k6/http";
import { check, fail } from "k6";

export const options = JSON.parse(open("./options.json"));
if (__ENV.TALLY_RATE) options.scenarios.steady_next.rate = Number(__ENV.TALLY_RATE);
if (__ENV.TALLY_DURATION) options.scenarios.steady_next.duration = __ENV.TALLY_DURATION;

const BASE = (__ENV.TALLY_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
const MODE = __ENV.TALLY_MODE || "strict";
const SEQUENCE = __ENV.TALLY_SEQUENCE || `k6-${MODE}`;

export function setup() {
  const token = http.post(
    `${BASE}/oauth/token`,
    {
      grant_type: "client_credentials",
      client_id: __ENV.TALLY_CLIENT_ID || "",
      client_secret: __ENV.TALLY_CLIENT_SECRET || "",
      scope: "sequences:next sequences:write",
    },
    { tags: { name: "token" } },
  );
  if (!check(token, { "token: 200": (r) => r.status === 200 })) {
    fail(`POST /oauth/token answered ${token.status}`);
  }
  const headers = {
    Authorization: `Bearer ${token.json("access_token")}`,
    "Content-Type": "application/json",
  };
  const created = http.post(
    `${BASE}/v1/sequences`,
    JSON.stringify({ name: SEQUENCE, mode: MODE }),
    { headers, tags: { name: "create" } },
  );
  if (!check(created, { "create: 201 or 409": (r) => r.status === 201 || r.status === 409 })) {
    fail(`POST /v1/sequences answered ${created.status}`);
  }
  return { headers, sequence: SEQUENCE };
}

export function next(data) {
  const r = http.post(`${BASE}/v1/sequences/${data.sequence}/next`, null, {
    headers: data.headers,
    tags: { name: "next" },
  });
  check(r, {
    "next: 200": (res) => res.status === 200,
    "next: a number": (res) => res.status === 200 && Number.isInteger(res.json("value")),
  });
}

export function handleSummary(data) {
  return { "summary.json": JSON.stringify(data, null, 2) };
}
