// The interactive reference of the Worker's own OpenAPI document. "Try it out" calls go to
// the origin the page came from (the document has no `servers`), so under `wrangler dev`
// they reach the local run.
window.ui = SwaggerUIBundle({
  url: "/v1/openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  // The token is entered once (Authorize) and kept in this browser's localStorage.
  persistAuthorization: true,
  displayRequestDuration: true,
  defaultModelsExpandDepth: -1,
  // Swagger UI would otherwise send the document to validator.swagger.io for a badge.
  validatorUrl: null,
});
