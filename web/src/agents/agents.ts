/** Agent keys without React: name rules (the hub's), file names and the activity shown per key. */
import type { AgentActivity, CreateAgentResponse } from "../api/types";

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/;

/** Why `name` cannot be an agent's name, or null when it can. */
export function agentNameError(name: string): string | null {
  if (name === "") return "Give the key a name.";
  if (name.length > 40) return "At most 40 characters.";
  if (!NAME.test(name)) return "Letters, digits, _ and -, starting with a letter or a digit.";
  return null;
}

/** Where the SSH config expects the private key (`IdentityFile ~/.ssh/aether/<alias>`), else `aether-<name>`. */
export function keyFileName(created: CreateAgentResponse): string {
  const identity = created.ssh.config?.match(/^\s*IdentityFile\s+(\S+)/m)?.[1];
  const base = identity?.split("/").pop();
  return base || created.ssh.alias || `aether-${created.agent.name}`;
}

/** Interactive sessions still running, newest first: the ones worth watching. */
export function liveSessions(activity: readonly AgentActivity[]): AgentActivity[] {
  return activity.filter((a) => a.interactive && a.ended_at === null && a.session).sort((a, b) => b.started_at.localeCompare(a.started_at));
}
