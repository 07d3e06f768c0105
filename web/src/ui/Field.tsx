/** A labelled text input with an optional hint and an inline error tied to it for screen readers. */
import { useId, type InputHTMLAttributes, type ReactNode } from "react";

export interface FieldProps extends InputHTMLAttributes<HTMLInputElement> {
  label: string;
  hint?: ReactNode;
  error?: ReactNode;
}

export function Field({ label, hint, error, id, className = "", ...input }: FieldProps) {
  const generated = useId();
  const inputId = id ?? generated;
  const describedBy = error ? `${inputId}-error` : hint ? `${inputId}-hint` : undefined;
  return (
    <div className={`flex flex-col gap-1.5 ${className}`}>
      <label htmlFor={inputId} className="text-xs font-medium text-muted">
        {label}
      </label>
      <input
        id={inputId}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy}
        className={`h-9 rounded-md border bg-canvas px-3 text-sm text-fg placeholder:text-faint transition-colors outline-none focus-visible:outline-2 focus-visible:outline-offset-0 disabled:opacity-60 ${
          error ? "border-danger/70 focus-visible:outline-danger" : "border-line hover:border-line-strong focus-visible:outline-accent"
        }`}
        {...input}
      />
      {error ? (
        <p id={`${inputId}-error`} className="text-xs text-danger">
          {error}
        </p>
      ) : hint ? (
        <p id={`${inputId}-hint`} className="text-xs text-faint">
          {hint}
        </p>
      ) : null}
    </div>
  );
}
