/**
 * CodeMirror in aether's colours: the canvas background, the app's muted
 * greys for gutters, the accent for the cursor and selection, and a syntax
 * palette matching the terminal's.
 */
import { HighlightStyle, syntaxHighlighting } from "@codemirror/language";
import type { Extension } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import { tags as t } from "@lezer/highlight";

const MONO = 'ui-monospace, "SFMono-Regular", "JetBrains Mono", "Cascadia Mono", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace';

const base = EditorView.theme(
  {
    "&": { height: "100%", color: "#dfe3ea", backgroundColor: "#0b0d12", fontSize: "13px" },
    "&.cm-focused": { outline: "none" },
    ".cm-scroller": { fontFamily: MONO, lineHeight: "1.55", overscrollBehavior: "contain" },
    ".cm-content": { padding: "8px 0 40vh", caretColor: "#c9c2ff" },
    ".cm-line": { padding: "0 16px 0 6px" },
    ".cm-cursor, .cm-dropCursor": { borderLeftColor: "#c9c2ff", borderLeftWidth: "2px" },
    "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection": {
      backgroundColor: "#7c6cff40",
    },
    ".cm-selectionMatch": { backgroundColor: "#7c6cff22" },
    ".cm-activeLine": { backgroundColor: "#ffffff06" },
    ".cm-gutters": { backgroundColor: "#0b0d12", color: "#4b5363", border: "none", paddingLeft: "6px" },
    ".cm-activeLineGutter": { backgroundColor: "transparent", color: "#9aa3b2" },
    ".cm-lineNumbers .cm-gutterElement": { padding: "0 10px 0 8px", minWidth: "32px" },
    ".cm-foldGutter .cm-gutterElement": { color: "#4b5363", padding: "0 2px" },
    ".cm-foldGutter .cm-gutterElement:hover": { color: "#dfe3ea" },
    ".cm-foldPlaceholder": { backgroundColor: "#181c25", border: "1px solid #262b36", color: "#9aa3b2", padding: "0 6px", borderRadius: "4px" },
    "&.cm-focused .cm-matchingBracket": { backgroundColor: "#7c6cff33", outline: "1px solid #7c6cff66" },
    "&.cm-focused .cm-nonmatchingBracket": { backgroundColor: "#f8717133" },
    ".cm-searchMatch": { backgroundColor: "#fbbf2433", outline: "1px solid #fbbf2466" },
    ".cm-searchMatch.cm-searchMatch-selected": { backgroundColor: "#fbbf2466" },
    ".cm-panels": { backgroundColor: "#12151c", color: "#e7e9ee" },
    ".cm-panels.cm-panels-top": { borderBottom: "1px solid #262b36" },
    ".cm-panels.cm-panels-bottom": { borderTop: "1px solid #262b36" },
    ".cm-panel.cm-search": { padding: "6px 10px", fontFamily: "inherit", fontSize: "12px" },
    ".cm-panel.cm-search input, .cm-panel.cm-search button, .cm-panel.cm-search label": { fontSize: "12px" },
    ".cm-textfield": { backgroundColor: "#0b0d12", border: "1px solid #343a47", borderRadius: "5px", color: "#e7e9ee", padding: "2px 6px" },
    ".cm-button": { backgroundImage: "none", backgroundColor: "#181c25", border: "1px solid #262b36", borderRadius: "5px", color: "#e7e9ee" },
    ".cm-panel.cm-search [name=close]": { color: "#9aa3b2" },
    ".cm-tooltip": { backgroundColor: "#181c25", border: "1px solid #262b36", borderRadius: "6px", color: "#e7e9ee" },
    ".cm-specialChar": { color: "#f87171" },
  },
  { dark: true },
);

const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.moduleKeyword, t.operatorKeyword, t.definitionKeyword, t.modifier], color: "#c792ea" },
  { tag: [t.string, t.special(t.string), t.regexp, t.character], color: "#a5e09a" },
  { tag: [t.number, t.bool, t.null, t.atom, t.unit], color: "#f7a76c" },
  { tag: [t.comment, t.lineComment, t.blockComment, t.docComment], color: "#5f6a7d", fontStyle: "italic" },
  { tag: [t.function(t.variableName), t.function(t.propertyName), t.macroName], color: "#7cb7ff" },
  { tag: [t.typeName, t.className, t.namespace, t.standard(t.typeName)], color: "#5fd4e6" },
  { tag: [t.propertyName, t.attributeName], color: "#9cc6ff" },
  { tag: [t.definition(t.variableName), t.definition(t.propertyName)], color: "#e7e9ee" },
  { tag: [t.variableName, t.self], color: "#dfe3ea" },
  { tag: [t.tagName, t.angleBracket], color: "#f78c8c" },
  { tag: [t.operator, t.punctuation, t.separator, t.bracket, t.derefOperator], color: "#9aa3b2" },
  { tag: [t.meta, t.processingInstruction, t.annotation], color: "#9aa3b2" },
  { tag: [t.escape, t.constant(t.variableName)], color: "#f7a76c" },
  { tag: t.heading, color: "#c9c2ff", fontWeight: "600" },
  { tag: [t.heading1, t.heading2], color: "#c9c2ff", fontWeight: "700" },
  { tag: t.emphasis, fontStyle: "italic" },
  { tag: t.strong, fontWeight: "700" },
  { tag: t.strikethrough, textDecoration: "line-through" },
  { tag: [t.link, t.url], color: "#7cb7ff", textDecoration: "underline" },
  { tag: t.monospace, color: "#a5e09a" },
  { tag: t.quote, color: "#9aa3b2", fontStyle: "italic" },
  { tag: [t.inserted], color: "#4ade80" },
  { tag: [t.deleted], color: "#f87171" },
  { tag: t.invalid, color: "#f87171" },
]);

export const aetherTheme: Extension = [base, syntaxHighlighting(highlight)];
