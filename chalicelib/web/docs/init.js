// Swagger UI (from the npm package swagger-ui-dist, served by the app itself) on the API's
// OpenAPI document. The document's URL is relative to this page: on API Gateway the page is
// <stage>/docs and the document <stage>/openapi.json.
window.addEventListener("DOMContentLoaded", () => {
  window.ui = window.SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No calls to the public validator service: the page talks to this API only.
    validatorUrl: null,
    tryItOutEnabled: false,
  });
});
