/**
 * A router just big enough for four routes: the URL is the state, changed
 * with the History API and read through `useLocation`. Kept dependency-free
 * so the sign-in page's first load stays small. The hub serves the pages
 * outside the app (the landing page at `/`, the docs at `/docs`), which are
 * reached with a page load instead.
 */
import { useSyncExternalStore } from "react";

const listeners = new Set<() => void>();

function emit(): void {
  for (const listener of listeners) listener();
}

if (typeof window !== "undefined") {
  window.addEventListener("popstate", emit);
}

/** Go to an in-app path (`/p/123?x=1`); `replace` leaves no history entry. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (typeof window === "undefined") return;
  const current = window.location.pathname + window.location.search;
  if (to === current) return;
  if (options.replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  emit();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function snapshot(): string {
  return window.location.pathname + window.location.search;
}

export interface AppLocation {
  pathname: string;
  search: URLSearchParams;
  /** pathname + search, as it was typed. */
  href: string;
}

export function useLocation(): AppLocation {
  const href = useSyncExternalStore(subscribe, snapshot);
  const url = new URL(href, "http://app");
  return { pathname: url.pathname, search: url.searchParams, href };
}

/** The projects page: where a signed-in user starts (`/` is the hub's landing page). */
export const PROJECTS = "/projects";

/** The path to come back to after signing in: same-origin paths only. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return PROJECTS;
  return next;
}

/** The account's settings, and the pages a mailed link or "Forgot password?" opens. */
export const SETTINGS = "/settings";
const ACCOUNT_PAGES = [SETTINGS, "/forgot-password", "/reset-password", "/verify-email", "/account-deleted"];

/** Whether the app itself draws `path` (else the hub serves it: the landing page, the docs, preview sign-in). */
export function isAppPath(path: string): boolean {
  const pathname = new URL(path, "http://app").pathname;
  if (ACCOUNT_PAGES.includes(pathname)) return true;
  return pathname === PROJECTS || pathname === "/signin" || pathname === "/signup" || /^\/p\/[^/]+\/?$/.test(pathname);
}

/** Go to `to`: inside the app without a page load, elsewhere on the hub with one. */
export function go(to: string, options: { replace?: boolean } = {}): void {
  if (isAppPath(to)) navigate(to, options);
  else if (options.replace) window.location.replace(to);
  else window.location.assign(to);
}
