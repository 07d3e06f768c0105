/**
 * The workspace's resizable panels: file tree | editor, with the terminal
 * below the editor or beside it. Dragging moves the panels directly (no
 * React render per pointer move); the new sizes are committed, and
 * remembered, when the drag ends. The arrow keys on a focused divider work too.
 */
import { useLayoutEffect, useRef, type ReactNode } from "react";
import { Splitter } from "../ui/Splitter";
import { clampShare, clampTreeWidth, type Layout } from "./layout";

export interface PanelsProps {
  layout: Layout;
  onLayout: (layout: Layout) => void;
  tree: ReactNode;
  editor: ReactNode;
  terminal: ReactNode;
}

export function Panels({ layout, onLayout, tree, editor, terminal }: PanelsProps) {
  const rootRef = useRef<HTMLDivElement>(null);
  const treeRef = useRef<HTMLDivElement>(null);
  const mainRef = useRef<HTMLDivElement>(null);
  const termRef = useRef<HTMLDivElement>(null);
  const live = useRef(layout);
  const bottom = layout.terminal === "bottom";

  useLayoutEffect(() => {
    live.current = layout;
  }, [layout]);

  function dragTree(x: number) {
    const root = rootRef.current?.getBoundingClientRect();
    if (!root || !treeRef.current) return;
    const treeWidth = clampTreeWidth(Math.min(x - root.left, root.width * 0.6));
    treeRef.current.style.width = `${treeWidth}px`;
    live.current = { ...live.current, treeWidth };
  }

  function dragTerminal(position: number) {
    const main = mainRef.current?.getBoundingClientRect();
    if (!main || !termRef.current) return;
    const share = clampShare(bottom ? (main.bottom - position) / main.height : (main.right - position) / main.width);
    termRef.current.style.flexBasis = `${share * 100}%`;
    live.current = { ...live.current, terminalShare: share };
  }

  return (
    <div ref={rootRef} className="flex min-h-0 flex-1">
      {layout.treeOpen && (
        <>
          <div ref={treeRef} className="min-w-0 shrink-0" style={{ width: layout.treeWidth }} data-testid="panel-tree">
            {tree}
          </div>
          <Splitter
            orientation="vertical"
            label="Resize the file tree"
            valueNow={layout.treeWidth / 10}
            onDrag={dragTree}
            onDragEnd={() => onLayout(live.current)}
            onStep={(d) => onLayout({ ...layout, treeWidth: clampTreeWidth(layout.treeWidth + d * 16) })}
            testId="splitter-tree"
          />
        </>
      )}
      <div ref={mainRef} className={`flex min-h-0 min-w-0 flex-1 ${bottom ? "flex-col" : "flex-row"}`}>
        <div className="min-h-0 min-w-0 flex-1 basis-0" data-testid="panel-editor">
          {editor}
        </div>
        <Splitter
          orientation={bottom ? "horizontal" : "vertical"}
          label="Resize the terminal"
          valueNow={layout.terminalShare * 100}
          onDrag={dragTerminal}
          onDragEnd={() => onLayout(live.current)}
          onStep={(d) => onLayout({ ...layout, terminalShare: clampShare(layout.terminalShare - d * 0.03) })}
          testId="splitter-terminal"
        />
        <div
          ref={termRef}
          className="flex min-h-0 min-w-0 shrink-0 grow-0 flex-col"
          style={{ flexBasis: `${layout.terminalShare * 100}%` }}
          data-testid="panel-terminal"
        >
          {terminal}
        </div>
      </div>
    </div>
  );
}
