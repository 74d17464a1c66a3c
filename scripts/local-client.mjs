// What the seeding scripts share: waiting for a local joingate and calling its API.

/** Waits until `${base}/healthz` answers 200; resolves to the milliseconds waited. */
export async function waitUntilUp(base, deadlineMs = 120_000) {
  const start = Date.now();
  for (;;) {
    try {
      const res = await fetch(`${base}/healthz`);
      if (res.ok) return Date.now() - start;
    } catch {
      // not listening yet
    }
    if (Date.now() - start > deadlineMs) throw new Error(`joingate did not answer at ${base}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** A JSON call; resolves to the envelope's `data` (or the whole answer), throws on failure. */
export async function callJson(method, url, headers, body) {
  const res = await fetch(url, { method, headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok || json.success === false) {
    throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json.error ?? json)}`);
  }
  return json.data ?? json;
}
