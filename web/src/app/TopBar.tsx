/** The bar above the projects and settings pages: the mark, who is signed in (a link to the settings), sign-out. */
import { api } from "../api/client";
import { tokenStore } from "../api/token";
import { Button } from "../ui/Button";
import { Link } from "../ui/Link";
import { Logo } from "../ui/Logo";
import { navigate, PROJECTS, SETTINGS } from "./router";

export function TopBar() {
  const email = tokenStore.get()?.user.email;
  return (
    <header className="sticky top-0 z-10 border-b border-line bg-canvas/85 backdrop-blur">
      <div className="mx-auto flex h-14 max-w-5xl items-center gap-4 px-6">
        <Link to={PROJECTS} aria-label="aether: projects" className="rounded-md">
          <Logo />
        </Link>
        <div className="flex-1" />
        <a href="/docs" className="text-sm text-muted hover:text-fg" data-testid="docs-link">
          Docs
        </a>
        {email && (
          <span className="hidden truncate text-sm text-muted sm:block" data-testid="user-email">
            {email}
          </span>
        )}
        <Link to={SETTINGS} className="text-sm text-muted hover:text-fg" data-testid="settings-link">
          Settings
        </Link>
        <Button
          size="sm"
          variant="ghost"
          data-testid="sign-out"
          onClick={() => {
            api.signOut();
            navigate("/signin", { replace: true });
          }}
        >
          Sign out
        </Button>
      </div>
    </header>
  );
}
