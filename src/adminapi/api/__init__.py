"""The HTTP API of the admin panel: dependencies, schemas and one router per resource."""
