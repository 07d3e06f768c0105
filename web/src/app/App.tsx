/**
 * The route table and the sign-in guard. The workspace is loaded lazily so
 * xterm.js stays out of the first page's JavaScript.
 */
import { lazy, Suspense, useEffect, useSyncExternalStore } from "react";
import { tokenStore } from "../api/token";
import { AuthPage } from "../auth/AuthPage";
import { AccountDeletedPage, ForgotPasswordPage, ResetPasswordPage, VerifyEmailPage } from "../auth/AccountPages";
import { BillingPage } from "../billing/BillingPage";
import { ProjectsPage } from "../projects/ProjectsPage";
import { WorkspaceSkeleton } from "../workspace/WorkspaceSkeleton";
import { Link } from "../ui/Link";
import { Logo } from "../ui/Logo";
import { go, PROJECTS, safeNext, SETTINGS, useLocation } from "./router";

const WorkspacePage = lazy(() => import("../workspace/WorkspacePage"));
const SettingsPage = lazy(() => import("../settings/SettingsPage"));

function useSignedIn(): boolean {
  return useSyncExternalStore(
    (listener) => tokenStore.subscribe(listener),
    () => tokenStore.token() !== null,
  );
}

function Redirect({ to }: { to: string }) {
  useEffect(() => go(to, { replace: true }), [to]);
  return null;
}

export function App() {
  const location = useLocation();
  const signedIn = useSignedIn();
  const { pathname } = location;

  if (pathname === "/signin" || pathname === "/signup") {
    if (signedIn) return <Redirect to={safeNext(location.search.get("next"))} />;
    return <AuthPage mode={pathname === "/signup" ? "signup" : "signin"} next={location.search.get("next")} />;
  }

  // Pages a mailed link opens work signed in or out.
  if (pathname === "/forgot-password") return <ForgotPasswordPage email={location.search.get("email")} />;
  if (pathname === "/reset-password") return <ResetPasswordPage token={location.search.get("token")} />;
  if (pathname === "/verify-email") return <VerifyEmailPage token={location.search.get("token")} signedIn={signedIn} />;
  if (pathname === "/account-deleted") return <AccountDeletedPage />;

  // The hub serves its landing page at `/`; the app only meets `/` without
  // the hub in front (Vite's dev server), and starts at the projects then.
  if (pathname === "/") return <Redirect to={PROJECTS} />;

  if (!signedIn) {
    const next = pathname === PROJECTS ? "" : `?next=${encodeURIComponent(location.href)}`;
    return <Redirect to={`/signin${next}`} />;
  }

  if (pathname === PROJECTS) return <ProjectsPage />;
  if (pathname === "/billing") return <BillingPage />;

  if (pathname === SETTINGS) {
    return (
      <Suspense fallback={null}>
        <SettingsPage />
      </Suspense>
    );
  }

  const workspace = /^\/p\/([^/]+)\/?$/.exec(pathname);
  if (workspace?.[1]) {
    const projectId = decodeURIComponent(workspace[1]);
    return (
      <Suspense fallback={<WorkspaceSkeleton />}>
        <WorkspacePage key={projectId} projectId={projectId} />
      </Suspense>
    );
  }

  return <NotFound />;
}

function NotFound() {
  return (
    <main className="flex h-full flex-col items-center justify-center gap-4 p-6 text-center">
      <Logo withWord={false} />
      <h1 className="text-lg font-semibold">Page not found</h1>
      <p className="text-sm text-muted">There is nothing at this address.</p>
      <Link to={PROJECTS} className="text-sm font-medium text-accent hover:text-accent-hover">
        Back to projects
      </Link>
    </main>
  );
}
