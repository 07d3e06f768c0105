import { describe, expect, it } from "vitest";
import type { AgentActivity, CreateAgentResponse } from "../api/types";
import { agentNameError, keyFileName, liveSessions } from "./agents";

const created = (config?: string): CreateAgentResponse => ({
  agent: { id: "a", name: "bot", public_key: "ssh-ed25519 AAAA", fingerprint: "SHA256:x", created_at: "", last_used_at: null, expires_at: null },
  private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\n",
  ssh: { alias: "aether-bot-1234", config },
});

describe("agent names", () => {
  it("follows the hub's rule", () => {
    expect(agentNameError("claude-1")).toBeNull();
    expect(agentNameError("a_b")).toBeNull();
    expect(agentNameError("")).not.toBeNull();
    expect(agentNameError("-x")).not.toBeNull();
    expect(agentNameError("has space")).not.toBeNull();
    expect(agentNameError("x".repeat(41))).not.toBeNull();
  });
});

describe("key file name", () => {
  it("is the config's IdentityFile, else the alias", () => {
    expect(keyFileName(created("Host a\n  IdentityFile ~/.ssh/aether/aether-bot-1234\n"))).toBe("aether-bot-1234");
    expect(keyFileName(created())).toBe("aether-bot-1234");
  });
});

describe("live sessions", () => {
  const row = (started_at: string, extra: Partial<AgentActivity>): AgentActivity => ({
    agent_id: "a",
    started_at,
    ended_at: null,
    command: null,
    exit_code: null,
    interactive: true,
    session: "agent-bot",
    ...extra,
  });
  it("keeps running interactive sessions, newest first", () => {
    const list = [
      row("2026-01-01T00:00:00Z", {}),
      row("2026-01-02T00:00:00Z", { session: "agent-two" }),
      row("2026-01-03T00:00:00Z", { ended_at: "2026-01-03T00:01:00Z" }),
      row("2026-01-04T00:00:00Z", { interactive: false, command: "ls" }),
    ];
    expect(liveSessions(list).map((a) => a.session)).toEqual(["agent-two", "agent-bot"]);
  });
});
