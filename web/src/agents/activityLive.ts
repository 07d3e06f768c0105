/**
 * The live agent activity feed, without React: fetch an `agent-activity`
 * ticket, open `…/agents/activity/live?ticket=T`, and hand on each session
 * start or end the hub sends (`{event:"start"|"end", id, agent_id, …}`).
 * When the socket drops it connects again by itself with a fresh ticket,
 * backing off from 500 ms to 10 s (reset once a connection opens). Each open
 * calls `onOpen`, so the caller re-lists what it shows and misses nothing.
 * `mergeActivity` folds one event into a list, in place of its row.
 * Sockets, tickets and timers are injected so tests drive it with fakes.
 */
import type { AgentActivity } from "../api/types";
import type { Clock, SocketConnection, SocketFactory } from "../terminal/session";

export interface AgentSessionEvent {
  event: "start" | "end";
  session: AgentActivity;
}

export type LiveState =
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "reconnecting"; attempt: number; delayMs: number; reason: string }
  | { kind: "failed"; message: string }
  | { kind: "closed" };

export interface ActivityLiveDeps {
  getTicket(): Promise<string>;
  buildUrl(ticket: string): string;
  createSocket: SocketFactory;
  clock?: Clock;
  /** Ticket errors after which retrying cannot help (project gone, signed out). */
  isFatalTicketError?(error: unknown): boolean;
}

export interface ActivityLiveCallbacks {
  onEvent(event: AgentSessionEvent): void;
  /** A connection opened; `resumed` when an earlier one had (events may have been missed). */
  onOpen(info: { resumed: boolean }): void;
  onState?(state: LiveState): void;
}

export const LIVE_INITIAL_BACKOFF_MS = 500;
export const LIVE_MAX_BACKOFF_MS = 10_000;

const realClock: Clock = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

/** One text message as a session event, or null when it is not one. */
export function parseAgentSessionEvent(text: string): AgentSessionEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const m = value as Record<string, unknown>;
  if (m.event !== "start" && m.event !== "end") return null;
  const agentId = str(m.agent_id);
  const startedAt = str(m.started_at);
  if (agentId === null || startedAt === null) return null;
  const session: AgentActivity = {
    agent_id: agentId,
    started_at: startedAt,
    ended_at: str(m.ended_at),
    command: str(m.command),
    exit_code: typeof m.exit_code === "number" ? m.exit_code : null,
    interactive: m.interactive === true,
    session: str(m.session),
  };
  const id = str(m.id);
  if (id !== null) session.id = id;
  const name = str(m.agent_name);
  if (name !== null) session.agent_name = name;
  return { event: m.event, session };
}

function sameSession(a: AgentActivity, b: AgentActivity): boolean {
  if (a.id !== undefined && b.id !== undefined) return a.id === b.id;
  return a.agent_id === b.agent_id && a.started_at === b.started_at;
}

/**
 * `list` with `event` folded in: a known session is updated where it is (an
 * end never turns back into running), a new one goes to the top. Newest first,
 * at most `limit` rows. Returns the same array when nothing changed.
 */
export function mergeActivity(list: readonly AgentActivity[], event: AgentSessionEvent, limit = 50): AgentActivity[] {
  const incoming = event.session;
  const index = list.findIndex((a) => sameSession(a, incoming));
  const old = index >= 0 ? list[index] : undefined;
  if (old) {
    const merged: AgentActivity = {
      ...old,
      ...incoming,
      ended_at: incoming.ended_at ?? old.ended_at,
      exit_code: incoming.exit_code ?? old.exit_code,
      command: incoming.command ?? old.command,
      session: incoming.session ?? old.session,
    };
    const next = list.slice();
    next[index] = merged;
    return next;
  }
  const next = [incoming, ...list];
  // Keep newest first even when an event arrives late.
  next.sort((a, b) => b.started_at.localeCompare(a.started_at));
  return next.slice(0, limit);
}

export class ActivityLive {
  private readonly clock: Clock;
  private state: LiveState = { kind: "closed" };
  private socket: SocketConnection | null = null;
  private generation = 0;
  private timer: unknown = null;
  private attempt = 0;
  private everOpen = false;
  private stopped = true;

  constructor(
    private readonly deps: ActivityLiveDeps,
    private readonly callbacks: ActivityLiveCallbacks,
  ) {
    this.clock = deps.clock ?? realClock;
  }

  get connectionState(): LiveState {
    return this.state;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
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
    let ticket: string;
    try {
      ticket = await this.deps.getTicket();
    } catch (error) {
      if (generation !== this.generation || this.stopped) return;
      if (this.deps.isFatalTicketError?.(error)) this.setState({ kind: "failed", message: describe(error) });
      else this.scheduleReconnect(describe(error));
      return;
    }
    if (generation !== this.generation || this.stopped) return;
    const live = () => generation === this.generation && !this.stopped;
    try {
      this.socket = this.deps.createSocket(this.deps.buildUrl(ticket), {
        onOpen: () => {
          if (!live()) return;
          const resumed = this.everOpen;
          this.everOpen = true;
          this.attempt = 0;
          this.setState({ kind: "live" });
          this.callbacks.onOpen({ resumed });
        },
        onText: (text) => {
          if (!live()) return;
          const event = parseAgentSessionEvent(text);
          if (event) this.callbacks.onEvent(event);
        },
        onBinary: () => {},
        onClose: (code, reason) => {
          if (!live()) return;
          this.generation++; // whatever this socket still says is stale now
          this.socket = null;
          this.scheduleReconnect(reason || `connection closed (${code})`);
        },
      });
    } catch (error) {
      this.scheduleReconnect(describe(error));
    }
  }

  private scheduleReconnect(reason: string): void {
    this.closeSocket();
    this.cancelTimer();
    const delayMs = Math.min(LIVE_INITIAL_BACKOFF_MS * 2 ** this.attempt, LIVE_MAX_BACKOFF_MS);
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

  private setState(state: LiveState): void {
    this.state = state;
    this.callbacks.onState?.(state);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `ws(s)://<this host>/api/projects/{id}/agents/activity/live?ticket=T`. */
export function activityLiveUrl(location: { protocol: string; host: string }, projectId: string, ticket: string): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({ ticket });
  return `${scheme}//${location.host}/api/projects/${encodeURIComponent(projectId)}/agents/activity/live?${query}`;
}
