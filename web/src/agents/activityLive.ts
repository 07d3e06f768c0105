/**
 * The live agent activity feed, without React: fetch an `agent-activity`
 * ticket, open `…/agents/activity/live?ticket=T`, and hand on each session
 * start or end the hub sends (`{event:"start"|"end", id, agent_id, …}`).
 * When the socket drops it connects again by itself with a fresh ticket,
 * backing off from 500 ms to 10 s (reset once a connection opens). Each open
 * calls `onOpen`, so the caller re-lists what it shows and misses nothing.
 * `mergeActivity` folds one event into a list, in place of its row.
 * The reconnecting itself is `live/reconnectingSocket.ts`; sockets, tickets
 * and timers are injected so tests drive it with fakes.
 */
import type { AgentActivity } from "../api/types";
import { projectSocketUrl, ReconnectingSocket, type ReconnectState, type SocketDeps } from "../live/reconnectingSocket";

export interface AgentSessionEvent {
  event: "start" | "end";
  session: AgentActivity;
}

export type LiveState = ReconnectState | { kind: "live" };

export interface ActivityLiveDeps extends SocketDeps {
  buildUrl(ticket: string): string;
}

export interface ActivityLiveCallbacks {
  onEvent(event: AgentSessionEvent): void;
  /** A connection opened; `resumed` when an earlier one had (events may have been missed). */
  onOpen(info: { resumed: boolean }): void;
  onState?(state: LiveState): void;
}

export const LIVE_INITIAL_BACKOFF_MS = 500;
export const LIVE_MAX_BACKOFF_MS = 10_000;

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
  private readonly link: ReconnectingSocket;
  private state: LiveState = { kind: "closed" };
  private everOpen = false;

  constructor(
    deps: ActivityLiveDeps,
    private readonly callbacks: ActivityLiveCallbacks,
  ) {
    this.link = new ReconnectingSocket(deps, {
      initialBackoffMs: LIVE_INITIAL_BACKOFF_MS,
      maxBackoffMs: LIVE_MAX_BACKOFF_MS,
      url: (ticket) => deps.buildUrl(ticket),
      onOpen: () => {
        const resumed = this.everOpen;
        this.everOpen = true;
        this.link.resetBackoff();
        this.setState({ kind: "live" });
        this.callbacks.onOpen({ resumed });
      },
      onText: (text) => {
        const event = parseAgentSessionEvent(text);
        if (event) this.callbacks.onEvent(event);
      },
      onState: (state) => this.setState(state),
    });
  }

  get connectionState(): LiveState {
    return this.state;
  }

  start(): void {
    this.link.start();
  }

  dispose(): void {
    this.link.dispose();
  }

  private setState(state: LiveState): void {
    this.state = state;
    this.callbacks.onState?.(state);
  }
}

/** `ws(s)://<this host>/api/projects/{id}/agents/activity/live?ticket=T`. */
export function activityLiveUrl(location: { protocol: string; host: string }, projectId: string, ticket: string): string {
  return projectSocketUrl(location, projectId, "agents/activity/live", new URLSearchParams({ ticket }));
}
