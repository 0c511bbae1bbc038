/**
 * Swoole's `$server->connections`: every open session of the server (of every worker, in a
 * tree), from any process. Iterating pages through `getClientList` in id order, so a session
 * that opens meanwhile with a higher id is seen and one that closes is not.
 * @module
 */

/** What `Server.connections` reads through. */
export interface SessionLookup {
  getClientList(startSessionId: number, count: number): number[];
  exists(sessionId: number): boolean;
}

const page = 100;

/** `server.connections`: iterate the open session ids in id order; `has(id)`. */
export class Connections implements Iterable<number> {
  #server: SessionLookup;

  /** @internal */
  constructor(server: SessionLookup) {
    this.#server = server;
  }

  /** The open session ids, in id order. */
  *[Symbol.iterator](): IterableIterator<number> {
    let after = 0;
    while (true) {
      const ids = this.#server.getClientList(after, page);
      yield* ids;
      if (ids.length < page) return;
      after = ids[ids.length - 1];
    }
  }

  /** Whether `sessionId` is open (Swoole's `isset($server->connections[$fd])`). */
  has(sessionId: number): boolean {
    return this.#server.exists(sessionId);
  }

  /** How many sessions are open now (Swoole's `count($server->connections)`). */
  get size(): number {
    let n = 0;
    for (const _ of this) n++;
    return n;
  }
}
