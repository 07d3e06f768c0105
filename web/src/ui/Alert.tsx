/** A form-level or page-level message; errors are announced as they appear. */
import type { ReactNode } from "react";

export function Alert({ tone = "error", children, action }: { tone?: "error" | "warn" | "info"; children: ReactNode; action?: ReactNode }) {
  const tones = {
    error: "border-danger/30 bg-danger/10 text-danger",
    warn: "border-warn/30 bg-warn/10 text-warn",
    info: "border-line bg-raised text-muted",
  } as const;
  return (
    <div role={tone === "error" ? "alert" : "status"} className={`flex items-start gap-3 rounded-md border px-3 py-2.5 text-sm ${tones[tone]}`}>
      <div className="min-w-0 flex-1 break-words">{children}</div>
      {action}
    </div>
  );
}
