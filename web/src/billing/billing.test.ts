import { describe, expect, it } from "vitest";
import { MapStorage } from "../api/mapStorage.test-helper";
import { ApiClient, ApiError } from "../api/client";
import { TokenStore } from "../api/token";
import type { Profile, Subscription } from "../api/types";
import { billingOffer, goToStripe, upgradeLabel } from "./billing";

const profile = (over: Partial<Profile> = {}): Profile => ({
  id: "u1",
  email: "a@b.c",
  display_name: null,
  plan: "free",
  billing: "on",
  subscription: null,
  ...over,
});

const sub = (over: Partial<Subscription> = {}): Subscription => ({
  plan: "pro",
  status: "active",
  current_period_end: "2027-01-01T00:00:00Z",
  grace_until: null,
  ...over,
});

describe("billing offer", () => {
  it("says billing is off when the hub has no Stripe keys", () => {
    expect(billingOffer(profile({ billing: "off" }))).toEqual({ off: true, upgrades: [], manage: false, graceUntil: null });
    // An older hub that doesn't say: nothing to offer either.
    expect(billingOffer(profile({ billing: undefined })).off).toBe(true);
  });

  it("offers both plans to a free user, and the portal only once there is a subscription", () => {
    expect(billingOffer(profile())).toEqual({ off: false, upgrades: ["pro", "team"], manage: false, graceUntil: null });
    const ended = billingOffer(profile({ subscription: sub({ status: "canceled" }) }));
    expect(ended).toEqual({ off: false, upgrades: ["pro", "team"], manage: true, graceUntil: null });
  });

  it("sends a paying user to the portal to change plans", () => {
    const paying = billingOffer(profile({ plan: "pro", subscription: sub() }));
    expect(paying).toEqual({ off: false, upgrades: [], manage: true, graceUntil: null });
    // Pro by hand (no subscription): team is still for sale; team needs nothing.
    expect(billingOffer(profile({ plan: "pro" })).upgrades).toEqual(["team"]);
    expect(billingOffer(profile({ plan: "team" })).upgrades).toEqual([]);
  });

  it("warns while a failed payment's grace runs", () => {
    const late = billingOffer(profile({ plan: "pro", subscription: sub({ status: "past_due", grace_until: "2027-01-08T00:00:00Z" }) }));
    expect(late.graceUntil).toBe("2027-01-08T00:00:00Z");
    expect(late.manage).toBe(true);
  });

  it("labels upgrades by plan", () => {
    expect(upgradeLabel("pro")).toBe("Upgrade to Pro");
    expect(upgradeLabel("team")).toBe("Upgrade to Team");
  });
});

function client(respond: (url: string, init: RequestInit) => Response) {
  const tokens = new TokenStore(new MapStorage());
  tokens.set({ token: "tok", expiresAt: "2999-01-01T00:00:00Z", user: { id: "u1", email: "a@b.c" } });
  const calls: { url: string; init: RequestInit }[] = [];
  const api = new ApiClient({
    tokens,
    fetch: async (input, init) => {
      calls.push({ url: String(input), init: init ?? {} });
      return respond(String(input), init ?? {});
    },
  });
  return { api, calls };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

describe("going to Stripe", () => {
  it("posts the plan to checkout and follows the URL the hub answers", async () => {
    const { api, calls } = client(() => json(200, { url: "https://checkout.stripe.com/c/pay/cs_1" }));
    const went: string[] = [];
    await goToStripe(() => api.checkout("team"), (url) => went.push(url));
    expect(went).toEqual(["https://checkout.stripe.com/c/pay/cs_1"]);
    const [call] = calls;
    expect(call?.url).toBe("/api/billing/checkout");
    expect(call?.init.method).toBe("POST");
    expect(JSON.parse(String(call?.init.body))).toEqual({ plan: "team" });
    expect(new Headers(call?.init.headers).get("authorization")).toBe("Bearer tok");
  });

  it("opens the portal", async () => {
    const { api, calls } = client(() => json(200, { url: "https://billing.stripe.com/p/session/bps_1" }));
    const went: string[] = [];
    await goToStripe(() => api.billingPortal(), (url) => went.push(url));
    expect(went).toEqual(["https://billing.stripe.com/p/session/bps_1"]);
    expect(calls.map((c) => c.url)).toEqual(["/api/billing/portal"]);
  });

  it("goes nowhere when the hub refuses, and says why", async () => {
    const { api } = client(() => json(503, { error: { code: "unavailable", message: "billing is off on this hub" } }));
    const went: string[] = [];
    const error = await goToStripe(() => api.checkout("pro"), (url) => went.push(url)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).message).toBe("billing is off on this hub");
    expect(went).toEqual([]);
  });
});
