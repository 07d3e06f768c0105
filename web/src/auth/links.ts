/**
 * What the pages opened from a mailed link do with it: a token is spent
 * once, so a link's request is made once per page load however often React
 * runs the effect that asks for it, and its outcome reads as a sentence.
 */
import { ApiError } from "../api/client";

export type LinkOutcome = { kind: "pending" } | { kind: "ok"; email: string } | { kind: "failed"; message: string };

const spent = new Map<string, Promise<LinkOutcome>>();

/** Redeem `token` with `redeem`, once: a second call with the same token gets the first call's outcome. */
export function redeemOnce(token: string, redeem: (token: string) => Promise<{ email: string }>): Promise<LinkOutcome> {
  let outcome = spent.get(token);
  if (!outcome) {
    outcome = redeem(token).then(
      (r): LinkOutcome => ({ kind: "ok", email: r.email }),
      (e: unknown): LinkOutcome => ({ kind: "failed", message: linkFailure(e) }),
    );
    spent.set(token, outcome);
  }
  return outcome;
}

/** Why a link did not work, for a person. */
export function linkFailure(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 0) return error.message;
    if (error.status === 429) return "Too many attempts. Wait a minute and try again.";
    const text = error.message.trim();
    if (text) return text[0]!.toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
  }
  return "This link did not work. Ask for a new one.";
}

/** The token a link carries (`?token=`), or null when it has none. */
export function linkToken(token: string | null): string | null {
  const t = token?.trim();
  return t ? t : null;
}

/** A new password's problem before it goes to the hub (the hub judges its strength). */
export function newPasswordProblem(password: string, confirm: string): string | null {
  if ([...password].length < 8) return "Choose a password of at least 8 characters.";
  if (password !== confirm) return "The passwords do not match.";
  return null;
}
