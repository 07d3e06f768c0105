import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { projectSocketUrl, ReconnectingSocket, type ReconnectOptions, type ReconnectState } from "./reconnectingSocket";
import { fakeSockets, type FakeSocket } from "./fakeSocket";

function setup(options: { ticket?: () => Promise<string>; onClose?: ReconnectOptions["onClose"] } = {}) {
  const sockets: FakeSocket[] = [];
  const states: ReconnectState[] = [];
  const texts: string[] = [];
  let tickets = 0;
  const link = new ReconnectingSocket(
    {
      getTicket: options.ticket ?? (async () => `t${++tickets}`),
      createSocket: fakeSockets(sockets),
      isFatalTicketError: (e) => e instanceof Error && e.message === "gone",
    },
    {
      initialBackoffMs: 100,
      maxBackoffMs: 300,
      url: (ticket) => `ws://hub/x?ticket=${ticket}`,
      onText: (text) => texts.push(text),
      onClose: options.onClose,
      onState: (state) => states.push(state),
    },
  );
  const last = () => {
    const socket = sockets.at(-1);
    if (!socket) throw new Error("no socket");
    return socket;
  };
  return { link, sockets, states, texts, last };
}

describe("ReconnectingSocket", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("doubles the delay up to the cap, and starts over after resetBackoff", async () => {
    const t = setup();
    t.link.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.states).toEqual([{ kind: "connecting" }]);
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      t.last().handlers.onClose(1006, "");
      const state = t.states.at(-1);
      if (state?.kind !== "reconnecting") throw new Error(`state ${state?.kind}`);
      delays.push(state.delayMs);
      expect(state.reason).toBe("connection closed (1006)");
      await vi.advanceTimersByTimeAsync(state.delayMs);
    }
    expect(delays).toEqual([100, 200, 300, 300]);
    expect(t.last().url).toBe("ws://hub/x?ticket=t5");
    t.link.resetBackoff();
    t.last().handlers.onClose(1000, "bye");
    expect(t.states.at(-1)).toEqual({ kind: "reconnecting", attempt: 1, delayMs: 100, reason: "bye" });
    t.link.dispose();
  });

  it("ignores a closed socket's late messages and hands the close to the owner's hook", async () => {
    const reasons: string[] = [];
    const t = setup({ onClose: (reason) => reasons.push(reason) });
    t.link.start();
    await vi.advanceTimersByTimeAsync(0);
    const first = t.last();
    first.handlers.onText("before");
    first.handlers.onClose(1011, "");
    first.handlers.onText("after");
    expect(t.texts).toEqual(["before"]);
    expect(reasons).toEqual(["connection closed (1011)"]);
    expect(t.link.socket).toBeNull();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("fails on a fatal ticket error, retries other ones", async () => {
    let fail = new Error("offline");
    const t = setup({
      ticket: async () => {
        throw fail;
      },
    });
    t.link.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.states.at(-1)).toMatchObject({ kind: "reconnecting", reason: "offline" });
    fail = new Error("gone");
    await vi.advanceTimersByTimeAsync(100);
    expect(t.states.at(-1)).toEqual({ kind: "failed", message: "gone" });
    expect(vi.getTimerCount()).toBe(0);
    expect(t.link.running).toBe(true);
  });

  it("halt drops the socket but stays started; retry connects again; dispose stops for good", async () => {
    const t = setup();
    t.link.start();
    await vi.advanceTimersByTimeAsync(0);
    t.link.halt();
    expect(t.sockets[0]?.closed).toBe(true);
    expect(t.link.running).toBe(true);
    t.link.retry();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.sockets).toHaveLength(2);
    t.link.dispose();
    expect(t.last().closed).toBe(true);
    expect(t.states.at(-1)).toEqual({ kind: "closed" });
    t.link.retry();
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.sockets).toHaveLength(2);
  });
});

describe("projectSocketUrl", () => {
  it("follows the page's scheme and host", () => {
    const query = new URLSearchParams({ ticket: "t" });
    expect(projectSocketUrl({ protocol: "https:", host: "h:1" }, "p 1", "a/b", query)).toBe("wss://h:1/api/projects/p%201/a/b?ticket=t");
    expect(projectSocketUrl({ protocol: "http:", host: "h" }, "p", "c", query)).toBe("ws://h/api/projects/p/c?ticket=t");
  });
});
