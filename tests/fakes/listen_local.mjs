// Preloaded with `node --import` so servers that call listen(port) bind 127.0.0.1 only.
import http from "node:http";

const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  const portOnly = ["number", "string"].includes(typeof args[0]) && typeof args[1] !== "string";
  if (portOnly) args.splice(1, 0, "127.0.0.1");
  return listen.apply(this, args);
};
