import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AgentActivity } from "../api/types";
import {
  ActivityLive,
  activityLiveUrl,
  LIVE_INITIAL_BACKOFF_MS,
  LIVE_MAX_BACKOFF_MS,
  mergeActivity,
  parseAgentSessionEvent,
  type AgentSessionEvent,
  type LiveState,
} from "./activityLive";
import { fakeSockets, type FakeSocket } from "../live/fakeSocket";

function setup(options: { ticket?: () => Promise<string> } = {}) {
  const sockets: FakeSocket[] = [];
  const events: AgentSessionEvent[] = [];
  const opens: boolean[] = [];
  const states: LiveState[] = [];
  let tickets = 0;
  const live = new ActivityLive(
    {
      getTicket: options.ticket ?? (async () => `t${++tickets}`),
      buildUrl: (ticket) => `ws://hub/live?ticket=${ticket}`,
      createSocket: fakeSockets(sockets),
      isFatalTicketError: (e) => e instanceof Error && e.message === "gone",
    },
    { onEvent: (e) => events.push(e), onOpen: ({ resumed }) => opens.push(resumed), onState: (s) => states.push(s) },
  );
  return { live, sockets, events, opens, states };
}

function nth<T>(items: readonly T[], i: number): T {
  const item = items[i];
  if (item === undefined) throw new Error(`no item ${i}`);
  return item;
}

const row = (over: Partial<AgentActivity> = {}): AgentActivity => ({
  id: "s1",
  agent_id: "a1",
  agent_name: "bot",
  started_at: "2024-01-01T10:00:00Z",
  ended_at: null,
  command: "",
  exit_code: null,
  interactive: true,
  session: "agent-1",
  ...over,
});

const startMsg = (over: Record<string, unknown> = {}) => JSON.stringify({ event: "start", ...row(), ...over });

describe("parseAgentSessionEvent", () => {
  it("reads the hub's start and end messages", () => {
    expect(parseAgentSessionEvent(startMsg())).toEqual({ event: "start", session: row() });
    const end = parseAgentSessionEvent(JSON.stringify({ ...row({ ended_at: "2024-01-01T10:05:00Z", exit_code: 0 }), event: "end" }));
    expect(end?.event).toBe("end");
    expect(end?.session.ended_at).toBe("2024-01-01T10:05:00Z");
    expect(end?.session.exit_code).toBe(0);
  });
  it("ignores anything else", () => {
    expect(parseAgentSessionEvent("nope")).toBeNull();
    expect(parseAgentSessionEvent("[]")).toBeNull();
    expect(parseAgentSessionEvent(JSON.stringify({ event: "other", agent_id: "a", started_at: "x" }))).toBeNull();
    expect(parseAgentSessionEvent(JSON.stringify({ event: "start" }))).toBeNull();
  });
});

describe("mergeActivity", () => {
  const older = row({ id: "s0", started_at: "2024-01-01T09:00:00Z", ended_at: "2024-01-01T09:01:00Z", exit_code: 1 });

  it("puts a new session at the top as running", () => {
    const next = mergeActivity([older], { event: "start", session: row() });
    expect(next.map((a) => a.id)).toEqual(["s1", "s0"]);
    expect(nth(next, 0).ended_at).toBeNull();
  });

  it("updates an ended session in place", () => {
    const list = [row(), older];
    const next = mergeActivity(list, { event: "end", session: row({ ended_at: "2024-01-01T10:05:00Z", exit_code: 3 }) });
    expect(next).toHaveLength(2);
    expect(nth(next, 0)).toMatchObject({ id: "s1", ended_at: "2024-01-01T10:05:00Z", exit_code: 3 });
    expect(nth(list, 0).ended_at).toBeNull(); // not mutated
  });

  it("never turns an ended session back into running", () => {
    const ended = row({ ended_at: "2024-01-01T10:05:00Z", exit_code: 0 });
    const next = mergeActivity([ended], { event: "start", session: row() });
    expect(nth(next, 0).ended_at).toBe("2024-01-01T10:05:00Z");
  });

  it("matches rows without ids by agent and start, and keeps a limit", () => {
    const noId = row({ id: undefined });
    expect(mergeActivity([noId], { event: "end", session: row({ ended_at: "2024-01-01T10:05:00Z" }) })).toHaveLength(1);
    expect(mergeActivity([older], { event: "start", session: row() }, 1).map((a) => a.id)).toEqual(["s1"]);
  });

  it("keeps newest first when a start arrives late", () => {
    const newer = row({ id: "s2", started_at: "2024-01-01T11:00:00Z" });
    expect(mergeActivity([newer], { event: "start", session: row() }).map((a) => a.id)).toEqual(["s2", "s1"]);
  });
});

describe("ActivityLive", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("connects with a ticket and hands on events", async () => {
    const { live, sockets, events, opens } = setup();
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(sockets).toHaveLength(1);
    expect(nth(sockets, 0).url).toBe("ws://hub/live?ticket=t1");
    nth(sockets, 0).handlers.onOpen();
    expect(opens).toEqual([false]);
    expect(live.connectionState).toEqual({ kind: "live" });
    nth(sockets, 0).handlers.onText(startMsg());
    nth(sockets, 0).handlers.onText("garbage");
    expect(events).toEqual([{ event: "start", session: row() }]);
    live.dispose();
  });

  it("reconnects with a fresh ticket, backing off, and says resumed", async () => {
    const { live, sockets, opens, states } = setup();
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    nth(sockets, 0).handlers.onOpen();
    nth(sockets, 0).handlers.onClose(1006, "");
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", attempt: 1, delayMs: LIVE_INITIAL_BACKOFF_MS });
    await vi.advanceTimersByTimeAsync(LIVE_INITIAL_BACKOFF_MS - 1);
    expect(sockets).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets).toHaveLength(2);
    expect(nth(sockets, 1).url).toBe("ws://hub/live?ticket=t2");
    // Dropped before opening: the backoff grows.
    nth(sockets, 1).handlers.onClose(1006, "");
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", attempt: 2, delayMs: LIVE_INITIAL_BACKOFF_MS * 2 });
    await vi.advanceTimersByTimeAsync(LIVE_INITIAL_BACKOFF_MS * 2);
    expect(sockets).toHaveLength(3);
    nth(sockets, 2).handlers.onOpen();
    expect(opens).toEqual([false, true]);
    // An open resets the backoff.
    nth(sockets, 2).handlers.onClose(1006, "");
    expect(states.at(-1)).toMatchObject({ attempt: 1, delayMs: LIVE_INITIAL_BACKOFF_MS });
    live.dispose();
  });

  it("caps the backoff and ignores a stale socket", async () => {
    const { live, sockets, events, states } = setup();
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 8; i++) {
      sockets.at(-1)?.handlers.onClose(1006, "");
      await vi.advanceTimersByTimeAsync(LIVE_MAX_BACKOFF_MS);
    }
    expect(states.filter((s) => s.kind === "reconnecting").at(-1)).toMatchObject({ delayMs: LIVE_MAX_BACKOFF_MS });
    nth(sockets, 0).handlers.onText(startMsg());
    expect(events).toEqual([]);
    live.dispose();
  });

  it("retries ticket failures but stops on fatal ones", async () => {
    let calls = 0;
    const { live, sockets, states } = setup({
      ticket: async () => {
        calls++;
        if (calls === 1) throw new Error("offline");
        if (calls === 2) return "ok";
        throw new Error("gone");
      },
    });
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", reason: "offline" });
    await vi.advanceTimersByTimeAsync(LIVE_INITIAL_BACKOFF_MS);
    expect(sockets).toHaveLength(1);
    nth(sockets, 0).handlers.onClose(1000, "bye");
    await vi.advanceTimersByTimeAsync(LIVE_MAX_BACKOFF_MS);
    expect(states.at(-1)).toEqual({ kind: "failed", message: "gone" });
    expect(vi.getTimerCount()).toBe(0);
    live.dispose();
  });

  it("dispose closes the socket and cancels a pending reconnect", async () => {
    const { live, sockets } = setup();
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    nth(sockets, 0).handlers.onClose(1006, "");
    live.dispose();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(LIVE_MAX_BACKOFF_MS);
    expect(sockets).toHaveLength(1);
    expect(live.connectionState).toEqual({ kind: "closed" });

    const again = setup();
    again.live.start();
    await vi.advanceTimersByTimeAsync(0);
    again.live.dispose();
    expect(nth(again.sockets, 0).closed).toBe(true);
  });
});

describe("activityLiveUrl", () => {
  it("builds the ws(s) url", () => {
    expect(activityLiveUrl({ protocol: "https:", host: "h:1" }, "p 1", "T")).toBe("wss://h:1/api/projects/p%201/agents/activity/live?ticket=T");
    expect(activityLiveUrl({ protocol: "http:", host: "h" }, "p", "T")).toBe("ws://h/api/projects/p/agents/activity/live?ticket=T");
  });
});
