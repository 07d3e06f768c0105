import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  TerminalSession,
  terminalUrl,
  type ConnectParams,
  type ConnectionState,
  type Bytes,
  type SocketConnection,
  type SocketHandlers,
} from "./session";

/** A socket the test plays the server for. */
class FakeSocket implements SocketConnection {
  sent: (string | Bytes)[] = [];
  closed = false;
  constructor(
    readonly url: string,
    private readonly handlers: SocketHandlers,
  ) {}
  get params(): URLSearchParams {
    return new URL(this.url).searchParams;
  }
  send(data: string | Bytes): void {
    this.sent.push(data);
  }
  close(): void {
    this.closed = true;
  }
  // server side
  handlersOpen(): void {
    this.handlers.onOpen();
  }
  ready(start: number, gap = false): void {
    this.handlers.onOpen();
    this.handlers.onText(JSON.stringify({ type: "ready", session: "main", start, gap }));
  }
  output(text: string): void {
    this.handlers.onBinary(new TextEncoder().encode(text));
  }
  text(message: object): void {
    this.handlers.onText(JSON.stringify(message));
  }
  drop(code = 1006): void {
    this.handlers.onClose(code, "");
  }
}

function setup(options: { ticketError?: () => Error | null; fatal?: (e: unknown) => boolean } = {}) {
  const sockets: FakeSocket[] = [];
  const states: ConnectionState[] = [];
  const gaps: number[] = [];
  const decoder = new TextDecoder();
  let screen = "";
  let tickets = 0;
  const connects: ConnectParams[] = [];
  const session = new TerminalSession(
    "main",
    { cols: 80, rows: 24 },
    {
      getTicket: async () => {
        const error = options.ticketError?.();
        if (error) throw error;
        tickets++;
        return `t${tickets}`;
      },
      buildUrl: (params) => {
        connects.push(params);
        return terminalUrl({ protocol: "http:", host: "hub.test" }, "p1", params);
      },
      createSocket: (url, handlers) => {
        const socket = new FakeSocket(url, handlers);
        sockets.push(socket);
        return socket;
      },
      isFatalTicketError: options.fatal,
    },
    {
      onOutput: (bytes) => {
        screen += decoder.decode(bytes);
      },
      onGap: () => gaps.push(session.outputOffset ?? -1),
      onState: (state) => states.push(state),
    },
  );
  return {
    session,
    sockets,
    states,
    gaps,
    connects,
    screen: () => screen,
    last: () => {
      const socket = sockets.at(-1);
      if (!socket) throw new Error("no socket opened");
      return socket;
    },
  };
}

/** Let pending promises (the ticket fetch) settle without moving the clock. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe("TerminalSession", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("first attaches without since, with a fresh ticket and the terminal size", async () => {
    const t = setup();
    t.session.start();
    await settle();
    expect(t.sockets).toHaveLength(1);
    const url = new URL(t.last().url);
    expect(url.protocol).toBe("ws:");
    expect(url.host).toBe("hub.test");
    expect(url.pathname).toBe("/api/projects/p1/terminal");
    expect(url.searchParams.get("ticket")).toBe("t1");
    expect(url.searchParams.get("session")).toBe("main");
    expect(url.searchParams.get("cols")).toBe("80");
    expect(url.searchParams.get("rows")).toBe("24");
    expect(url.searchParams.has("since")).toBe(false);
    expect(t.session.connectionState.kind).toBe("connecting");
  });

  it("uses wss on an https page", () => {
    const url = terminalUrl({ protocol: "https:", host: "a.example:8443" }, "p 1", {
      ticket: "t",
      session: "2",
      cols: 10,
      rows: 5,
      since: 42,
    });
    expect(url).toBe("wss://a.example:8443/api/projects/p%201/terminal?ticket=t&session=2&cols=10&rows=5&since=42");
  });

  it("asks for a read-only attach when watching", () => {
    const url = terminalUrl({ protocol: "http:", host: "h" }, "p", { ticket: "t", session: "agent-bot", cols: 80, rows: 24 }, { readonly: true });
    expect(url).toBe("ws://h/api/projects/p/terminal?ticket=t&session=agent-bot&cols=80&rows=24&readonly=1");
  });

  it("tracks the offset from ready.start plus bytes received", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.last().ready(100);
    expect(t.session.connectionState.kind).toBe("connected");
    expect(t.session.outputOffset).toBe(100);
    t.last().output("hello");
    t.last().output("é!"); // 3 bytes in UTF-8
    expect(t.session.outputOffset).toBe(108);
    expect(t.screen()).toBe("helloé!");
  });

  it("reconnects after a drop with a new ticket and since=offset, doubling the delay up to 5 s", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.last().ready(0);
    t.last().output("abc");
    t.last().drop();

    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      const state = t.session.connectionState;
      expect(state.kind).toBe("reconnecting");
      if (state.kind !== "reconnecting") return;
      delays.push(state.delayMs);
      const before = t.sockets.length;
      await vi.advanceTimersByTimeAsync(state.delayMs - 1);
      expect(t.sockets).toHaveLength(before); // not early
      await vi.advanceTimersByTimeAsync(1);
      expect(t.sockets).toHaveLength(before + 1);
      expect(t.last().params.get("since")).toBe("3");
      expect(t.last().params.get("ticket")).toBe(`t${before + 1}`);
      t.last().drop(); // fails before ready
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
  });

  it("resets the backoff after a successful reconnect", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.last().ready(0);
    t.last().drop();
    await vi.advanceTimersByTimeAsync(250);
    t.last().drop();
    expect(t.session.connectionState).toMatchObject({ kind: "reconnecting", delayMs: 500 });
    await vi.advanceTimersByTimeAsync(500);
    t.last().ready(0);
    t.last().drop();
    expect(t.session.connectionState).toMatchObject({ kind: "reconnecting", delayMs: 250 });
  });

  it("never writes a byte twice, even if the server replays from before since", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.last().ready(0);
    t.last().output("one\r\n");
    t.last().output("two\r\n");
    expect(t.session.outputOffset).toBe(10);
    t.last().drop();
    await vi.advanceTimersByTimeAsync(250);
    expect(t.last().params.get("since")).toBe("10");

    // A faithful server resumes at since…
    t.last().ready(10);
    t.last().output("three\r\n");
    expect(t.screen()).toBe("one\r\ntwo\r\nthree\r\n");
    t.last().drop();
    await vi.advanceTimersByTimeAsync(250);
    expect(t.last().params.get("since")).toBe("17");

    // …and an overlapping replay (start 5 < since 17) is trimmed to the new bytes.
    t.last().ready(5);
    t.last().output("two\r\nth"); // offsets 5..12: all seen
    t.last().output("ree\r\nfour\r\n"); // 12..23: 17..23 is new
    expect(t.screen()).toBe("one\r\ntwo\r\nthree\r\nfour\r\n");
    expect(t.session.outputOffset).toBe(23);
    expect(t.gaps).toEqual([]);
  });

  it("marks a gap when the server no longer has the missed output", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.last().ready(0);
    t.last().output("before");
    t.last().drop();
    await vi.advanceTimersByTimeAsync(250);
    t.last().ready(5000, true);
    expect(t.gaps).toEqual([5000]);
    t.last().output("after");
    expect(t.screen()).toBe("beforeafter");
    expect(t.session.outputOffset).toBe(5005);
  });

  it("does not mark a gap on the first attach, whatever the start", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.last().ready(123456, false);
    expect(t.gaps).toEqual([]);
    expect(t.session.outputOffset).toBe(123456);
  });

  it("stops reconnecting once the process exits", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.last().ready(0);
    t.last().output("bye\r\n");
    t.last().text({ type: "exit", code: 3 });
    t.last().drop(1000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.sockets).toHaveLength(1);
    expect(t.session.connectionState).toEqual({ kind: "exited", code: 3 });
    expect(t.sockets[0]?.closed).toBe(true);
  });

  it("restart after an exit attaches afresh, without since", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.last().ready(0);
    t.last().output("x");
    t.last().text({ type: "exit", code: 0 });
    t.session.restart();
    await settle();
    expect(t.sockets).toHaveLength(2);
    expect(t.last().params.has("since")).toBe(false);
  });

  it("gives up on a fatal server error and keeps trying after others", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.last().text({ type: "error", code: "unavailable", message: "VM is starting" });
    t.last().drop(1011);
    expect(t.session.connectionState).toMatchObject({ kind: "reconnecting", reason: "VM is starting" });
    await vi.advanceTimersByTimeAsync(250);
    t.last().text({ type: "error", code: "not_found", message: "no such project" });
    t.last().drop(1008);
    expect(t.session.connectionState).toEqual({ kind: "failed", code: "not_found", message: "no such project" });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.sockets).toHaveLength(2);
  });

  it("shows the VM starting, holds typing until ready, and stops at the plan's limit", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.last().handlersOpen();
    t.last().text({ type: "starting", status: "starting" });
    expect(t.session.connectionState).toEqual({ kind: "starting" });
    t.session.sendInput("echo hi\r");
    expect(t.last().sent).toEqual([]);
    t.last().ready(0);
    expect(t.session.connectionState).toEqual({ kind: "connected" });
    expect(t.last().sent).toContainEqual(new TextEncoder().encode("echo hi\r"));

    const u = setup();
    u.session.start();
    await settle();
    u.last().text({ type: "starting", status: "starting" });
    u.last().text({ type: "error", code: "limit_reached", message: "this month's 50 hours are used up" });
    u.last().drop(1008);
    expect(u.session.connectionState).toEqual({ kind: "failed", code: "limit_reached", message: "this month's 50 hours are used up" });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(u.sockets).toHaveLength(1);
  });

  it("retries when the ticket request fails, unless the error is fatal", async () => {
    let failures = 2;
    const t = setup({
      ticketError: () => (failures-- > 0 ? new Error("offline") : null),
      fatal: (e) => e instanceof Error && e.message === "gone",
    });
    t.session.start();
    await settle();
    expect(t.session.connectionState).toMatchObject({ kind: "reconnecting", reason: "offline", delayMs: 250 });
    await vi.advanceTimersByTimeAsync(250);
    expect(t.session.connectionState).toMatchObject({ kind: "reconnecting", delayMs: 500 });
    await vi.advanceTimersByTimeAsync(500);
    expect(t.sockets).toHaveLength(1);

    const t2 = setup({ ticketError: () => new Error("gone"), fatal: (e) => e instanceof Error && e.message === "gone" });
    t2.session.start();
    await settle();
    expect(t2.session.connectionState).toMatchObject({ kind: "failed", message: "gone" });
  });

  it("sends keystrokes as UTF-8 binary, holding them until ready", async () => {
    const t = setup();
    t.session.start();
    t.session.sendInput("ls\r");
    await settle();
    expect(t.last().sent).toEqual([]);
    t.last().ready(0);
    t.session.sendInput("ü");
    expect(t.last().sent).toEqual([new TextEncoder().encode("ls\r"), new Uint8Array([0xc3, 0xbc])]);
  });

  it("sends resize as a text message, and once more on ready if it changed while connecting", async () => {
    const t = setup();
    t.session.start();
    await settle();
    t.session.resize(100, 30);
    expect(t.last().sent).toEqual([]);
    t.last().ready(0);
    expect(t.last().sent).toEqual([JSON.stringify({ type: "resize", cols: 100, rows: 30 })]);
    t.session.resize(100, 30);
    t.session.resize(120, 40);
    expect(t.last().sent).toHaveLength(2);
    t.last().drop();
    await vi.advanceTimersByTimeAsync(250);
    expect(t.last().params.get("cols")).toBe("120");
    expect(t.last().params.get("rows")).toBe("40");
  });

  it("ignores a dropped socket's late messages after dispose", async () => {
    const t = setup();
    t.session.start();
    await settle();
    const socket = t.last();
    socket.ready(0);
    t.session.dispose();
    socket.output("late");
    socket.drop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.screen()).toBe("");
    expect(t.sockets).toHaveLength(1);
    expect(t.session.connectionState.kind).toBe("closed");
    expect(socket.closed).toBe(true);
  });
});
