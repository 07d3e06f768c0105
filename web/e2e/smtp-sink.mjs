// A mail server for the browser tests: speaks enough SMTP (EHLO/HELO,
// MAIL, RCPT, DATA, RSET, NOOP, QUIT) on 127.0.0.1 for the hub to send its
// mail, and keeps each message as a file in a folder, the envelope's
// recipients first as `X-Envelope-To:` lines. It listens on a port the
// system picks and writes that port to a file once it listens.
//
//   node e2e/smtp-sink.mjs MAIL_DIR PORT_FILE
//
// Messages are written to a temporary name and renamed, so a reader never
// sees half of one. Plain Node, no dependencies.
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

const [dir, portFile] = process.argv.slice(2);
if (!dir || !portFile) {
  console.error("usage: node e2e/smtp-sink.mjs MAIL_DIR PORT_FILE");
  process.exit(2);
}
mkdirSync(dir, { recursive: true });

let received = 0;

/** @param {string[]} to @param {string} data */
function keep(to, data) {
  received++;
  const name = `${Date.now()}-${String(received).padStart(4, "0")}.eml`;
  const text = to.map((t) => `X-Envelope-To: ${t}\r\n`).join("") + data;
  writeFileSync(join(dir, `.${name}.tmp`), text);
  renameSync(join(dir, `.${name}.tmp`), join(dir, name));
}

const server = createServer((socket) => {
  socket.setEncoding("latin1");
  /** @type {string[]} */
  let to = [];
  /** @type {string[] | null} the message's lines while in DATA */
  let data = null;
  let pending = "";
  const reply = (/** @type {string} */ line) => socket.write(`${line}\r\n`);

  /** @param {string} line one line without its CRLF */
  function command(line) {
    if (data) {
      if (line === ".") {
        keep(to, data.map((l) => `${l}\r\n`).join(""));
        data = null;
        to = [];
        reply("250 OK queued");
      } else {
        data.push(line.startsWith(".") ? line.slice(1) : line);
      }
      return;
    }
    const verb = line.slice(0, 4).toUpperCase();
    switch (verb) {
      case "EHLO":
        reply("250-sink");
        reply("250 8BITMIME");
        break;
      case "HELO":
      case "NOOP":
        reply("250 OK");
        break;
      case "MAIL":
      case "RSET":
        to = [];
        reply("250 OK");
        break;
      case "RCPT": {
        const address = /<([^>]*)>/.exec(line)?.[1];
        if (address) to.push(address);
        reply("250 OK");
        break;
      }
      case "DATA":
        data = [];
        reply("354 go ahead, end with <CRLF>.<CRLF>");
        break;
      case "QUIT":
        reply("221 bye");
        socket.end();
        break;
      default:
        reply("502 not implemented");
    }
  }

  socket.on("data", (chunk) => {
    pending += chunk;
    let at;
    while ((at = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, at).replace(/\r$/, "");
      pending = pending.slice(at + 1);
      command(line);
    }
  });
  socket.on("error", () => socket.destroy());
  reply("220 sink ESMTP");
});

server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("the sink has no port");
  writeFileSync(`${portFile}.tmp`, String(address.port));
  renameSync(`${portFile}.tmp`, portFile);
});

// A pooled connection may stay open: end without waiting for it.
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
