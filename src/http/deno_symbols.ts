/**
 * What Deno keeps under symbols of its own (a `Request`'s inner request, a `Response`'s kept
 * body …), found by their descriptions on probe objects: serve_request.ts and
 * serve_response.ts read them as `Deno.serve` does, and fall back to the public API when a
 * symbol is not there.
 * @module
 */

/** The own symbol of `object` described as `description`, or undefined. */
export function symbolNamed(object: object, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(object).find((s) => s.description === description);
}
