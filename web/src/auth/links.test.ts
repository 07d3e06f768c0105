import { describe, expect, it } from "vitest";
import { MapStorage } from "../api/mapStorage.test-helper";
import { ApiClient, ApiError } from "../api/client";
import { TokenStore } from "../api/token";
import { linkFailure, linkToken, newPasswordProblem, redeemOnce } from "./links";

function client(respond: (url: string, init: RequestInit) => Response) {
  const tokens = new TokenStore(new MapStorage());
  const calls: { url: string; init: RequestInit }[] = [];
  const api = new ApiClient({
    tokens,
    fetch: (input, init = {}) => {
      calls.push({ url: String(input), init });
      return Promise.resolve(respond(String(input), init));
    },
  });
  return { api, tokens, calls };
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

describe("a mailed link", () => {
  it("is redeemed once per page however often the page asks", async () => {
    const { api, calls } = client(() => json(200, { email_verified: true, email: "a@b.c" }));
    const first = redeemOnce("tok-1", (t) => api.verifyEmail(t));
    const second = redeemOnce("tok-1", (t) => api.verifyEmail(t));
    expect(await first).toEqual({ kind: "ok", email: "a@b.c" });
    expect(await second).toEqual({ kind: "ok", email: "a@b.c" });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.url).toBe("/api/auth/verify-email");
    expect(JSON.parse(String(calls[0]?.init.body))).toEqual({ token: "tok-1" });
    // Sent without a bearer token: the link works signed out.
    expect((calls[0]?.init.headers as Record<string, string>).Authorization).toBeUndefined();
  });

  it("says why a used or expired link failed, in the hub's words", async () => {
    const { api } = client(() => json(400, { error: { code: "invalid_request", message: "this link was already used or has expired" } }));
    expect(await redeemOnce("tok-2", (t) => api.verifyEmail(t))).toEqual({
      kind: "failed",
      message: "This link was already used or has expired.",
    });
  });

  it("explains other failures", () => {
    expect(linkFailure(new ApiError(429, "rate_limited", "slow down"))).toBe("Too many attempts. Wait a minute and try again.");
    expect(linkFailure(new ApiError(0, "network_error", "Could not reach aether."))).toBe("Could not reach aether.");
    expect(linkFailure(new Error("x"))).toBe("This link did not work. Ask for a new one.");
  });

  it("reads its token, or none", () => {
    expect(linkToken(null)).toBeNull();
    expect(linkToken("  ")).toBeNull();
    expect(linkToken(" abc ")).toBe("abc");
  });
});

describe("a password reset", () => {
  it("checks the new password is long enough and typed twice alike", () => {
    expect(newPasswordProblem("short", "short")).toMatch(/at least 8/);
    expect(newPasswordProblem("long-enough-1", "long-enough-2")).toMatch(/do not match/);
    expect(newPasswordProblem("long-enough-1", "long-enough-1")).toBeNull();
  });

  it("signs in with the answer and asks nothing else", async () => {
    const { api, tokens, calls } = client(() =>
      json(200, { user: { id: "u1", email: "a@b.c" }, access_token: "at", expires_at: "2099-01-01T00:00:00Z", refresh_token: "rt" }),
    );
    await api.confirmPasswordReset("tok-3", "new-pass-123");
    expect(calls.map((c) => c.url)).toEqual(["/api/auth/password-reset/confirm"]);
    expect(JSON.parse(String(calls[0]?.init.body))).toEqual({ token: "tok-3", password: "new-pass-123" });
    expect(tokens.get()).toMatchObject({ token: "at", refreshToken: "rt", user: { email: "a@b.c" } });
  });

  it("asks for a link without saying whether the account exists", async () => {
    const { api, calls } = client(() => new Response(null, { status: 202 }));
    await expect(api.requestPasswordReset("who@b.c")).resolves.toBeUndefined();
    expect(calls[0]?.url).toBe("/api/auth/password-reset");
  });
});

describe("a request that checks the password", () => {
  const signedIn = { token: "at", expiresAt: "2099-01-01T00:00:00Z", user: { id: "u1", email: "a@b.c" }, refreshToken: "rt" };
  const wrong = () => json(401, { error: { code: "unauthenticated", message: "the current password is wrong" } });
  const renewed = () => json(200, { access_token: "at2", expires_at: "2099-01-01T00:00:00Z", refresh_token: "rt2" });

  it("keeps the session on a wrong password, and does not send it twice", async () => {
    let signedOut = 0;
    const calls: string[] = [];
    const tokens = new TokenStore(new MapStorage());
    const api = new ApiClient({
      tokens,
      onUnauthenticated: () => signedOut++,
      fetch: (input) => {
        calls.push(String(input));
        return Promise.resolve(String(input) === "/api/auth/refresh" ? renewed() : wrong());
      },
    });
    tokens.set(signedIn);
    await expect(api.deleteAccount("wrong")).rejects.toMatchObject({ status: 401, message: "the current password is wrong" });
    await expect(api.changePassword("wrong", "new-pass-123")).rejects.toMatchObject({ status: 401 });
    expect(calls.filter((c) => c === "/api/me")).toHaveLength(1);
    expect(calls.filter((c) => c === "/api/me/password")).toHaveLength(1);
    expect(signedOut).toBe(0);
    expect(tokens.get()?.user.email).toBe("a@b.c");
  });

  it("signs out when the session itself has ended", async () => {
    let signedOut = 0;
    const tokens = new TokenStore(new MapStorage());
    const api = new ApiClient({
      tokens,
      onUnauthenticated: () => signedOut++,
      fetch: (input) =>
        Promise.resolve(
          String(input) === "/api/auth/refresh" ? json(401, { error: { code: "unauthenticated", message: "invalid or expired refresh token" } }) : wrong(),
        ),
    });
    tokens.set(signedIn);
    await expect(api.changeEmail("new@b.c", "pw")).rejects.toMatchObject({ status: 401 });
    expect(signedOut).toBe(1);
    expect(tokens.get()).toBeNull();
  });

  it("deleting forgets the tokens once the hub has deleted the account", async () => {
    const { api, tokens, calls } = client(() => new Response(null, { status: 204 }));
    tokens.set(signedIn);
    await api.deleteAccount("right");
    expect(calls[0]?.init.method).toBe("DELETE");
    expect(JSON.parse(String(calls[0]?.init.body))).toEqual({ password: "right" });
    expect(tokens.get()).toBeNull();
  });
});
