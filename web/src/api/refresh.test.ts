import { describe, expect, it, vi } from "vitest";
import { MapStorage } from "./mapStorage.test-helper";
import { ApiClient, ApiError } from "./client";
import { TokenStore } from "./token";

const NOW = Date.parse("2030-01-01T00:00:00Z");
const SOON = "2030-01-01T00:00:10Z"; // within the refresh skew
const LATER = "2030-01-01T00:15:00Z";

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function setup(expiresAt: string, respond: (url: string, init: RequestInit) => Response) {
  const tokens = new TokenStore(new MapStorage(), () => NOW);
  tokens.set({ token: "old", expiresAt, user: { id: "u1", email: "a@b.c" }, refreshToken: "r1" });
  const calls: { url: string; auth: string | undefined; body: string | undefined }[] = [];
  const onUnauthenticated = vi.fn();
  const client = new ApiClient({
    tokens,
    onUnauthenticated,
    fetch: async (input, init) => {
      const url = String(input);
      const headers = (init?.headers ?? {}) as Record<string, string>;
      calls.push({ url, auth: headers.Authorization, body: init?.body as string | undefined });
      return respond(url, init ?? {});
    },
  });
  return { client, tokens, calls, onUnauthenticated };
}

const renewed = { access_token: "new", expires_at: LATER, refresh_token: "r2" };

describe("refreshing the access token", () => {
  it("renews a token about to lapse before the request, once for concurrent requests", async () => {
    const t = setup(SOON, (url) => (url === "/api/auth/refresh" ? json(200, renewed) : json(200, [])));
    await Promise.all([t.client.listProjects(), t.client.listProjects()]);
    const refreshes = t.calls.filter((c) => c.url === "/api/auth/refresh");
    expect(refreshes).toHaveLength(1);
    expect(JSON.parse(refreshes[0]?.body ?? "{}")).toEqual({ refresh_token: "r1" });
    expect(t.calls.filter((c) => c.url === "/api/projects").map((c) => c.auth)).toEqual(["Bearer new", "Bearer new"]);
    expect(t.tokens.get()).toMatchObject({ token: "new", refreshToken: "r2", expiresAt: LATER });
  });

  it("renews and retries once on a 401", async () => {
    let first = true;
    const t = setup(LATER, (url) => {
      if (url === "/api/auth/refresh") return json(200, renewed);
      if (first) {
        first = false;
        return json(401, { error: { code: "unauthenticated", message: "expired" } });
      }
      return json(200, []);
    });
    await expect(t.client.listProjects()).resolves.toEqual([]);
    expect(t.calls.map((c) => c.auth)).toEqual(["Bearer old", undefined, "Bearer new"]);
    expect(t.onUnauthenticated).not.toHaveBeenCalled();
  });

  it("signs out when the session is over", async () => {
    const t = setup(LATER, () => json(401, { error: { code: "unauthenticated", message: "session ended" } }));
    const error = await t.client.listProjects().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(401);
    expect(t.tokens.get()).toBeNull();
    expect(t.onUnauthenticated).toHaveBeenCalledTimes(1);
    expect(t.calls.filter((c) => c.url === "/api/auth/refresh")).toHaveLength(1);
  });

  it("keeps an expired sign-in that a refresh token can renew", () => {
    const tokens = new TokenStore(new MapStorage(), () => NOW);
    tokens.set({ token: "t", expiresAt: "2029-12-31T00:00:00Z", user: { id: "u", email: "a@b.c" }, refreshToken: "r" });
    expect(tokens.get()).not.toBeNull();
    expect(tokens.needsRefresh(0)).toBe(true);
    tokens.set({ token: "t", expiresAt: "2029-12-31T00:00:00Z", user: { id: "u", email: "a@b.c" } });
    expect(tokens.get()).toBeNull();
  });
});
