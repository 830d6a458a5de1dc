// Shared by the Node client scripts: the server's address and token from the environment, and
// `step`, which runs one client operation and prints `STEP <name> ok` or `STEP <name> FAIL
// <reason>` for tests/clients.rs to judge (a step whose `needs` failed fails too).
import { createRequire } from "node:module";
import path from "node:path";

export const ORG_URL = process.env.SMSCTX_ORG_URL; // https://127.0.0.1:PORT
export const TOKEN = process.env.SMSCTX_TOKEN;
export const TAG = process.env.SMSCTX_TAG ?? "run";
export const results = {};
const failed = new Set();

// The clients live in the test's own node_modules (scripts/lib/clients.sh), not the project's.
export const require = createRequire(path.join(process.env.SMSCTX_CLIENTS_NODE_MODULES, "x.js"));

// A client that throws inside its own callbacks cannot be caught by the step's try: the
// running step fails with it instead of the whole script.
let failCurrent = null;
process.on("uncaughtException", (e) => {
  if (failCurrent) failCurrent(e);
  else throw e;
});

export async function step(name, fn, needs = []) {
  const missing = needs.filter((n) => failed.has(n) || !(n in results));
  if (missing.length) {
    failed.add(name);
    console.log(`STEP ${name} FAIL needs ${missing.join(",")}`);
    return undefined;
  }
  try {
    const crashed = new Promise((_, reject) => (failCurrent = reject));
    results[name] = (await Promise.race([fn(), crashed])) ?? true;
    console.log(`STEP ${name} ok`);
  } catch (e) {
    failed.add(name);
    const detail = e && (e.message || JSON.stringify(e));
    console.log(`STEP ${name} FAIL ${String(detail).replace(/\s+/g, " ").slice(0, 600)}`);
    console.error(e);
  } finally {
    failCurrent = null;
  }
  return results[name];
}

export function check(condition, message) {
  if (!condition) throw new Error(typeof message === "string" ? message : JSON.stringify(message));
}

export function outcome(values) {
  console.log("OUTCOME " + JSON.stringify(values));
}
