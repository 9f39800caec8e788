package accountingapi

import _ "embed"

// OpenAPI describes this package's routes: an OpenAPI 3.0 document whose
// paths and components.schemas belong in the server's /api/v1/openapi.json;
// its other $refs point at that document's components (Error, Unauthorized,
// Forbidden). A test keeps it in step with Register.
//
//go:embed openapi.json
var OpenAPI []byte
