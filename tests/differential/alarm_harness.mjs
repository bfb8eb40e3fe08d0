// Starts workerd (through miniflare) with alarm_worker.js and serves the random alarm test over
// stdio: each input line is a sequence {"object": NAME, "steps": [...]}, each output line what the
// Worker observed (see alarm_worker.js), or {"err": ...}. The first output line is {"ready": true,
// "miniflare": VERSION} once workerd is up. Exits when stdin closes.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { Miniflare } from "miniflare";

const here = new URL(".", import.meta.url);
const mf = new Miniflare({
  modules: true,
  scriptPath: new URL("alarm_worker.js", here).pathname,
  script: readFileSync(new URL("alarm_worker.js", here), "utf8"),
  compatibilityDate: process.env.DURABLE_DIFFERENTIAL_COMPAT_DATE ?? "2026-04-20",
  durableObjects: {
    ALARM: { className: "AlarmFuzz", useSQLite: true },
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
