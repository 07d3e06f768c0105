/**
 * A context menu at the pointer (or at an element, for the keyboard): kept
 * inside the window, arrow keys move, Enter picks, Escape or a click
 * elsewhere closes, and focus goes back where it was.
 */
import { useEffect, useLayoutEffect, useRef, useState, type KeyboardEvent, type ReactNode } from "react";

export type MenuEntry =
  | { label: string; icon?: ReactNode; shortcut?: string; danger?: boolean; disabled?: boolean; onSelect: () => void; testId?: string }
  | "separator";

export function ContextMenu({ x, y, items, onClose, label }: { x: number; y: number; items: MenuEntry[]; onClose: () => void; label: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const [pos, setPos] = useState({ left: x, top: y });

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const { width, height } = el.getBoundingClientRect();
    setPos({ left: Math.max(4, Math.min(x, window.innerWidth - width - 4)), top: Math.max(4, Math.min(y, window.innerHeight - height - 4)) });
    const previous = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    el.querySelector<HTMLButtonElement>("button:not(:disabled)")?.focus();
    return () => previous?.focus();
  }, [x, y]);

  useEffect(() => {
    const away = (event: PointerEvent) => {
      if (ref.current && !ref.current.contains(event.target as Node)) onClose();
    };
    const blur = () => onClose();
    document.addEventListener("pointerdown", away, true);
    window.addEventListener("blur", blur);
    window.addEventListener("resize", blur);
    return () => {
      document.removeEventListener("pointerdown", away, true);
      window.removeEventListener("blur", blur);
      window.removeEventListener("resize", blur);
    };
  }, [onClose]);

  function key(event: KeyboardEvent<HTMLDivElement>) {
    const buttons = [...(ref.current?.querySelectorAll<HTMLButtonElement>("button:not(:disabled)") ?? [])];
    const i = buttons.indexOf(document.activeElement as HTMLButtonElement);
    const go = (j: number) => buttons[(j + buttons.length) % buttons.length]?.focus();
    if (event.key === "Escape" || event.key === "Tab") {
      event.preventDefault();
      onClose();
    } else if (event.key === "ArrowDown") {
      event.preventDefault();
      go(i + 1);
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      go(i - 1);
    } else if (event.key === "Home") {
      event.preventDefault();
      go(0);
    } else if (event.key === "End") {
      event.preventDefault();
      go(buttons.length - 1);
    }
    event.stopPropagation();
  }

  return (
    <div
      ref={ref}
      role="menu"
      aria-label={label}
      onKeyDown={key}
      onContextMenu={(e) => e.preventDefault()}
      style={{ left: pos.left, top: pos.top }}
      className="fixed z-50 min-w-48 animate-fade-in rounded-lg border border-line bg-raised p-1 shadow-xl shadow-black/40"
      data-testid="context-menu"
    >
      {items.map((item, i) =>
        item === "separator" ? (
          <div key={`sep-${i}`} role="separator" className="my-1 h-px bg-line" />
        ) : (
          <button
            key={item.label}
            role="menuitem"
            disabled={item.disabled}
            onClick={() => {
              onClose();
              item.onSelect();
            }}
            className={`flex h-7 w-full items-center gap-2.5 rounded-md px-2 text-left text-[13px] outline-none disabled:opacity-40 ${
              item.danger ? "text-danger hover:bg-danger/10 focus:bg-danger/10" : "text-fg hover:bg-hover focus:bg-hover"
            }`}
            data-testid={item.testId}
          >
            <span className="flex size-4 items-center justify-center text-muted">{item.icon}</span>
            <span className="flex-1">{item.label}</span>
            {item.shortcut && <kbd className="font-sans text-xs text-faint">{item.shortcut}</kbd>}
          </button>
        ),
      )}
    </div>
  );
}
