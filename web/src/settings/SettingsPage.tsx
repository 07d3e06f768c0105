/**
 * The account's settings: name, email (verified or not, resend, change by a
 * mailed link), password, active sessions, the audit log and deleting the
 * account. Each section is its own form with its own message; the sessions
 * and the audit log are read again after anything that changes them.
 */
import { useCallback, useEffect, useReducer, useState, type FormEvent } from "react";
import { api } from "../api/client";
import { tokenStore } from "../api/token";
import type { Profile } from "../api/types";
import { TopBar } from "../app/TopBar";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { Field } from "../ui/Field";
import { AuditSection, SessionsSection } from "./ActivitySections";
import { DeleteAccountSection } from "./DeleteAccount";
import { FormMessage, Section } from "./Section";
import { displayNameProblem, emailProblem, errorText, formReducer, IDLE, passwordChangeProblem } from "./settings";

export default function SettingsPage() {
  const [profile, setProfile] = useState<Profile | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  // Bumped after anything that adds a session or an audit line.
  const [activity, setActivity] = useState(0);
  const changed = useCallback(() => setActivity((n) => n + 1), []);

  const load = useCallback(() => {
    const abort = new AbortController();
    setLoadError(null);
    api.me(abort.signal).then(
      (me) => {
        setProfile(me);
        // A confirmed change of address reaches the top bar too.
        const auth = tokenStore.get();
        if (auth && auth.user.id === me.id && auth.user.email !== me.email) tokenStore.set({ ...auth, user: { ...auth.user, email: me.email } });
      },
      (e: unknown) => !abort.signal.aborted && setLoadError(errorText(e)),
    );
    return () => abort.abort();
  }, []);
  useEffect(load, [load]);

  return (
    <div className="min-h-full">
      <TopBar />
      <main className="mx-auto flex max-w-3xl flex-col gap-6 px-6 py-8" data-testid="settings-page">
        <div>
          <h1 className="text-xl font-semibold tracking-tight">Settings</h1>
          <p className="mt-1 text-sm text-muted">Your account, how you sign in, and what happened to it.</p>
        </div>
        {loadError && (
          <Alert action={<Button size="sm" variant="ghost" onClick={load}>Retry</Button>}>Could not load your account: {loadError}</Alert>
        )}
        {profile && (
          <>
            <NameSection profile={profile} onSaved={setProfile} />
            <EmailSection profile={profile} onChanged={changed} />
            <PasswordSection onChanged={changed} />
          </>
        )}
        <SessionsSection refreshKey={activity} onChanged={changed} />
        <AuditSection refreshKey={activity} />
        {profile && <DeleteAccountSection email={profile.email} />}
      </main>
    </div>
  );
}

function NameSection({ profile, onSaved }: { profile: Profile; onSaved: (p: Profile) => void }) {
  const [name, setName] = useState(profile.display_name ?? "");
  const [state, dispatch] = useReducer(formReducer, IDLE);

  async function submit(event: FormEvent) {
    event.preventDefault();
    // The field shows what is wrong; the hub is asked only once it is right.
    if (displayNameProblem(name) || state.kind === "busy") return;
    dispatch({ type: "submit" });
    try {
      const saved = await api.updateProfile(name.trim());
      onSaved({ ...profile, ...saved });
      setName(saved.display_name ?? "");
      dispatch({ type: "succeeded", message: "Saved." });
    } catch (error) {
      dispatch({ type: "failed", error });
    }
  }

  const problem = displayNameProblem(name);
  return (
    <Section title="Name" description="How aether addresses you.">
      <form onSubmit={submit} className="flex flex-col gap-3" noValidate>
        <div className="flex items-end gap-3">
          <Field
            label="Display name"
            className="flex-1"
            value={name}
            maxLength={200}
            autoComplete="name"
            onChange={(e) => {
              setName(e.target.value);
              dispatch({ type: "edited" });
            }}
            error={problem}
            data-testid="settings-display-name"
          />
          <Button type="submit" loading={state.kind === "busy"} disabled={!!problem} data-testid="settings-display-name-save">
            Save
          </Button>
        </div>
        <FormMessage state={state} testId="profile-message" />
      </form>
    </Section>
  );
}

function EmailSection({ profile, onChanged }: { profile: Profile; onChanged: () => void }) {
  const verified = profile.email_verified === true;
  const [resend, dispatchResend] = useReducer(formReducer, IDLE);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [change, dispatchChange] = useReducer(formReducer, IDLE);
  const [problem, setProblem] = useState<string | null>(null);

  async function sendAgain() {
    dispatchResend({ type: "submit" });
    try {
      await api.resendVerification();
      dispatchResend({ type: "succeeded", message: `We sent a new link to ${profile.email}.` });
    } catch (error) {
      dispatchResend({ type: "failed", error });
    }
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    const wrong = emailProblem(email, profile.email) ?? (password ? null : "Enter your password to change the address.");
    setProblem(wrong);
    if (wrong) return;
    dispatchChange({ type: "submit" });
    try {
      await api.changeEmail(email.trim(), password);
      setPassword("");
      dispatchChange({
        type: "succeeded",
        message: `We sent a link to ${email.trim()}. Your address changes when you open it.`,
      });
      onChanged();
    } catch (error) {
      dispatchChange({ type: "failed", error });
    }
  }

  const edited = () => {
    setProblem(null);
    dispatchChange({ type: "edited" });
  };

  return (
    <Section title="Email" description="Where aether sends sign-in links and notices.">
      <div className="flex flex-wrap items-center gap-3">
        <span className="font-medium" data-testid="settings-email">
          {profile.email}
        </span>
        <span
          className={`rounded-full px-2 py-0.5 text-xs font-medium ${verified ? "bg-ok/15 text-ok" : "bg-warn/15 text-warn"}`}
          data-testid="email-status"
          data-verified={verified}
        >
          {verified ? "Verified" : "Not verified"}
        </span>
        {!verified && (
          <Button size="sm" onClick={() => void sendAgain()} loading={resend.kind === "busy"} data-testid="resend-verification">
            Resend verification
          </Button>
        )}
      </div>
      {!verified && resend.kind === "idle" && (
        <p className="text-sm text-muted">Open the link we mailed you to verify this address; until then only one project can run at a time.</p>
      )}
      <FormMessage state={resend} testId="resend-message" />

      <form onSubmit={submit} className="flex flex-col gap-3 border-t border-line pt-4" noValidate>
        <div className="grid gap-3 sm:grid-cols-2">
          <Field
            label="New address"
            type="email"
            autoComplete="email"
            value={email}
            onChange={(e) => {
              setEmail(e.target.value);
              edited();
            }}
            data-testid="new-email"
          />
          <Field
            label="Current password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => {
              setPassword(e.target.value);
              edited();
            }}
            data-testid="new-email-password"
          />
        </div>
        {problem && <p className="text-xs text-danger" data-testid="change-email-problem">{problem}</p>}
        <div>
          <Button type="submit" loading={change.kind === "busy"} data-testid="change-email-submit">
            Send confirmation link
          </Button>
        </div>
        <FormMessage state={change} testId="change-email-message" />
      </form>
    </Section>
  );
}

function PasswordSection({ onChanged }: { onChanged: () => void }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [confirm, setConfirm] = useState("");
  const [state, dispatch] = useReducer(formReducer, IDLE);
  const [problem, setProblem] = useState<string | null>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const wrong = passwordChangeProblem({ current, next, confirm });
    setProblem(wrong);
    if (wrong) return;
    dispatch({ type: "submit" });
    try {
      await api.changePassword(current, next);
      setCurrent("");
      setNext("");
      setConfirm("");
      dispatch({ type: "succeeded", message: "Password changed. Every other session has been signed out." });
      onChanged();
    } catch (error) {
      dispatch({ type: "failed", error });
    }
  }

  const edit = (set: (v: string) => void) => (e: { target: { value: string } }) => {
    set(e.target.value);
    setProblem(null);
    dispatch({ type: "edited" });
  };

  return (
    <Section title="Password" description="Changing it signs out every other session.">
      <form onSubmit={submit} className="flex flex-col gap-3" noValidate>
        <Field label="Current password" type="password" autoComplete="current-password" value={current} onChange={edit(setCurrent)} data-testid="current-password" />
        <div className="grid gap-3 sm:grid-cols-2">
          <Field label="New password" type="password" autoComplete="new-password" value={next} onChange={edit(setNext)} data-testid="new-password" />
          <Field label="New password again" type="password" autoComplete="new-password" value={confirm} onChange={edit(setConfirm)} data-testid="confirm-password" />
        </div>
        {problem && <p className="text-xs text-danger" data-testid="password-problem">{problem}</p>}
        <div>
          <Button type="submit" variant="primary" loading={state.kind === "busy"} data-testid="change-password-submit">
            Change password
          </Button>
        </div>
        <FormMessage state={state} testId="password-message" />
      </form>
    </Section>
  );
}
