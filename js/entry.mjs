// The Worker's entry: the Rust Worker built by worker-build, wrapped so that even a panic
// (a trapped Wasm instance) answers in the contract's envelope with `internal_error`.
import Joingate, { SessionObject } from "../build/index.js";
import { internalErrorResponse } from "./internal-error.mjs";

export { SessionObject };

export default class extends Joingate {
  async fetch(request) {
    try {
      return await super.fetch(request);
    } catch (error) {
      return internalErrorResponse(request, error);
    }
  }
}
