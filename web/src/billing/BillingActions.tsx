/**
 * Paying for a plan, beside the usage line: "Upgrade to Pro/Team" opens
 * Stripe Checkout, "Manage billing" the customer portal, and a hub without
 * Stripe keys says billing is off. The profile is read again whenever
 * `refreshKey` changes (a plan changes when Stripe's webhook arrives).
 */
import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client";
import type { BillingRedirect, PaidPlan, Profile } from "../api/types";
import { useLocation } from "../app/router";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { billingOffer, goToStripe, upgradeLabel } from "./billing";

function useProfile(refreshKey: string): Profile | null {
  const [profile, setProfile] = useState<Profile | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    api.me(abort.signal).then(setProfile, () => !abort.signal.aborted && setProfile(null));
    return () => abort.abort();
  }, [refreshKey]);
  return profile;
}

type Pending = PaidPlan | "portal" | null;

export function BillingActions({ refreshKey }: { refreshKey: string }) {
  const profile = useProfile(refreshKey);
  const { search } = useLocation();
  const [pending, setPending] = useState<Pending>(null);
  const [error, setError] = useState<string | null>(null);
  if (!profile) return null;
  const offer = billingOffer(profile);

  if (offer.off) {
    return (
      <p className="mt-1 text-xs text-faint" data-testid="billing-off">
        Billing is off on this hub
      </p>
    );
  }

  async function go(what: Pending, ask: () => Promise<BillingRedirect>) {
    setPending(what);
    setError(null);
    try {
      await goToStripe(ask, (url) => window.location.assign(url));
    } catch (e) {
      setError(e instanceof ApiError ? e.message : "Something went wrong.");
      setPending(null);
    }
  }

  return (
    <div className="mt-2 flex flex-col gap-2" data-testid="billing">
      {(offer.upgrades.length > 0 || offer.manage) && (
        <div className="flex flex-wrap items-center gap-2">
          {offer.upgrades.map((plan) => (
            <Button
              key={plan}
              size="sm"
              variant={plan === offer.upgrades[0] ? "primary" : "secondary"}
              loading={pending === plan}
              disabled={pending !== null}
              onClick={() => void go(plan, () => api.checkout(plan))}
              data-testid={`upgrade-${plan}`}
            >
              {upgradeLabel(plan)}
            </Button>
          ))}
          {offer.manage && (
            <Button
              size="sm"
              variant="ghost"
              loading={pending === "portal"}
              disabled={pending !== null}
              onClick={() => void go("portal", () => api.billingPortal())}
              data-testid="manage-billing"
            >
              Manage billing
            </Button>
          )}
        </div>
      )}
      {search.get("billing") === "success" && offer.upgrades.length > 0 && (
        <Alert tone="info">Thanks! Your plan changes as soon as Stripe confirms the payment.</Alert>
      )}
      {offer.graceUntil && (
        <Alert tone="warn">
          Your last payment failed. Your plan stays until{" "}
          {new Date(offer.graceUntil).toLocaleDateString(undefined, { month: "long", day: "numeric" })}; update your card
          with Manage billing.
        </Alert>
      )}
      {error && <Alert>Could not open billing: {error}</Alert>}
    </div>
  );
}
