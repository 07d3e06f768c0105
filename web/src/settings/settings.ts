/**
 * The settings page's logic, kept apart from its components so it can be
 * tested without a DOM: what a session's client and an audit line read as,
 * the order sessions are listed in, what each form checks before it asks
 * the hub, and the small state machine every form on the page follows.
 */
import { ApiError } from "../api/client";
import type { AuditEntry, Session } from "../api/types";

// --- Forms ---------------------------------------------------------------

/** Where a form is: untouched, waiting for the hub, done (with what to say), or failed. */
export type FormState =
  | { kind: "idle" }
  | { kind: "busy" }
  | { kind: "done"; message: string }
  | { kind: "error"; message: string };

export type FormEvent =
  | { type: "submit" }
  | { type: "succeeded"; message: string }
  | { type: "failed"; error: unknown }
  /** A field changed: a finished or failed form goes back to idle. */
  | { type: "edited" };

export const IDLE: FormState = { kind: "idle" };

export function formReducer(state: FormState, event: FormEvent): FormState {
  switch (event.type) {
    case "submit":
      return { kind: "busy" };
    case "succeeded":
      return { kind: "done", message: event.message };
    case "failed":
      return { kind: "error", message: errorText(event.error) };
    case "edited":
      return state.kind === "busy" ? state : IDLE;
  }
}

/** What to tell the user about a failed request: the hub's own message where it sent one. */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 429) return `${sentence(error.message || "Too many attempts")} Wait a minute and try again.`;
    return sentence(error.message || "The request failed.");
  }
  return "Something went wrong. Try again.";
}

/** The hub's messages are lower-case fragments ("the current password is wrong"): make a sentence of one. */
export function sentence(message: string): string {
  const text = message.trim();
  if (!text) return text;
  const capital = text[0]!.toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

// --- What each form checks first -----------------------------------------

export const MIN_PASSWORD = 8;
export const MAX_DISPLAY_NAME = 100;

export function displayNameProblem(name: string): string | null {
  return [...name.trim()].length > MAX_DISPLAY_NAME ? `A name is at most ${MAX_DISPLAY_NAME} characters.` : null;
}

export function emailProblem(email: string, current: string): string | null {
  const e = email.trim();
  if (!e) return "Enter the new address.";
  if (!/^[^\s@]+@[^\s@]+$/.test(e)) return "Enter a valid email address.";
  if (e.toLowerCase() === current.toLowerCase()) return "This is already your address.";
  return null;
}

export interface PasswordChange {
  current: string;
  next: string;
  confirm: string;
}

/** The first thing wrong with a password change, or null (the hub still judges the strength). */
export function passwordChangeProblem({ current, next, confirm }: PasswordChange): string | null {
  if (!current) return "Enter your current password.";
  if ([...next].length < MIN_PASSWORD) return `The new password needs at least ${MIN_PASSWORD} characters.`;
  if (next === current) return "The new password is the same as the current one.";
  if (next !== confirm) return "The new passwords do not match.";
  return null;
}

/** Deleting needs the account's address typed out (case and spaces aside) and the password. */
export function deletionConfirmed(typed: string, email: string, password: string): boolean {
  return typed.trim().toLowerCase() === email.trim().toLowerCase() && email.trim() !== "" && password !== "";
}

// --- Sessions ------------------------------------------------------------

/** This device first, then the most recently used. */
export function sortSessions(sessions: readonly Session[]): Session[] {
  return [...sessions].sort((a, b) => {
    if (a.current !== b.current) return a.current ? -1 : 1;
    return Date.parse(b.last_used_at) - Date.parse(a.last_used_at);
  });
}

/** The list once `id` is revoked. */
export function withoutSession(sessions: readonly Session[], id: string): Session[] {
  return sessions.filter((s) => s.id !== id);
}

/** The list once every other session is signed out. */
export function onlyThisDevice(sessions: readonly Session[]): Session[] {
  return sessions.filter((s) => s.current);
}

const BROWSERS: [RegExp, string][] = [
  [/Edg(?:e|A|iOS)?\/(\d+)/, "Edge"],
  [/OPR\/(\d+)/, "Opera"],
  [/Firefox\/(\d+)/, "Firefox"],
  [/HeadlessChrome\/(\d+)/, "Headless Chrome"],
  [/(?:Chrome|CriOS)\/(\d+)/, "Chrome"],
  [/Version\/(\d+)[^ ]* (?:Mobile\/\S+ )?Safari\//, "Safari"],
];

const SYSTEMS: [RegExp, string][] = [
  [/Android/, "Android"],
  [/iPhone|iPad|iPod/, "iOS"],
  [/CrOS/, "ChromeOS"],
  [/Mac OS X|Macintosh/, "macOS"],
  [/Windows/, "Windows"],
  [/Linux|X11/, "Linux"],
];

/**
 * A session's client as a person reads it: "Firefox 128 on Linux" for a
 * browser, the program's name for a tool ("curl"), "Unknown client" for none.
 */
export function describeClient(userAgent: string): string {
  const ua = userAgent.trim();
  if (!ua) return "Unknown client";
  const system = SYSTEMS.find(([re]) => re.test(ua))?.[1];
  for (const [re, name] of BROWSERS) {
    const m = re.exec(ua);
    if (m) return system ? `${name} ${m[1]} on ${system}` : `${name} ${m[1]}`;
  }
  // A tool: its product token without the version ("curl/8.5.0" → "curl").
  const product = /^([A-Za-z][\w.-]*)\//.exec(ua)?.[1];
  if (product && product !== "Mozilla") return product;
  return ua.length > 60 ? `${ua.slice(0, 57)}…` : ua;
}

// --- Audit log -----------------------------------------------------------

const AUDIT_LABELS: Record<string, string> = {
  signed_up: "Account created",
  signed_in: "Signed in",
  sign_in_failed: "Failed sign-in",
  password_changed: "Password changed",
  password_reset_requested: "Password reset requested",
  password_reset: "Password reset",
  email_verified: "Email verified",
  email_change_requested: "Email change requested",
  email_changed: "Email changed",
  session_revoked: "Session signed out",
  sessions_revoked: "Other sessions signed out",
  agent_key_created: "Agent key created",
  agent_key_revoked: "Agent key revoked",
  project_deleted: "Project deleted",
  plan_changed: "Plan changed",
};

/** An audit action's name as a person reads it; an action this app does not know yet is spelled out. */
export function auditLabel(action: string): string {
  const known = AUDIT_LABELS[action];
  if (known) return known;
  const words = action.replace(/[_-]+/g, " ").trim();
  return words ? words[0]!.toUpperCase() + words.slice(1) : "Unknown action";
}

/** Whether an action is one a user should look at twice (a failure, a lost session, a new key). */
export function auditNotable(action: string): boolean {
  return action === "sign_in_failed" || action === "password_reset_requested" || action === "agent_key_created";
}

/** Newest first, as the hub sends them (sorted again in case one arrives out of order). */
export function sortAudit(entries: readonly AuditEntry[]): AuditEntry[] {
  return [...entries].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
}

/** The detail line under an audit entry: what it was about, from where, with what. */
export function auditDetail(entry: AuditEntry): string {
  const detail = entry.action === "signed_in" || entry.action === "signed_up" || entry.action === "sign_in_failed"
    ? describeClientOrEmpty(entry.detail)
    : entry.detail;
  return [detail, entry.address].filter((part) => part.trim() !== "").join(" · ");
}

function describeClientOrEmpty(ua: string): string {
  return ua.trim() ? describeClient(ua) : "";
}
