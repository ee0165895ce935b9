"""The Descope Management API client: HTTP, answers mapped to one error hierarchy, secrets redacted."""
