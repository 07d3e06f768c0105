/**
 * Where the access token lives between page loads: one localStorage entry
 * holding the token, its expiry and the signed-in user. React subscribes to
 * it, so signing out in one tab (or a 401 anywhere) signs out every view.
 */
import type { User } from "./types";

/** The subset of `Storage` the store needs, so tests can pass a Map. */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface StoredAuth {
  token: string;
  expiresAt: string;
  user: User;
  /** Renews the access token (rotated on each use); absent in old entries. */
  refreshToken?: string;
}

const KEY = "aether.auth";

export class TokenStore {
  private readonly listeners = new Set<() => void>();
  private cached: StoredAuth | null | undefined;

  constructor(
    private readonly storage: KeyValueStorage | null,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The stored sign-in, or null when absent, unreadable, or expired with
   * no refresh token to renew it.
   */
  get(): StoredAuth | null {
    if (this.cached === undefined) this.cached = this.read();
    const auth = this.cached;
    if (auth && !auth.refreshToken && Date.parse(auth.expiresAt) <= this.now()) return null;
    return auth;
  }

  /** Whether the access token expires within `skewMs` (and can be renewed). */
  needsRefresh(skewMs: number): boolean {
    const auth = this.get();
    return !!auth?.refreshToken && Date.parse(auth.expiresAt) - skewMs <= this.now();
  }

  /** Re-reads the entry (another tab may have renewed the tokens). */
  fresh(): StoredAuth | null {
    this.cached = this.read();
    return this.get();
  }

  token(): string | null {
    return this.get()?.token ?? null;
  }

  set(auth: StoredAuth): void {
    this.storage?.setItem(KEY, JSON.stringify(auth));
    this.cached = auth;
    this.emit();
  }

  clear(): void {
    this.storage?.removeItem(KEY);
    if (this.cached === null) return;
    this.cached = null;
    this.emit();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called when another tab changed the entry (the `storage` event). */
  reload(): void {
    this.cached = undefined;
    this.emit();
  }

  private emit(): void {
    for (const listener of this.listeners) listener();
  }

  private read(): StoredAuth | null {
    const raw = this.storage?.getItem(KEY);
    if (!raw) return null;
    try {
      const value: unknown = JSON.parse(raw);
      if (isStoredAuth(value)) return value;
    } catch {
      // fall through: a corrupt entry is the same as none
    }
    this.storage?.removeItem(KEY);
    return null;
  }
}

function isStoredAuth(value: unknown): value is StoredAuth {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  const user = v.user as Record<string, unknown> | undefined;
  return (
    typeof v.token === "string" &&
    typeof v.expiresAt === "string" &&
    (v.refreshToken === undefined || typeof v.refreshToken === "string") &&
    typeof user === "object" &&
    user !== null &&
    typeof user.email === "string" &&
    typeof user.id === "string"
  );
}

function browserStorage(): KeyValueStorage | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null; // storage disabled by the browser
  }
}

/** The app's one token store. */
export const tokenStore = new TokenStore(browserStorage());

if (typeof window !== "undefined") {
  window.addEventListener("storage", (event) => {
    if (event.key === KEY || event.key === null) tokenStore.reload();
  });
}
