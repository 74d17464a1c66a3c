// Prints the built wasm's size raw and gzipped; with --check, fails above the budget.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

export const BUDGET_GZIP_BYTES = 340 * 1000;

export function wasmSize(file = new URL("../build/index_bg.wasm", import.meta.url)) {
  const raw = readFileSync(file);
  return { raw: raw.length, gzip: gzipSync(raw, { level: 9 }).length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { raw, gzip } = wasmSize();
  console.log(`wasm size: ${(raw / 1000).toFixed(1)} KB raw, ${(gzip / 1000).toFixed(1)} KB gzip (budget ${BUDGET_GZIP_BYTES / 1000} KB gzip)`);
  if (process.argv.includes("--check") && gzip > BUDGET_GZIP_BYTES) {
    console.error(`wasm size budget exceeded: ${gzip} > ${BUDGET_GZIP_BYTES} bytes gzip`);
    process.exit(1);
  }
}
