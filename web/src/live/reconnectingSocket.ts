/**
 * The ticketed WebSocket that comes back by itself, shared by the terminal,
 * the files watch and the live agent activity feed, so the reconnect rules
 * live in one place. Each attempt fetches a fresh single-use ticket (a fatal
 * ticket error ends in `failed`, any other one retries) and opens the socket
 * through the injected factory; when it drops, the next attempt waits a delay
 * that doubles from `initialBackoffMs` up to `maxBackoffMs`. A `generation`
 * counter turns whatever an older socket still says into a no-op. What the
 * messages mean, and when the backoff resets, is up to the owner. Sockets,
 * tickets and timers are injected so tests drive it with fakes.
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

/** What every ticketed socket is given. */
export interface SocketDeps {
  /** A fresh single-use ticket for each connection attempt. */
  getTicket(): Promise<string>;
  createSocket: SocketFactory;
  clock?: Clock;
  /** Ticket errors after which retrying cannot help (project gone, signed out). */
  isFatalTicketError?(error: unknown): boolean;
}

/** The states the link moves through by itself; owners add their own (e.g. `live`). */
export type ReconnectState =
  | { kind: "connecting" }
  | { kind: "reconnecting"; attempt: number; delayMs: number; reason: string }
  | { kind: "failed"; message: string }
  | { kind: "closed" };

export interface ReconnectOptions {
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** The URL of one attempt, once its ticket is in hand. */
  url(ticket: string): string;
  /** What the current socket says; an older socket's callbacks never get here. */
  onOpen?(): void;
  onText?(text: string): void;
  onBinary?(bytes: Bytes): void;
  /** The current socket closed (`reason`, or its close code). Without this hook the link reconnects. */
  onClose?(reason: string): void;
  onState(state: ReconnectState): void;
}

const realClock: Clock = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class ReconnectingSocket {
  private readonly clock: Clock;
  private current: SocketConnection | null = null;
  /** Bumped per attempt and per stop; stale socket callbacks compare and bail. */
  private generation = 0;
  private timer: unknown = null;
  private attempt = 0;
  private stopped = true;

  constructor(
    private readonly deps: SocketDeps,
    private readonly options: ReconnectOptions,
  ) {
    this.clock = deps.clock ?? realClock;
  }

  /** The socket of the current attempt, while there is one. */
  get socket(): SocketConnection | null {
    return this.current;
  }

  /** Between `start` and `dispose`, whatever the state. */
  get running(): boolean {
    return !this.stopped;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.begin();
  }

  /** Connect again now, with the backoff reset (e.g. a "Retry" after a failure). */
  retry(): void {
    if (this.stopped) return;
    this.halt();
    this.begin();
  }

  /** Stop for good: close the socket, cancel any pending reconnect. */
  dispose(): void {
    this.stopped = true;
    this.halt();
    this.options.onState({ kind: "closed" });
  }

  /** Close the socket and cancel any pending reconnect, staying started (after an exit or a failure). */
  halt(): void {
    this.generation++; // whatever the old socket still says is stale now
    this.cancelTimer();
    this.closeSocket();
  }

  /** A connection worked: the next drop waits the initial delay again. */
  resetBackoff(): void {
    this.attempt = 0;
  }

  /** Close the socket and connect again after the next backoff delay. */
  reconnect(reason: string): void {
    this.closeSocket();
    this.cancelTimer();
    const delayMs = Math.min(this.options.initialBackoffMs * 2 ** this.attempt, this.options.maxBackoffMs);
    this.attempt++;
    this.options.onState({ kind: "reconnecting", attempt: this.attempt, delayMs, reason });
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (!this.stopped) void this.connect();
    }, delayMs);
  }

  private begin(): void {
    this.attempt = 0;
    this.options.onState({ kind: "connecting" });
    void this.connect();
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    const live = () => generation === this.generation && !this.stopped;
    let ticket: string;
    try {
      ticket = await this.deps.getTicket();
    } catch (error) {
      if (!live()) return;
      if (this.deps.isFatalTicketError?.(error)) {
        this.halt();
        this.options.onState({ kind: "failed", message: describe(error) });
      } else {
        this.reconnect(describe(error));
      }
      return;
    }
    if (!live()) return;
    try {
      this.current = this.deps.createSocket(this.options.url(ticket), {
        onOpen: () => {
          if (live()) this.options.onOpen?.();
        },
        onText: (text) => {
          if (live()) this.options.onText?.(text);
        },
        onBinary: (bytes) => {
          if (live()) this.options.onBinary?.(bytes);
        },
        onClose: (code, reason) => {
          if (!live()) return;
          this.generation++; // whatever this socket still says is stale now
          this.current = null;
          const why = reason || `connection closed (${code})`;
          if (this.options.onClose) this.options.onClose(why);
          else this.reconnect(why);
        },
      });
    } catch (error) {
      this.reconnect(describe(error));
    }
  }

  private closeSocket(): void {
    const socket = this.current;
    this.current = null;
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

/** `ws(s)://<this host>/api/projects/{id}/<path>?<query>`: wss when the page is https. */
export function projectSocketUrl(location: { protocol: string; host: string }, projectId: string, path: string, query: URLSearchParams): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/projects/${encodeURIComponent(projectId)}/${path}?${query}`;
}
