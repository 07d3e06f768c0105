/** The pieces every settings section is made of: a titled card and a form's outcome. */
import type { ReactNode } from "react";
import { Alert } from "../ui/Alert";
import type { FormState } from "./settings";

/** A titled card holding one of the page's forms or lists. */
export function Section({ title, description, children, testId }: { title: string; description?: ReactNode; children: ReactNode; testId?: string }) {
  return (
    <section className="flex flex-col gap-4 rounded-xl border border-line bg-surface p-5" data-testid={testId} aria-label={title}>
      <div>
        <h2 className="font-medium">{title}</h2>
        {description && <p className="mt-1 text-sm text-muted">{description}</p>}
      </div>
      {children}
    </section>
  );
}

/** A form's outcome: the hub's message on failure, what happened on success. */
export function FormMessage({ state, testId }: { state: FormState; testId: string }) {
  if (state.kind === "error") {
    return (
      <div data-testid={testId} data-state="error">
        <Alert>{state.message}</Alert>
      </div>
    );
  }
  if (state.kind === "done") {
    return (
      <p className="text-sm text-ok" role="status" data-testid={testId} data-state="done">
        {state.message}
      </p>
    );
  }
  return null;
}

