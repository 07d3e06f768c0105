import { describe, expect, it } from "vitest";
import type { WatchEvent } from "../api/types";
import type { Clock } from "../terminal/session";
import { FileWatch, parseWatchEvent, WATCH_MAX_BACKOFF_MS, watchUrl, type WatchState } from "./watch";
import { fakeSockets, type FakeSocket } from "../live/fakeSocket";

class FakeClock implements Clock {
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  now = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.now + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }
  get pending(): number[] {
    return this.timers.map((t) => t.at - this.now);
  }
  async advance(ms: number): Promise<void> {
    this.now += ms;
    const due = this.timers.filter((t) => t.at <= this.now);
    this.timers = this.timers.filter((t) => t.at > this.now);
    for (const t of due) t.fn();
    await flush();
  }
}

const flush = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

function setup(options: { ticket?: () => Promise<string> } = {}) {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  const events: WatchEvent[] = [];
  const readies: boolean[] = [];
  const states: WatchState[] = [];
  let tickets = 0;
  const watch = new FileWatch(
    {
      getTicket: options.ticket ?? (async () => `t${++tickets}`),
      buildUrl: (ticket) => `ws://hub/watch?ticket=${ticket}`,
      createSocket: fakeSockets(sockets),
      clock,
      isFatalTicketError: (e) => e instanceof Error && e.message === "gone",
    },
    {
      onEvent: (e) => events.push(e),
      onReady: ({ resumed }) => readies.push(resumed),
      onState: (s) => states.push(s),
    },
  );
  const last = () => {
    const s = sockets.at(-1);
    if (!s) throw new Error("no socket");
    return s;
  };
  const say = (message: object) => last().handlers.onText(JSON.stringify(message));
  return { watch, clock, sockets, events, readies, states, last, say };
}

describe("FileWatch", () => {
  it("connects with a fresh ticket and hands events on", async () => {
    const t = setup();
    t.watch.start();
    await flush();
    expect(t.last().url).toBe("ws://hub/watch?ticket=t1");
    t.say({ type: "ready", path: "" });
    t.say({ type: "created", path: "a.txt" });
    t.say({ type: "renamed", path: "b", from: "a" });
    t.say({ type: "bogus", path: "x" });
    expect(t.readies).toEqual([false]);
    expect(t.events).toEqual([
      { type: "created", path: "a.txt" },
      { type: "renamed", path: "b", from: "a" },
    ]);
    expect(t.watch.connectionState).toEqual({ kind: "live" });
  });

  it("reconnects by itself after a drop, and says the new connection resumed", async () => {
    const t = setup();
    t.watch.start();
    await flush();
    t.say({ type: "ready", path: "" });
    t.last().handlers.onClose(1006, "");
    expect(t.watch.connectionState).toMatchObject({ kind: "reconnecting", attempt: 1, delayMs: 500 });
    await t.clock.advance(500);
    expect(t.sockets).toHaveLength(2);
    expect(t.last().url).toBe("ws://hub/watch?ticket=t2");
    t.say({ type: "ready", path: "" });
    expect(t.readies).toEqual([false, true]);
  });

  it("backs off while the hub keeps dropping before ready, up to the cap, and resets after ready", async () => {
    const t = setup();
    t.watch.start();
    await flush();
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      t.last().handlers.onClose(1011, "");
      const state = t.watch.connectionState;
      if (state.kind !== "reconnecting") throw new Error(`state ${state.kind}`);
      delays.push(state.delayMs);
      await t.clock.advance(state.delayMs);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, WATCH_MAX_BACKOFF_MS, WATCH_MAX_BACKOFF_MS]);
    t.say({ type: "ready", path: "" });
    t.last().handlers.onClose(1006, "");
    expect(t.watch.connectionState).toMatchObject({ kind: "reconnecting", delayMs: 500 });
  });

  it("shows the hub's error message as the reason, then retries", async () => {
    const t = setup();
    t.watch.start();
    await flush();
    t.say({ type: "ready", path: "" });
    t.say({ type: "error", path: "", message: "the connection to the VM was lost; watch again" });
    t.last().handlers.onClose(1000, "");
    expect(t.watch.connectionState).toMatchObject({ kind: "reconnecting", reason: "the connection to the VM was lost; watch again" });
    expect(t.events).toEqual([]);
  });

  it("retries when a ticket cannot be had, and stops on a fatal ticket error", async () => {
    let fail: Error | null = new Error("offline");
    const t = setup({
      ticket: async () => {
        if (fail) throw fail;
        return "ok";
      },
    });
    t.watch.start();
    await flush();
    expect(t.watch.connectionState).toMatchObject({ kind: "reconnecting", reason: "offline" });
    fail = new Error("gone");
    await t.clock.advance(500);
    expect(t.watch.connectionState).toEqual({ kind: "failed", message: "gone" });
    expect(t.clock.pending).toEqual([]);
  });

  it("ignores a dropped socket's late messages and stops for good on dispose", async () => {
    const t = setup();
    t.watch.start();
    await flush();
    const first = t.last();
    first.handlers.onClose(1006, "");
    first.handlers.onText(JSON.stringify({ type: "created", path: "late" }));
    t.watch.dispose();
    expect(t.events).toEqual([]);
    expect(t.clock.pending).toEqual([]);
    expect(t.watch.connectionState).toEqual({ kind: "closed" });
  });

  it("parses messages defensively and builds the URL", () => {
    expect(parseWatchEvent("nope")).toBeNull();
    expect(parseWatchEvent('{"type":"modified","path":"a","extra":1}')).toEqual({ type: "modified", path: "a" });
    expect(watchUrl({ protocol: "https:", host: "h" }, "p 1", "t", "")).toBe("wss://h/api/projects/p%201/files/watch?ticket=t&path=");
  });
});
