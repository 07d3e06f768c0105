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
}

export interface Profile {
  id: Id;
  email: string;
  display_name: string | null;
  plan: string;
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
