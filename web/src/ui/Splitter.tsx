/**
 * A drag handle between two panels: a 1 px line with a wider grab area,
 * dragged with the pointer or moved with the arrow keys (a focusable
 * `separator`, as WAI-ARIA describes it). The parent owns the size; it gets
 * the pointer position while dragging and a step on each key press.
 */
import { useRef, type KeyboardEvent, type PointerEvent } from "react";

export interface SplitterProps {
  /** `vertical`: a vertical bar that changes widths; `horizontal`: changes heights. */
  orientation: "vertical" | "horizontal";
  label: string;
  /** For assistive technology: the current size in percent. */
  valueNow: number;
  onDrag(clientPosition: number): void;
  onDragEnd(): void;
  /** Arrow keys: -1 or +1 (towards the end: right or down). */
  onStep(direction: -1 | 1): void;
  testId?: string;
}

export function Splitter({ orientation, label, valueNow, onDrag, onDragEnd, onStep, testId }: SplitterProps) {
  const dragging = useRef(false);
  const vertical = orientation === "vertical";

  function down(event: PointerEvent<HTMLDivElement>) {
    if (event.button !== 0) return;
    event.preventDefault();
    event.currentTarget.setPointerCapture(event.pointerId);
    dragging.current = true;
    document.body.dataset.resizing = vertical ? "col" : "row";
  }

  function move(event: PointerEvent<HTMLDivElement>) {
    if (!dragging.current) return;
    onDrag(vertical ? event.clientX : event.clientY);
  }

  function up(event: PointerEvent<HTMLDivElement>) {
    if (!dragging.current) return;
    dragging.current = false;
    delete document.body.dataset.resizing;
    if (event.currentTarget.hasPointerCapture(event.pointerId)) event.currentTarget.releasePointerCapture(event.pointerId);
    onDragEnd();
  }

  function key(event: KeyboardEvent<HTMLDivElement>) {
    const back = vertical ? "ArrowLeft" : "ArrowUp";
    const forward = vertical ? "ArrowRight" : "ArrowDown";
    if (event.key !== back && event.key !== forward) return;
    event.preventDefault();
    onStep(event.key === forward ? 1 : -1);
  }

  return (
    <div
      role="separator"
      aria-label={label}
      aria-orientation={vertical ? "vertical" : "horizontal"}
      aria-valuenow={Math.round(valueNow)}
      aria-valuemin={0}
      aria-valuemax={100}
      tabIndex={0}
      onPointerDown={down}
      onPointerMove={move}
      onPointerUp={up}
      onPointerCancel={up}
      onKeyDown={key}
      data-testid={testId}
      className={`group relative z-10 shrink-0 bg-line outline-none ${vertical ? "w-px cursor-col-resize" : "h-px cursor-row-resize"}`}
    >
      <span
        aria-hidden="true"
        className={`absolute transition-colors group-hover:bg-accent/60 group-focus-visible:bg-accent group-active:bg-accent ${
          vertical ? "inset-y-0 -left-[3px] w-[7px]" : "inset-x-0 -top-[3px] h-[7px]"
        } [background-clip:content-box] ${vertical ? "px-[3px]" : "py-[3px]"}`}
      />
    </div>
  );
}
