/**
 * Detached responses: Swoole's `$response->detach()` and `Response::create($server, $fd)`. A
 * handler detaches its response; any process of the tree (a task worker, typically) makes one
 * for the session with `HttpResponse.create(server, fd)` and writes it. Its parts go to the
 * event worker that got the request (itself, or by mail: `forward_send` with `ForwardHttp`
 * bits), which writes them as the detached response, in order with the connection's others.
 *
 * The worker that got the request: in BASE mode the session's owner; in PROCESS mode the
 * session's home worker (`getClientInfo(fd).workerId`), the one its requests go to in dispatch
 * modes 2, 4 and 5. A created response knows nothing of its request: it answers as HTTP/1.1,
 * kept alive, uncompressed. A session knows only its fd, so when several of its responses are
 * detached at once, the parts that arrive first answer the oldest (answer them one at a time,
 * or in order, to know which is which).
 * @module
 */

import { ForwardHttp, RecordType } from "../_ffi/layout.ts";
import type { ServerContext } from "../context.ts";
import type { FilePart, ResponseSink } from "./response.ts";

/** Where a created response's parts go. */
export class DetachedSink implements ResponseSink {
  #ctx: ServerContext;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  write(
    fd: number,
    _seq: number,
    bytes: Uint8Array | FilePart,
    last: boolean,
    close = false,
    status = 0,
  ): boolean {
    const ctx = this.#ctx;
    if (!(bytes instanceof Uint8Array)) {
      this.warning(fd, "sendfile on a created response is not supported");
      return false;
    }
    // This worker got the request: its layer writes it.
    if (ctx.http?.detachedOf(fd)) return ctx.http.writeDetached(fd, bytes, last, close, status);
    const owner = this.#owner(fd);
    if (owner < 0 || !ctx.mailbox || owner === ctx.mailbox.self) {
      this.warning(fd, "no detached response of this session to write");
      return false;
    }
    const aux =
      (ForwardHttp.part | (last ? ForwardHttp.last : 0) | (close ? ForwardHttp.close : 0) |
        (status & 0xffff)) >>> 0;
    ctx.mailbox.send(owner, RecordType.forwardSend, fd, aux, bytes);
    ctx.mailed();
    return true;
  }

  /** The event worker that got session `fd`'s request (its owner, or home worker), or -1. */
  #owner(fd: number): number {
    return this.#ctx.server.getClientInfo(fd)?.workerId ?? -1;
  }

  open(fd: number): boolean {
    return this.#ctx.server.exists(fd);
  }

  whenClosed(): () => void {
    return () => {};
  }

  room(): Promise<void> {
    return Promise.resolve();
  }

  keepOpen(): boolean {
    return true;
  }

  warning(fd: number, message: string) {
    this.#ctx.log.warning(`session ${fd}: ${message}`);
  }
}
