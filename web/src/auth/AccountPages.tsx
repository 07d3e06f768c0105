/**
 * The pages around signing in that a mailed link or "Forgot password?"
 * opens: asking for a reset link, choosing a new password from one
 * (which signs in), confirming an address, and the page after an account
 * was deleted. They work signed in or out.
 */
import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import { api } from "../api/client";
import { go, navigate, PROJECTS, SETTINGS } from "../app/router";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { Field } from "../ui/Field";
import { Link } from "../ui/Link";
import { Logo } from "../ui/Logo";
import { Spinner } from "../ui/Spinner";
import { linkFailure, linkToken, newPasswordProblem, redeemOnce, type LinkOutcome } from "./links";

function Shell({ title, lead, children, testId }: { title: string; lead?: ReactNode; children: ReactNode; testId: string }) {
  return (
    <main className="flex min-h-full items-center justify-center px-4 py-12" data-testid={testId}>
      <div className="flex w-full max-w-sm flex-col gap-6">
        <div className="flex flex-col items-center gap-3 text-center">
          <a href="/" aria-label="aether: home" className="rounded-md">
            <Logo />
          </a>
          <div>
            <h1 className="text-xl font-semibold tracking-tight">{title}</h1>
            {lead && <p className="mt-1 text-sm text-muted">{lead}</p>}
          </div>
        </div>
        {children}
      </div>
    </main>
  );
}

const card = "flex flex-col gap-4 rounded-xl border border-line bg-surface p-6 shadow-xl shadow-black/20";
const linkClass = "font-medium text-accent hover:text-accent-hover";

export function ForgotPasswordPage({ email: initial }: { email: string | null }) {
  const [email, setEmail] = useState(initial ?? "");
  const [sentTo, setSentTo] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const address = email.trim();
    if (!/^[^\s@]+@[^\s@]+$/.test(address)) return setError("Enter the email address you signed up with.");
    setBusy(true);
    setError(null);
    try {
      await api.requestPasswordReset(address);
      setSentTo(address);
    } catch (e) {
      setError(linkFailure(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Shell title="Reset your password" lead="We'll mail you a link to choose a new one." testId="forgot-password-page">
      {sentTo ? (
        <div className={card}>
          <p className="text-sm" role="status" data-testid="forgot-sent">
            If an account uses <strong>{sentTo}</strong>, a link to reset its password is on its way. It works once, for 30 minutes.
          </p>
        </div>
      ) : (
        <form onSubmit={submit} noValidate className={card} data-testid="forgot-form">
          {error && <Alert>{error}</Alert>}
          <Field
            label="Email"
            type="email"
            autoComplete="email"
            autoFocus
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            data-testid="forgot-email"
            placeholder="you@example.com"
          />
          <Button type="submit" variant="primary" loading={busy} className="w-full" data-testid="forgot-submit">
            Send reset link
          </Button>
        </form>
      )}
      <p className="text-center text-sm text-muted">
        Remembered it?{" "}
        <Link to="/signin" className={linkClass}>
          Sign in
        </Link>
      </p>
    </Shell>
  );
}

export function ResetPasswordPage({ token: fromUrl }: { token: string | null }) {
  // Kept here, and taken out of the address bar so it stays out of the history.
  const [token] = useState(() => linkToken(fromUrl));
  useEffect(() => {
    if (fromUrl) navigate("/reset-password", { replace: true });
  }, [fromUrl]);
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!token) return;
    const problem = newPasswordProblem(password, confirm);
    setError(problem);
    if (problem) return;
    setBusy(true);
    try {
      await api.confirmPasswordReset(token, password);
      go(PROJECTS, { replace: true });
    } catch (e) {
      setError(linkFailure(e));
      setBusy(false);
    }
  }

  return (
    <Shell title="Choose a new password" lead="Every other session of your account will be signed out." testId="reset-password-page">
      {token ? (
        <form onSubmit={submit} noValidate className={card} data-testid="reset-form">
          {error && (
            <div data-testid="reset-error">
              <Alert>{error}</Alert>
            </div>
          )}
          <Field label="New password" type="password" autoComplete="new-password" autoFocus value={password} onChange={(e) => setPassword(e.target.value)} data-testid="reset-password" />
          <Field label="New password again" type="password" autoComplete="new-password" value={confirm} onChange={(e) => setConfirm(e.target.value)} data-testid="reset-password-confirm" />
          <Button type="submit" variant="primary" loading={busy} className="w-full" data-testid="reset-submit">
            Set password and sign in
          </Button>
        </form>
      ) : (
        <Alert>This link is incomplete. Open the link from the mail again, or ask for a new one.</Alert>
      )}
      <p className="text-center text-sm text-muted">
        Link expired?{" "}
        <Link to="/forgot-password" className={linkClass}>
          Send a new one
        </Link>
      </p>
    </Shell>
  );
}

export function VerifyEmailPage({ token, signedIn }: { token: string | null; signedIn: boolean }) {
  const t = linkToken(token);
  const [outcome, setOutcome] = useState<LinkOutcome>(
    t ? { kind: "pending" } : { kind: "failed", message: "This link is incomplete. Open the link from the mail again." },
  );
  useEffect(() => {
    if (!t) return;
    let live = true;
    void redeemOnce(t, (x) => api.verifyEmail(x)).then((o) => live && setOutcome(o));
    return () => {
      live = false;
    };
  }, [t]);

  return (
    <Shell title="Email verification" testId="verify-email-page">
      <div className={card} data-testid="verify-result" data-state={outcome.kind}>
        {outcome.kind === "pending" && (
          <p className="flex items-center gap-2 text-sm text-muted">
            <Spinner className="size-4" /> Checking the link…
          </p>
        )}
        {outcome.kind === "ok" && (
          <p className="text-sm" role="status">
            <strong>{outcome.email}</strong> is verified.
          </p>
        )}
        {outcome.kind === "failed" && <Alert>{outcome.message}</Alert>}
      </div>
      <p className="text-center text-sm text-muted">
        {signedIn ? (
          <Link to={SETTINGS} className={linkClass} data-testid="verify-continue">
            Go to your settings
          </Link>
        ) : (
          <Link to="/signin" className={linkClass} data-testid="verify-continue">
            Sign in
          </Link>
        )}
      </p>
    </Shell>
  );
}

export function AccountDeletedPage() {
  return (
    <Shell title="Your account is deleted" lead="Its projects, machines and files are gone. Thank you for trying aether." testId="account-deleted-page">
      <p className="text-center text-sm">
        <a href="/" className={linkClass}>
          Back to the home page
        </a>
      </p>
    </Shell>
  );
}
