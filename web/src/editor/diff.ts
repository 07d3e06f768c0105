/**
 * The smallest single replacement turning one text into another (common
 * prefix and suffix kept), so reloading a file from disk touches only the
 * lines that changed and the cursor and scroll position stay where they are.
 */
export interface Replacement {
  from: number;
  to: number;
  insert: string;
}

export function minimalChange(before: string, after: string): Replacement | null {
  if (before === after) return null;
  let start = 0;
  const max = Math.min(before.length, after.length);
  while (start < max && before.charCodeAt(start) === after.charCodeAt(start)) start++;
  let end = 0;
  while (end < max - start && before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)) end++;
  return { from: start, to: before.length - end, insert: after.slice(start, after.length - end) };
}
