// The envelope for a failure the Rust side could not answer itself (contract section 1:
// "A panic or unexpected error still yields this envelope with internal_error").
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function internalErrorResponse(request, error) {
  const given = request.headers.get("X-Request-Id");
  const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID().replaceAll("-", "");
  const body = {
    success: false,
    error: { code: "internal_error", message: "Internal error." },
    request_id: requestId,
    timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
  console.error(JSON.stringify({ level: "error", request_id: requestId, msg: "unhandled failure", error: String(error?.name ?? "Error") }));
  return new Response(JSON.stringify(body), {
    status: 500,
    headers: {
      "Content-Type": "application/json; charset=utf-8",
      "Cache-Control": "no-store",
      "X-Request-Id": requestId,
    },
  });
}
