/**
 * One terminal session's connection, without React or xterm: it fetches a
 * ticket, opens the WebSocket, numbers the output by byte offset, and when
 * the socket drops without an `exit` it reconnects by itself (250 ms
 * doubling to 5 s) with `since=<offset>`, so the screen never shows a byte
 * twice. The ticket, socket and backoff rules it shares with the other live
 * sockets are `live/reconnectingSocket.ts` (whose socket types it
 * re-exports); sockets, tickets and timers are injected so tests drive it
 * with fakes.
 *
 * Offsets: `streamPos` is the offset of the next byte the socket will
 * deliver (the `ready` message's `start`, then advanced per byte received);
 * `offset` is one past the last byte handed to `onOutput`. Bytes below
 * `offset` are duplicates and are dropped, which keeps the screen right even
 * if a server replays from before `since`.
 */
import { projectSocketUrl, ReconnectingSocket, type Bytes, type SocketDeps } from "../live/reconnectingSocket";

export {
  browserSocketFactory,
  type Bytes,
  type Clock,
  type SocketConnection,
  type SocketFactory,
  type SocketHandlers,
} from "../live/reconnectingSocket";

export interface ConnectParams {
  ticket: string;
  session: string;
  cols: number;
  rows: number;
  /** Absent on the first attach of this page, so the server replays its buffer. */
  since?: number;
}

export interface SessionDeps extends SocketDeps {
  buildUrl(params: ConnectParams): string;
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
  /** The hub is starting the stopped VM; the attach follows when it is up. */
  | { kind: "starting" }
  | { kind: "connected" }
  | { kind: "reconnecting"; attempt: number; delayMs: number; reason: string }
  | { kind: "exited"; code: number }
  | { kind: "failed"; code: string; message: string }
  | { kind: "closed" };

export const INITIAL_BACKOFF_MS = 250;
export const MAX_BACKOFF_MS = 5000;
/** Keystrokes typed while disconnected are kept up to this many bytes. */
export const MAX_PENDING_INPUT = 64 * 1024;

/** Server error codes after which reconnecting cannot help (`limit_reached`: the plan's compute is used up). */
const FATAL_SERVER_CODES = new Set(["not_found", "forbidden", "invalid_request", "limit_reached"]);

export class TerminalSession {
  private readonly encoder = new TextEncoder();
  /** The socket, its tickets and its backoff. */
  private readonly link: ReconnectingSocket;

  private state: ConnectionState = { kind: "closed" };
  /** Whether the current socket has said `ready`; reset for each attempt. */
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

  constructor(
    readonly name: string,
    size: { cols: number; rows: number },
    private readonly deps: SessionDeps,
    private readonly callbacks: SessionCallbacks,
  ) {
    this.cols = size.cols;
    this.rows = size.rows;
    this.link = new ReconnectingSocket(deps, {
      initialBackoffMs: INITIAL_BACKOFF_MS,
      maxBackoffMs: MAX_BACKOFF_MS,
      url: (ticket) => this.attemptUrl(ticket),
      onText: (text) => this.handleText(text),
      onBinary: (bytes) => this.handleOutput(bytes),
      onClose: (reason) => this.handleClose(reason),
      onState: (state) => this.setState(state.kind === "failed" ? { kind: "failed", code: "ticket", message: state.message } : state),
    });
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
    if (this.link.running) return;
    this.offset = null;
    this.link.start();
  }

  /** Start over as a fresh attach (after an exit or a failure). */
  restart(): void {
    this.dispose();
    this.start();
  }

  /** Stop for good: close the socket, cancel any pending reconnect. */
  dispose(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.link.dispose();
  }

  /** Send keystrokes as UTF-8; kept (bounded) while disconnected and sent on `ready`. */
  sendInput(data: string): void {
    this.sendBytes(this.encoder.encode(data));
  }

  sendBytes(bytes: Bytes): void {
    if (bytes.length === 0 || this.state.kind === "exited" || !this.link.running) return;
    const socket = this.link.socket;
    if (socket && this.ready) {
      socket.send(bytes);
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

  /** A new attempt, its ticket in hand: resume from what the screen shows. */
  private attemptUrl(ticket: string): string {
    this.ready = false;
    this.lastServerError = null;
    this.sinceOfAttempt = this.offset ?? undefined;
    const url = this.deps.buildUrl({
      ticket,
      session: this.name,
      cols: this.cols,
      rows: this.rows,
      since: this.sinceOfAttempt,
    });
    this.sentSize = `${this.cols}x${this.rows}`;
    return url;
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
      case "starting":
        if (!this.ready) this.setState({ kind: "starting" });
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
    this.link.resetBackoff();
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
    this.link.halt(); // ignore whatever the old socket still says
    this.pending = [];
    this.pendingBytes = 0;
    this.setState({ kind: "exited", code });
  }

  private handleClose(reason: string): void {
    this.ready = false;
    const error = this.lastServerError;
    if (error && FATAL_SERVER_CODES.has(error.code)) {
      this.fail(error.code, error.message);
      return;
    }
    this.link.reconnect(error?.message || reason);
  }

  private fail(code: string, message: string): void {
    this.link.halt();
    this.setState({ kind: "failed", code, message });
  }

  private sendSize(): void {
    const size = `${this.cols}x${this.rows}`;
    const socket = this.link.socket;
    if (!socket || !this.ready || size === this.sentSize) return;
    this.sentSize = size;
    socket.send(JSON.stringify({ type: "resize", cols: this.cols, rows: this.rows }));
  }

  private flushPending(): void {
    const queued = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const bytes of queued) this.link.socket?.send(bytes);
  }

  private setState(state: ConnectionState): void {
    this.state = state;
    this.callbacks.onState(state);
  }
}

/** `ws(s)://<this host>/api/projects/{id}/terminal?…`, as the contract spells it. */
export function terminalUrl(
  location: { protocol: string; host: string },
  projectId: string,
  params: ConnectParams,
  options: { readonly?: boolean } = {},
): string {
  const query = new URLSearchParams({
    ticket: params.ticket,
    session: params.session,
    cols: String(params.cols),
    rows: String(params.rows),
  });
  if (params.since !== undefined) query.set("since", String(params.since));
  if (options.readonly) query.set("readonly", "1");
  return projectSocketUrl(location, projectId, "terminal", query);
}
