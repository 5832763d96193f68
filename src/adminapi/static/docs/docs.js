// The API docs from the package itself (Swagger UI 5.18.2, swagger-ui-dist, Apache-2.0; see LICENSE, NOTICE):
// nothing is loaded from the internet, not even the spec validator badge.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    persistAuthorization: false,
  });
});
