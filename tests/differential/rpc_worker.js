// The workerd side of the random RPC test (tests/differential/rpc_ops.py, run_rpc.py).
//
// `Rpc` is the Durable Object whose methods the caller uses; `runRpc` is the caller (the Worker):
// it runs one interaction, a list of steps against a fresh object, and answers one observation per
// step, {"ok": tagged value} or {"err": {...}} (see rpc_ops.py for both forms). Values are in the
// tagged JSON of codec.py (worker.js's encode/decode), plus "error" (an Error, built from or read
// into {cls, message, cause?, code?}) and "stub" (a function or RpcTarget that crossed as a stub).
import { DurableObject, RpcTarget } from "cloudflare:workers";
import { decode, encode } from "./worker.js";

class Custom extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "Custom";
  }
}

class Plain {}

const CLASSES = { Error, TypeError, RangeError, Custom };

// An Error from its spec (a tagged "error" value).
function buildError(spec, defined) {
  const options = spec.cause === undefined ? undefined : { cause: decodeValue(spec.cause, defined) };
  const error = new CLASSES[spec.cls](spec.message, options);
  if (spec.code !== undefined) error.code = decodeValue(spec.code, defined);
  return error;
}

let self = null; // the caller's stub of the object, which {"t": "self"} stands for

function decodeValue(v, defined = new Map()) {
  return decode(v, defined, (x, d) => {
    if (x.t === "error") return buildError(x, d);
    if (x.t === "plain") return new Plain();
    if (x.t === "self") return self;
    throw new Error(`rpc harness: unknown tag ${x.t}`);
  });
}

function errorInfo(e, state) {
  const out = { t: "error", name: String(e.name), message: String(e.message), remote: e.remote === true };
  if (e.durableObjectReset === true) out.reset = true;
  if ("cause" in e) out.cause = encode(e.cause, state);
  if (Object.hasOwn(e, "code") && !(e instanceof DOMException)) out.code = encode(e.code, state);
  return out;
}

// A result value in tagged form; stubs in it are kept in `held`, in the order they are met.
function encodeValue(x, held) {
  return encode(x, undefined, (y, state) => {
    if (y instanceof Error) return errorInfo(y, state);
    if (typeof y === "function") {
      held.push(y);
      return { t: "stub" };
    }
    if (Object.getPrototypeOf(y) === Object.prototype) {
      // a plain object (the "config" a pipelined read reaches into): a Python dict, so a map
      return { t: "map", v: Object.entries(y).map(([k, v]) => [encode(k, state), encode(v, state)]) };
    }
    return undefined;
  });
}

class Counter extends RpcTarget {
  constructor() {
    super();
    this.items = [];
  }
  add(v) {
    this.items.push(v);
    return this.items;
  }
  get size() {
    return this.items.length;
  }
  get child() {
    return new Counter();
  }
  fail(error) {
    throw error;
  }
}

const MAKERS = {
  function: () => () => "called",
  nested_function: () => ["x", (v) => [v, v]],
  instance: () => new Plain(),
  nested_instance: () => new Map([["k", new Plain()]]),
  target: () => new Counter(),
  nested_target: () => [new Counter(), "y"],
  error: () => new RangeError("made", { cause: new Error("why") }),
  none: () => null,
  config: () => ({ name: "n", fn: (v) => [v, v], target: new Counter(), nested: { deep: () => "deep" } }),
};

export class Rpc extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.field = 1;
    this.kept = null;
  }
  get answer() {
    return 42;
  }
  echo(...args) {
    return args;
  }
  pair(v) {
    return [v, v];
  }
  make(kind) {
    return MAKERS[kind]();
  }
  fail(spec) {
    throw buildError(spec, new Map());
  }
  async useCallback(fn, v) {
    return await fn(v);
  }
  keep(fn) {
    this.kept = fn;
    return null;
  }
  // The counter the examples write: the value before, then one more stored.
  async bump(key) {
    const value = (await this.ctx.storage.get(key)) ?? 0;
    await this.ctx.storage.put(key, value + 1);
    return value;
  }
  async callKept(v) {
    return await this.kept(v);
  }
  abort(reason) {
    this.ctx.abort(reason);
  }
  async bcw(spec) {
    await this.ctx.blockConcurrencyWhile(async () => {
      throw buildError(spec, new Map());
    });
  }
  async useStub(s, v) {
    return await s.echo(v);
  }
  async useHeld(h, as, v) {
    return as === "fn" ? await h(v) : await h.add(v);
  }
  // A call this object makes to another one (by name) and whose result or error it passes on.
  async relay(peer, via, ...args) {
    const other = this.env.RPC.getByName(peer);
    switch (via) {
      case "echo": return await other.echo(...args);
      case "pair": return await other.pair(...args);
      case "fail": return await other.fail(args[0]);
      case "make": return await other.make(args[0]);
      case "abort": return await other.abort(args[0]);
      case "caught": {
        try {
          return await other.fail(args[0]);
        } catch (e) {
          return e;
        }
      }
    }
    throw new Error(`rpc harness: unknown relay ${via}`);
  }
}

const CALLBACKS = {
  echo: (v) => v,
  pair: (v) => [v, v],
  throw: (v) => {
    throw new RangeError("from the callback");
  },
  plain: (v) => new Plain(),
  make_fn: (v) => () => "from a callback's result",
};

function relayArgs(step, args) {
  if (step.via === "fail" || step.via === "caught") return [step.error];
  if (step.via === "make") return [step.kind];
  if (step.via === "abort") return [step.reason];
  return args;
}

async function act(stub, step, held, name) {
  const args = (step.args ?? []).map((a) => decodeValue(a));
  switch (step.op) {
    case "echo": return await stub.echo(...args);
    case "pair": return await stub.pair(...args);
    case "make": return await stub.make(step.kind);
    case "fail": return await stub.fail(step.error);
    case "missing": return await stub[step.name](...args);
    case "prop": return await stub[step.name];
    case "callback": return await stub.useCallback(CALLBACKS[step.fn], ...args);
    case "keep": return await stub.keep(CALLBACKS[step.fn]);
    case "call_kept": return await stub.callKept(...args);
    case "caller_target": return await stub.useHeld(new Counter(), "target", ...args);
    case "abort": return await stub.abort(step.reason);
    case "bcw": return await stub.bcw(step.error);
    case "relay": return await stub.relay(`${name}/peer`, step.via, ...relayArgs(step, args));
    case "pipe": return await pipe(stub, step, held, args);
    case "self_pass": {
      const [back] = await stub.echo(stub);
      return await back.echo(...args);
    }
    case "self_call": return await stub.useStub(stub, ...args);
  }
  if (step.index >= held.length) return "no such stub";
  let h = held[step.index];
  for (const name of step.via ?? []) h = h[name];
  switch (step.op) {
    case "pass_back": return await stub.useHeld(h, step.as, ...args);
    case "held_call": return step.name === undefined ? await h(...args) : await h[step.name](...args);
    case "held_prop": return await h[step.name];
  }
  throw new Error(`rpc harness: unknown op ${step.op}`);
}

async function pipe(stub, step, held, args) {
  let p;
  if (step.src === "fail") p = stub.fail(step.error);
  else if (step.src === "bcw") p = stub.bcw(step.error);
  else if (step.src === "abort") p = stub.abort(step.reason);
  else if (step.src === "echo") p = stub.echo(...args);
  else if (step.src === "held") {
    if (step.index >= held.length) return "no such stub";
    const h = held[step.index];
    p = step.as === "fn" ? h(...args) : h.add(...args);
  } else p = stub.make(step.src);
  for (const segment of step.path) {
    p = segment.args === undefined ? p[segment.name] : p[segment.name](...segment.args.map((a) => decodeValue(a)));
  }
  return await p;
}

// Calls made at once on the stub, each one's outcome in the order made.
async function together(stub, calls, name) {
  const settled = await Promise.allSettled(calls.map((call) => (call.op === "bump" ? stub.bump(call.key) : act(stub, call, [], name))));
  return settled.map((s) => s.status === "fulfilled"
    ? { ok: encodeValue(s.value, []) }
    : { err: s.reason instanceof Error ? errorInfo(s.reason, undefined) : { t: "thrown", v: encodeValue(s.reason, []) } });
}

export async function runRpc(env, name, steps) {
  const stub = env.RPC.get(env.RPC.idFromName(name));
  self = stub;
  const held = [];
  const out = [];
  for (const step of steps) {
    if (step.op === "together") {
      out.push({ together: await together(stub, step.calls, name) });
      continue;
    }
    try {
      const result = await act(stub, step, held, name);
      out.push({ ok: encodeValue(result, step.op === "pipe" ? [] : held) });
    } catch (e) {
      const info = e instanceof Error ? errorInfo(e, undefined) : { t: "thrown", v: encodeValue(e, []) };
      out.push({ err: info });
    }
  }
  return out;
}
