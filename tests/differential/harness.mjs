// Starts workerd (through miniflare) with worker.js and serves the differential test over stdio:
// each input line is {"backend": "sqlite"|"kv", "object": NAME, "ops": [...]}, each output line the
// JSON list of results (or {"err": ...} when the call itself failed). The first output line is
// {"ready": true, "miniflare": VERSION} once workerd is up. Exits when stdin closes.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { Miniflare } from "miniflare";

const here = new URL(".", import.meta.url);
const mf = new Miniflare({
  modules: true,
  scriptPath: new URL("worker.js", here).pathname,
  script: readFileSync(new URL("worker.js", here), "utf8"),
  modulesRules: [{ type: "ESModule", include: ["**/*.js"] }], // rpc_worker.js, which worker.js imports
  compatibilityDate: process.env.DURABLE_DIFFERENTIAL_COMPAT_DATE ?? "2026-04-20",
  durableObjects: {
    SQLITE: { className: "Sqlite", useSQLite: true },
    KV: { className: "Kv" },
    RPC: { className: "Rpc" },
  },
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
