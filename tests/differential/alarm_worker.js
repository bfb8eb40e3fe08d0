// The workerd side of the random alarm differential test (alarm_ops.py draws the sequences and runs
// them in durable). POST a sequence {"object": NAME, "steps": [...], "handlers": [[ops], ...]}: the
// Worker sends the steps to one object ({"rpc": [ops]} awaited, {"rpcs": [[ops], [ops]]} sent
// together, {"wait": ms}), waits until no alarm
// is due and no handler runs, and answers {"log": [...], "alarm": LABEL, "storage": [[k, v], ...]}.
// Handler invocation n runs handlers[n] (nothing past the end). Times are logged as labels: the
// label of the setAlarm (to a future time) that produced that time ("s3"), else "none" / "past" /
// "future".
import { DurableObject } from "cloudflare:workers";

const STATE = new Map(); // object id -> {log, labels, handlers, calls, running, thrown}: survives a reset

function failure(e) {
  return { err: String(e?.name) === "TypeError" ? "TypeError" : "Error" };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class AlarmFuzz extends DurableObject {
  state() {
    return STATE.get(this.ctx.id.toString());
  }

  label(time) {
    if (time === null || time === undefined) return "none";
    const s = this.state();
    if (s.labels.has(time)) return s.labels.get(time);
    // Unlabelled times come from clamped sets (now, or 1 ms after the running alarm's time):
    // "past" within a few ms of now, which one runtime's clock has reached and the other's not.
    return time <= Date.now() + 5 ? "past" : "future";
  }

  async op(target, op, who) {
    const s = this.state();
    const storage = this.ctx.storage;
    switch (op.op) {
      case "ensure":
      case "set": {
        if (op.op === "ensure" && (await target.getAlarm()) !== null) return "kept";
        let time = Date.now() + op.d;
        // Normalised: workerd leaves an alarm set, while its handler runs, to that handler's own
        // scheduledTime stored but never runs it (measured; docs/differences.md), which a time
        // <= now clamped to now hits when the handler started in the alarm's millisecond. Both
        // sides set the time 1 ms after it instead.
        if (s.current !== null && Math.max(time, Date.now()) === s.current) time = s.current + 1;
        // Labels only for future times: a time <= now is clamped to now, which can be the time of
        // an earlier label, in one runtime's millisecond and not the other's.
        // A future time another set already gave moves 1 ms on: two sets a few ms apart (a slow
        // commit between) can give one time in one runtime and not the other, which made the
        // later set's label name a time the earlier set stored (run_alarm.py 40 --seed 9930,
        // sequence 27: a rolled-back set's label on the kept alarm, in workerd only).
        if (op.d > 0) {
          while (s.labels.has(time)) time++;
          s.labels.set(time, op.id);
        } else {
          // The time it is clamped to is "past" from now on, even if an earlier set labelled it:
          // a handler's set to now landed in the millisecond of a rolled-back set's time in
          // durable's run only, which then named the alarm after it (run_alarm.py 8 --seed
          // 10329, sequence 5: scheduled "s2" in durable, "past" in workerd).
          s.labels.set(Math.max(time, Date.now()), "past");
        }
        await target.setAlarm(op.date ? new Date(time) : time);
        return op.op === "ensure" ? "set" : null;
      }
      case "get":
        return this.label(await target.getAlarm());
      case "del":
        await target.deleteAlarm();
        return null;
      case "put":
        await target.put(op.k, op.v);
        return null;
      case "read":
        return (await target.get(op.k)) ?? null;
      case "delall":
        await storage.deleteAll();
        return null;
      case "sleep":
        await sleep(op.ms);
        return null;
      case "txn":
        return await storage.transaction(async (txn) => {
          const inner = [];
          for (const sub of op.ops) inner.push(await this.step(txn, sub, who));
          if (op.end === "rollback") txn.rollback();
          if (op.end === "throw") throw new Error("boom");
          return inner;
        });
      case "bcw":
        return await this.ctx.blockConcurrencyWhile(async () => {
          const inner = [];
          for (const sub of op.ops) inner.push(await this.step(storage, sub, who));
          return inner;
        });
      default:
        throw new Error(`unknown op ${op.op}`);
    }
  }

  async step(target, op, who) {
    let result;
    try {
      result = { ok: await this.op(target, op, who) };
    } catch (e) {
      result = failure(e);
    }
    this.state().log.push([who, op.op, result]);
    return result;
  }

  async setup(handlers) {
    STATE.set(this.ctx.id.toString(), { log: [], labels: new Map(), handlers, calls: 0, running: 0, thrown: false, current: null });
    return null;
  }

  async run(number, ops) {
    const who = `rpc${number}`;
    const s = this.state();
    s.log.push([who, "start", null]);
    const results = [];
    for (const op of ops) results.push(await this.step(this.ctx.storage, op, who));
    s.log.push([who, "end", null]);
    return results;
  }

  async peek() {
    const s = this.state();
    const time = await this.ctx.storage.getAlarm();
    return { running: s.running, far: time === null || time - Date.now() > 60_000 };
  }

  async final() {
    const s = this.state();
    const alarm = this.label(await this.ctx.storage.getAlarm());
    const storage = [...(await this.ctx.storage.list())];
    return { log: s.log, alarm, storage };
  }

  async alarm(info) {
    const s = this.state();
    const number = s.calls++;
    const who = `alarm${number}`;
    s.running++;
    s.current = info?.scheduledTime ?? null;
    s.log.push([who, "start", { retryCount: info?.retryCount, isRetry: info?.isRetry, scheduled: this.label(info?.scheduledTime) }]);
    let ended = false;
    try {
      const program = s.handlers[number] ?? [];
      for (const op of program) {
        if (op.op === "throw") {
          if (!s.thrown) {
            s.thrown = true;
            s.log.push([who, "throw", null]);
            throw new Error("alarm failed");
          }
          continue;
        }
        if (op.op === "abort") { // a reset: the attempt fails (retried 2 s later), unsaved writes are lost
          if (!s.thrown) {
            s.thrown = true;
            s.log.push([who, "abort", null]);
            s.running--; // (abort() ends the code here: no finally runs)
            s.current = null;
            ended = true;
            this.ctx.abort("alarm abort");
          }
          continue;
        }
        await this.step(this.ctx.storage, op, who);
      }
      s.log.push([who, "end", null]);
    } finally {
      if (!ended) {
        s.running--;
        s.current = null;
      }
    }
  }
}

// A call that failed: one in progress when the object was reset (the "abort" op).
const failed = (e) => ({ failed: String(e?.message ?? e) });

export default {
  async fetch(request, env) {
    const sequence = await request.json();
    const name = sequence.object;
    // A new stub for each call: one whose object was reset (the "abort" op) is broken for good.
    const fresh = () => env.ALARM.get(env.ALARM.idFromName(name));
    await fresh().setup(sequence.handlers);
    const returned = [];
    let number = 0;
    for (const step of sequence.steps) {
      if ("wait" in step) await sleep(step.wait);
      else if ("rpcs" in step) {
        const calls = step.rpcs.map((ops) => fresh().run(number++, ops).catch(failed));
        returned.push(...(await Promise.all(calls)));
      }
      else returned.push(await fresh().run(number++, step.rpc).catch(failed));
    }
    const deadline = Date.now() + 8000;
    let quiet = 0;
    while (Date.now() < deadline && quiet < 3) {
      await sleep(50);
      // A peek in flight when a handler resets the object (the "abort" op) fails: not quiet yet
      // (run_alarm.py 99 --seed 9779 --resets stopped there, the error escaping this fetch).
      const seen = await fresh().peek().catch(() => ({ running: 1, far: false }));
      quiet = seen.running === 0 && seen.far ? quiet + 1 : 0;
    }
    const final = await fresh().final();
    return Response.json({ returned, ...final, quiet: quiet >= 3 });
  },
};
