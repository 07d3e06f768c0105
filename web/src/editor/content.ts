/**
 * Whether a file's bytes open as text in the editor: not when larger than
 * 5 MB, not when a NUL byte appears in the first 8 KB (how git and most
 * editors spot binary files), and not when the bytes are not valid UTF-8
 * (decoding would replace them, and saving would then corrupt the file).
 */
export const MAX_TEXT_BYTES = 5 * 1024 * 1024;
export const SNIFF_BYTES = 8 * 1024;

export type LineSeparator = "\n" | "\r\n";

export type Classified =
  | { kind: "text"; text: string; lineSeparator: LineSeparator }
  | { kind: "binary"; reason: "nul" | "encoding" }
  | { kind: "too_large" };

/** `bytes` null means the file was not downloaded because `size` is over the limit. */
export function classifyContent(bytes: Uint8Array | null, size: number): Classified {
  if (bytes === null || size > MAX_TEXT_BYTES || bytes.length > MAX_TEXT_BYTES) return { kind: "too_large" };
  if (bytes.subarray(0, SNIFF_BYTES).includes(0)) return { kind: "binary", reason: "nul" };
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, so saving writes it back.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return { kind: "binary", reason: "encoding" };
  }
  return { kind: "text", text, lineSeparator: lineSeparatorOf(text) };
}

/** CRLF when most line breaks are CRLF, else LF; the editor writes lines back with it. */
export function lineSeparatorOf(text: string): LineSeparator {
  let crlf = 0;
  let lf = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) {
    if (i > 0 && text.charCodeAt(i - 1) === 13) crlf++;
    else lf++;
  }
  return crlf > lf ? "\r\n" : "\n";
}

/** 1536 → "1.5 KB". */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 ? Math.round(value) : Math.round(value * 10) / 10} ${units[unit]}`;
}
