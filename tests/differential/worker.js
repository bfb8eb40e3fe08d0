// The workerd side of the differential test (tests/test_differential.py).
//
// A Durable Object whose `run(json)` executes a list of storage operations and answers, for each,
// {"ok": result} or {"err": {"name", "message"}}. Values travel in the type-tagged JSON form that
// tests/differential/codec.py reads and writes (see its docstring): this file is its JavaScript half.
// Two classes: `Sqlite` (new_sqlite_classes) and `Kv` (the legacy key-value backend).
import { DurableObject } from "cloudflare:workers";
import { runRpc } from "./rpc_worker.js";

export { Rpc } from "./rpc_worker.js";

function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function decodeNumber(v) {
  if (typeof v === "number") return v;
  return { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity, "-0": -0 }[v];
}

function encodeNumber(n) {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "Infinity";
  if (n === -Infinity) return "-Infinity";
  if (Object.is(n, -0)) return "-0";
  return n;
}

// Tagged JSON -> a JavaScript value. A container tagged with "id" may be referred to again, from
// inside itself (a cycle) or later on, as {"t": "ref", "v": id}.
export function decode(v, defined = new Map(), extra = undefined) {
  const define = (x) => {
    if ("id" in v) defined.set(v.id, x);
    return x;
  };
  switch (v.t) {
    case "null": return null;
    case "bool": return v.v;
    case "num": return decodeNumber(v.v);
    case "big": return BigInt(v.v);
    case "str": return v.v;
    case "bytes": return hexToBytes(v.v);
    case "buf": return define(hexToBytes(v.v).buffer);
    case "date": return new Date(v.v);
    case "ref": return defined.get(v.v);
    case "arr": {
      const out = define([]);
      for (const x of v.v) out.push(decode(x, defined, extra));
      return out;
    }
    case "map": {
      const out = define(new Map());
      for (const [k, x] of v.v) out.set(decode(k, defined, extra), decode(x, defined, extra));
      return out;
    }
    case "set": {
      const out = define(new Set());
      for (const x of v.v) out.add(decode(x, defined, extra));
      return out;
    }
    default:
      if (extra !== undefined) return extra(v, defined);
      throw new Error(`harness: unknown tag ${v.t}`);
  }
}

const isContainer = (x) => Array.isArray(x) || x instanceof Map || x instanceof Set || x instanceof ArrayBuffer;

// How many times each container occurs in `x` (its contents are walked once).
function countContainers(x, counts) {
  if (!isContainer(x)) return;
  counts.set(x, (counts.get(x) ?? 0) + 1);
  if (counts.get(x) > 1) return;
  if (Array.isArray(x)) x.forEach((y) => countContainers(y, counts));
  else if (x instanceof Map) x.forEach((y, k) => { countContainers(k, counts); countContainers(y, counts); });
  else if (x instanceof Set) x.forEach((y) => countContainers(y, counts));
}

// A JavaScript value -> tagged JSON. Containers that occur more than once get ids in the order they
// are first met (depth first), and "ref"s after that: the Python side numbers them the same way.
// `other` (tests/differential/rpc_worker.js) encodes what is not one of these types.
export function encode(x, state, other = undefined) {
  if (state === undefined) {
    state = { counts: new Map(), ids: new Map(), other };
    countContainers(x, state.counts);
  }
  if (x === null) return { t: "null" };
  if (x === undefined) return { t: "undefined" };
  switch (typeof x) {
    case "boolean": return { t: "bool", v: x };
    case "number": return { t: "num", v: encodeNumber(x) };
    case "bigint": return { t: "big", v: x.toString() };
    case "string": return { t: "str", v: x };
  }
  if (x instanceof Uint8Array) return { t: "bytes", v: bytesToHex(x) };
  if (x instanceof Date) return { t: "date", v: x.getTime() };
  if (!isContainer(x)) return state.other?.(x, state) ?? { t: "other", v: Object.prototype.toString.call(x) };
  if (state.ids.has(x)) return { t: "ref", v: state.ids.get(x) };
  const out = {};
  if (state.counts.get(x) > 1) {
    out.id = state.ids.size;
    state.ids.set(x, out.id);
  }
  if (x instanceof ArrayBuffer) return Object.assign(out, { t: "buf", v: bytesToHex(new Uint8Array(x)) });
  if (Array.isArray(x)) return Object.assign(out, { t: "arr", v: x.map((y) => encode(y, state)) });
  if (x instanceof Map) {
    return Object.assign(out, { t: "map", v: Array.from(x, ([k, y]) => [encode(k, state), encode(y, state)]) });
  }
  return Object.assign(out, { t: "set", v: Array.from(x, (y) => encode(y, state)) });
}

// An SQL cell or binding: JSON numbers, strings and null as themselves; {"blob": hex}; special numbers as strings in {"num": ...}.
function decodeCell(c) {
  if (c !== null && typeof c === "object") {
    if ("blob" in c) return hexToBytes(c.blob).buffer;
    if ("num" in c) return decodeNumber(c.num);
    if ("bigint" in c) return BigInt(c.bigint);
    if ("rep" in c) return c.rep[0].repeat(c.rep[1]);
  }
  return c;
}

function encodeCell(c) {
  if (c instanceof ArrayBuffer) return { blob: bytesToHex(new Uint8Array(c)) };
  if (typeof c === "number" && typeof encodeNumber(c) === "string") return { num: encodeNumber(c) };
  if (typeof c === "bigint") return { bigint: c.toString() };
  return c;
}

function listOptions(o) {
  const out = {};
  for (const [k, v] of Object.entries(o)) out[k === "start_after" ? "startAfter" : k] = v;
  return out;
}

function entries(map) {
  return Array.from(map, ([k, v]) => [k, encode(v)]);
}

class Boom extends Error {}

async function execute(storage, target, op) {
  switch (op.op) {
    case "get": return encode(await target.get(op.key, op.opts));
    case "get_many": return entries(await target.get(op.keys, op.opts));
    case "put": {
      const done = target.put(op.key, decode(op.value), op.opts);
      if (op.wait !== false) await done; // not awaited: the write still applies, at once
      return null;
    }
    case "put_many": {
      const obj = {};
      for (const [k, v] of op.entries) obj[k] = decode(v);
      await target.put(obj, op.opts);
      return null;
    }
    case "delete": case "delete_many": {
      const done = target.delete(op.op === "delete" ? op.key : op.keys, op.opts);
      if (op.wait === false) return null; // not awaited: the delete still applies, at once
      return await done;
    }
    case "delete_all": await target.deleteAll(); return null;
    case "list": return entries(await target.list({ ...listOptions(op.options), ...op.opts }));
    case "get_alarm": return await target.getAlarm(op.opts);
    case "set_alarm": await target.setAlarm(op.time, op.opts); return null;
    case "delete_alarm": await target.deleteAlarm(op.opts); return null;
    case "sync": await storage.sync(); return null;
    // Promise.all of steps (each catches its own error): the calls are made together, in order.
    case "all": return await Promise.all(op.ops.map((sub) => step(storage, target, sub)));
    case "txn": {
      // op.after: calls on the txn once it has ended (rolled back inside the closure, or kept
      // past its commit), which check their arguments before the transaction.
      const inner = [], after = [];
      let kept;
      const value = await storage.transaction(async (txn) => {
        kept = txn;
        for (const sub of op.ops) inner.push(await step(storage, op.via === "txn" ? txn : storage, sub));
        if (op.end === "rollback") {
          txn.rollback();
          for (const sub of op.after ?? []) after.push(await step(storage, op.afterVia === "storage" ? storage : txn, sub));
        }
        if (op.end === "throw") throw new Boom("boom");
        return "done";
      });
      if (op.end === "commit") for (const sub of op.after ?? []) after.push(await step(storage, op.afterVia === "storage" ? storage : kept, sub));
      return op.after ? { inner, value, after } : { inner, value };
    }
    default: return executeSync(storage, op);
  }
}

function executeSync(storage, op) {
  switch (op.op) {
    case "txn_sync": {
      const inner = [];
      const value = storage.transactionSync(() => {
        for (const sub of op.ops) inner.push(stepSync(storage, sub));
        if (op.end === "throw") throw new Boom("boom");
        return "done";
      });
      return { inner, value };
    }
    case "kv_get": return encode(storage.kv.get(op.key));
    case "kv_put": storage.kv.put(op.key, decode(op.value)); return null;
    case "kv_delete": return storage.kv.delete(op.key);
    case "kv_list": return Array.from(storage.kv.list(listOptions(op.options)), ([k, v]) => [k, encode(v)]);
    case "sql": {
      const cursor = storage.sql.exec(op.query, ...op.bindings.map(decodeCell));
      const rows = cursor.raw().toArray().map((row) => row.map(encodeCell));
      return { columns: cursor.columnNames, rows, rowsRead: cursor.rowsRead, rowsWritten: cursor.rowsWritten };
    }
    case "sql_cursor": return cursorOp(storage, op);
    default: throw new Error(`harness: unknown op ${op.op}`);
  }
}

// A row object as [column, cell] pairs, in the object's own key order.
function rowEntries(row) {
  return Object.entries(row).map(([k, c]) => [k, encodeCell(c)]);
}

// The cursors of the object running (Harness.run sets it to the instance's own list): each one is
// kept as long as its instance lives, as runner.py's harness keeps them. A cursor not read to its
// end holds its statement open until V8 collects it, and a DROP TABLE or DROP INDEX meanwhile fails
// with "database table is locked: SQLITE_LOCKED"; Python frees an unreachable cursor at once (run.py
// --seed 10147, sequence 16: the DROP failed in workerd, 3 runs of 3, and passed in durable).
// Keeping them makes both sides hold the statement, whenever the garbage collector runs.
let keptCursors = [];

// One way of reading a cursor (op.mode), with what the cursor reports on the way.
function cursorOp(storage, op) {
  const cursor = storage.sql.exec(op.query, ...op.bindings.map(decodeCell));
  keptCursors.push(cursor);
  const meta = () => ({ columns: cursor.columnNames, rowsRead: cursor.rowsRead, rowsWritten: cursor.rowsWritten });
  switch (op.mode) {
    case "toArray": return { rows: cursor.toArray().map(rowEntries), ...meta() };
    case "one": return { row: rowEntries(cursor.one()), ...meta() };
    case "unread": return meta();
    case "next": {
      const first = cursor.next();
      const before = meta();
      const rest = cursor.raw().toArray().map((row) => row.map(encodeCell));
      const again = cursor.next();
      return { first: first.done ? null : rowEntries(first.value), before, rest, again: again.done, ...meta() };
    }
    case "twice": {
      const rows = cursor.raw().toArray().map((row) => row.map(encodeCell));
      return { rows, again: cursor.toArray().length, ...meta() };
    }
    default: throw new Error(`harness: unknown mode ${op.mode}`);
  }
}

function failure(e) {
  return { err: { name: e instanceof Boom ? "Boom" : String(e?.name ?? typeof e), message: String(e?.message ?? e) } };
}

async function step(storage, target, op) {
  try {
    return { ok: await execute(storage, target, op) };
  } catch (e) {
    return failure(e);
  }
}

function stepSync(storage, op) {
  try {
    return { ok: executeSync(storage, op) };
  } catch (e) {
    return failure(e);
  }
}

// -- interleavings (tests/differential/interleave.py): K concurrent calls into one object --------
//
// Each call runs a script of steps; every step appends [call, step path, what it saw] to the
// object's in-memory log, so the log is the interleaving the gates allowed.

const timer0 = () => new Promise((resolve) => setTimeout(resolve, 0));

function sqlTable(storage) {
  storage.sql.exec("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v)");
}

async function scriptSteps(obj, call, prefix, steps, target, pending) {
  for (let i = 0; i < steps.length; i++) await scriptStep(obj, call, `${prefix}${i}`, steps[i], target, pending);
}

async function scriptStep(obj, call, at, s, target, pending) {
  const storage = obj.ctx.storage;
  const log = (seen) => obj.ilog.push([call, at, seen]);
  switch (s.s) {
    case "get": case "put": case "delete": case "list": {
      const p = s.s === "get" ? target.get(s.key)
        : s.s === "put" ? target.put(s.key, s.value)
        : s.s === "delete" ? target.delete(s.key)
        : target.list(s.options ?? {});
      const seen = (v) => (v instanceof Map ? Array.from(v) : v ?? null);
      if (s.wait) log(seen(await p));
      else {
        log("issued");
        pending.push([at, p.then(seen)]);
      }
      return;
    }
    case "get_many": case "put_many": case "delete_many": {
      const p = s.s === "get_many" ? target.get(s.keys)
        : s.s === "put_many" ? target.put(Object.fromEntries(s.entries))
        : target.delete(s.keys);
      const seen = (v) => (v instanceof Map ? Array.from(v) : v ?? null);
      if (s.wait) log(seen(await p));
      else {
        log("issued");
        pending.push([at, p.then(seen)]);
      }
      return;
    }
    case "incr": { // the counter every example writes
      const value = (await target.get("n")) ?? 0;
      await target.put("n", value + 1);
      log(value);
      return;
    }
    case "resolved": await Promise.resolve(); log("resumed"); return;
    case "timer": await timer0(); log("resumed"); return;
    case "other": {
      const ns = obj.env.SQLITE;
      log(await ns.get(ns.idFromName(obj.other)).ping(call));
      return;
    }
    case "other_err": {
      const ns = obj.env.SQLITE;
      try {
        await ns.get(ns.idFromName(obj.other)).fail(call);
      } catch (e) {
        log(`caught ${e?.message}`);
      }
      return;
    }
    case "bcw":
      log(await obj.ctx.blockConcurrencyWhile(async () => {
        await scriptSteps(obj, call, `${at}.`, s.steps, storage, pending);
        return "bcw-done";
      }));
      return;
    case "txn":
      try {
        log(await storage.transaction(async (txn) => {
          await scriptSteps(obj, call, `${at}.`, s.steps, txn, pending);
          if (s.end === "rollback") txn.rollback();
          if (s.end === "throw") throw new Error("txn-boom");
          return "txn-done";
        }));
      } catch (e) {
        log(`caught ${e?.message}`);
      }
      return;
    case "kv_get": log(storage.kv.get(s.key) ?? null); return;
    case "kv_put": storage.kv.put(s.key, s.value); log("kv-put"); return;
    case "sql_put":
      sqlTable(storage);
      storage.sql.exec("INSERT OR REPLACE INTO t VALUES (?, ?)", s.key, s.value);
      log("sql-put");
      return;
    case "sql_get":
      sqlTable(storage);
      log(storage.sql.exec("SELECT k, v FROM t ORDER BY k").raw().toArray());
      return;
    case "sync": await storage.sync(); log("synced"); return;
    case "txn_sync":
      try {
        log(storage.transactionSync(() => {
          storage.kv.put(s.key, s.value);
          if (s.end === "throw") throw new Error("sync-boom");
          return storage.kv.get(s.key);
        }));
      } catch (e) {
        log(`caught ${e?.message}`);
      }
      return;
    case "throw": throw new Error(`boom ${call} ${at}`);
    default: throw new Error(`harness: unknown step ${s.s}`);
  }
}

async function interleave(ns, object, test) {
  const stub = ns.get(ns.idFromName(object));
  const arrivals = [];
  const settle = (call) => (r) => {
    arrivals.push(call);
    return r;
  };
  const results = await Promise.all(test.calls.map((steps, call) =>
    stub.script(JSON.stringify({ call, steps, other: `${object}/other` })).then(
      settle(call),
      (e) => settle(call)({ err: String(e?.message ?? e) }),
    )));
  const state = JSON.parse(await stub.dump());
  return { results, arrivals, ...state };
}

class Harness extends DurableObject {
  async script(json) {
    const { call, steps, other } = JSON.parse(json);
    this.ilog ??= [];
    this.other = other;
    const pending = [];
    await scriptSteps(this, call, "", steps, this.ctx.storage, pending);
    for (const [at, p] of pending) this.ilog.push([call, `${at}~`, await p]);
    return { ok: "done" };
  }
  async ping(call) {
    return `pong ${call}`;
  }
  async fail(call) {
    throw new Error(`failed ${call}`);
  }
  async dump() {
    const storage = this.ctx.storage;
    let sql = null;
    try {
      sql = storage.sql.exec("SELECT k, v FROM t ORDER BY k").raw().toArray();
    } catch {}
    return JSON.stringify({ log: this.ilog ?? [], kv: Array.from(await storage.list()), sql });
  }

  async run(json) {
    const ops = JSON.parse(json);
    if (ops.length === 1 && ops[0].op === "restart") this.ctx.abort("restart");
    this.calls = (this.calls ?? 0) + 1;
    keptCursors = this.cursors ??= [];
    const results = [];
    for (const op of ops) {
      // "calls": how many calls this instance has served, which shows when a restart happened.
      results.push(op.op === "calls" ? { ok: this.calls } : await step(this.ctx.storage, this.ctx.storage, op));
    }
    return JSON.stringify(results);
  }
  async alarm() {}
}

export class Sqlite extends Harness {}
export class Kv extends Harness {}

export default {
  async fetch(request, env) {
    const { backend, object, ops, interleave: test, rpc } = await request.json();
    if (rpc !== undefined) return new Response(JSON.stringify(await runRpc(env, object, rpc)));
    const ns = backend === "kv" ? env.KV : env.SQLITE;
    if (test !== undefined) {
      try {
        return new Response(JSON.stringify(await interleave(ns, object, test)));
      } catch (e) {
        return new Response(JSON.stringify({ crashed: failure(e) }));
      }
    }
    try {
      return new Response(await ns.get(ns.idFromName(object)).run(JSON.stringify(ops)));
    } catch (e) {
      // A restart call ends with the reset that ctx.abort() causes; the next call gets a new instance.
      if (ops.length === 1 && ops[0].op === "restart") return new Response(JSON.stringify([{ ok: null }]));
      return new Response(JSON.stringify(failure(e)), { status: 500 });
    }
  },
};
