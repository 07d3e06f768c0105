/**
 * The one typed client for the hub's HTTP contract (shared/design/API.md):
 * every request goes through `request`, which attaches the bearer token,
 * turns `{"error":{"code","message"}}` answers into `ApiError`, and on a 401
 * to a signed-in request forgets the token and sends the user to sign-in.
 */
import { navigate } from "../app/router";
import { SseParser } from "./sse";
import { tokenStore, type TokenStore } from "./token";
import {
  PROJECT_STATUSES,
  type Agent,
  type AgentActivity,
  type AuditEntry,
  type AuthResponse,
  type RefreshResponse,
  type Session,
  type BillingRedirect,
  type CreateAgentRequest,
  type CreateAgentResponse,
  type CreateProjectRequest,
  type DirListing,
  type ErrorBody,
  type FileStat,
  type ForwardedPort,
  type PaidPlan,
  type PortVisibility,
  type PreviewLink,
  type Profile,
  type Project,
  type ProjectEvent,
  type TerminalInfo,
  type Ticket,
  type TicketPurpose,
  type UpdateProjectRequest,
  type Usage,
  type Activity,
} from "./types";

/** A failed request: HTTP status (0 when the hub could not be reached), the contract's machine code, a message for a human. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Other fields of the error object, e.g. `status` on a 503. */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** True for the DOMException that fetch throws when its signal aborts. */
export function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}

const FALLBACK_CODES: Record<number, string> = {
  400: "invalid_request",
  401: "unauthenticated",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  412: "precondition_failed",
  413: "too_large",
  422: "limit_reached",
  429: "rate_limited",
  503: "unavailable",
  504: "timeout",
};

/** Renew an access token this long before it lapses. */
export const REFRESH_SKEW_MS = 30_000;

export const NETWORK_ERROR_MESSAGE = "Could not reach aether. Check your connection and try again.";

export interface ApiClientOptions {
  tokens: TokenStore;
  fetch?: typeof fetch;
  /** Called after a 401 on a signed-in request, once the token is cleared. */
  onUnauthenticated?: () => void;
  /** Prefix for request paths; empty = same origin. */
  baseUrl?: string;
}

interface RequestOptions {
  body?: unknown;
  /** Bytes sent as they are (instead of `body` as JSON). */
  bytes?: Uint8Array<ArrayBuffer>;
  headers?: Record<string, string>;
  query?: Record<string, string | number | boolean | undefined>;
  /** A `?path=` value already percent-encoded (see `PathRef`); goes before `query`. */
  path?: PathRef;
  signal?: AbortSignal;
  /** Send the bearer token (default true). */
  auth?: boolean;
  /**
   * The body carries the user's password, so a 401 may mean it is wrong
   * rather than that the session ended: the session is checked by renewing
   * it, and only a failed renewal signs out (the request is not repeated).
   */
  checksPassword?: boolean;
}

export class ApiClient {
  private readonly tokens: TokenStore;
  private readonly fetchImpl: typeof fetch;
  private readonly onUnauthenticated: () => void;
  private readonly baseUrl: string;
  private refreshing: Promise<boolean> | null = null;

  constructor(options: ApiClientOptions) {
    this.tokens = options.tokens;
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.onUnauthenticated = options.onUnauthenticated ?? (() => {});
    this.baseUrl = options.baseUrl ?? "";
  }

  // --- Auth -------------------------------------------------------------

  async signup(email: string, password: string): Promise<AuthResponse> {
    const res = await this.request<AuthResponse>("POST", "/api/auth/signup", {
      body: { email, password },
      auth: false,
    });
    this.remember(res);
    return res;
  }

  async login(email: string, password: string): Promise<AuthResponse> {
    const res = await this.request<AuthResponse>("POST", "/api/auth/login", {
      body: { email, password },
      auth: false,
    });
    this.remember(res);
    return res;
  }

  /** End the session on the hub (best effort) and forget the tokens. */
  signOut(): void {
    if (this.tokens.get()) void this.request("POST", "/api/auth/logout").catch(() => {});
    this.tokens.clear();
  }

  /**
   * Renew the access token with the refresh token, once for all callers at
   * a time (and across tabs where the browser has Web Locks: two tabs
   * presenting one refresh token would look like a stolen one). False when
   * the session is over.
   */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.withLock(() => this.doRefresh()).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    const before = this.tokens.get();
    const current = this.tokens.fresh();
    if (!current?.refreshToken) return false;
    // Another tab renewed them meanwhile.
    if (before && current.refreshToken !== before.refreshToken && !this.tokens.needsRefresh(REFRESH_SKEW_MS)) return true;
    try {
      const res = await this.request<RefreshResponse>("POST", "/api/auth/refresh", {
        body: { refresh_token: current.refreshToken },
        auth: false,
      });
      this.tokens.set({ ...current, token: res.access_token, expiresAt: res.expires_at, refreshToken: res.refresh_token });
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return false;
      throw error;
    }
  }

  private async withLock<T>(f: () => Promise<T>): Promise<T> {
    const locks = typeof navigator === "undefined" ? undefined : (navigator as { locks?: LockManager }).locks;
    if (!locks) return f();
    return locks.request("aether.refresh", f);
  }

  // --- Account ----------------------------------------------------------

  sessions(signal?: AbortSignal): Promise<Session[]> {
    return this.request("GET", "/api/me/sessions", { signal });
  }

  revokeSession(id: string): Promise<void> {
    return this.request("DELETE", `/api/me/sessions/${encodeURIComponent(id)}`);
  }

  /** Sign out every session but this one. */
  revokeOtherSessions(): Promise<void> {
    return this.request("DELETE", "/api/me/sessions");
  }

  audit(signal?: AbortSignal): Promise<AuditEntry[]> {
    return this.request("GET", "/api/me/audit", { signal });
  }

  updateProfile(displayName: string): Promise<Profile> {
    return this.request("PATCH", "/api/me", { body: { display_name: displayName } });
  }

  changePassword(currentPassword: string, newPassword: string): Promise<void> {
    return this.request("POST", "/api/me/password", {
      body: { current_password: currentPassword, new_password: newPassword },
      checksPassword: true,
    });
  }

  /** Mail a confirmation link to `email`; the address changes when it is followed. */
  changeEmail(email: string, password: string): Promise<void> {
    return this.request("POST", "/api/me/email", { body: { email, password }, checksPassword: true });
  }

  resendVerification(): Promise<void> {
    return this.request("POST", "/api/me/verify-email");
  }

  verifyEmail(token: string): Promise<{ email_verified: boolean; email: string }> {
    return this.request("POST", "/api/auth/verify-email", { body: { token }, auth: false });
  }

  requestPasswordReset(email: string): Promise<void> {
    return this.request("POST", "/api/auth/password-reset", { body: { email }, auth: false });
  }

  async confirmPasswordReset(token: string, password: string): Promise<AuthResponse> {
    const res = await this.request<AuthResponse>("POST", "/api/auth/password-reset/confirm", {
      body: { token, password },
      auth: false,
    });
    this.remember(res);
    return res;
  }

  async deleteAccount(password: string): Promise<void> {
    await this.request("DELETE", "/api/me", { body: { password }, checksPassword: true });
    this.tokens.clear();
  }

  me(signal?: AbortSignal): Promise<Profile> {
    return this.request("GET", "/api/me", { signal });
  }

  usage(signal?: AbortSignal): Promise<Usage> {
    return this.request("GET", "/api/billing/usage", { signal });
  }

  /** Why the project's VM is awake and when it stops if nothing happens. */
  activity(projectId: string, signal?: AbortSignal): Promise<Activity> {
    return this.request("GET", `/api/projects/${encodeURIComponent(projectId)}/activity`, { signal });
  }

  /** A Stripe Checkout page for `plan` (503 `unavailable` when billing is off). */
  checkout(plan: PaidPlan): Promise<BillingRedirect> {
    return this.request("POST", "/api/billing/checkout", { body: { plan } });
  }

  /** Stripe's customer portal (409 before a first checkout). */
  billingPortal(): Promise<BillingRedirect> {
    return this.request("POST", "/api/billing/portal", { body: {} });
  }

  updateMe(displayName: string): Promise<Profile> {
    return this.request("PATCH", "/api/me", { body: { display_name: displayName } });
  }

  createTicket(projectId: string, purpose: TicketPurpose): Promise<Ticket> {
    return this.request("POST", "/api/tickets", { body: { project_id: projectId, purpose } });
  }

  // --- Projects ---------------------------------------------------------

  listProjects(signal?: AbortSignal): Promise<Project[]> {
    return this.request("GET", "/api/projects", { signal });
  }

  getProject(id: string, signal?: AbortSignal): Promise<Project> {
    return this.request("GET", projectPath(id), { signal });
  }

  createProject(body: CreateProjectRequest): Promise<Project> {
    return this.request("POST", "/api/projects", { body });
  }

  updateProject(id: string, body: UpdateProjectRequest): Promise<Project> {
    return this.request("PATCH", projectPath(id), { body });
  }

  deleteProject(id: string): Promise<void> {
    return this.request("DELETE", projectPath(id));
  }

  /** 202 `starting`; with `wait`, 200 `running` once the tunnel is up (or 504 after 60 s). */
  startProject(id: string, options: { wait?: boolean; signal?: AbortSignal } = {}): Promise<Project> {
    return this.request("POST", `${projectPath(id)}/start`, {
      query: { wait: options.wait ? "true" : undefined },
      signal: options.signal,
    });
  }

  stopProject(id: string, options: { wait?: boolean; signal?: AbortSignal } = {}): Promise<Project> {
    return this.request("POST", `${projectPath(id)}/stop`, {
      query: { wait: options.wait ? "true" : undefined },
      signal: options.signal,
    });
  }

  /**
   * Read the project's event stream until it ends or `signal` aborts.
   * Resolves when the server closes the stream; rejects with ApiError.
   */
  async projectEvents(id: string, onEvent: (event: ProjectEvent) => void, signal: AbortSignal): Promise<void> {
    const res = await this.send("GET", `${projectPath(id)}/events`, { signal }, "text/event-stream");
    if (!res.body) return;
    const parser = new SseParser();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        for (const message of parser.push(value)) {
          const event = toProjectEvent(message.event, message.data);
          if (event) onEvent(event);
        }
      }
    } catch (error) {
      if (isAbort(error) || signal.aborted) return;
      throw new ApiError(0, "network_error", NETWORK_ERROR_MESSAGE);
    } finally {
      reader.releaseLock();
    }
  }

  // --- Terminals --------------------------------------------------------

  listTerminals(projectId: string, signal?: AbortSignal): Promise<TerminalInfo[]> {
    return this.request("GET", `${projectPath(projectId)}/terminals`, { signal });
  }

  deleteTerminal(projectId: string, session: string): Promise<void> {
    return this.request("DELETE", `${projectPath(projectId)}/terminals/${encodeURIComponent(session)}`);
  }

  // --- Ports ------------------------------------------------------------

  listPorts(projectId: string, signal?: AbortSignal): Promise<ForwardedPort[]> {
    return this.request("GET", `${projectPath(projectId)}/ports`, { signal });
  }

  setPortVisibility(projectId: string, port: number, visibility: PortVisibility): Promise<ForwardedPort> {
    return this.request("PATCH", `${projectPath(projectId)}/ports/${port}`, { body: { visibility } });
  }

  /** A one-time URL that sets the private-preview cookie on the preview host and redirects to `/`. */
  openPort(projectId: string, port: number): Promise<PreviewLink> {
    return this.request("POST", `${projectPath(projectId)}/ports/${port}/open`);
  }

  // --- Agents -----------------------------------------------------------

  listAgents(projectId: string, signal?: AbortSignal): Promise<Agent[]> {
    return this.request("GET", `${projectPath(projectId)}/agents`, { signal });
  }

  /** 201: the key, its SSH config, and the private key when the hub made it (shown once). */
  createAgent(projectId: string, body: CreateAgentRequest): Promise<CreateAgentResponse> {
    return this.request("POST", `${projectPath(projectId)}/agents`, { body });
  }

  deleteAgent(projectId: string, agentId: string): Promise<void> {
    return this.request("DELETE", `${projectPath(projectId)}/agents/${encodeURIComponent(agentId)}`);
  }

  agentActivity(projectId: string, options: { limit?: number; signal?: AbortSignal } = {}): Promise<AgentActivity[]> {
    return this.request("GET", `${projectPath(projectId)}/agents/activity`, { query: { limit: options.limit }, signal: options.signal });
  }

  // --- Files ------------------------------------------------------------

  /** A folder's entries, as the hub lists them (unsorted). */
  async listFolder(projectId: string, path: PathRef, signal?: AbortSignal): Promise<DirListing> {
    const listing = await this.request<DirListing | undefined>("GET", filesPath(projectId), { path, signal });
    if (!listing || listing.type !== "dir" || !Array.isArray(listing.entries)) {
      throw new ApiError(400, "not_a_folder", `“${pathText(path)}” is not a folder.`);
    }
    return listing;
  }

  statPath(projectId: string, path: PathRef, signal?: AbortSignal): Promise<FileStat> {
    return this.request("GET", `${filesPath(projectId)}/stat`, { path, signal });
  }

  /**
   * A file's bytes and ETag. When the hub says it is longer than `maxBytes`,
   * the body is left unread and `bytes` is null, so a huge file costs one
   * round trip and no download.
   */
  async readFile(projectId: string, path: PathRef, options: { maxBytes?: number; signal?: AbortSignal } = {}): Promise<FileContent> {
    const res = await this.send("GET", filesPath(projectId), { path, signal: options.signal }, "*/*");
    const etag = unquoteEtag(res.headers.get("ETag"));
    const declared = Number(res.headers.get("Content-Length") ?? Number.NaN);
    const contentType = res.headers.get("Content-Type") ?? "application/octet-stream";
    if (options.maxBytes !== undefined && Number.isFinite(declared) && declared > options.maxBytes) {
      await res.body?.cancel().catch(() => {});
      return { bytes: null, size: declared, etag, contentType };
    }
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (error) {
      if (isAbort(error)) throw error;
      throw new ApiError(0, "network_error", NETWORK_ERROR_MESSAGE);
    }
    return { bytes, size: bytes.length, etag, contentType };
  }

  /** A file's bytes as a Blob, for downloads (the bearer token rules out a plain link). */
  async fileBlob(projectId: string, path: PathRef, signal?: AbortSignal): Promise<Blob> {
    const res = await this.send("GET", filesPath(projectId), { path, signal }, "*/*");
    try {
      return await res.blob();
    } catch (error) {
      if (isAbort(error)) throw error;
      throw new ApiError(0, "network_error", NETWORK_ERROR_MESSAGE);
    }
  }

  /**
   * Write a file atomically. With `ifMatch`, the hub answers 412
   * `precondition_failed` when the file is no longer that version (or is gone).
   */
  async writeFile(
    projectId: string,
    path: PathRef,
    bytes: Uint8Array<ArrayBuffer>,
    options: { ifMatch?: string | null; signal?: AbortSignal } = {},
  ): Promise<WriteResult> {
    const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
    if (options.ifMatch) headers["If-Match"] = `"${options.ifMatch}"`;
    const res = await this.send("PUT", filesPath(projectId), { path, bytes, headers, signal: options.signal }, "application/json");
    const stat = (await res.json().catch(() => null)) as FileStat | null;
    const etag = unquoteEtag(res.headers.get("ETag")) ?? stat?.etag ?? null;
    if (!stat || !etag) throw new ApiError(res.status, "invalid_response", "The server sent an answer this app cannot read.");
    return { stat: { ...stat, etag }, created: res.status === 201 };
  }

  /** Create a folder and any missing parents. */
  makeFolder(projectId: string, path: string): Promise<FileStat> {
    return this.request("POST", `${filesPath(projectId)}/mkdir`, { body: { path } });
  }

  /** Delete a file or folder; a non-empty folder needs `recursive` (else 409). */
  deletePath(projectId: string, path: PathRef, options: { recursive?: boolean } = {}): Promise<void> {
    return this.request("DELETE", filesPath(projectId), { path, query: { recursive: options.recursive ? "true" : undefined } });
  }

  /** Move `from` to `to`; 409 when `to` exists and not `overwrite`. */
  renamePath(projectId: string, from: string, to: string, options: { overwrite?: boolean } = {}): Promise<FileStat> {
    return this.request("POST", `${filesPath(projectId)}/rename`, {
      body: options.overwrite ? { from, to, overwrite: true } : { from, to },
    });
  }

  // --- Plumbing ---------------------------------------------------------

  /** Send a request and decode its JSON answer (undefined for an empty one). */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, options, "application/json");
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    if (text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.status, "invalid_response", "The server sent an answer this app cannot read.");
    }
  }

  /** Send a request; resolves with the response when it is 2xx, else throws ApiError. */
  private async send(
    method: string,
    path: string,
    options: RequestOptions,
    accept: string,
    retried = false,
  ): Promise<Response> {
    // Renew an access token about to lapse before using it.
    if (options.auth !== false && this.tokens.needsRefresh(REFRESH_SKEW_MS)) await this.refresh().catch(() => false);
    const headers: Record<string, string> = { Accept: accept };
    const token = options.auth === false ? null : this.tokens.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    let body: string | Uint8Array<ArrayBuffer> | undefined;
    if (options.bytes !== undefined) {
      body = options.bytes;
    } else if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    Object.assign(headers, options.headers);

    let res: Response;
    try {
      res = await this.fetchImpl(this.baseUrl + path + queryString(options.query, options.path), {
        method,
        headers,
        body,
        signal: options.signal,
      });
    } catch (error) {
      if (isAbort(error)) throw error;
      throw new ApiError(0, "network_error", NETWORK_ERROR_MESSAGE);
    }
    if (res.ok) return res;

    const error = await readError(res);
    if (res.status === 401 && token && options.checksPassword) {
      if (this.tokens.get()?.refreshToken && (await this.refresh().catch(() => false))) throw error;
      this.tokens.clear();
      this.onUnauthenticated();
      throw error;
    }
    if (res.status === 401 && token) {
      // The access token may have lapsed (or been renewed in another tab):
      // renew once and try again before giving up on the session.
      if (!retried && this.tokens.get()?.refreshToken && (await this.refresh().catch(() => false))) {
        return this.send(method, path, options, accept, true);
      }
      this.tokens.clear();
      this.onUnauthenticated();
    }
    throw error;
  }

  private remember(res: AuthResponse): void {
    this.tokens.set({
      token: res.access_token,
      expiresAt: res.expires_at,
      user: res.user,
      ...(res.refresh_token ? { refreshToken: res.refresh_token } : {}),
    });
  }
}

function projectPath(id: string): string {
  return `/api/projects/${encodeURIComponent(id)}`;
}

function filesPath(id: string): string {
  return `${projectPath(id)}/files`;
}

function queryString(query: RequestOptions["query"], path?: PathRef): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined) params.set(key, String(value));
  }
  const parts = path === undefined ? [] : [`path=${encodePathRef(path)}`];
  const s = params.toString();
  if (s) parts.push(s);
  return parts.length > 0 ? `?${parts.join("&")}` : "";
}

/**
 * A path relative to the project home, as `?path=` wants it: plain text
 * (encoded here), or `{ encoded }` bytes already percent-encoded, for paths
 * with names that are not UTF-8 (`raw_name` in a listing).
 */
export type PathRef = string | { readonly encoded: string; readonly text: string };

/** The query value for a path; `/` stays readable. */
export function encodePathRef(path: PathRef): string {
  if (typeof path !== "string") return path.encoded;
  return path.split("/").map(encodeURIComponent).join("/");
}

/** The path as a person reads it. */
export function pathText(path: PathRef): string {
  return typeof path === "string" ? path : path.text;
}

/** `"abc"`, `W/"abc"` or `abc` → `abc`. */
export function unquoteEtag(value: string | null): string | null {
  if (!value) return null;
  const v = value.trim().replace(/^W\//, "");
  return v.replace(/^"(.*)"$/, "$1") || null;
}

/** A file's bytes (null when it was larger than asked for) and its version. */
export interface FileContent {
  bytes: Uint8Array<ArrayBuffer> | null;
  size: number;
  etag: string | null;
  contentType: string;
}

export interface WriteResult {
  stat: FileStat;
  /** 201: there was no file before. */
  created: boolean;
}

async function readError(res: Response): Promise<ApiError> {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // the body is lost; fall back to the status
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (isErrorBody(parsed)) {
      const { code, message, ...details } = parsed.error;
      return new ApiError(res.status, code, message, details);
    }
  } catch {
    // not JSON: e.g. a proxy's HTML page
  }
  const code = FALLBACK_CODES[res.status] ?? (res.status >= 500 ? "internal" : "http_error");
  const message =
    res.status >= 500
      ? `The server had a problem (HTTP ${res.status}). Try again in a moment.`
      : res.statusText || `Request failed (HTTP ${res.status}).`;
  return new ApiError(res.status, code, message);
}

function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== "object" || value === null) return false;
  const error = (value as { error?: unknown }).error;
  if (typeof error !== "object" || error === null) return false;
  const e = error as Record<string, unknown>;
  return typeof e.code === "string" && typeof e.message === "string";
}

/** Decode one SSE message; `status` events carry the whole Project. */
export function toProjectEvent(event: string, data: string): ProjectEvent | null {
  if (event !== "status") return { type: "other", event, data };
  try {
    const value: unknown = JSON.parse(data);
    if (isProject(value)) return { type: "status", project: value };
    // Tolerate a wrapped `{"project": {...}}` as well as the bare Project.
    const inner = typeof value === "object" && value !== null ? (value as { project?: unknown }).project : undefined;
    return isProject(inner) ? { type: "status", project: inner } : null;
  } catch {
    return null;
  }
}

function isProject(value: unknown): value is Project {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.id === "string" &&
    typeof p.name === "string" &&
    typeof p.status === "string" &&
    (PROJECT_STATUSES as readonly string[]).includes(p.status)
  );
}

/** Where to go after a 401: sign-in, then back to where the user was. */
function toSignIn(): void {
  if (typeof window === "undefined") return;
  const here = window.location.pathname + window.location.search;
  if (window.location.pathname === "/signin" || window.location.pathname === "/signup") return;
  navigate(`/signin?next=${encodeURIComponent(here)}`, { replace: true });
}

/** The app's client. */
export const api = new ApiClient({ tokens: tokenStore, onUnauthenticated: toSignIn });
