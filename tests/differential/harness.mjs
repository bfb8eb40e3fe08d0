// Starts workerd (through miniflare) with one differential test's Worker and serves that test over
// stdio. `node harness.mjs [TEST]`, TEST one of WORKERS' names (default "storage"):
// - storage: worker.js; each input line is {"backend": "sqlite"|"kv", "object": NAME, "ops": [...]}
//   (or an RPC or interleaving case), each output line the JSON list of results;
// - ws, alarm: ws_worker.js, alarm_worker.js; each input line is a sequence {"object": NAME,
//   "steps": [...]}, each output line what the Worker observed.
// A call that itself failed answers {"err": ...}. The first output line is {"ready": true,
// "miniflare": VERSION} once workerd is up. Exits when stdin closes.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { Miniflare } from "miniflare";

const here = new URL(".", import.meta.url);
const WORKERS = {
  storage: {
    script: "worker.js",
    modulesRules: [{ type: "ESModule", include: ["**/*.js"] }], // rpc_worker.js, which worker.js imports
    durableObjects: {
      SQLITE: { className: "Sqlite", useSQLite: true },
      KV: { className: "Kv" },
      RPC: { className: "Rpc" },
    },
  },
  ws: { script: "ws_worker.js", durableObjects: { WS: { className: "WsFuzz", useSQLite: true } } },
  alarm: { script: "alarm_worker.js", durableObjects: { ALARM: { className: "AlarmFuzz", useSQLite: true } } },
};
const test = process.argv[2] ?? "storage";
const worker = WORKERS[test];
if (worker === undefined) {
  process.stderr.write(`unknown test ${JSON.stringify(test)}: one of ${Object.keys(WORKERS).join(", ")}\n`);
  process.exit(2);
}
const mf = new Miniflare({
  modules: true,
  scriptPath: new URL(worker.script, here).pathname,
  script: readFileSync(new URL(worker.script, here), "utf8"),
  ...(worker.modulesRules ? { modulesRules: worker.modulesRules } : {}),
  compatibilityDate: process.env.DURABLE_DIFFERENTIAL_COMPAT_DATE ?? "2026-04-20",
  durableObjects: worker.durableObjects,
});
await mf.ready;
const version = JSON.parse(readFileSync(new URL("node_modules/miniflare/package.json", here), "utf8")).version;
process.stdout.write(JSON.stringify({ ready: true, miniflare: version }) + "\n");

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let out;
  try {
    const response = await mf.dispatchFetch("http://harness/", { method: "POST", body: line });
    out = await response.text();
  } catch (e) {
    out = JSON.stringify({ err: { name: String(e?.name), message: String(e?.message ?? e) } });
  }
  process.stdout.write(out.replace(/\n/g, " ") + "\n");
}
await mf.dispose();
