/**
 * The files watch connection, without React: fetch a `watch` ticket, open
 * `…/files/watch?ticket=T&path=P`, hand each event on, and when the socket
 * drops (or the hub sends `error`) connect again by itself, backing off from
 * 500 ms to 10 s. The backoff resets only once a connection says `ready`, so
 * a hub that accepts and drops at once is not hammered. After a reconnect,
 * `onReady` says `resumed`: events may have been missed meanwhile, and the
 * caller lists again what it shows. Sockets, tickets and timers are injected.
 */
import type { WatchEvent, WatchEventType } from "../api/types";
import type { Clock, SocketConnection, SocketFactory } from "../terminal/session";

export type WatchState =
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "reconnecting"; attempt: number; delayMs: number; reason: string }
  | { kind: "failed"; message: string }
  | { kind: "closed" };

export interface WatchDeps {
  getTicket(): Promise<string>;
  buildUrl(ticket: string): string;
  createSocket: SocketFactory;
  clock?: Clock;
  /** Ticket errors after which retrying cannot help (project gone, signed out). */
  isFatalTicketError?(error: unknown): boolean;
}

export interface WatchCallbacks {
  onEvent(event: WatchEvent): void;
  onReady(info: { resumed: boolean }): void;
  onState(state: WatchState): void;
}

export const WATCH_INITIAL_BACKOFF_MS = 500;
export const WATCH_MAX_BACKOFF_MS = 10_000;

const EVENT_TYPES: readonly WatchEventType[] = ["ready", "created", "modified", "removed", "renamed", "resync", "error"];

const realClock: Clock = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** One text message as a WatchEvent, or null when it is not one. */
export function parseWatchEvent(text: string): WatchEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const m = value as Record<string, unknown>;
  if (typeof m.type !== "string" || !(EVENT_TYPES as readonly string[]).includes(m.type)) return null;
  const event: WatchEvent = { type: m.type as WatchEventType, path: typeof m.path === "string" ? m.path : "" };
  if (typeof m.from === "string") event.from = m.from;
  if (typeof m.message === "string") event.message = m.message;
  return event;
}

export class FileWatch {
  private readonly clock: Clock;
  private state: WatchState = { kind: "closed" };
  private socket: SocketConnection | null = null;
  private generation = 0;
  private timer: unknown = null;
  private attempt = 0;
  private everReady = false;
  private stopped = true;
  private lastError: string | null = null;

  constructor(
    private readonly deps: WatchDeps,
    private readonly callbacks: WatchCallbacks,
  ) {
    this.clock = deps.clock ?? realClock;
  }

  get connectionState(): WatchState {
    return this.state;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.setState({ kind: "connecting" });
    void this.connect();
  }

  /** Connect again now (e.g. a "Retry" after a failure), keeping `resumed` semantics. */
  retry(): void {
    if (this.stopped) return;
    this.generation++;
    this.cancelTimer();
    this.closeSocket();
    this.attempt = 0;
    this.setState({ kind: "connecting" });
    void this.connect();
  }

  dispose(): void {
    this.stopped = true;
    this.generation++;
    this.cancelTimer();
    this.closeSocket();
    this.setState({ kind: "closed" });
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.lastError = null;
    let ticket: string;
    try {
      ticket = await this.deps.getTicket();
    } catch (error) {
      if (generation !== this.generation || this.stopped) return;
      if (this.deps.isFatalTicketError?.(error)) {
        this.setState({ kind: "failed", message: describe(error) });
      } else {
        this.scheduleReconnect(describe(error));
      }
      return;
    }
    if (generation !== this.generation || this.stopped) return;
    const live = () => generation === this.generation && !this.stopped;
    try {
      this.socket = this.deps.createSocket(this.deps.buildUrl(ticket), {
        onOpen: () => {},
        onText: (text) => {
          if (live()) this.handleText(text);
        },
        onBinary: () => {},
        onClose: (code, reason) => {
          if (!live()) return;
          this.generation++; // whatever this socket still says is stale now
          this.socket = null;
          this.scheduleReconnect(this.lastError ?? (reason || `connection closed (${code})`));
        },
      });
    } catch (error) {
      this.scheduleReconnect(describe(error));
    }
  }

  private handleText(text: string): void {
    const event = parseWatchEvent(text);
    if (!event) return;
    switch (event.type) {
      case "ready": {
        const resumed = this.everReady;
        this.everReady = true;
        this.attempt = 0;
        this.setState({ kind: "live" });
        this.callbacks.onReady({ resumed });
        break;
      }
      case "error":
        // The hub closes the socket after an error; the close reconnects.
        this.lastError = event.message ?? "the watch stopped";
        break;
      default:
        this.callbacks.onEvent(event);
    }
  }

  private scheduleReconnect(reason: string): void {
    this.closeSocket();
    this.cancelTimer();
    const delayMs = Math.min(WATCH_INITIAL_BACKOFF_MS * 2 ** this.attempt, WATCH_MAX_BACKOFF_MS);
    this.attempt++;
    this.setState({ kind: "reconnecting", attempt: this.attempt, delayMs, reason });
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (!this.stopped) void this.connect();
    }, delayMs);
  }

  private closeSocket(): void {
    const socket = this.socket;
    this.socket = null;
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

  private setState(state: WatchState): void {
    this.state = state;
    this.callbacks.onState(state);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `ws(s)://<this host>/api/projects/{id}/files/watch?ticket=T&path=P`. */
export function watchUrl(location: { protocol: string; host: string }, projectId: string, ticket: string, path: string): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({ ticket, path });
  return `${scheme}//${location.host}/api/projects/${encodeURIComponent(projectId)}/files/watch?${query}`;
}
