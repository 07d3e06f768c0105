// Test helper: sockets that record what was opened and closed.
import type { SocketFactory, SocketHandlers } from "./reconnectingSocket";

export interface FakeSocket {
  url: string;
  handlers: SocketHandlers;
  closed: boolean;
}

/** A socket factory that appends every socket it opens to `sockets`. */
export function fakeSockets(sockets: FakeSocket[]): SocketFactory {
  return (url, handlers) => {
    const socket: FakeSocket = { url, handlers, closed: false };
    sockets.push(socket);
    return { send: () => {}, close: () => (socket.closed = true) };
  };
}
