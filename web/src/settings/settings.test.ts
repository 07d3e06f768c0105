import { describe, expect, it } from "vitest";
import { ApiError } from "../api/client";
import type { AuditEntry, Session } from "../api/types";
import {
  auditDetail,
  auditLabel,
  deletionConfirmed,
  describeClient,
  displayNameProblem,
  emailProblem,
  errorText,
  formReducer,
  IDLE,
  onlyThisDevice,
  passwordChangeProblem,
  sortAudit,
  sortSessions,
  withoutSession,
  type FormState,
} from "./settings";

const session = (over: Partial<Session> = {}): Session => ({
  id: "s1",
  created_at: "2026-01-01T10:00:00Z",
  last_used_at: "2026-01-01T10:00:00Z",
  address: "203.0.113.7",
  client: "",
  current: false,
  ...over,
});

const entry = (over: Partial<AuditEntry> = {}): AuditEntry => ({
  at: "2026-01-01T10:00:00Z",
  action: "signed_in",
  address: "203.0.113.7",
  detail: "",
  ...over,
});

const FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const SAFARI_IOS =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const EDGE = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86";
const HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/140.0.0.0 Safari/537.36";

describe("form state", () => {
  it("goes busy on submit, then done or failed with the hub's message", () => {
    let state: FormState = IDLE;
    state = formReducer(state, { type: "submit" });
    expect(state).toEqual({ kind: "busy" });
    expect(formReducer(state, { type: "succeeded", message: "Saved." })).toEqual({ kind: "done", message: "Saved." });
    const failed = formReducer(state, { type: "failed", error: new ApiError(401, "unauthenticated", "the current password is wrong") });
    expect(failed).toEqual({ kind: "error", message: "The current password is wrong." });
  });

  it("forgets an outcome once the user edits, but not while a request runs", () => {
    expect(formReducer({ kind: "error", message: "x" }, { type: "edited" })).toEqual(IDLE);
    expect(formReducer({ kind: "done", message: "x" }, { type: "edited" })).toEqual(IDLE);
    expect(formReducer({ kind: "busy" }, { type: "edited" })).toEqual({ kind: "busy" });
  });

  it("explains failures: the hub's words, a rate limit, anything else", () => {
    expect(errorText(new ApiError(400, "invalid_request", "password is too easy to guess"))).toBe("Password is too easy to guess.");
    expect(errorText(new ApiError(409, "conflict", "An account with this email exists."))).toBe("An account with this email exists.");
    expect(errorText(new ApiError(429, "rate_limited", "too many attempts"))).toBe("Too many attempts. Wait a minute and try again.");
    expect(errorText(new ApiError(0, "network_error", "Could not reach aether. Check your connection and try again."))).toBe(
      "Could not reach aether. Check your connection and try again.",
    );
    expect(errorText(new TypeError("boom"))).toBe("Something went wrong. Try again.");
  });
});

describe("checks before asking the hub", () => {
  it("a display name of at most 100 characters", () => {
    expect(displayNameProblem("Ada Lovelace")).toBeNull();
    expect(displayNameProblem("")).toBeNull();
    expect(displayNameProblem("é".repeat(100))).toBeNull();
    expect(displayNameProblem("x".repeat(101))).toMatch(/at most 100/);
  });

  it("a new address that is one and is not the current one", () => {
    expect(emailProblem("", "a@b.c")).toBe("Enter the new address.");
    expect(emailProblem("nope", "a@b.c")).toBe("Enter a valid email address.");
    expect(emailProblem(" A@B.C ", "a@b.c")).toBe("This is already your address.");
    expect(emailProblem("new@b.c", "a@b.c")).toBeNull();
  });

  it("a password change: current given, new long enough, different and typed twice alike", () => {
    expect(passwordChangeProblem({ current: "", next: "long-enough-1", confirm: "long-enough-1" })).toMatch(/current password/);
    expect(passwordChangeProblem({ current: "old-pass-1", next: "short", confirm: "short" })).toMatch(/at least 8/);
    expect(passwordChangeProblem({ current: "same-pass-1", next: "same-pass-1", confirm: "same-pass-1" })).toMatch(/same as the current/);
    expect(passwordChangeProblem({ current: "old-pass-1", next: "new-pass-12", confirm: "new-pass-13" })).toMatch(/do not match/);
    expect(passwordChangeProblem({ current: "old-pass-1", next: "new-pass-12", confirm: "new-pass-12" })).toBeNull();
  });

  it("deleting needs the address typed out and the password", () => {
    expect(deletionConfirmed("", "a@b.c", "pw")).toBe(false);
    expect(deletionConfirmed("a@b", "a@b.c", "pw")).toBe(false);
    expect(deletionConfirmed("a@b.c", "a@b.c", "")).toBe(false);
    expect(deletionConfirmed(" A@B.C ", "a@b.c", "pw")).toBe(true);
    expect(deletionConfirmed("", "", "pw")).toBe(false);
  });
});

describe("sessions", () => {
  it("lists this device first, then the most recently used", () => {
    const list = [
      session({ id: "old", last_used_at: "2026-01-01T08:00:00Z" }),
      session({ id: "new", last_used_at: "2026-01-02T08:00:00Z" }),
      session({ id: "me", last_used_at: "2026-01-01T07:00:00Z", current: true }),
    ];
    expect(sortSessions(list).map((s) => s.id)).toEqual(["me", "new", "old"]);
    expect(list.map((s) => s.id)).toEqual(["old", "new", "me"]);
  });

  it("drops a revoked session, or all but this device", () => {
    const list = [session({ id: "a" }), session({ id: "me", current: true }), session({ id: "b" })];
    expect(withoutSession(list, "a").map((s) => s.id)).toEqual(["me", "b"]);
    expect(withoutSession(list, "zzz")).toHaveLength(3);
    expect(onlyThisDevice(list).map((s) => s.id)).toEqual(["me"]);
  });

  it("names a client as a person would", () => {
    expect(describeClient(FIREFOX)).toBe("Firefox 128 on Linux");
    expect(describeClient(CHROME_MAC)).toBe("Chrome 131 on macOS");
    expect(describeClient(SAFARI_IOS)).toBe("Safari 17 on iOS");
    expect(describeClient(EDGE)).toBe("Edge 131 on Windows");
    expect(describeClient(HEADLESS)).toBe("Headless Chrome 140 on Linux");
    expect(describeClient("curl/8.5.0")).toBe("curl");
    expect(describeClient("")).toBe("Unknown client");
    expect(describeClient("x".repeat(80))).toHaveLength(58);
  });
});

describe("audit log", () => {
  it("reads action names as words, known or not", () => {
    expect(auditLabel("signed_in")).toBe("Signed in");
    expect(auditLabel("sign_in_failed")).toBe("Failed sign-in");
    expect(auditLabel("sessions_revoked")).toBe("Other sessions signed out");
    expect(auditLabel("agent_key_created")).toBe("Agent key created");
    expect(auditLabel("plan_changed")).toBe("Plan changed");
    expect(auditLabel("vm_exploded")).toBe("Vm exploded");
    expect(auditLabel("")).toBe("Unknown action");
  });

  it("puts the newest first", () => {
    const list = [
      entry({ at: "2026-01-01T10:00:00Z", action: "signed_up" }),
      entry({ at: "2026-01-03T10:00:00Z", action: "password_changed" }),
      entry({ at: "2026-01-02T10:00:00Z", action: "email_verified" }),
    ];
    expect(sortAudit(list).map((e) => e.action)).toEqual(["password_changed", "email_verified", "signed_up"]);
  });

  it("says what, from where: a sign-in's client is named, other details kept", () => {
    expect(auditDetail(entry({ detail: FIREFOX }))).toBe("Firefox 128 on Linux · 203.0.113.7");
    expect(auditDetail(entry({ action: "password_changed", detail: "1 other session(s) signed out" }))).toBe(
      "1 other session(s) signed out · 203.0.113.7",
    );
    expect(auditDetail(entry({ action: "agent_key_created", detail: "laptop", address: "" }))).toBe("laptop");
    expect(auditDetail(entry({ action: "signed_in", detail: "", address: "" }))).toBe("");
  });
});
