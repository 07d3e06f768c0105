/**
 * Deleting the account: a dialog that asks for the address typed out and
 * the password, then sends the user to a page saying it is done (the
 * tokens are gone by then, so no signed-in page could show).
 */
import { useReducer, useState, type FormEvent } from "react";
import { api } from "../api/client";
import { navigate } from "../app/router";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { Dialog } from "../ui/Dialog";
import { Field } from "../ui/Field";
import { Section } from "./Section";
import { deletionConfirmed, formReducer, IDLE } from "./settings";

export function DeleteAccountSection({ email }: { email: string }) {
  const [open, setOpen] = useState(false);
  return (
    <Section
      title="Delete account"
      description="Stops and deletes every project's machine and disk, ends a subscription, and removes your account. This cannot be undone."
    >
      <div>
        <Button variant="danger" onClick={() => setOpen(true)} data-testid="delete-account">
          Delete account…
        </Button>
      </div>
      <DeleteAccountDialog email={email} open={open} onClose={() => setOpen(false)} />
    </Section>
  );
}

function DeleteAccountDialog({ email, open, onClose }: { email: string; open: boolean; onClose: () => void }) {
  const [typed, setTyped] = useState("");
  const [password, setPassword] = useState("");
  const [state, dispatch] = useReducer(formReducer, IDLE);
  const ready = deletionConfirmed(typed, email, password);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!ready || state.kind === "busy") return;
    dispatch({ type: "submit" });
    try {
      await api.deleteAccount(password);
      // Same tick as the tokens' removal: the app never draws a signed-out redirect first.
      navigate("/account-deleted", { replace: true });
    } catch (error) {
      dispatch({ type: "failed", error });
    }
  }

  const close = () => {
    if (state.kind === "busy") return;
    setTyped("");
    setPassword("");
    dispatch({ type: "edited" });
    onClose();
  };

  return (
    <Dialog
      open={open}
      onClose={close}
      title="Delete your account?"
      testId="delete-account-dialog"
      description={
        <>
          Every project, its machine and its files go with it. Type <strong className="text-fg">{email}</strong> to confirm.
        </>
      }
    >
      <form onSubmit={submit} className="flex flex-col gap-3" noValidate>
        {state.kind === "error" && (
          <div data-testid="delete-account-error">
            <Alert>{state.message}</Alert>
          </div>
        )}
        <Field
          label="Your email address"
          value={typed}
          autoComplete="off"
          data-autofocus
          onChange={(e) => {
            setTyped(e.target.value);
            dispatch({ type: "edited" });
          }}
          data-testid="delete-confirm-email"
        />
        <Field
          label="Password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => {
            setPassword(e.target.value);
            dispatch({ type: "edited" });
          }}
          data-testid="delete-password"
        />
        <div className="flex justify-end gap-2">
          <Button variant="ghost" onClick={close} data-testid="delete-account-cancel">
            Cancel
          </Button>
          <Button type="submit" variant="danger" disabled={!ready} loading={state.kind === "busy"} data-testid="delete-account-confirm">
            Delete my account
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
