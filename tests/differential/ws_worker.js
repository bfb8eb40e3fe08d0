// The workerd side of the random WebSocket differential test (ws_ops.py draws the sequences,
// ws_runner.py runs them in durable). POST a sequence {"object": NAME, "steps": [...]}: the Worker
// plays the clients (stub.fetch upgrades, accepted client ends) and asks the object, by RPC, to run
// server ops; it answers {"results": [...], "clients": {...}, "server": {...}}. Every socket's first
// tag is its id ("c0", "c1", ...): handlers and ops find sockets by it.
import { DurableObject } from "cloudflare:workers";

const LOGS = new Map(); // object id -> {socket id -> [server events]}: survives a new instance
const ON_CLOSE = new Map(); // object id -> the ops webSocketClose runs (the "on_close" op)
const STANDARD = new Map(); // object id -> {socket id -> a socket accepted with accept()}
const STANDARD_IDS = new WeakMap(); // such a socket -> its id

// The ops that await ctx.storage: a list holding one runs as an async list (opsAsync).
const STORE_OPS = new Set(["st_put", "st_get", "st_delete", "st_list"]);
const awaits = (ops) => ops.some((op) => STORE_OPS.has(op.op));

function failure(e) {
  const name = String(e?.name);
  return { err: { name: ["TypeError", "RangeError", "DataCloneError"].includes(name) ? name : "Error", message: String(e?.message ?? e) } };
}

function utf8(s) {
  return new TextEncoder().encode(s).length;
}

function checksum(bytes) {
  let h = 0;
  for (const b of bytes) h = (h * 31 + b) % 1000003;
  return h;
}

// A message as the test compares it: short ones whole, long ones by size, start and checksum.
export function describe(message) {
  if (typeof message === "string") {
    if (message.length <= 40) return { t: message };
    return { t_len: utf8(message), head: Array.from(message).slice(0, 8).join(""), sum: checksum(new TextEncoder().encode(message)) };
  }
  const bytes = new Uint8Array(message);
  const hex = Array.from(bytes.slice(0, 20), (b) => b.toString(16).padStart(2, "0")).join("");
  if (bytes.length <= 20) return { b: hex };
  return { b_len: bytes.length, head: hex, sum: checksum(bytes) };
}

// The data a step sends: {"t": text} | {"b": hex} | {"big_t": n, "ch": c} | {"big_b": n}.
export function message(spec) {
  if ("t" in spec) return spec.t;
  if ("big_t" in spec) return spec.ch.repeat(spec.big_t);
  if ("big_b" in spec) return Uint8Array.from({ length: spec.big_b }, (_, i) => i % 251).buffer;
  const hex = spec.b;
  return Uint8Array.from({ length: hex.length / 2 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16)).buffer;
}

// An attachment value: JSON, or {"$": "undefined" | "big" | "map" | "fn" | "date"}.
// Numbers are made small integers again where they fit (x | 0): V8 keeps a number read out of an
// array of doubles (JSON.parse's [1, 0.5]) as a double, and a Map or Set built from it serializes
// that integer as a double, 7 bytes more than the same Map written as a literal with set(). V8's
// Smi range is -2 ** 30 to 2 ** 30 - 1 (31 bits: pointers are compressed); -2 ** 30 left out gave
// an attachment 3 bytes larger than durable's (run_ws.py --seed 9632, sequence 721).
function value(spec) {
  if (typeof spec === "number") return Number.isInteger(spec) && spec >= -(2 ** 30) && spec < 2 ** 30 ? spec | 0 : spec;
  if (spec === null || typeof spec !== "object") return spec;
  if (Array.isArray(spec)) return spec.map(value);
  if ("$" in spec) {
    switch (spec.$) {
      case "undefined": return undefined;
      case "big": return spec.ch.repeat(spec.n);
      case "map": {
        const map = new Map();
        for (const [k, v] of spec.v) map.set(value(k), value(v));
        return map;
      }
      case "fn": return () => 1;
      case "date": return new Date(spec.v);
      case "set": {
        const set = new Set();
        for (const v of spec.v) set.add(value(v));
        return set;
      }
      case "bigint": return BigInt(spec.v);
      case "u8": return Uint8Array.from({ length: spec.hex.length / 2 }, (_, i) => parseInt(spec.hex.slice(2 * i, 2 * i + 2), 16));
    }
  }
  return Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, value(v)]));
}

function shown(v) {
  if (v === undefined) return { $: "undefined" };
  if (typeof v === "bigint") return { $: "bigint", v: String(v) };
  if (typeof v === "string" && v.length > 40) return { $: "str", n: v.length, head: Array.from(v).slice(0, 8).join("") };
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(shown);
  if (v instanceof Map) return { $: "map", v: Array.from(v, ([k, x]) => [shown(k), shown(x)]) };
  if (v instanceof Set) return { $: "set", v: Array.from(v, shown).map((x) => JSON.stringify(x)).sort() };
  if (v instanceof Uint8Array) return { $: "u8", hex: Array.from(v, (b) => b.toString(16).padStart(2, "0")).join("") };
  if (v instanceof Date) return { $: "date", v: v.getTime() };
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shown(x)]));
}

export class WsFuzz extends DurableObject {
  log(ws, event) {
    const name = this.ctx.id.toString();
    const id = STANDARD_IDS.get(ws) ?? this.ctx.getTags(ws)[0];
    const logs = LOGS.get(name) ?? {};
    LOGS.set(name, logs);
    (logs[id] ??= []).push(event);
  }

  async fetch(request) {
    const url = new URL(request.url);
    const tags = JSON.parse(url.searchParams.get("tags"));
    const [client, server] = Object.values(new WebSocketPair());
    if (url.searchParams.get("standard")) { // accept(), events to listeners; the id is tags[0]
      const name = this.ctx.id.toString();
      if (!STANDARD.has(name)) STANDARD.set(name, {});
      STANDARD.get(name)[tags[0]] = server;
      STANDARD_IDS.set(server, tags[0]);
      server.accept();
      server.binaryType = "arraybuffer";
      server.addEventListener("message", (e) => this.onMessage(server, e.data));
      server.addEventListener("close", (e) => this.onClose(server, e.code, e.reason, e.wasClean));
      server.addEventListener("error", (e) => this.log(server, ["error", String(e.error?.message ?? e.message), e.message]));
      return new Response(null, { status: 101, webSocket: client });
    }
    try {
      this.ctx.acceptWebSocket(server, tags);
    } catch (e) {
      return new Response(JSON.stringify(failure(e)), { status: 400 });
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  async run(ops) {
    return awaits(ops) ? await this.opsAsync(ops, null) : this.ops(ops, null);
  }

  async logs() {
    return LOGS.get(this.ctx.id.toString()) ?? {};
  }

  ops(ops, current) {
    const out = [];
    for (const op of ops) {
      if (op.op === "throw") throw new Error(op.message);
      if (op.op === "abort") { // a reset: every socket is disconnected; the code stops here
        STANDARD.delete(this.ctx.id.toString());
        this.ctx.abort(op.reason);
      }
      try {
        out.push({ ok: this.op(op, current) });
      } catch (e) {
        out.push(failure(e));
      }
    }
    return out;
  }

  // ops() with each storage op awaited (a handler that saves what it got before answering).
  async opsAsync(ops, current) {
    const out = [];
    for (const op of ops) {
      if (op.op === "throw") throw new Error(op.message);
      if (op.op === "abort") {
        STANDARD.delete(this.ctx.id.toString());
        this.ctx.abort(op.reason);
      }
      try {
        out.push({ ok: STORE_OPS.has(op.op) ? await this.store(op, current) : this.op(op, current) });
      } catch (e) {
        out.push(failure(e));
      }
    }
    return out;
  }

  async store(op, current) {
    const storage = this.ctx.storage;
    if (current) { // "self/x": the handler's socket's own key
      const own = this.ctx.getTags(current)[0];
      op = Object.fromEntries(Object.entries(op).map(([k, v]) => [k, (k === "key" || k === "prefix") && v.startsWith("self/") ? own + v.slice(4) : v]));
    }
    switch (op.op) {
      case "st_put": await storage.put(op.key, op.value); return "put";
      case "st_get": return (await storage.get(op.key)) ?? null;
      case "st_delete": return await storage.delete(op.key);
      case "st_list": return Array.from(await storage.list({ prefix: op.prefix }));
    }
  }

  socket(op, current) {
    if (op.ws === "self") return current;
    const standard = STANDARD.get(this.ctx.id.toString())?.[op.ws];
    if (standard) return standard;
    const found = this.ctx.getWebSockets(op.ws);
    if (found.length === 0) throw new Error(`no socket ${op.ws}`);
    return found[0];
  }

  op(op, current) {
    const ctx = this.ctx;
    switch (op.op) {
      case "send": this.socket(op, current).send(message(op.data)); return "sent";
      case "close": {
        const ws = this.socket(op, current);
        if ("reason" in op) ws.close(op.code, op.reason);
        else if ("code" in op) ws.close(op.code);
        else ws.close();
        return ws.readyState;
      }
      case "state": return this.socket(op, current).readyState;
      case "props": {
        const ws = this.socket(op, current);
        return [ws.url ?? null, ws.protocol ?? null, ws.extensions ?? null];
      }
      case "attach": this.socket(op, current).serializeAttachment(value(op.value)); return "attached";
      case "detach": return shown(this.socket(op, current).deserializeAttachment());
      case "list": return ctx.getWebSockets(...(op.tag === undefined ? [] : [op.tag])).map((ws) => [ctx.getTags(ws)[0], ws.readyState]);
      case "bcast": // a broadcast, as a chat room writes it: each socket's outcome, in list order
        return ctx.getWebSockets(...(op.tag === undefined ? [] : [op.tag])).map((ws) => {
          try {
            ws.send(message(op.data));
            return [ctx.getTags(ws)[0], "sent"];
          } catch (e) {
            return [ctx.getTags(ws)[0], failure(e)];
          }
        });
      case "tags": return ctx.getTags(this.socket(op, current));
      case "auto":
        if (op.pair === null) ctx.setWebSocketAutoResponse();
        else ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(op.pair[0], op.pair[1]));
        return "set";
      case "get_auto": {
        const pair = ctx.getWebSocketAutoResponse();
        return pair === null ? null : [pair.request, pair.response];
      }
      case "auto_ts": {
        const ts = ctx.getWebSocketAutoResponseTimestamp(this.socket(op, current));
        return ts === null ? null : ts instanceof Date ? "date" : typeof ts;
      }
      case "timeout": ctx.setHibernatableWebSocketEventTimeout(...(op.ms === undefined ? [] : [op.ms])); return "set";
      case "get_timeout": return ctx.getHibernatableWebSocketEventTimeout();
      case "on_close": ON_CLOSE.set(ctx.id.toString(), op.ops); return "set";
      case "kv_put": ctx.storage.kv.put(op.key, op.value); return "put";
      case "kv_get": return ctx.storage.kv.get(op.key) ?? null;
      default: throw new Error(`unknown op ${op.op}`);
    }
  }

  async webSocketMessage(ws, msg) {
    await this.onMessage(ws, msg);
  }

  // (a command with storage ops returns the promise of its async run; a sync one returns nothing)
  onMessage(ws, msg) {
    this.log(ws, ["message", describe(msg), ws.readyState]);
    if (typeof msg === "string" && msg.startsWith("cmd:")) {
      const ops = JSON.parse(msg.slice(4));
      if (awaits(ops)) return this.opsAsync(ops, ws).then((out) => this.log(ws, ["ran", out]));
      this.log(ws, ["ran", this.ops(ops, ws)]);
    }
  }

  async webSocketClose(ws, code, reason, wasClean) {
    await this.onClose(ws, code, reason, wasClean);
  }

  // (close ops with storage ops, on a hibernatable socket, return the promise of their async run;
  // a socket accepted with accept() runs them without their storage ops)
  onClose(ws, code, reason, wasClean) {
    this.log(ws, ["close", code, reason, wasClean, ws.readyState]);
    const onClose = ON_CLOSE.get(this.ctx.id.toString());
    if (!onClose?.length) return;
    if (STANDARD_IDS.has(ws)) this.log(ws, ["ran_close", onClose, this.ops(onClose.filter((op) => !STORE_OPS.has(op.op)), ws)]);
    else if (awaits(onClose)) return this.opsAsync(onClose, ws).then((out) => this.log(ws, ["ran_close", onClose, out]));
    else this.log(ws, ["ran_close", onClose, this.ops(onClose, ws)]);
  }

  async webSocketError(ws, error) {
    this.log(ws, ["error", String(error?.message ?? error)]);
  }
}

async function settle() {
  for (let i = 0; i < 4; i++) await new Promise((r) => setTimeout(r, 3));
}

export default {
  async fetch(request, env) {
    const { object, steps } = await request.json();
    // A new stub for each call: one whose call saw a reset (the "abort" op) is broken for good.
    const fresh = () => env.WS.get(env.WS.idFromName(object));
    const clients = {};
    const seen = {};
    const results = [];
    for (const step of steps) {
      let result;
      try {
        result = await runAsyncStep(step);
      } catch (e) {
        result = failure(e);
      }
      results.push(result);
      await settle();
    }
    await new Promise((r) => setTimeout(r, 60)); // a listener that threw drops the connection ~30 ms later
    const server = await fresh().logs();
    return Response.json({ results, clients: seen, server });

    function client(id) {
      if (!(id in clients)) throw new Error(`no client ${id}`);
      return clients[id];
    }

    // A step the driver takes on a client end, synchronously.
    function runStep(step) {
      switch (step.step) {
        case "csend": client(step.c).send(message(step.data)); return "sent";
        case "cclose": {
          const ws = client(step.c);
          if ("reason" in step) ws.close(step.code, step.reason);
          else if ("code" in step) ws.close(step.code);
          else ws.close();
          seen[step.c].push(["closed by the client"]);
          return ws.readyState;
        }
        case "cstate": return client(step.c).readyState;
        case "cprops": {
          const ws = client(step.c);
          return [ws.url ?? null, ws.protocol ?? null, ws.extensions ?? null];
        }
        case "burst": // client steps with no wait between them
          return step.steps.map((s) => {
            try {
              return runStep(s);
            } catch (e) {
              return failure(e);
            }
          });
        case "hibernate": return "ok"; // miniflare cannot hibernate an object on demand
        default: throw new Error(`unknown step ${step.step}`);
      }
    }

    async function runAsyncStep(step) {
      switch (step.step) {
        case "open": {
          const url = `http://o/?object=${encodeURIComponent(object)}&tags=${encodeURIComponent(JSON.stringify(step.tags))}${step.standard ? "&standard=1" : ""}`;
          const response = await fresh().fetch(url, { headers: { Upgrade: "websocket" } });
          const ws = response.webSocket;
          if (!ws) return { status: response.status, refused: await response.json() };
          ws.binaryType = "arraybuffer"; // (the default from 2026 is "blob"; durable gives bytes)
          ws.accept();
          const log = (seen[step.id] = []);
          clients[step.id] = ws;
          ws.addEventListener("message", (e) => log.push(["message", describe(e.data)]));
          ws.addEventListener("close", (e) => log.push(["close", e.code, e.reason, e.wasClean]));
          ws.addEventListener("error", (e) => log.push(["error", String(e.error?.message ?? e.message)]));
          return { status: response.status };
        }
        case "srv": return await fresh().run(step.ops);
        default: return runStep(step);
      }
    }
  },
};
