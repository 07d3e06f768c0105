/**
 * The files watch connection, without React: fetch a `watch` ticket, open
 * `…/files/watch?ticket=T&path=P`, hand each event on, and when the socket
 * drops (or the hub sends `error`) connect again by itself, backing off from
 * 500 ms to 10 s. The backoff resets only once a connection says `ready`, so
 * a hub that accepts and drops at once is not hammered. After a reconnect,
 * `onReady` says `resumed`: events may have been missed meanwhile, and the
 * caller lists again what it shows. The reconnecting itself is
 * `live/reconnectingSocket.ts`; sockets, tickets and timers are injected.
 */
import type { WatchEvent, WatchEventType } from "../api/types";
import { projectSocketUrl, ReconnectingSocket, type ReconnectState, type SocketDeps } from "../live/reconnectingSocket";

export type WatchState = ReconnectState | { kind: "live" };

export interface WatchDeps extends SocketDeps {
  buildUrl(ticket: string): string;
}

export interface WatchCallbacks {
  onEvent(event: WatchEvent): void;
  onReady(info: { resumed: boolean }): void;
  onState(state: WatchState): void;
}

export const WATCH_INITIAL_BACKOFF_MS = 500;
export const WATCH_MAX_BACKOFF_MS = 10_000;

const EVENT_TYPES: readonly WatchEventType[] = ["ready", "created", "modified", "removed", "renamed", "resync", "error"];

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
  private readonly link: ReconnectingSocket;
  private state: WatchState = { kind: "closed" };
  private everReady = false;
  private lastError: string | null = null;

  constructor(
    deps: WatchDeps,
    private readonly callbacks: WatchCallbacks,
  ) {
    this.link = new ReconnectingSocket(deps, {
      initialBackoffMs: WATCH_INITIAL_BACKOFF_MS,
      maxBackoffMs: WATCH_MAX_BACKOFF_MS,
      url: (ticket) => {
        this.lastError = null;
        return deps.buildUrl(ticket);
      },
      onText: (text) => this.handleText(text),
      onClose: (reason) => this.link.reconnect(this.lastError ?? reason),
      onState: (state) => this.setState(state),
    });
  }

  get connectionState(): WatchState {
    return this.state;
  }

  start(): void {
    this.link.start();
  }

  /** Connect again now (e.g. a "Retry" after a failure), keeping `resumed` semantics. */
  retry(): void {
    this.link.retry();
  }

  dispose(): void {
    this.link.dispose();
  }

  private handleText(text: string): void {
    const event = parseWatchEvent(text);
    if (!event) return;
    switch (event.type) {
      case "ready": {
        const resumed = this.everReady;
        this.everReady = true;
        this.link.resetBackoff();
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

  private setState(state: WatchState): void {
    this.state = state;
    this.callbacks.onState(state);
  }
}

/** `ws(s)://<this host>/api/projects/{id}/files/watch?ticket=T&path=P`. */
export function watchUrl(location: { protocol: string; host: string }, projectId: string, ticket: string, path: string): string {
  return projectSocketUrl(location, projectId, "files/watch", new URLSearchParams({ ticket, path }));
}
