/**
 * The settings page's two lists: the sessions signed in to the account
 * (each revocable, or all but this one at once) and the audit log.
 */
import { useEffect, useReducer, useState } from "react";
import { api } from "../api/client";
import type { AuditEntry, Session } from "../api/types";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { RelativeTime } from "../ui/RelativeTime";
import { FormMessage, Section } from "./Section";
import {
  auditDetail,
  auditLabel,
  auditNotable,
  describeClient,
  errorText,
  formReducer,
  IDLE,
  onlyThisDevice,
  sortAudit,
  sortSessions,
  withoutSession,
} from "./settings";

/** Reads `load` again whenever `key` changes: the list, or the hub's message when it failed. */
function useList<T>(load: (signal: AbortSignal) => Promise<T[]>, key: number) {
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    load(abort.signal).then(
      (list) => {
        setItems(list);
        setError(null);
      },
      (e: unknown) => !abort.signal.aborted && setError(errorText(e)),
    );
    return () => abort.abort();
  }, [load, key]);
  return { items, setItems, error };
}

const loadSessions = (signal: AbortSignal) => api.sessions(signal);
const loadAudit = (signal: AbortSignal) => api.audit(signal);

export function SessionsSection({ refreshKey, onChanged }: { refreshKey: number; onChanged: () => void }) {
  const { items, setItems, error } = useList<Session>(loadSessions, refreshKey);
  const [state, dispatch] = useReducer(formReducer, IDLE);
  const [revoking, setRevoking] = useState<string | null>(null);
  const sessions = items ? sortSessions(items) : null;
  const others = sessions?.filter((s) => !s.current).length ?? 0;

  async function revoke(session: Session) {
    setRevoking(session.id);
    dispatch({ type: "submit" });
    try {
      await api.revokeSession(session.id);
      setItems((list) => (list ? withoutSession(list, session.id) : list));
      dispatch({ type: "succeeded", message: `Signed out ${describeClient(session.client)}${session.address ? ` at ${session.address}` : ""}.` });
      onChanged();
    } catch (e) {
      dispatch({ type: "failed", error: e });
    } finally {
      setRevoking(null);
    }
  }

  async function revokeOthers() {
    dispatch({ type: "submit" });
    try {
      await api.revokeOtherSessions();
      setItems((list) => (list ? onlyThisDevice(list) : list));
      dispatch({ type: "succeeded", message: "Every other session has been signed out." });
      onChanged();
    } catch (e) {
      dispatch({ type: "failed", error: e });
    }
  }

  return (
    <Section title="Sessions" description="Where your account is signed in. Sign out a device you don't recognise, or all but this one.">
      {error && <Alert>Could not load your sessions: {error}</Alert>}
      {sessions && (
        <ul className="divide-y divide-line rounded-lg border border-line" data-testid="session-list">
          {sessions.map((s) => (
            <li key={s.id} className="flex items-center gap-3 px-3 py-2.5" data-testid="session-row" data-session-id={s.id} data-current={s.current}>
              <div className="min-w-0 flex-1">
                <p className="flex items-center gap-2 text-sm font-medium">
                  <span className="truncate" title={s.client}>
                    {describeClient(s.client)}
                  </span>
                  {s.current && (
                    <span className="rounded-full bg-accent/15 px-2 py-0.5 text-xs text-accent" data-testid="this-device">
                      This device
                    </span>
                  )}
                </p>
                <p className="text-xs text-muted">
                  {s.address || "unknown address"} · last used <RelativeTime iso={s.last_used_at} /> · signed in <RelativeTime iso={s.created_at} />
                </p>
              </div>
              {!s.current && (
                <Button size="sm" variant="ghost" loading={revoking === s.id} onClick={() => void revoke(s)} data-testid="session-revoke">
                  Sign out
                </Button>
              )}
            </li>
          ))}
        </ul>
      )}
      <div>
        <Button onClick={() => void revokeOthers()} disabled={others === 0} loading={state.kind === "busy" && revoking === null} data-testid="revoke-other-sessions">
          Sign out everywhere else
        </Button>
      </div>
      <FormMessage state={state} testId="sessions-message" />
    </Section>
  );
}

export function AuditSection({ refreshKey }: { refreshKey: number }) {
  const { items, error } = useList<AuditEntry>(loadAudit, refreshKey);
  const entries = items ? sortAudit(items) : null;
  return (
    <Section title="Activity" description="Sign-ins, changes to your account and keys, newest first. Kept without any secret.">
      {error && <Alert>Could not load the activity: {error}</Alert>}
      {entries && entries.length === 0 && <p className="text-sm text-muted">Nothing yet.</p>}
      {entries && entries.length > 0 && (
        <ol className="max-h-96 divide-y divide-line overflow-y-auto rounded-lg border border-line" data-testid="audit-list">
          {entries.map((e, i) => (
            <li key={`${e.at}-${i}`} className="flex items-baseline gap-3 px-3 py-2" data-testid="audit-row" data-action={e.action}>
              <span className={`text-sm font-medium ${auditNotable(e.action) ? "text-warn" : ""}`}>{auditLabel(e.action)}</span>
              <span className="min-w-0 flex-1 truncate text-xs text-muted" title={e.detail}>
                {auditDetail(e)}
              </span>
              <span className="shrink-0 text-xs text-faint">
                <RelativeTime iso={e.at} />
              </span>
            </li>
          ))}
        </ol>
      )}
    </Section>
  );
}
