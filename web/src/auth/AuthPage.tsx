/**
 * Sign-up and sign-in: one form, two modes. Errors from the hub land next to
 * the field they are about (409 email taken, 400 weak password or bad email)
 * or above the form (401 bad credentials, rate limits, no network). Sign-in
 * links to the page that mails a password-reset link.
 */
import { useEffect, useRef, useState, type FormEvent, type ReactNode } from "react";
import { api, ApiError } from "../api/client";
import { go, safeNext } from "../app/router";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { Field } from "../ui/Field";
import { Link } from "../ui/Link";
import { Logo } from "../ui/Logo";

export type AuthMode = "signin" | "signup";

interface Errors {
  email?: ReactNode;
  password?: ReactNode;
  form?: ReactNode;
}

export function AuthPage({ mode, next }: { mode: AuthMode; next: string | null }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  const signup = mode === "signup";

  // After a failed attempt, put the caret where the fix goes.
  useEffect(() => {
    if (!errors.email && !errors.password && !errors.form) return;
    const target =
      form.current?.querySelector<HTMLInputElement>('[aria-invalid="true"]') ??
      form.current?.querySelector<HTMLInputElement>('input[name="password"]');
    target?.focus();
    if (errors.form) target?.select();
  }, [errors]);
  const id = (name: string) => `${mode}-${name}`;
  const keepNext = next ? `?next=${encodeURIComponent(next)}` : "";

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (busy) return;
    const invalid = validate(email.trim(), password);
    setErrors(invalid ?? {});
    if (invalid) return;
    setBusy(true);
    try {
      if (signup) await api.signup(email.trim(), password);
      else await api.login(email.trim(), password);
      go(safeNext(next), { replace: true });
    } catch (error) {
      setErrors(explain(error, mode, keepNext));
      setBusy(false);
    }
  }

  return (
    <main className="flex min-h-full items-center justify-center px-4 py-12">
      <div className="flex w-full max-w-sm flex-col gap-6">
        <div className="flex flex-col items-center gap-3 text-center">
          {/* The landing page is the hub's, not the app's: a page load. */}
          <a href="/" aria-label="aether: home" className="rounded-md" data-testid="home-link">
            <Logo />
          </a>
          <div>
            <h1 className="text-xl font-semibold tracking-tight">{signup ? "Create your account" : "Sign in to aether"}</h1>
            <p className="mt-1 text-sm text-muted">
              {signup ? "A cloud machine per project, a terminal in your browser." : "Welcome back."}
            </p>
          </div>
        </div>

        <form
          ref={form}
          onSubmit={submit}
          noValidate
          className="flex flex-col gap-4 rounded-xl border border-line bg-surface p-6 shadow-xl shadow-black/20"
          data-testid={`${mode}-form`}
        >
          {errors.form && <Alert>{errors.form}</Alert>}
          <Field
            label="Email"
            type="email"
            name="email"
            autoComplete="email"
            autoFocus
            required
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            error={errors.email}
            data-testid={id("email")}
            placeholder="you@example.com"
          />
          <Field
            label="Password"
            type="password"
            name="password"
            autoComplete={signup ? "new-password" : "current-password"}
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            error={errors.password}
            data-testid={id("password")}
          />
          {!signup && (
            <Link
              to={`/forgot-password${email.trim() ? `?email=${encodeURIComponent(email.trim())}` : ""}`}
              className="-mt-2 self-end text-xs text-muted hover:text-fg"
              data-testid="forgot-password"
            >
              Forgot password?
            </Link>
          )}
          <Button type="submit" variant="primary" loading={busy} data-testid={id("submit")} className="mt-1 w-full">
            {signup ? "Create account" : "Sign in"}
          </Button>
        </form>

        <p className="text-center text-sm text-muted">
          {signup ? "Already have an account? " : "New to aether? "}
          <Link
            to={`${signup ? "/signin" : "/signup"}${keepNext}`}
            className="font-medium text-accent hover:text-accent-hover"
            data-testid={signup ? "goto-signin" : "goto-signup"}
          >
            {signup ? "Sign in" : "Create an account"}
          </Link>
        </p>
      </div>
    </main>
  );
}

function validate(email: string, password: string): Errors | null {
  const errors: Errors = {};
  if (!email) errors.email = "Enter your email address.";
  else if (!/^[^\s@]+@[^\s@]+$/.test(email)) errors.email = "Enter a valid email address.";
  if (!password) errors.password = "Enter a password.";
  return errors.email || errors.password ? errors : null;
}

function explain(error: unknown, mode: AuthMode, keepNext: string): Errors {
  if (!(error instanceof ApiError)) return { form: "Something went wrong. Try again." };
  switch (error.status) {
    case 409:
      return {
        email: (
          <>
            An account with this email already exists.{" "}
            <Link to={`/signin${keepNext}`} className="underline underline-offset-2">
              Sign in instead
            </Link>
          </>
        ),
      };
    case 400: {
      const message = error.message || "Check the email and password.";
      if (/password/i.test(message)) return { password: message };
      if (/email/i.test(message)) return { email: message };
      return { form: message };
    }
    case 401:
      return mode === "signin" ? { form: "Incorrect email or password." } : { form: error.message };
    case 429:
      return { form: "Too many attempts. Wait a minute and try again." };
    default:
      return { form: error.message };
  }
}
