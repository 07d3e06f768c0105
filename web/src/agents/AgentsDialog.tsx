/**
 * Agent keys for the project: create one (the hub makes the key pair; its
 * private half is shown here once, with copy and download, next to the
 * ready SSH config and known hosts), list them, revoke one (after asking),
 * and see what agents ran lately, with "Watch" for an interactive session
 * still going. The guides (served by the hub under /docs) are linked here,
 * where the question of how to connect comes up.
 */
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { api, ApiError, isAbort } from "../api/client";
import type { Agent, AgentActivity, CreateAgentResponse } from "../api/types";
import { browserSocketFactory } from "../live/reconnectingSocket";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { Dialog } from "../ui/Dialog";
import { Field } from "../ui/Field";
import { CopyIcon, DownloadIcon, TrashIcon } from "../ui/icons";
import { RelativeTime } from "../ui/RelativeTime";
import { Spinner } from "../ui/Spinner";
import { ActivityLive, activityLiveUrl, mergeActivity } from "./activityLive";
import { agentNameError, keyFileName, liveSessions } from "./agents";

export interface AgentsDialogProps {
  projectId: string;
  open: boolean;
  onClose: () => void;
  /** Open a read-only terminal on an agent's interactive session; absent while the VM is not running. */
  onWatch?: (session: string) => void;
}

function errorText(e: unknown, fallback: string): string {
  return e instanceof ApiError ? e.message : fallback;
}

export function AgentsDialog({ projectId, open, onClose, onWatch }: AgentsDialogProps) {
  const [agents, setAgents] = useState<Agent[] | null>(null);
  const [activity, setActivity] = useState<AgentActivity[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [nameError, setNameError] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreateAgentResponse | null>(null);
  const [revoking, setRevoking] = useState<Agent | null>(null);
  const [revokeBusy, setRevokeBusy] = useState(false);

  const load = useCallback(
    async (signal?: AbortSignal) => {
      try {
        const [list, recent] = await Promise.all([api.listAgents(projectId, signal), api.agentActivity(projectId, { limit: 50, signal }).catch(() => [])]);
        setAgents(list);
        setActivity(recent);
        setError(null);
      } catch (e) {
        if (isAbort(e)) return;
        setError(errorText(e, "Could not list the agent keys."));
      }
    },
    [projectId],
  );

  useEffect(() => {
    if (!open) return;
    const controller = new AbortController();
    void load(controller.signal);
    return () => controller.abort();
  }, [open, load]);

  // While open, session starts and ends arrive live; each (re)connect lists
  // the activity again so nothing that happened meanwhile is missed.
  useEffect(() => {
    if (!open) return;
    let controller: AbortController | null = null;
    const feed = new ActivityLive(
      {
        getTicket: async () => (await api.createTicket(projectId, "agent-activity")).ticket,
        buildUrl: (ticket) => activityLiveUrl(window.location, projectId, ticket),
        createSocket: browserSocketFactory,
        isFatalTicketError: (e) => e instanceof ApiError && [401, 403, 404].includes(e.status),
      },
      {
        onEvent: (event) => setActivity((list) => mergeActivity(list, event)),
        onOpen: () => {
          controller?.abort();
          const current = new AbortController();
          controller = current;
          api
            .agentActivity(projectId, { limit: 50, signal: current.signal })
            .then((recent) => {
              if (!current.signal.aborted) setActivity(recent);
            })
            .catch(() => {});
        },
      },
    );
    feed.start();
    return () => {
      feed.dispose();
      controller?.abort();
    };
  }, [open, projectId]);

  function close() {
    setCreated(null);
    setRevoking(null);
    setName("");
    setNameError(null);
    onClose();
  }

  async function create(event: FormEvent) {
    event.preventDefault();
    const trimmed = name.trim();
    const problem = agentNameError(trimmed);
    setNameError(problem);
    if (problem) return;
    setCreating(true);
    try {
      const answer = await api.createAgent(projectId, { name: trimmed });
      setCreated(answer);
      setName("");
      setAgents((list) => [...(list ?? []).filter((a) => a.id !== answer.agent.id), answer.agent]);
    } catch (e) {
      setNameError(errorText(e, "Could not create the key."));
    } finally {
      setCreating(false);
    }
  }

  async function revoke(agent: Agent) {
    setRevokeBusy(true);
    try {
      await api.deleteAgent(projectId, agent.id);
      setAgents((list) => (list ?? []).filter((a) => a.id !== agent.id));
      setRevoking(null);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        setAgents((list) => (list ?? []).filter((a) => a.id !== agent.id));
        setRevoking(null);
      } else {
        setError(errorText(e, "Could not revoke the key."));
      }
    } finally {
      setRevokeBusy(false);
    }
  }

  const names = new Map((agents ?? []).map((a) => [a.id, a.name]));
  const live = liveSessions(activity);

  return (
    <Dialog
      open={open}
      onClose={close}
      title="Agents"
      description="SSH keys that let a coding agent into this project's machine. Revoking a key ends its access at once."
      testId="agents-dialog"
      size="lg"
    >
      {error && <Alert>{error}</Alert>}

      {created ? (
        <CreatedKey created={created} onDone={() => setCreated(null)} />
      ) : (
        <form className="flex items-end gap-2" onSubmit={(e) => void create(e)} noValidate>
          <Field
            label="New key"
            placeholder="e.g. claude"
            value={name}
            onChange={(e) => {
              setName(e.target.value);
              setNameError(null);
            }}
            error={nameError ?? undefined}
            className="flex-1"
            autoComplete="off"
            spellCheck={false}
            data-autofocus
            data-testid="agent-name"
          />
          <Button type="submit" variant="primary" loading={creating} disabled={creating} data-testid="agent-create" className={nameError ? "mb-6" : ""}>
            Create key
          </Button>
        </form>
      )}

      <div className="flex flex-col gap-1.5">
        <h3 className="text-xs font-medium text-muted">Keys</h3>
        {agents === null ? (
          !error && (
            <div className="flex items-center gap-2 text-sm text-muted">
              <Spinner className="size-3.5" /> Loading…
            </div>
          )
        ) : agents.length === 0 ? (
          <p className="text-sm text-faint" data-testid="agents-empty">
            No keys yet.
          </p>
        ) : (
          <ul className="divide-y divide-line rounded-md border border-line" data-testid="agent-list">
            {agents.map((agent) => (
              <li key={agent.id} className="flex items-center gap-3 px-3 py-2" data-testid="agent-row" data-agent-name={agent.name}>
                <div className="min-w-0 flex-1">
                  <div className="truncate text-sm font-medium">{agent.name}</div>
                  <div className="truncate font-mono text-[11px] text-faint" title={agent.public_key}>
                    {agent.fingerprint}
                  </div>
                </div>
                <div className="shrink-0 text-right text-xs text-muted">
                  {agent.last_used_at ? (
                    <>
                      used <RelativeTime iso={agent.last_used_at} />
                    </>
                  ) : (
                    "never used"
                  )}
                </div>
                {revoking?.id === agent.id ? (
                  <div className="flex shrink-0 gap-1">
                    <Button size="sm" variant="ghost" onClick={() => setRevoking(null)} disabled={revokeBusy}>
                      Cancel
                    </Button>
                    <Button size="sm" variant="danger" loading={revokeBusy} onClick={() => void revoke(agent)} data-testid="agent-revoke-confirm">
                      Revoke
                    </Button>
                  </div>
                ) : (
                  <Button size="sm" variant="ghost" icon={<TrashIcon className="size-3.5" />} onClick={() => setRevoking(agent)} aria-label={`Revoke ${agent.name}`} data-testid="agent-revoke">
                    Revoke
                  </Button>
                )}
              </li>
            ))}
          </ul>
        )}
      </div>

      {activity.length > 0 && (
        <div className="flex flex-col gap-1.5">
          <h3 className="text-xs font-medium text-muted">Recent activity</h3>
          <ul className="max-h-40 overflow-auto rounded-md border border-line text-xs" data-testid="agent-activity">
            {activity.slice(0, 20).map((a, i) => {
              const watchable = onWatch && a.session && live.includes(a);
              return (
                <li key={a.id ?? `${a.started_at}-${i}`} data-testid="agent-activity-row" data-running={a.ended_at === null ? "true" : "false"} className="flex items-center gap-2 border-b border-line px-3 py-1.5 last:border-b-0">
                  <span className="shrink-0 font-medium">{names.get(a.agent_id) ?? (a.agent_name ? `${a.agent_name} (revoked)` : "revoked key")}</span>
                  <span className="min-w-0 flex-1 truncate font-mono text-muted">{a.interactive ? "interactive session" : (a.command ?? "")}</span>
                  <span className="shrink-0 text-faint">
                    {a.ended_at === null ? "running" : a.exit_code !== null ? `exit ${a.exit_code}` : "ended"} · <RelativeTime iso={a.started_at} />
                  </span>
                  {watchable && a.session && (
                    <Button
                      size="sm"
                      variant="secondary"
                      className="h-6"
                      onClick={() => {
                        if (a.session) onWatch(a.session);
                        close();
                      }}
                      data-testid="agent-watch"
                    >
                      Watch
                    </Button>
                  )}
                </li>
              );
            })}
          </ul>
        </div>
      )}

      <div className="flex items-center justify-between gap-3">
        <GuideLinks />
        <Button onClick={close} data-testid="agents-close">
          Close
        </Button>
      </div>
    </Dialog>
  );
}

/** The hub's guides, in a new tab so the dialog (and a key shown once) stays. */
const GUIDES = [
  { href: "/docs/ssh", label: "any SSH client or IDE", testId: "agents-guide" },
  { href: "/docs/claude-code", label: "Claude Code", testId: "agents-guide-claude-code" },
  { href: "/docs/codex", label: "Codex", testId: "agents-guide-codex" },
  { href: "/docs/any-agent", label: "other agents", testId: "agents-guide-any-agent" },
] as const;

function GuideLinks() {
  return (
    <p className="text-xs text-muted" data-testid="agents-guides">
      How to connect:{" "}
      {GUIDES.map((g, i) => (
        <span key={g.href}>
          <a href={g.href} target="_blank" rel="noopener" className="text-accent underline-offset-2 hover:text-accent-hover hover:underline" data-testid={g.testId}>
            {g.label}
          </a>
          {i < GUIDES.length - 1 ? ", " : ""}
        </span>
      ))}
    </p>
  );
}

/** What the dialog says to do with one of the answer's texts: which file it goes in. */
function SaveAs({ file }: { file: string | undefined }) {
  if (!file) return null;
  return (
    <>
      {" "}
      · save as <code className="font-mono text-[11px] text-fg">{file}</code>
    </>
  );
}

function CreatedKey({ created, onDone }: { created: CreateAgentResponse; onDone: () => void }) {
  const [copied, setCopied] = useState<string | null>(null);
  const file = keyFileName(created);

  function copy(what: string, text: string) {
    void navigator.clipboard
      ?.writeText(text)
      .then(() => setCopied(what))
      .catch(() => {});
  }

  function download(text: string) {
    const url = URL.createObjectURL(new Blob([text], { type: "application/x-pem-file" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = file;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  return (
    <div className="flex flex-col gap-3 rounded-md border border-line bg-raised/40 p-3" data-testid="agent-created">
      <div className="text-sm">
        Key <span className="font-semibold">{created.agent.name}</span> created.
      </div>
      {created.private_key && (
        <div className="flex flex-col gap-1.5">
          <Alert tone="warn">
            This private key is shown only now. Copy or download it before closing
            {created.ssh.identity_file ? (
              <>
                {" "}
                (the config expects it at <code className="font-mono">{created.ssh.identity_file}</code>, readable only by you)
              </>
            ) : null}
            .
          </Alert>
          <textarea
            readOnly
            value={created.private_key}
            rows={7}
            className="w-full resize-none rounded-md border border-line bg-canvas p-2 font-mono text-[11px] leading-snug text-fg outline-none"
            onFocus={(e) => e.currentTarget.select()}
            aria-label="Private key"
            data-testid="agent-private-key"
          />
          <div className="flex gap-2">
            <Button size="sm" icon={<CopyIcon className="size-3.5" />} onClick={() => copy("key", created.private_key ?? "")} data-testid="agent-copy-key">
              {copied === "key" ? "Copied" : "Copy key"}
            </Button>
            <Button size="sm" icon={<DownloadIcon className="size-3.5" />} onClick={() => download(created.private_key ?? "")} data-testid="agent-download-key">
              Download {file}
            </Button>
          </div>
        </div>
      )}
      {created.ssh.config && (
        <div className="flex flex-col gap-1.5">
          <div className="flex items-center justify-between">
            <span className="text-xs font-medium text-muted">
              SSH config
              <SaveAs file={created.ssh.config_file} />
            </span>
            <Button size="sm" variant="ghost" icon={<CopyIcon className="size-3.5" />} onClick={() => copy("config", created.ssh.config ?? "")} data-testid="agent-copy-config">
              {copied === "config" ? "Copied" : "Copy"}
            </Button>
          </div>
          <pre className="max-h-40 overflow-auto rounded-md border border-line bg-canvas p-2 font-mono text-[11px] leading-snug text-muted" data-testid="agent-ssh-config">
            {created.ssh.config}
          </pre>
        </div>
      )}
      {created.ssh.known_hosts && (
        <div className="flex flex-col gap-1.5">
          <div className="flex items-center justify-between">
            <span className="text-xs font-medium text-muted">
              Known hosts
              <SaveAs file={created.ssh.known_hosts_file} />
            </span>
            <Button size="sm" variant="ghost" icon={<CopyIcon className="size-3.5" />} onClick={() => copy("hosts", created.ssh.known_hosts ?? "")} data-testid="agent-copy-known-hosts">
              {copied === "hosts" ? "Copied" : "Copy"}
            </Button>
          </div>
          <pre className="max-h-24 overflow-auto rounded-md border border-line bg-canvas p-2 font-mono text-[11px] leading-snug break-all whitespace-pre-wrap text-muted" data-testid="agent-known-hosts">
            {created.ssh.known_hosts}
          </pre>
        </div>
      )}
      {created.ssh.command && (
        <div className="flex flex-col gap-1">
          <span className="text-xs font-medium text-muted">Then connect with</span>
          <code className="rounded-md border border-line bg-canvas px-2 py-1 font-mono text-[11px] break-all" data-testid="agent-ssh-command">
            {created.ssh.command}
          </code>
        </div>
      )}
      <div className="flex justify-end">
        <Button size="sm" variant="primary" onClick={onDone} data-testid="agent-created-done">
          I saved the key
        </Button>
      </div>
    </div>
  );
}
