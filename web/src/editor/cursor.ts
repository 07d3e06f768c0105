/**
 * Where the cursor is in the active editor, for the status bar. A tiny
 * store of its own so a keystroke re-renders the status bar only, not the
 * workspace around it.
 */
export interface CursorInfo {
  line: number;
  column: number;
  /** Characters selected (0 for a plain cursor). */
  selected: number;
}

export class CursorStore {
  private value: CursorInfo | null = null;
  private readonly listeners = new Set<() => void>();

  get snapshot(): CursorInfo | null {
    return this.value;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  set(value: CursorInfo | null): void {
    const v = this.value;
    if (v === value || (v && value && v.line === value.line && v.column === value.column && v.selected === value.selected)) return;
    this.value = value;
    for (const listener of [...this.listeners]) listener();
  }
}
