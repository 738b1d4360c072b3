// The baseline of the fan-out benchmark: a plain socket.io server that broadcasts each
// published event to every socket in a room, as dcports does for a channel. No database, no
// authorization: it is the cost of the transport alone. Started by `dcports-bench fanout
// --socketio`; PORT chooses the port. `POST /publish` broadcasts one event and answers 204.
"use strict";

const http = require("node:http");
const { performance } = require("node:perf_hooks");
const { Server } = require("socket.io");

let offset = 0;

/** RFC 3339 with microseconds, like dcports' `at`, so latencies are measured the same way. */
function now() {
  const ms = performance.timeOrigin + performance.now();
  const whole = Math.floor(ms);
  const micros = String(Math.floor((ms - whole) * 1000)).padStart(3, "0");
  return new Date(whole).toISOString().replace("Z", `${micros}Z`);
}

const server = http.createServer((request, response) => {
  if (request.method === "POST" && request.url === "/publish") {
    request.resume();
    request.on("end", () => {
      offset += 1;
      io.to("committee:1").emit("event", {
        type: "event",
        channel: "committee:1",
        offset,
        kind: "committee.updated",
        actor: 1,
        at: now(),
        data: { id: 1, name: "fanout", description: `benchmark write ${offset}`, kind: "technical" },
      });
      response.writeHead(204).end();
    });
    return;
  }
  response.writeHead(404).end();
});

const io = new Server(server, { transports: ["websocket"], serveClient: false });
io.on("connection", (socket) => {
  socket.on("subscribe", (channel, ack) => {
    socket.join(channel);
    if (typeof ack === "function") ack("subscribed");
  });
});

server.listen(Number(process.env.PORT || 3000), "127.0.0.1", () => {
  console.log(`socket.io baseline listening on ${server.address().port}`);
});
