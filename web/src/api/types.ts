/**
 * The shapes of the hub's HTTP contract (docs/contract/API.md), as the
 * hub's OpenAPI document describes them: each type here is an alias of a
 * schema generated into openapi.d.ts (`npm run gen:api`), so a change on
 * the hub that the app doesn't follow fails `npm run typecheck`. Field
 * names are the contract's, snake_case included.
 */

import type { components } from "./openapi";

type Schemas = components["schemas"];

/** An id as the hub writes it (a UUID string). */
export type Id = string;
/** An RFC 3339 UTC timestamp. */
export type Timestamp = string;

export type User = Schemas["UserRef"];

/** What signup and login answer. */
export type AuthResponse = Schemas["AuthResponse"];

export type RefreshResponse = Schemas["RefreshResponse"];

export type Session = Schemas["SessionInfo"];

export type AuditEntry = Schemas["AuditEntry"];

// Hand-kept: the app's fixtures read this shape more loosely than the
// schema; types.check.ts checks that it accepts what the hub sends.
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
export type PaidPlan = Schemas["PaidPlan"];

export type Subscription = Schemas["Subscription"];

/** Where `POST /api/billing/checkout` and `/portal` send the browser. */
export type BillingRedirect = Schemas["Redirect"];

export type ProjectStatus = Schemas["ProjectStatus"];

export const PROJECT_STATUSES: readonly ProjectStatus[] = [
  "stopped",
  "starting",
  "running",
  "stopping",
  "error",
];

// Hand-kept: the app's fixtures read this shape more loosely than the
// schema; types.check.ts checks that it accepts what the hub sends.
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

export type CreateProjectRequest = Schemas["NewProject"];

export type UpdateProjectRequest = Schemas["ProjectPatch"];

export type TicketPurpose = Schemas["TicketPurpose"];

export type Ticket = Schemas["Ticket"];

// Hand-kept: the app's fixtures read this shape more loosely than the
// schema; types.check.ts checks that it accepts what the hub sends.
export interface TerminalInfo {
  session: string;
  command: string;
  created_at: Timestamp | null;
  viewers: number;
  exited: boolean;
}

/** The body of every error answer: `{"error": {"code", "message", ...}}`. */
export type ErrorBody = Schemas["ErrorBody"];

/** Text messages the terminal WebSocket sends. */
export type TerminalServerMessage =
  | { type: "ready"; session: string; start: number; gap: boolean }
  | { type: "exit"; code: number }
  | { type: "error"; code: string; message: string };

/** Text messages the client sends on the terminal WebSocket. */
export type TerminalResizeMessage = Schemas["TerminalClientMessage"];

/** An event from `GET /api/projects/{id}/events`. */
export type ProjectEvent =
  | { type: "status"; project: Project }
  | { type: "other"; event: string; data: string };

// --- Files -------------------------------------------------------------

/** What a directory entry or a stat is; `other` covers sockets, FIFOs and devices. */
export type FileKind = Schemas["FileKind"];

/** One entry of a folder listing. */
export type DirEntry = Schemas["DirEntry"];

/** `GET …/files?path=<folder>`. */
export type DirListing = Schemas["DirListing"] & { type: "dir" };

/** `GET …/files/stat`, and the body of a successful PUT. `etag` is unquoted here. */
export type FileStat = Schemas["FileStat"];

/** Text messages the files watch WebSocket sends; paths relative to the project home. */
export type WatchEventType = Schemas["WatchEventKind"];

// The app's own shape: files/watch.ts builds it from each message (the
// schema's `WatchEvent`), filling in a missing path.
export interface WatchEvent {
  type: WatchEventType;
  path: string;
  /** For `renamed`: where it was. */
  from?: string;
  /** For `error`: what went wrong. */
  message?: string;
}

// --- Ports -------------------------------------------------------------

export type PortVisibility = Schemas["PortVisibility"];

/** A port listening in the VM, from `GET …/ports` or a `ports` event. */
export type ForwardedPort = Schemas["Port"];

/** `POST …/ports/{port}/open`: a one-time link that lets this browser into a private preview. */
// Hand-kept: the app's fixtures read this shape more loosely than the
// schema; types.check.ts checks that it accepts what the hub sends.
export interface PreviewLink {
  url: string;
  expires_at?: Timestamp;
}

// --- Agents ------------------------------------------------------------

/** An SSH key that lets an agent into the project's VM. */
// Hand-kept: the app's fixtures read this shape more loosely than the
// schema; types.check.ts checks that it accepts what the hub sends.
export interface Agent {
  id: Id;
  name: string;
  public_key: string;
  fingerprint: string;
  created_at: Timestamp;
  last_used_at: Timestamp | null;
  expires_at: Timestamp | null;
}

export type CreateAgentRequest = Schemas["NewAgent"];

/** How to reach the VM with an agent key. */
// Hand-kept: the app's fixtures read this shape more loosely than the
// schema; types.check.ts checks that it accepts what the hub sends.
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
// Hand-kept: the app's fixtures read this shape more loosely than the
// schema; types.check.ts checks that it accepts what the hub sends.
export interface CreateAgentResponse {
  agent: Agent;
  private_key?: string | null;
  ssh: AgentSsh;
}

/** One command or session an agent ran. */
// Hand-kept: the app's fixtures read this shape more loosely than the
// schema; types.check.ts checks that it accepts what the hub sends.
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
// Hand-kept: the app's fixtures read this shape more loosely than the
// schema; types.check.ts checks that it accepts what the hub sends.
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
export type PlanLimits = Schemas["PlanLimits"];

/** Why a VM is awake and when it stops (`GET /api/projects/{id}/activity`). */
// Hand-kept: the app's fixtures read this shape more loosely than the
// schema; types.check.ts checks that it accepts what the hub sends.
export interface Activity {
  status: ProjectStatus;
  idle_timeout_s: number;
  /** When it stops if nothing happens; null when not running. */
  idle_stop_at: Timestamp | null;
  awake_because: string[];
}
