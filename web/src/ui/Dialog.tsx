/**
 * A modal on the native <dialog>: the browser traps focus and turns Escape
 * into `cancel`, which closes it; a click on the backdrop closes it too.
 * Opening focuses the element marked `data-autofocus`, if any (showModal
 * alone would pick the first button, which may be the dangerous one).
 */
import { useEffect, useRef, type ReactNode } from "react";

export interface DialogProps {
  open: boolean;
  onClose: () => void;
  title: string;
  description?: ReactNode;
  children: ReactNode;
  testId?: string;
  /** `lg` for dialogs that show code or keys. */
  size?: "md" | "lg";
}

export function Dialog({ open, onClose, title, description, children, testId, size = "md" }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) {
      dialog.showModal();
      dialog.querySelector<HTMLElement>("[data-autofocus]")?.focus();
    }
    if (!open && dialog.open) dialog.close();
  }, [open]);

  return (
    <dialog
      ref={ref}
      data-testid={testId}
      aria-labelledby={testId ? `${testId}-title` : undefined}
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
      onClick={(event) => {
        if (event.target === ref.current) onClose();
      }}
      className={`m-auto ${size === "lg" ? "w-[min(40rem,calc(100vw-2rem))]" : "w-[min(28rem,calc(100vw-2rem))]"} rounded-xl border border-line bg-surface p-0 text-fg shadow-2xl shadow-black/50 open:animate-fade-in`}
    >
      {open && (
        <div className="flex flex-col gap-4 p-5">
          <div className="flex flex-col gap-1">
            <h2 id={testId ? `${testId}-title` : undefined} className="text-base font-semibold">
              {title}
            </h2>
            {description && <div className="text-sm text-muted">{description}</div>}
          </div>
          {children}
        </div>
      )}
    </dialog>
  );
}
