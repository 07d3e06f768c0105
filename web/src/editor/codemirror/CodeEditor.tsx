/**
 * One text file in CodeMirror 6, wired to its `FileDocument`: the editor
 * reports whether its text differs from the document's baseline (dirty),
 * replaces its text when the document loads a new version (changing only
 * the lines that differ, so the cursor and scroll stay put), saves on
 * Ctrl/Cmd-S, and picks a syntax mode by file name. This module and
 * everything CodeMirror reach the browser only when a file is opened (the
 * editor chunk); each language is a further chunk of its own.
 */
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { bracketMatching, foldGutter, foldKeymap, indentOnInput } from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { Compartment, EditorState, type Extension, type Text } from "@codemirror/state";
import {
  crosshairCursor,
  drawSelection,
  dropCursor,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
  rectangularSelection,
} from "@codemirror/view";
import { useEffect, useRef } from "react";
import { useLatest } from "../../app/useLatest";
import type { LineSeparator } from "../content";
import type { CursorStore } from "../cursor";
import type { FileDocument } from "../document";
import { minimalChange } from "../diff";
import { languageOf } from "../languages";
import { registerEditor } from "../registry";
import { loadLanguage } from "./languages";
import { aetherTheme } from "./theme";

export interface CodeEditorProps {
  doc: FileDocument;
  active: boolean;
  /** Grows each time the editor should take the keyboard (when active). */
  focusSeq: number;
  onSave: () => void;
  cursor: CursorStore;
}

function separatorExtension(separator: LineSeparator): Extension {
  // LF files leave the facet unset, so a stray CR-LF pasted in becomes LF.
  return separator === "\r\n" ? EditorState.lineSeparator.of("\r\n") : [];
}

export default function CodeEditor({ doc, active, focusSeq, onSave, cursor }: CodeEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const viewRef = useRef<EditorView | null>(null);
  const onSaveRef = useLatest(onSave);
  const activeRef = useLatest(active);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    let disposed = false;
    const snap = doc.snapshot;
    const language = new Compartment();
    const separator = new Compartment();
    let revision = snap.revision;
    let baseline = snap.baseline;
    let lineSeparator = snap.lineSeparator;
    let path = snap.path;
    let baselineText: Text;

    const report = (state: EditorState) => {
      if (!activeRef.current) return;
      const { main } = state.selection;
      const line = state.doc.lineAt(main.head);
      const selected = state.selection.ranges.reduce((n, r) => n + (r.to - r.from), 0);
      cursor.set({ line: line.number, column: main.head - line.from + 1, selected });
    };

    const state = EditorState.create({
      doc: snap.baseline,
      extensions: [
        separator.of(separatorExtension(snap.lineSeparator)),
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        foldGutter({ openText: "▾", closedText: "▸" }),
        drawSelection(),
        dropCursor(),
        EditorState.allowMultipleSelections.of(true),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        rectangularSelection(),
        crosshairCursor(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        keymap.of([
          {
            key: "Mod-s",
            preventDefault: true,
            run: () => {
              onSaveRef.current();
              return true;
            },
          },
          ...closeBracketsKeymap,
          ...defaultKeymap,
          ...searchKeymap,
          ...historyKeymap,
          ...foldKeymap,
          indentWithTab,
        ]),
        aetherTheme,
        language.of([]),
        EditorView.contentAttributes.of({ "aria-label": `Editor: ${snap.path}`, "data-testid": "code-editor" }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) doc.setDirty(!update.state.doc.eq(baselineText));
          if (update.docChanged || update.selectionSet || update.focusChanged) report(update.state);
        }),
      ],
    });
    baselineText = state.doc;
    const view = new EditorView({ state, parent: el });
    viewRef.current = view;
    doc.attach({ getText: () => view.state.doc.toString() });

    const setLanguage = (forPath: string) => {
      loadLanguage(languageOf(forPath))
        .then((extension) => {
          if (!disposed && path === forPath) view.dispatch({ effects: language.reconfigure(extension) });
        })
        .catch(() => {
          // The chunk did not load (offline?): the file stays plain text.
        });
    };
    setLanguage(path);

    const probe = { text: () => view.state.doc.toString(), dirty: () => doc.snapshot.dirty };
    let unregister = registerEditor(path, probe);

    const unsubscribe = doc.subscribe(() => {
      const s = doc.snapshot;
      if (s.path !== path) {
        path = s.path;
        unregister();
        unregister = registerEditor(path, probe);
        setLanguage(path);
      }
      if (s.revision !== revision) {
        // A new version from disk replaces the text.
        revision = s.revision;
        baseline = s.baseline;
        if (s.lineSeparator !== lineSeparator) {
          lineSeparator = s.lineSeparator;
          view.dispatch({ effects: separator.reconfigure(separatorExtension(lineSeparator)) });
        }
        // Diff in editor positions (each line break one character), whatever the file's separator.
        const next = view.state.toText(s.baseline);
        const current = view.state.doc;
        const change = minimalChange(current.sliceString(0, current.length, "\n"), next.sliceString(0, next.length, "\n"));
        if (change) {
          view.dispatch({ changes: { from: change.from, to: change.to, insert: next.slice(change.from, change.from + change.insert.length) } });
        }
        baselineText = view.state.doc;
        doc.setDirty(false);
      } else if (s.baseline !== baseline) {
        // Saved: what is on disk now is the new baseline.
        baseline = s.baseline;
        baselineText = view.state.toText(s.baseline);
        doc.setDirty(!view.state.doc.eq(baselineText));
      }
    });

    return () => {
      disposed = true;
      unsubscribe();
      unregister();
      doc.attach(null);
      view.destroy();
      viewRef.current = null;
    };
  }, [doc, cursor, onSaveRef, activeRef]);

  useEffect(() => {
    const view = viewRef.current;
    if (!active || !view) return;
    view.requestMeasure();
    const { main } = view.state.selection;
    const line = view.state.doc.lineAt(main.head);
    cursor.set({ line: line.number, column: main.head - line.from + 1, selected: main.to - main.from });
  }, [active, cursor]);

  const focused = useRef(0);
  useEffect(() => {
    if (!active || focusSeq <= focused.current) return;
    focused.current = focusSeq;
    viewRef.current?.focus();
  }, [active, focusSeq]);

  return <div ref={host} className="absolute inset-0" hidden={!active} data-testid="editor-host" data-path={doc.path} />;
}
