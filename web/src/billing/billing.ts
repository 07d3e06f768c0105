/**
 * What the usage line offers about paying, from the caller's profile:
 * upgrades Checkout sells, the customer portal once there is something to
 * manage, or a word that this hub runs without billing. Kept apart from
 * the component so the rules are tested without a browser.
 */
import type { BillingRedirect, PaidPlan, Profile } from "../api/types";

/** Statuses in which a subscription pays for its plan (the hub's `grants_plan`). */
const PAYING = new Set(["active", "trialing", "past_due", "unpaid"]);

/** Paid plans from smallest to largest. */
const PAID_PLANS: readonly PaidPlan[] = ["pro", "team"];

export interface BillingOffer {
  /** The hub takes no payments: say so instead of offering any. */
  off: boolean;
  /** Plans the user may check out (larger than theirs, none while a subscription pays). */
  upgrades: PaidPlan[];
  /** The customer portal: once the user has had a subscription. */
  manage: boolean;
  /** A failed payment's grace runs until then (an RFC 3339 time). */
  graceUntil: string | null;
}

export function billingOffer(profile: Profile): BillingOffer {
  if (profile.billing !== "on") return { off: true, upgrades: [], manage: false, graceUntil: null };
  const sub = profile.subscription ?? null;
  const paying = sub !== null && PAYING.has(sub.status ?? "");
  const rank = PAID_PLANS.indexOf(profile.plan as PaidPlan);
  return {
    off: false,
    // Changing a paying subscription's plan is the portal's job.
    upgrades: paying ? [] : PAID_PLANS.filter((_, i) => i > rank),
    manage: sub !== null,
    graceUntil: paying ? (sub.grace_until ?? null) : null,
  };
}

/** "Upgrade to Pro". */
export function upgradeLabel(plan: PaidPlan): string {
  return `Upgrade to ${plan.charAt(0).toUpperCase()}${plan.slice(1)}`;
}

/** Asks the hub for a Stripe page (Checkout or the portal) and sends the browser there. */
export async function goToStripe(ask: () => Promise<BillingRedirect>, go: (url: string) => void): Promise<void> {
  const { url } = await ask();
  go(url);
}
