/**
 * The shapes of the hub's HTTP contract (shared/design/API.md) that this
 * app uses: Auth, Projects, Tickets and Terminals. Field names are the
 * contract's, snake_case included, so a response is used as it arrives.
 */

/** An id as the hub writes it (a UUID string). */
export type Id = string;
/** An RFC 3339 UTC timestamp. */
export type Timestamp = string;

export interface User {
  id: Id;
  email: string;
}

/** What signup and login answer. */
export interface AuthResponse {
  user: User;
  access_token: string;
  expires_at: Timestamp;
  refresh_token?: string;
}

export interface RefreshResponse {
  access_token: string;
  expires_at: Timestamp;
  refresh_token: string;
}

export interface Session {
  id: string;
  created_at: Timestamp;
  last_used_at: Timestamp;
  address: string;
  client: string;
  current: boolean;
}

export interface AuditEntry {
  at: Timestamp;
  action: string;
  address: string;
  detail: string;
}

export interface Profile {
  id: Id;
  email: string;
  display_name: string | null;
  /** Whether the address was confirmed from a mailed link. */
  email_verified?: boolean;
  plan: string;
  /** Whether this hub takes payments (Stripe); "off" when it runs without keys. */
  billing?: "on" | "off";
  /** The user's Stripe subscription, once they have had one. */
  subscription?: Subscription | null;
}

/** A paid plan Checkout sells. */
export type PaidPlan = "pro" | "team";

export interface Subscription {
  /** The plan it pays for. */
  plan: PaidPlan | null;
  /** Stripe's status: active, trialing, past_due, unpaid, canceled, ... */
  status: string | null;
  current_period_end: Timestamp | null;
  /** Set while a failed payment's grace runs (the plan stays until then). */
  grace_until: Timestamp | null;
}

/** Where `POST /api/billing/checkout` and `/portal` send the browser. */
export interface BillingRedirect {
  url: string;
}

export type ProjectStatus = "stopped" | "starting" | "running" | "stopping" | "error";

export const PROJECT_STATUSES: readonly ProjectStatus[] = [
  "stopped",
  "starting",
  "running",
  "stopping",
  "error",
];

export interface Project {
  id: Id;
  name: string;
  description: string | null;
  status: ProjectStatus;
  /** Present when `status` is `error`. */
  error_message?: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  last_accessed_at: Timestamp | null;
  base_image: string | null;
  env_vars: Record<string, string> | null;
  /** Why the hub stopped it by itself (`idle`, `compute_limit`, `payment`), until it starts again. */
  stop_reason?: string | null;
  stopped_at?: Timestamp | null;
}

export interface CreateProjectRequest {
  name: string;
  description?: string;
  base_image?: string;
  env_vars?: Record<string, string>;
}

export interface UpdateProjectRequest {
  name?: string;
  description?: string;
  env_vars?: Record<string, string>;
}

export type TicketPurpose = "terminal" | "watch" | "agent-activity";

export interface Ticket {
  ticket: string;
  expires_at: Timestamp;
}

export interface TerminalInfo {
  session: string;
  command: string;
  created_at: Timestamp;
  viewers: number;
  exited: boolean;
}

/** The body of every error answer: `{"error": {"code", "message", ...}}`. */
export interface ErrorBody {
  error: {
    code: string;
    message: string;
    [extra: string]: unknown;
  };
}

/** Text messages the terminal WebSocket sends. */
export type TerminalServerMessage =
  | { type: "ready"; session: string; start: number; gap: boolean }
  | { type: "exit"; code: number }
  | { type: "error"; code: string; message: string };

/** Text messages the client sends on the terminal WebSocket. */
export interface TerminalResizeMessage {
  type: "resize";
  cols: number;
  rows: number;
}

/** An event from `GET /api/projects/{id}/events`. */
export type ProjectEvent =
  | { type: "status"; project: Project }
  | { type: "other"; event: string; data: string };

// --- Files -------------------------------------------------------------

/** What a directory entry or a stat is; `other` covers sockets, FIFOs and devices. */
export type FileKind = "file" | "dir" | "symlink" | "other";

/** One entry of a folder listing. */
export interface DirEntry {
  /** The name as UTF-8 (lossy for names that are not UTF-8). */
  name: string;
  type: FileKind;
  size: number;
  mtime: Timestamp | null;
  mode: number;
  /** Present only for names that are not UTF-8: the bytes percent-encoded, usable as-is in `?path=`. */
  raw_name?: string;
}

/** `GET …/files?path=<folder>`. */
export interface DirListing {
  type: "dir";
  /** Relative to the project home; "" is the home itself. */
  path: string;
  entries: DirEntry[];
}

/** `GET …/files/stat`, and the body of a successful PUT. `etag` is unquoted here. */
export interface FileStat {
  path: string;
  type: FileKind;
  size: number;
  mtime: Timestamp | null;
  mode: number;
  etag: string;
}

/** Text messages the files watch WebSocket sends; paths relative to the project home. */
export type WatchEventType = "ready" | "created" | "modified" | "removed" | "renamed" | "resync" | "error";

export interface WatchEvent {
  type: WatchEventType;
  path: string;
  /** For `renamed`: where it was. */
  from?: string;
  /** For `error`: what went wrong. */
  message?: string;
}

// --- Ports -------------------------------------------------------------

export type PortVisibility = "private" | "public";

/** A port listening in the VM, from `GET …/ports` or a `ports` event. */
export interface ForwardedPort {
  port: number;
  address?: string;
  process?: string | null;
  visibility: PortVisibility;
  preview_url: string;
}

/** `POST …/ports/{port}/open`: a one-time link that lets this browser into a private preview. */
export interface PreviewLink {
  url: string;
  expires_at?: Timestamp;
}

// --- Agents ------------------------------------------------------------

/** An SSH key that lets an agent into the project's VM. */
export interface Agent {
  id: Id;
  name: string;
  public_key: string;
  fingerprint: string;
  created_at: Timestamp;
  last_used_at: Timestamp | null;
  expires_at: Timestamp | null;
}

export interface CreateAgentRequest {
  name: string;
  public_key?: string;
  expires_in_days?: number;
}

/** How to reach the VM with an agent key. */
export interface AgentSsh {
  host?: string;
  port?: number;
  user?: string;
  target?: string;
  alias?: string;
  command?: string;
  config?: string;
  /** Where the config expects its files (under `~/.ssh/aether` unless asked otherwise). */
  config_file?: string;
  identity_file?: string;
  /** known_hosts lines for the jump host and the VM, so nothing is trusted on first use. */
  known_hosts?: string;
  known_hosts_file?: string;
}

/** `POST …/agents` (201): `private_key` only when the hub made the key, and never again. */
export interface CreateAgentResponse {
  agent: Agent;
  private_key?: string;
  ssh: AgentSsh;
}

/** One command or session an agent ran. */
export interface AgentActivity {
  /** The session's id (the hub sends it; older fixtures may lack it). */
  id?: Id;
  agent_id: Id;
  /** The key's name when the session ran (the key may be revoked since). */
  agent_name?: string;
  started_at: Timestamp;
  ended_at: Timestamp | null;
  command: string | null;
  exit_code: number | null;
  interactive: boolean;
  session: string | null;
}

/** What the caller has used of their plan this month (`GET /api/billing/usage`). */
export interface Usage {
  plan: string;
  period_start: Timestamp;
  period_end: Timestamp;
  compute_seconds_used: number;
  compute_seconds_limit: number;
  storage_gb_used: number;
  storage_gb_limit: number;
  projects_used: number;
  projects_limit: number;
  by_project: { project_id: Id; name?: string | null; compute_seconds: number }[];
  /** Compute by day (UTC), oldest first; days without any are left out. */
  by_day?: { date: string; compute_seconds: number }[];
  /** Every plan's limits, lowest first (what a higher plan gives). */
  plans?: PlanLimits[];
  /** The caller's plan's idle timeout. */
  idle_timeout_s?: number;
  /** One VM's size on the caller's plan. */
  machine?: { cpus: number; memory_mb: number };
}

/** One plan's limits (`plan_limits`). */
export interface PlanLimits {
  plan: string;
  rank: number;
  projects: number;
  compute_seconds: number;
  storage_gb: number;
  idle_timeout_s: number;
  cpus: number;
  memory_mb: number;
  pids: number;
}

/** Why a VM is awake and when it stops (`GET /api/projects/{id}/activity`). */
export interface Activity {
  status: ProjectStatus;
  idle_timeout_s: number;
  /** When it stops if nothing happens; null when not running. */
  idle_stop_at: Timestamp | null;
  awake_because: string[];
}
