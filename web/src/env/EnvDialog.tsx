/**
 * The project's environment variables: list, add, edit, delete, saved
 * together with one PATCH. Values are masked until revealed, one row at a
 * time. Names the hub refuses (its reserved `AETHER_*`, say) come back with
 * its message, shown as it is. After a save the dialog says when the VM
 * gets the new values, and offers a restart while it runs.
 */
import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client";
import type { Project } from "../api/types";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { Dialog } from "../ui/Dialog";
import { EyeIcon, PlusIcon, TrashIcon } from "../ui/icons";
import { addRow, applyNote, collect, isDirty, offersRestart, removeRow, rowsFrom, updateRow, type EnvRow } from "./env";

export interface EnvDialogProps {
  project: Project;
  open: boolean;
  onClose: () => void;
  onSaved: (project: Project) => void;
  /** Stop and start the VM, so that it gets the saved values. */
  onRestart: () => Promise<void>;
}

const INPUT =
  "h-8 min-w-0 rounded-md border border-line bg-canvas px-2 font-mono text-xs text-fg placeholder:text-faint outline-none hover:border-line-strong focus-visible:outline-2 focus-visible:outline-accent";

export function EnvDialog({ project, open, onClose, onSaved, onRestart }: EnvDialogProps) {
  const [rows, setRows] = useState<EnvRow[]>([]);
  const [revealed, setRevealed] = useState<ReadonlySet<number>>(() => new Set());
  const [error, setError] = useState<{ key?: number; message: string } | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const [restarting, setRestarting] = useState(false);

  // Each opening starts from what is saved.
  useEffect(() => {
    if (!open) return;
    const saved = rowsFrom(project.env_vars);
    setRows(saved.length > 0 ? saved : addRow([]));
    setRevealed(new Set());
    setError(null);
    setNote(null);
    // Only on opening: a project event while it is open must not undo the edits.
  }, [open]);

  const dirty = isDirty(project.env_vars, rows);

  /** An edit: what was said about the form before no longer holds. */
  function edit(next: EnvRow[]) {
    setRows(next);
    setError(null);
    setNote(null);
  }

  async function save() {
    const collected = collect(rows);
    if (!collected.ok) {
      setError({ key: collected.key, message: collected.message });
      return;
    }
    setSaving(true);
    setError(null);
    setNote(null);
    try {
      const updated = await api.updateProject(project.id, { env_vars: collected.vars });
      onSaved(updated);
      const saved = rowsFrom(updated.env_vars);
      setRows(saved.length > 0 ? saved : addRow([]));
      setRevealed(new Set());
      setNote(applyNote(updated.status));
    } catch (e) {
      setError({ message: e instanceof ApiError ? e.message : "Could not save the variables." });
    } finally {
      setSaving(false);
    }
  }

  async function restart() {
    setRestarting(true);
    setError(null);
    try {
      await onRestart();
      onClose();
    } catch (e) {
      setError({ message: e instanceof ApiError ? e.message : "Could not restart the VM." });
    } finally {
      setRestarting(false);
    }
  }

  function toggle(key: number) {
    setRevealed((r) => {
      const next = new Set(r);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });
  }

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title="Environment variables"
      description="Set in the VM's environment when it starts: in every terminal, and for agents over SSH. Values are stored encrypted."
      testId="env-dialog"
      size="lg"
    >
      <form
        className="flex flex-col gap-3"
        onSubmit={(event) => {
          event.preventDefault();
          void save();
        }}
      >
        <div className="flex max-h-80 flex-col gap-2 overflow-y-auto" data-testid="env-rows">
          {rows.map((row, i) => {
            const shown = revealed.has(row.key);
            const invalid = error?.key === row.key;
            return (
              <div key={row.key} className="flex items-center gap-2" data-testid="env-row" data-env-name={row.name.trim()}>
                <input
                  aria-label={`Name of variable ${i + 1}`}
                  aria-invalid={invalid || undefined}
                  className={`${INPUT} w-2/5 ${invalid ? "border-danger/70" : ""}`}
                  placeholder="NAME"
                  spellCheck={false}
                  autoComplete="off"
                  value={row.name}
                  onChange={(e) => edit(updateRow(rows, row.key, { name: e.target.value }))}
                  data-testid="env-name"
                  data-autofocus={i === 0 ? true : undefined}
                />
                <input
                  aria-label={`Value of ${row.name.trim() || `variable ${i + 1}`}`}
                  className={`${INPUT} flex-1`}
                  type={shown ? "text" : "password"}
                  placeholder="value"
                  spellCheck={false}
                  autoComplete="off"
                  value={row.value}
                  onChange={(e) => edit(updateRow(rows, row.key, { value: e.target.value }))}
                  data-testid="env-value"
                />
                <button
                  type="button"
                  aria-label={shown ? `Hide the value of ${row.name.trim() || "this variable"}` : `Show the value of ${row.name.trim() || "this variable"}`}
                  aria-pressed={shown}
                  title={shown ? "Hide value" : "Show value"}
                  className={`flex size-8 shrink-0 items-center justify-center rounded-md hover:bg-hover ${shown ? "text-fg" : "text-muted"}`}
                  onClick={() => toggle(row.key)}
                  data-testid="env-reveal"
                >
                  <EyeIcon className="size-4" />
                </button>
                <button
                  type="button"
                  aria-label={`Delete ${row.name.trim() || "this variable"}`}
                  title="Delete"
                  className="flex size-8 shrink-0 items-center justify-center rounded-md text-muted hover:bg-hover hover:text-danger"
                  onClick={() => edit(removeRow(rows, row.key))}
                  data-testid="env-delete"
                >
                  <TrashIcon className="size-4" />
                </button>
              </div>
            );
          })}
          {rows.length === 0 && <p className="text-sm text-muted">No variables. Add one below.</p>}
        </div>
        <div>
          <Button size="sm" variant="ghost" icon={<PlusIcon className="size-3.5" />} onClick={() => edit(addRow(rows))} data-testid="env-add">
            Add a variable
          </Button>
        </div>
        {error && (
          <div data-testid="env-error">
            <Alert>{error.message}</Alert>
          </div>
        )}
        {note && !dirty && (
          <div data-testid="env-saved">
            <Alert
              tone="info"
              action={
                offersRestart(project.status) ? (
                  <Button size="sm" variant="secondary" loading={restarting} onClick={() => void restart()} data-testid="env-restart">
                    Restart the VM
                  </Button>
                ) : undefined
              }
            >
              {note}
            </Alert>
          </div>
        )}
        <div className="flex justify-end gap-2">
          <Button variant="ghost" onClick={onClose} data-testid="env-close">
            Close
          </Button>
          <Button type="submit" variant="primary" loading={saving} disabled={!dirty} data-testid="env-save">
            Save
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
