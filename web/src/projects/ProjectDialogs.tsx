/** Create, rename and delete dialogs for projects; each submits on Enter and closes on Escape. */
import { useState, type FormEvent } from "react";
import { api, ApiError } from "../api/client";
import type { Project } from "../api/types";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { Dialog } from "../ui/Dialog";
import { Field } from "../ui/Field";

function message(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.code === "limit_reached") return `${error.message} Delete a project or upgrade your plan to make room.`;
    return error.message;
  }
  return "Something went wrong. Try again.";
}

export function CreateProjectDialog({
  open,
  onClose,
  onCreated,
}: {
  open: boolean;
  onClose: () => void;
  onCreated: (project: Project) => void;
}) {
  return (
    <Dialog open={open} onClose={onClose} title="New project" description="Each project gets its own cloud machine." testId="create-project-dialog">
      {open && <CreateProjectForm onClose={onClose} onCreated={onCreated} />}
    </Dialog>
  );
}

function CreateProjectForm({ onClose, onCreated }: { onClose: () => void; onCreated: (project: Project) => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [nameError, setNameError] = useState<string>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (busy) return;
    const trimmed = name.trim();
    if (!trimmed) {
      setNameError("Give the project a name.");
      return;
    }
    setBusy(true);
    setNameError(undefined);
    setError(undefined);
    try {
      const desc = description.trim();
      const project = await api.createProject(desc ? { name: trimmed, description: desc } : { name: trimmed });
      onCreated(project);
    } catch (e) {
      if (e instanceof ApiError && e.status === 400 && /name/i.test(e.message)) setNameError(e.message);
      else setError(message(e));
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="flex flex-col gap-4">
      {error && <Alert>{error}</Alert>}
      <Field
        label="Name"
        autoFocus
        value={name}
        onChange={(e) => setName(e.target.value)}
        error={nameError}
        placeholder="my-app"
        maxLength={100}
        data-testid="project-name-input"
      />
      <Field
        label="Description"
        hint="Optional."
        value={description}
        onChange={(e) => setDescription(e.target.value)}
        placeholder="What is it for?"
        maxLength={500}
        data-testid="project-description-input"
      />
      <div className="flex justify-end gap-2 pt-1">
        <Button variant="ghost" onClick={onClose}>
          Cancel
        </Button>
        <Button type="submit" variant="primary" loading={busy} data-testid="create-project-submit">
          Create project
        </Button>
      </div>
    </form>
  );
}

export function RenameProjectDialog({
  project,
  onClose,
  onRenamed,
}: {
  project: Project | null;
  onClose: () => void;
  onRenamed: (project: Project) => void;
}) {
  return (
    <Dialog open={project !== null} onClose={onClose} title="Rename project" testId="rename-project-dialog">
      {project && <RenameForm key={project.id} project={project} onClose={onClose} onRenamed={onRenamed} />}
    </Dialog>
  );
}

function RenameForm({ project, onClose, onRenamed }: { project: Project; onClose: () => void; onRenamed: (project: Project) => void }) {
  const [name, setName] = useState(project.name);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (busy) return;
    const trimmed = name.trim();
    if (!trimmed) {
      setError("Give the project a name.");
      return;
    }
    if (trimmed === project.name) {
      onClose();
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      onRenamed(await api.updateProject(project.id, { name: trimmed }));
    } catch (e) {
      setError(message(e));
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="flex flex-col gap-4">
      <Field
        label="Name"
        autoFocus
        onFocus={(e) => e.currentTarget.select()}
        value={name}
        onChange={(e) => setName(e.target.value)}
        error={error}
        maxLength={100}
        data-testid="rename-input"
      />
      <div className="flex justify-end gap-2 pt-1">
        <Button variant="ghost" onClick={onClose}>
          Cancel
        </Button>
        <Button type="submit" variant="primary" loading={busy} data-testid="rename-submit">
          Rename
        </Button>
      </div>
    </form>
  );
}

export function DeleteProjectDialog({
  project,
  onClose,
  onDeleted,
}: {
  project: Project | null;
  onClose: () => void;
  onDeleted: (project: Project) => void;
}) {
  return (
    <Dialog
      open={project !== null}
      onClose={onClose}
      title="Delete project?"
      testId="delete-project-dialog"
      description={
        project && (
          <>
            <span className="font-medium text-fg">{project.name}</span>, its machine and everything on its disk will be deleted. This cannot be
            undone.
          </>
        )
      }
    >
      {project && <DeleteForm key={project.id} project={project} onClose={onClose} onDeleted={onDeleted} />}
    </Dialog>
  );
}

function DeleteForm({ project, onClose, onDeleted }: { project: Project; onClose: () => void; onDeleted: (project: Project) => void }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(undefined);
    try {
      await api.deleteProject(project.id);
      onDeleted(project);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        onDeleted(project); // already gone
        return;
      }
      setError(message(e));
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} className="flex flex-col gap-4">
      {error && <Alert>{error}</Alert>}
      <div className="flex justify-end gap-2">
        <Button variant="ghost" onClick={onClose} autoFocus>
          Cancel
        </Button>
        <Button type="submit" variant="danger" loading={busy} data-testid="confirm-delete">
          Delete project
        </Button>
      </div>
    </form>
  );
}
