/**
 * An in-memory stand-in for localStorage, shared by the tests that need a
 * token store.
 */
import type { KeyValueStorage } from "./token";

export class MapStorage implements KeyValueStorage {
  readonly map = new Map<string, string>();
  getItem(key: string): string | null {
    return this.map.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.map.set(key, value);
  }
  removeItem(key: string): void {
    this.map.delete(key);
  }
}
