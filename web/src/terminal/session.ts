/**
 * One terminal session's connection, without React or xterm: it fetches a
 * ticket, opens the WebSocket, numbers the output by byte offset, and when
 * the socket drops without an `exit` it reconnects by itself (250 ms
 * doubling to 5 s) with `since=<offset>`, so the screen never shows a byte
 * twice. Sockets, tickets and timers are injected so tests drive it with
 * fakes.
 *
 * Offsets: `streamPos` is the offset of the next byte the socket will
 * deliver (the `ready` message's `start`, then advanced per byte received);
 * `offset` is one past the last byte handed to `onOutput`. Bytes below
 * `offset` are duplicates and are dropped, which keeps the screen right even
 * if a server replays from before `since`.
 */

/** Bytes backed by a plain ArrayBuffer (what WebSocket.send accepts). */
export type Bytes = Uint8Array<ArrayBuffer>;

/** What the socket reports; the factory wires these to a real WebSocket. */
export interface SocketHandlers {
  onOpen(): void;
  onText(text: string): void;
  onBinary(bytes: Bytes): void;
  onClose(code: number, reason: string): void;
}

export interface SocketConnection {
  send(data: string | Bytes): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string, handlers: SocketHandlers) => SocketConnection;

export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ConnectParams {
  ticket: string;
  session: string;
  cols: number;
  rows: number;
  /** Absent on the first attach of this page, so the server replays its buffer. */
  since?: number;
}

export interface SessionDeps {
  /** A fresh single-use ticket for each connection attempt. */
  getTicket(): Promise<string>;
  buildUrl(params: ConnectParams): string;
  createSocket: SocketFactory;
  clock?: Clock;
  /** Ticket errors after which retrying is pointless (e.g. project gone). */
  isFatalTicketError?(error: unknown): boolean;
}

export interface SessionCallbacks {
  onOutput(bytes: Bytes): void;
  /** Output was lost while disconnected (the server no longer had it). */
  onGap(): void;
  onState(state: ConnectionState): void;
  /** Every `ready` message, e.g. to time the first attach. */
  onReady?(info: { start: number; gap: boolean; resumed: boolean }): void;
}

export type ConnectionState =
  | { kind: "connecting" }
  | { kind: "connected" }
  | { kind: "reconnecting"; attempt: number; delayMs: number; reason: string }
  | { kind: "exited"; code: number }
  | { kind: "failed"; code: string; message: string }
  | { kind: "closed" };

export const INITIAL_BACKOFF_MS = 250;
export const MAX_BACKOFF_MS = 5000;
/** Keystrokes typed while disconnected are kept up to this many bytes. */
export const MAX_PENDING_INPUT = 64 * 1024;

/** Server error codes after which reconnecting cannot help. */
const FATAL_SERVER_CODES = new Set(["not_found", "forbidden", "invalid_request"]);

const realClock: Clock = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class TerminalSession {
  private readonly clock: Clock;
  private readonly encoder = new TextEncoder();

  private state: ConnectionState = { kind: "closed" };
  private socket: SocketConnection | null = null;
  /** Bumped per connection attempt; stale socket callbacks compare and bail. */
  private generation = 0;
  private timer: unknown = null;
  private backoffAttempt = 0;

  private ready = false;
  private offset: number | null = null;
  private streamPos = 0;
  private sinceOfAttempt: number | undefined;
  private lastServerError: { code: string; message: string } | null = null;

  private cols: number;
  private rows: number;
  private sentSize = "";
  private pending: Bytes[] = [];
  private pendingBytes = 0;
  private stopped = true;

  constructor(
    readonly name: string,
    size: { cols: number; rows: number },
    private readonly deps: SessionDeps,
    private readonly callbacks: SessionCallbacks,
  ) {
    this.clock = deps.clock ?? realClock;
    this.cols = size.cols;
    this.rows = size.rows;
  }

  /** One past the last output byte written to the screen; null before the first `ready`. */
  get outputOffset(): number | null {
    return this.offset;
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  /** Attach for the first time: no `since`, so the server replays what it has. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.offset = null;
    this.backoffAttempt = 0;
    this.setState({ kind: "connecting" });
    void this.connect();
  }

  /** Start over as a fresh attach (after an exit or a failure). */
  restart(): void {
    this.dispose();
    this.start();
  }

  /** Stop for good: close the socket, cancel any pending reconnect. */
  dispose(): void {
    this.stopped = true;
    this.generation++;
    this.cancelTimer();
    this.closeSocket();
    this.pending = [];
    this.pendingBytes = 0;
    this.setState({ kind: "closed" });
  }

  /** Send keystrokes as UTF-8; kept (bounded) while disconnected and sent on `ready`. */
  sendInput(data: string): void {
    this.sendBytes(this.encoder.encode(data));
  }

  sendBytes(bytes: Bytes): void {
    if (bytes.length === 0 || this.state.kind === "exited" || this.stopped) return;
    if (this.socket && this.ready) {
      this.socket.send(bytes);
      return;
    }
    if (this.pendingBytes + bytes.length > MAX_PENDING_INPUT) return;
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
  }

  resize(cols: number, rows: number): void {
    if (cols <= 0 || rows <= 0) return;
    this.cols = cols;
    this.rows = rows;
    this.sendSize();
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.ready = false;
    this.lastServerError = null;

    let ticket: string;
    try {
      ticket = await this.deps.getTicket();
    } catch (error) {
      if (generation !== this.generation || this.stopped) return;
      if (this.deps.isFatalTicketError?.(error)) {
        this.fail("ticket", describe(error));
      } else {
        this.scheduleReconnect(describe(error));
      }
      return;
    }
    if (generation !== this.generation || this.stopped) return;

    this.sinceOfAttempt = this.offset ?? undefined;
    const url = this.deps.buildUrl({
      ticket,
      session: this.name,
      cols: this.cols,
      rows: this.rows,
      since: this.sinceOfAttempt,
    });
    this.sentSize = `${this.cols}x${this.rows}`;
    const live = () => generation === this.generation && !this.stopped;
    try {
      this.socket = this.deps.createSocket(url, {
        onOpen: () => {},
        onText: (text) => {
          if (live()) this.handleText(text);
        },
        onBinary: (bytes) => {
          if (live()) this.handleOutput(bytes);
        },
        onClose: (code, reason) => {
          if (live()) this.handleClose(code, reason);
        },
      });
    } catch (error) {
      this.scheduleReconnect(describe(error));
    }
  }

  private handleText(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return; // not ours to understand
    }
    if (typeof message !== "object" || message === null) return;
    const m = message as Record<string, unknown>;
    switch (m.type) {
      case "ready":
        this.handleReady(typeof m.start === "number" ? m.start : 0, m.gap === true);
        break;
      case "exit":
        this.handleExit(typeof m.code === "number" ? m.code : -1);
        break;
      case "error":
        this.lastServerError = {
          code: typeof m.code === "string" ? m.code : "error",
          message: typeof m.message === "string" ? m.message : "The terminal reported an error.",
        };
        break;
      default:
        break;
    }
  }

  private handleReady(start: number, gap: boolean): void {
    const since = this.sinceOfAttempt;
    this.ready = true;
    this.backoffAttempt = 0;
    this.streamPos = start;
    if (this.offset === null) {
      this.offset = start;
    } else if (gap || start > this.offset) {
      this.offset = start;
      this.callbacks.onGap();
    }
    this.setState({ kind: "connected" });
    this.callbacks.onReady?.({ start, gap, resumed: since !== undefined });
    if (this.sentSize !== `${this.cols}x${this.rows}`) this.sendSize();
    this.flushPending();
  }

  private handleOutput(bytes: Bytes): void {
    if (this.state.kind === "exited") return;
    if (!this.ready) {
      // The contract puts `ready` first; if a server doesn't, count from `since`.
      this.handleReady(this.offset ?? 0, false);
    }
    const offset = this.offset ?? this.streamPos;
    const seen = Math.max(0, Math.min(bytes.length, offset - this.streamPos));
    this.streamPos += bytes.length;
    if (seen < bytes.length) {
      this.callbacks.onOutput(seen === 0 ? bytes : bytes.subarray(seen));
      this.offset = this.streamPos;
    }
  }

  private handleExit(code: number): void {
    this.generation++; // ignore whatever the old socket still says
    this.cancelTimer();
    this.closeSocket();
    this.pending = [];
    this.pendingBytes = 0;
    this.setState({ kind: "exited", code });
  }

  private handleClose(code: number, reason: string): void {
    this.socket = null;
    this.ready = false;
    const error = this.lastServerError;
    if (error && FATAL_SERVER_CODES.has(error.code)) {
      this.fail(error.code, error.message);
      return;
    }
    this.scheduleReconnect(error?.message || reason || `connection closed (${code})`);
  }

  private scheduleReconnect(reason: string): void {
    this.closeSocket();
    this.cancelTimer();
    const delayMs = Math.min(INITIAL_BACKOFF_MS * 2 ** this.backoffAttempt, MAX_BACKOFF_MS);
    this.backoffAttempt++;
    this.setState({ kind: "reconnecting", attempt: this.backoffAttempt, delayMs, reason });
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (!this.stopped) void this.connect();
    }, delayMs);
  }

  private fail(code: string, message: string): void {
    this.generation++;
    this.cancelTimer();
    this.closeSocket();
    this.setState({ kind: "failed", code, message });
  }

  private sendSize(): void {
    const size = `${this.cols}x${this.rows}`;
    if (!this.socket || !this.ready || size === this.sentSize) return;
    this.sentSize = size;
    this.socket.send(JSON.stringify({ type: "resize", cols: this.cols, rows: this.rows }));
  }

  private flushPending(): void {
    const queued = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const bytes of queued) this.socket?.send(bytes);
  }

  private closeSocket(): void {
    const socket = this.socket;
    this.socket = null;
    this.ready = false;
    try {
      socket?.close(1000);
    } catch {
      // already closed
    }
  }

  private cancelTimer(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private setState(state: ConnectionState): void {
    this.state = state;
    this.callbacks.onState(state);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Wire `SocketHandlers` to a browser WebSocket (binary as ArrayBuffer). */
export const browserSocketFactory: SocketFactory = (url, handlers) => {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => handlers.onOpen();
  ws.onmessage = (event: MessageEvent<unknown>) => {
    if (typeof event.data === "string") handlers.onText(event.data);
    else if (event.data instanceof ArrayBuffer) handlers.onBinary(new Uint8Array(event.data));
  };
  ws.onclose = (event) => handlers.onClose(event.code, event.reason);
  return {
    send: (data) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(data);
    },
    close: (code, reason) => ws.close(code, reason),
  };
};

/** `ws(s)://<this host>/api/projects/{id}/terminal?…`, as the contract spells it. */
export function terminalUrl(
  location: { protocol: string; host: string },
  projectId: string,
  params: ConnectParams,
  options: { readonly?: boolean } = {},
): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({
    ticket: params.ticket,
    session: params.session,
    cols: String(params.cols),
    rows: String(params.rows),
  });
  if (params.since !== undefined) query.set("since", String(params.since));
  if (options.readonly) query.set("readonly", "1");
  return `${scheme}//${location.host}/api/projects/${encodeURIComponent(projectId)}/terminal?${query}`;
}
